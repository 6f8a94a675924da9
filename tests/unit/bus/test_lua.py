"""The Lua wrappers: every script ships as a file, named arguments land in the right KEYS/ARGV
slots, and replies come back typed."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Any, cast

from redis.asyncio import Redis as AsyncRedis

from backend.bus import lua

SCRIPTS = ("ingest", "outbox_ack", "dead_letter_requeue", "hash_compare_and_delete",
           "hincrby_many", "calc_read_step", "view_write", "host_slot_acquire", "host_slot_release",
           "alert_rule_put", "alert_rules_replace", "realtime_tail", "realtime_read_after",
           "rebuild_swap_read", "calc_claim", "calc_claim_settle")  # fmt: skip


class RecordingPipe:
    """Stands in for a (sync or async, buffered or WATCHing) pipeline: records EVALs."""

    def __init__(self, reply: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.reply = reply

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls.append((script, numkeys, *keys_and_args))
        return self.reply


class FakeScriptClient:
    """Stands in for an async client: `register_script` returns a script that answers `reply`."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[dict[str, Any]] = []

    def register_script(self, source: str) -> Any:
        async def run(keys: list[str], args: list[Any]) -> Any:
            self.calls.append({"source": source, "keys": keys, "args": args})
            return self.reply

        return run


def test_every_script_is_a_packaged_file_of_its_own():
    names = {p.name for p in files("backend.bus").iterdir() if p.name.endswith(".lua")}
    assert names == {f"{name}.lua" for name in SCRIPTS}
    for name in SCRIPTS:
        assert "redis.call" in lua.source(name)


def test_ingest_reply_is_typed_statuses_or_the_backlog_it_shed_at():
    def run(reply: Any) -> tuple[lua.IngestReply, FakeScriptClient]:
        client = FakeScriptClient(reply)
        script = lua.IngestLua(cast(AsyncRedis, client))
        result = asyncio.run(
            script(
                queue_list="q", queue_messages="q.msgs", outbox="o", stats="s", generation=9,
                live_generations=3, expire_s=60, dedup_prefix="d:", legacy_marker="lm",
                legacy_prefix="l:", max_backlog=10, message_id="m", message_head=b"h",
                message_tail=b"t",
                ticks=[lua.DedupTick(1, b"i1", b"d1", "e1", b"c1", b"x1"),
                       lua.DedupTick(2, b"i2", b"d2", "e2", b"c2", b"x2")],
            )
        )  # fmt: skip
        return result, client

    reply, client = run([1, 2, b"stored"])
    assert reply == lua.IngestReply(shed_at_backlog=None, statuses=[1, 2, b"stored"])
    assert client.calls[0]["keys"] == ["q", "q.msgs", "o", "s"]
    assert client.calls[0]["args"] == [
        9, "m", b"h", b"t", "d:", 10, 3, 60, "lm", "l:", 0,
        1, b"i1", b"d1", "e1", b"c1", b"x1", 2, b"i2", b"d2", "e2", b"c2", b"x2",
    ]  # fmt: skip
    reply, _ = run(12)
    assert reply == lua.IngestReply(shed_at_backlog=12, statuses=[])


def test_requeue_and_prune_replies_are_typed():
    client = FakeScriptClient(1)
    moved = asyncio.run(
        lua.requeue_dead_letter(
            cast(AsyncRedis, client), dead_letters="xq", dead_letter_messages="xq.msgs",
            queue_list="q", queue_messages="q.msgs", reasons="r", stats="s", message_id="m",
            expected_body=b"old", new_body=b"new", ticks=3,
        )
    )  # fmt: skip
    assert moved is True
    assert client.calls[0]["keys"] == ["xq", "xq.msgs", "q", "q.msgs", "r", "s"]
    assert client.calls[0]["args"] == ["m", b"old", b"new", 3]
    client = FakeScriptClient(2)
    removed = asyncio.run(
        lua.hdel_if_unchanged(cast(AsyncRedis, client), key="h", expected={b"a": b"1", b"b": b"2"})
    )
    assert removed == 2 and client.calls[0]["args"] == [b"a", b"1", b"b", b"2"]
    assert asyncio.run(lua.hdel_if_unchanged(cast(AsyncRedis, client), key="h", expected={})) == 0


def test_counters_are_one_command_of_the_non_zero_increments():
    pipe = RecordingPipe()
    assert lua.queue_hincrby_many(pipe, key="s", increments={"a": 2, "zero": 0, "b": -1})
    assert pipe.calls == [(lua.source("hincrby_many"), 1, "s", "a", 2, "b", -1)]
    assert not lua.queue_hincrby_many(pipe, key="s", increments={"zero": 0})
    assert len(pipe.calls) == 1


def test_outbox_ack_and_view_write_map_named_arguments_to_their_slots():
    pipe = RecordingPipe()
    lua.queue_outbox_ack(pipe, outbox="o", stats="s", group="g", entries=[(b"1-0", 3), (b"2-0", 4)])
    assert pipe.calls[0][1:] == (2, "o", "s", "g", b"1-0", 3, b"2-0", 4)
    lua.queue_view_write(
        pipe, view_key="v", symbols_key="sy", order_key="vo", symbol="S", order="o1",
        view_json=b"{}", now_us=5, ring_key="r", ring_cap=100, event=b"e",
    )  # fmt: skip
    assert pipe.calls[1][1:] == (4, "v", "sy", "vo", "r", "S", "o1", b"{}", 5, 100, b"e")


def test_calc_read_step_is_typed():
    names = {"state": "s", "fence": "f", "view_order": "vo", "seal": "se", "window": "w"}
    reply = [b"state", 1, 0, 1, [b"m1", b"10", b"m2", b"11"], [b"m3", b"12"], 1, 0]
    pipe = RecordingPipe(reply)
    read = lua.read_calc_step(pipe, done_markers=["d1", "d2"], **names, symbol="X", cutoff_us=11)
    assert read == lua.CalcStepRead(
        applied=(True, False), raw_state=b"state", fenced=True, known=False, sealed=True,
        cutoff_us=11, upto=[(b"m1", 10.0), (b"m2", 11.0)], first_after=[(b"m3", 12.0)],
    )  # fmt: skip
    assert not read.already_applied  # d2 has not applied X yet
    assert pipe.calls[0][1:] == (7, "s", "f", "vo", "se", "w", "d1", "d2", "X", 11)
    read = lua.read_calc_step(RecordingPipe([None, 0, 1, 0, [], [], 1]), done_markers=["d"],
                              **names, symbol="X")  # fmt: skip
    assert read == lua.CalcStepRead(
        applied=(True,), raw_state=None, fenced=False, known=True, sealed=False
    )
    assert read.already_applied


def test_rebuild_swap_read_pairs_the_fence_and_keeps_the_bodies():
    pipe = RecordingPipe([[b"\x00since", b"1", b"e1", b"[1]"], [b"m1", b"m2"]])
    fence, bodies = lua.read_rebuild_swap(pipe, fence="f", message_hashes=["q", "dq", "xq"])
    assert fence == {b"\x00since": b"1", b"e1": b"[1]"}
    assert bodies == [b"m1", b"m2"]
    assert pipe.calls[0][1:] == (4, "f", "q", "dq", "xq")
    assert lua.read_rebuild_swap(RecordingPipe([[], []]), fence="f", message_hashes=[]) == (
        None, [],
    )  # fmt: skip


def test_view_order_as_a_string_sorts_like_ts_then_event_id():
    cases = [(10, "b"), (9, "z"), (10, "a"), (100, ""), (10, "")]
    by_string = sorted(cases, key=lambda c: lua.view_order(*c))
    assert by_string == sorted(cases)
