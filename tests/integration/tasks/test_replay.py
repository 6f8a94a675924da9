"""Replays through the real processes: API + the `history` service + PostgreSQL + Redis.

Every replay's views, candles and gaps must equal the naive reference over the stored ticks of
its range, whatever the speed, the slicing, the pauses, or a kill -9 of its worker; its sandboxed
rules must fire exactly what the alert reference says, and nothing of it may reach the live side.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis import Redis

from backend.bus.keys import ALERTS_DELIVER_QUEUE, ALERTS_EVALUATE_QUEUE, Keys
from backend.core.ticks import Tick, parse_ts_us, us_to_iso
from backend.settings import Settings
from tests import reference
from tests.alerts_reference import expected_price_firings
from tests.support.alerts import as_reference, price_rules, put_rules
from tests.support.history import SOURCES, make_history, store
from tests.support.processes import Processes
from tests.support.ring import RingEvents
from tests.support.verify import view_mismatches
from tests.support.waiting import wait_for

SYMBOLS = ["AAA", "BBB", "CCC"]
API_KEY = "replay-key"
HEADERS = {"x-api-key": API_KEY}
FAST_SLICES = {"REPLAY_SLICE_S": "0.5"}  # many slices: every hand-over is exercised


def _range(ticks: list[Tick]) -> dict[str, str]:
    return {
        "from": us_to_iso(min(t.ts_us for t in ticks)),
        "to": us_to_iso(max(t.ts_us for t in ticks) + 1),
    }


def _start(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/replays", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _status(client: httpx.Client, replay_id: str) -> dict[str, Any]:
    response = client.get(f"/replays/{replay_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _finished(client: httpx.Client, replay_id: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = _status(client, replay_id)
        assert status["state"] not in ("failed", "cancelled"), status
        return status if status["state"] == "done" else None

    return dict(wait_for(done, timeout, what=f"replay {replay_id} done"))


def _exact(procs: Processes, replay_id: str, ticks: list[Tick]) -> None:
    problems, overcount = view_mismatches(
        procs.api_url, ticks, base=f"/replays/{replay_id}", headers=HEADERS
    )
    assert problems == [], problems[:10]
    assert overcount == 0


@pytest.fixture
def client(procs: Processes) -> httpx.Client:
    with httpx.Client(base_url=procs.api_url, headers=HEADERS, timeout=10) as c:
        yield c  # type: ignore[misc]


def test_a_replay_at_max_equals_the_reference_and_its_sandbox_fires_what_the_reference_does(
    procs: Processes, settings: Settings, redis_client: Redis, client: httpx.Client
) -> None:
    # Two busy symbols over ten minutes, one quiet one over a whole day.
    ticks = make_history(SYMBOLS[:2], ticks_per_symbol=1_500, span_s=600)
    ticks += make_history(SYMBOLS[2:], ticks_per_symbol=1_500, span_s=86_400, seed=9)
    assert store(settings.psycopg_url, ticks) == len(ticks)
    stored_rules = price_rules("AAA")[:14]
    put_rules(redis_client, settings, stored_rules)
    inline = {"name": "inline", "symbol": "BBB", "field": "last_price",
              "condition": "crosses", "value": 100.0, "trigger": "every_time"}  # fmt: skip
    live_ring = RingEvents(redis_client, settings.realtime_stream)
    procs.start_api({"API_KEY": API_KEY})
    procs.start_history(extra_env=FAST_SLICES)

    replay_id = _start(
        client,
        {**_range(ticks), "symbols": SYMBOLS, "speed": "max", "alerts": "sandbox",
         "rule_ids": [r.id for r in stored_rules], "rules": [inline]},
    )  # fmt: skip
    status = _finished(client, replay_id)

    assert status["ticks_total"] == status["ticks_applied"] == status["ticks_read"] == len(ticks)
    assert status["cursor"] == us_to_iso(max(t.ts_us for t in ticks))
    _exact(procs, replay_id, ticks)
    for symbol in SYMBOLS:
        gaps = client.get(f"/replays/{replay_id}/symbols/{symbol}/gaps").json()["open"]
        expected_gaps = {
            (source, *gap)
            for source in SOURCES
            for gap in reference.gaps(
                {t.seq for t in ticks if (t.symbol, t.source) == (symbol, source)}
            )
        }
        assert {(g["source"], g["from_seq"], g["to_seq"]) for g in gaps} == expected_gaps
        assert expected_gaps  # the history has holes: the comparison means something

    # The sandbox: exactly the reference's firings, with the ticks that fired them.
    firings = client.get(f"/replays/{replay_id}/alerts").json()["firings"]
    prices = {s: [(t.ts_us, t.event_id, t.price) for t in ticks if t.symbol == s] for s in SYMBOLS}
    inline_rule = inline | {"id": "inline-1"}
    expected = expected_price_firings(as_reference(stored_rules), prices["AAA"])
    expected += expected_price_firings([inline_rule], prices["BBB"])
    got = {(f["rule_id"], parse_ts_us(f["tick"]["ts"]), f["tick"]["event_id"], f["observed"])
           for f in firings}  # fmt: skip
    assert got == {(e.rule_id, e.ts_us, e.event_id, e.observed) for e in expected}
    assert len(firings) == len(got) == status["firings"] > 0

    # Everything the replay wrote expires (REPLAY_TTL): no key of its namespace is forever.
    live = Keys.from_settings(settings)
    prefix = live.for_replay(replay_id).namespace
    written = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
    assert written and all(0 < redis_client.ttl(k) <= settings.replay_ttl for k in written)
    assert 0 < redis_client.ttl(live.replay_record(replay_id)) <= settings.replay_ttl

    # Nothing reached the live side: no live view, no live firing, no delivery, no event but
    # the replay's own progress.
    assert client.get("/symbols").json()["symbols"] == []
    for queue in (ALERTS_EVALUATE_QUEUE, ALERTS_DELIVER_QUEUE):
        assert redis_client.llen(live.queue_list(queue)) == 0
    assert redis_client.xlen(live.alert_history) == 0
    types = {event.type for _, event in live_ring.poll()}
    assert types == {"replay.progress"}


def test_a_paced_replay_is_never_early_and_two_replays_at_once_stay_isolated(
    procs: Processes, settings: Settings, client: httpx.Client
) -> None:
    ticks = make_history(SYMBOLS, ticks_per_symbol=150, span_s=15, seed=11)
    store(settings.psycopg_url, ticks)
    procs.start_api({"API_KEY": API_KEY})
    procs.start_history(extra_env=FAST_SLICES, threads=3)

    paced = _start(client, {**_range(ticks), "symbols": SYMBOLS, "speed": 10})
    fast = _start(client, {**_range(ticks), "symbols": ["AAA"], "speed": "max"})
    paced_status, fast_status = _finished(client, paced), _finished(client, fast)

    _exact(procs, paced, ticks)
    _exact(procs, fast, [t for t in ticks if t.symbol == "AAA"])
    assert client.get(f"/replays/{fast}/symbols/BBB").status_code == 404
    # Paced on event time: the replay cannot have taken less wall time than its span / speed.
    span_s = (max(t.ts_us for t in ticks) - min(t.ts_us for t in ticks)) / 1e6
    wall_s = parse_ts_us(paced_status["finished_at"]) - parse_ts_us(paced_status["started_at"])
    assert wall_s / 1e6 >= span_s / 10
    assert fast_status["ticks_applied"] == 150


def test_pause_resume_and_cancel(
    procs: Processes, settings: Settings, client: httpx.Client
) -> None:
    ticks = make_history(["AAA"], ticks_per_symbol=600, span_s=120, seed=3)
    store(settings.psycopg_url, ticks)
    procs.start_api({"API_KEY": API_KEY})
    procs.start_history(extra_env=FAST_SLICES)

    replay_id = _start(client, {**_range(ticks), "symbols": ["AAA"], "speed": 5})
    wait_for(lambda: _status(client, replay_id)["ticks_applied"] > 0, 30, what="progress")
    assert client.post(f"/replays/{replay_id}/pause").status_code == 200
    paused = wait_for(
        lambda: (s := _status(client, replay_id))["state"] == "paused" and s, 30, what="paused"
    )
    assert paused["rate"] == 0 and paused["ticks_applied"] < len(ticks)
    assert client.post(f"/replays/{replay_id}/resume").json()["state"] == "queued"
    wait_for(
        lambda: _status(client, replay_id)["ticks_applied"] > paused["ticks_applied"],
        30, what="progress after resume",
    )  # fmt: skip
    cancelled = client.post(f"/replays/{replay_id}/cancel")
    assert cancelled.status_code == 200
    final = wait_for(
        lambda: (s := _status(client, replay_id))["state"] == "cancelled" and s, 30, what="cancel"
    )
    assert final["finished_at"] is not None and final["ticks_applied"] < len(ticks)
    again = client.post(f"/replays/{replay_id}/resume")
    assert again.status_code == 409 and again.json()["detail"][0]["field"] == "state"
    # What it did apply is exact for the ticks up to its cursor.
    cursor_us = parse_ts_us(final["cursor"])
    applied = [t for t in ticks if t.ts_us <= cursor_us]
    view = client.get(f"/replays/{replay_id}/symbols/AAA").json()
    assert view["ticks_total"] == len(applied) == final["ticks_applied"]


def test_a_replay_whose_worker_is_killed_completes_with_identical_results(
    procs: Processes, settings: Settings, client: httpx.Client
) -> None:
    ticks = make_history(SYMBOLS, ticks_per_symbol=300, span_s=30, seed=5)
    store(settings.psycopg_url, ticks)
    procs.start_api({"API_KEY": API_KEY})
    procs.start_history(extra_env=FAST_SLICES)

    replay_id = _start(client, {**_range(ticks), "symbols": SYMBOLS, "speed": 6})
    wait_for(lambda: _status(client, replay_id)["ticks_applied"] > 100, 30, what="progress")
    procs.kill("history")
    before = _status(client, replay_id)
    assert before["state"] == "running" and before["ticks_applied"] < len(ticks)
    procs.start_history(name="history-2", extra_env=FAST_SLICES)
    status = _finished(client, replay_id, timeout=90)

    assert status["ticks_applied"] == len(ticks)
    _exact(procs, replay_id, ticks)


def test_bad_requests_name_the_field(procs: Processes, client: httpx.Client) -> None:
    procs.start_api({"API_KEY": API_KEY})
    base = {"symbols": ["AAA"], "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
    cases = [
        ({**base, "speed": 0}, "speed"),
        ({**base, "speed": "fast"}, "speed"),
        ({**base, "to": "2025-01-01T00:00:00Z"}, "to"),
        ({**base, "from": "2026-01-01T00:00:00"}, "from"),
        ({**base, "symbols": ["bad symbol"]}, "symbols"),
        ({**base, "symbols": []}, "symbols"),
        ({**base, "alerts": "sandbox"}, "alerts"),
        ({**base, "alerts": "sandbox", "rule_ids": ["nope"]}, "rule_ids.0"),
    ]
    for body, field in cases:
        response = client.post("/replays", json=body)
        assert response.status_code == 422, (body, response.text)
        fields = [d["field"] for d in response.json()["detail"]]
        assert any(f.startswith(field) for f in fields), (body, fields)
    assert client.get("/replays/0000000000").status_code == 404
    assert client.post("/replays/0000000000/pause").status_code == 404
