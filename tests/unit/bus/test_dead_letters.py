"""The pure parts of dead-letter handling: reasons, descriptions, the retry reset."""

from __future__ import annotations

import orjson

from backend.bus.dead_letters import (
    applied_symbols,
    dead_letter_ticks,
    describe,
    reason_record,
    reset_for_retry,
)

BODY = orjson.dumps(
    {
        "queue_name": "ticks.received",
        "actor_name": "calc_ticks",
        "args": [[["e-1", "BTCUSDT", 1, 0.1 + 0.2, 1e-12, "binance", None, 2]]],
        "kwargs": {},
        "options": {"retries": 3, "traceback": "Traceback...\nValueError: boom\n", "eta": 5},
        "message_id": "m-1",
        "message_timestamp": 1,
    }
)


def test_reason_prefers_the_exception_then_the_traceback() -> None:
    with_exc = orjson.loads(reason_record(KeyError("state"), "tb", 42))
    assert with_exc == {"error": "KeyError: 'state'", "traceback": "tb", "failed_at_ms": 42}
    from_tb = orjson.loads(reason_record(None, "Traceback...\nValueError: boom\n", 1))
    assert from_tb["error"] == "ValueError: boom"
    assert orjson.loads(reason_record(None, None, 1))["error"] == "unknown"


def test_describe_reads_the_body_and_the_recorded_reason() -> None:
    reason = reason_record(RuntimeError("x"), "tb", 7)
    item = describe("ticks.received", "m-1", BODY, 1234.0, reason)
    assert item["actor"] == "calc_ticks"
    assert item["items"] == 1
    assert item["retries"] == 3
    assert item["reason"] == "RuntimeError: x"
    assert item["dead_lettered_at_ms"] == 1234
    # Without a recorded reason, the traceback Dramatiq kept in the options speaks.
    assert describe("q", "m-1", BODY, 0.0, None)["reason"] == "ValueError: boom"
    broken = describe("q", "m-2", b"{not json", 0.0, b"also not json")
    assert broken["readable"] is False
    assert broken["reason"].startswith("unknown")


def test_reset_clears_retry_bookkeeping_and_keeps_floats_exact() -> None:
    new = orjson.loads(reset_for_retry(BODY))
    assert "retries" not in new["options"] and "traceback" not in new["options"]
    assert "eta" not in new["options"]
    assert new["options"]["requeues"] == 1
    assert new["args"][0][0][3] == 0.1 + 0.2  # 0.30000000000000004, not a rounded 0.3
    assert new["args"][0][0][4] == 1e-12
    assert orjson.loads(reset_for_retry(orjson.dumps(new)))["options"]["requeues"] == 2


def test_dead_letter_ticks_leave_out_the_symbols_the_batch_already_applied() -> None:
    raw = [["e-1", "AAA", 1, 1.0, 1.0, "x", None, 2], ["e-2", "BBB", 1, 1.0, 1.0, "x", None, 2],
           ["e-3", "AAA", 2, 1.0, 1.0, "x", None, 2]]  # fmt: skip
    assert dead_letter_ticks("calc_ticks", [raw]) == 3
    assert dead_letter_ticks("calc_ticks", [raw], applied_symbols([b"AAA"])) == 1
    assert dead_letter_ticks("calc_ticks", [raw], {"AAA", "BBB"}) == 0
    assert dead_letter_ticks("calc_view", [["AAA"]]) == 0
