"""The feeder control plane against a real API process and real Redis: config defaults, partial
updates, validation, auth, bursts, concurrent updates, and feeder status reports."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import Settings
from tests.support.processes import AUTH, Processes, running, settings_env
from tests.support.ring import RingEvents
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _events(ring: RingEvents, kind: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The first `count` events of type `kind` appended to the ring since `ring` was made."""
    wait_for(lambda: len(ring.of_type(kind)) >= count, timeout, what=f"{count} {kind} events")
    return [e.model_dump(mode="json") for e in ring.of_type(kind)][:count]


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_defaults_come_from_settings_and_partial_updates_persist(
    procs: Processes, settings: Settings, redis_client: Redis
):
    procs.start_api({"SYMBOLS": "AAA,BBB.X", "SOURCES": "src1,src2", "TPS": "7.5"})
    ring = RingEvents(redis_client, settings.realtime_stream)
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        # API_KEY unset: reads and (dev mode) writes are open.
        r = client.get("/feeder/config")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "version": 0,
            "running": True,
            "symbols": ["AAA", "BBB.X"],
            "sources": ["src1", "src2"],
            "tps": 7.5,
            "mode": "single",
            "duplicate_rate": 0.0,
            "out_of_order_rate": 0.0,
            "gap_rate": 0.0,
            "bad_tick_rate": 0.0,
            "burst": None,
        }
        assert redis_client.get(Keys.from_settings(settings).feeder_config) is None  # GET: no write

        r = client.put("/feeder/config", json={"tps": 25, "duplicate_rate": 0.1})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["version"] == 1 and first["tps"] == 25 and first["duplicate_rate"] == 0.1
        assert first["symbols"] == ["AAA", "BBB.X"] and first["running"] is True

        r = client.put("/feeder/config", json={"running": False, "mode": "batch"})
        second = r.json()
        assert second == {**first, "version": 2, "running": False, "mode": "batch"}
        assert client.get("/feeder/config").json() == second

        stored = orjson.loads(redis_client.get(Keys.from_settings(settings).feeder_config))
        assert stored["version"] == 2 and stored["tps"] == 25
        events = _events(ring, "feeder.config", 2)
        assert [e["config"] for e in events] == [first, second]

    # Persisted in Redis: a restarted API serves the same config.
    procs.stop_all()
    procs.start_api({"SYMBOLS": "OTHER", "TPS": "1"})
    assert httpx.get(procs.api_url + "/feeder/config", timeout=5).json() == second


BAD_BODIES: list[tuple[Any, str]] = [
    ({"tps": -1}, "tps"),
    ({"tps": 1e9}, "tps"),
    ({"tps": "fast"}, "tps"),
    ({"tps": None}, "tps"),
    ({"symbols": ["bad sym"]}, "symbols"),
    ({"symbols": []}, "symbols"),
    ({"symbols": ["AAA", "AAA"]}, "symbols"),
    ({"sources": ["a", "a"]}, "sources"),
    ({"sources": [""]}, "sources"),
    ({"mode": "fast"}, "mode"),
    ({"running": "maybe"}, "running"),
    ({"duplicate_rate": 1.5}, "duplicate_rate"),
    ({"out_of_order_rate": -0.1}, "out_of_order_rate"),
    ({"gap_rate": 2}, "gap_rate"),
    ({"bad_tick_rate": 1.0001}, "bad_tick_rate"),
    ({"bogus": 1}, "bogus"),
    ({"burst": {"multiplier": 0.5}}, "burst.multiplier"),
    ({"burst": {"seconds": 0}}, "burst.seconds"),
    ({"burst": {"seconds": 30, "extra": 1}}, "burst.extra"),
]


def test_bad_values_are_422_naming_the_field(procs: Processes):
    procs.start_api()
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        for body, field in BAD_BODIES:
            r = client.put("/feeder/config", json=body)
            assert r.status_code == 422, (body, r.status_code, r.text)
            error = r.json()
            assert error["error"] == "validation_failed", (body, error)
            assert field in [d["field"] for d in error["detail"]], (body, error)
            assert all(d["reason"] for d in error["detail"])
        # Non-finite numbers (Python's json accepts them) and bodies that are not an object.
        for raw, field in ((b'{"tps": NaN}', "tps"), (b'{"gap_rate": Infinity}', "gap_rate")):
            r = client.put(
                "/feeder/config", content=raw, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422, (raw, r.text)
            assert field in [d["field"] for d in r.json()["detail"]]
        for raw in (b"[1, 2]", b"{not json", b""):
            r = client.put(
                "/feeder/config", content=raw, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422, (raw, r.text)
            assert r.json()["error"] == "validation_failed"
        # Nothing was applied.
        assert client.get("/feeder/config").json()["version"] == 0


def test_auth_when_the_api_key_is_set(settings: Settings, tmp_path: Path):
    keyed = settings.model_copy(update={"api_key": SecretStr("k")})
    key = {"x-api-key": "k"}
    status = {"feeder_id": "f1"}
    with running(settings_env(keyed), tmp_path) as procs:
        procs.start_api()
        with httpx.Client(base_url=procs.api_url, timeout=5) as client:
            # GET /feeder/config: Basic (the feeder) or the key (operators).
            assert client.get("/feeder/config").status_code == 401
            assert client.get("/feeder/config", auth=("ingest", "wrong")).status_code == 401
            assert client.get("/feeder/config", headers={"x-api-key": "no"}).status_code == 401
            assert client.get("/feeder/config", auth=AUTH).status_code == 200
            assert client.get("/feeder/config", headers=key).status_code == 200
            r = client.get("/feeder/config")
            assert {d["field"] for d in r.json()["detail"]} == {"x-api-key", "authorization"}
            # PUT: the key only; the feeder's Basic credentials cannot change the config.
            assert client.put("/feeder/config", json={"tps": 3}).status_code == 401
            assert client.put("/feeder/config", json={"tps": 3}, auth=AUTH).status_code == 401
            r = client.put("/feeder/config", json={"tps": 3}, headers={"x-api-key": "no"})
            assert r.status_code == 401 and r.json()["detail"][0]["field"] == "x-api-key"
            r = client.put("/feeder/config", json={"tps": 3}, headers=key)
            assert r.status_code == 200 and r.json()["version"] == 1
            # POST /feeder/status: Basic only. GET /feeder/status: the key.
            assert client.post("/feeder/status", json=status).status_code == 401
            assert client.post("/feeder/status", json=status, headers=key).status_code == 401
            assert client.post("/feeder/status", json=status, auth=AUTH).status_code == 200
            assert client.get("/feeder/status").status_code == 401
            r = client.get("/feeder/status", headers=key)
            assert r.status_code == 200 and r.json()["feeders"][0]["feeder_id"] == "f1"


def test_burst_starts_now_and_null_cancels(procs: Processes):
    procs.start_api()
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        before = datetime.now(UTC)
        r = client.put("/feeder/config", json={"burst": {"multiplier": 5, "seconds": 60}})
        after = datetime.now(UTC)
        assert r.status_code == 200, r.text
        burst = r.json()["burst"]
        assert burst["multiplier"] == 5 and burst["seconds"] == 60
        until = _iso(burst["until"])
        assert until.utcoffset() == timedelta(0)
        slack = timedelta(seconds=1)
        assert before + timedelta(seconds=60) - slack <= until <= after + timedelta(seconds=60)

        # A client-sent `until` is ignored: a burst always starts now.
        r = client.put(
            "/feeder/config", json={"burst": {"seconds": 10, "until": "2000-01-01T00:00:00Z"}}
        )
        until = _iso(r.json()["burst"]["until"])
        assert abs(until - (datetime.now(UTC) + timedelta(seconds=10))) < timedelta(seconds=2)
        assert r.json()["burst"]["multiplier"] == 10  # the default

        # Absent `burst` keeps it; `null` cancels it.
        r = client.put("/feeder/config", json={"tps": 4})
        assert r.json()["burst"] is not None and r.json()["burst"]["seconds"] == 10
        r = client.put("/feeder/config", json={"burst": None})
        assert r.status_code == 200 and r.json()["burst"] is None
        assert r.json()["version"] == 4 and r.json()["tps"] == 4
        assert client.get("/feeder/config").json()["burst"] is None


def _concurrently(bodies: list[dict[str, Any]], url: str) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))
    results: list[httpx.Response | None] = [None] * len(bodies)

    def put(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            barrier.wait()
            results[i] = client.put("/feeder/config", json=bodies[i])

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def test_concurrent_puts_lose_no_update(procs: Processes):
    procs.start_api()
    responses = _concurrently([{"tps": 100 + i} for i in range(20)], procs.api_url)
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    configs = [r.json() for r in responses]
    # Every PUT was applied exactly once, in some order: versions 1..20, one each.
    assert sorted(c["version"] for c in configs) == list(range(1, 21))
    final = httpx.get(procs.api_url + "/feeder/config", timeout=5).json()
    assert final["version"] == 20
    last = next(c for c in configs if c["version"] == 20)
    assert final == last

    # PUTs on different fields all survive one another.
    changes = [
        {"duplicate_rate": 0.1},
        {"out_of_order_rate": 0.2},
        {"gap_rate": 0.3},
        {"bad_tick_rate": 0.4},
        {"running": False},
        {"mode": "batch"},
        {"sources": ["x", "y"]},
        {"symbols": ["ZZZ"]},
    ]
    responses = _concurrently(changes, procs.api_url)
    assert [r.status_code for r in responses] == [200] * len(changes)
    final = httpx.get(procs.api_url + "/feeder/config", timeout=5).json()
    assert final["version"] == 20 + len(changes)
    for change in changes:
        for name, value in change.items():
            assert final[name] == value, (name, final)
    assert final["tps"] == last["tps"]


def test_status_round_trip_liveness_and_pruning(
    procs: Processes, settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    now = datetime.now(UTC)

    def stored(feeder_id: str, age: timedelta) -> bytes:
        received = (now - age).isoformat().replace("+00:00", "Z")
        return orjson.dumps({"feeder_id": feeder_id, "sent": 1, "received_at": received})

    # Entries injected with old received_at: one silent for 10 s, one for 2 h (to be pruned).
    redis_client.hset(keys.feeder_status, "c-quiet", stored("c-quiet", timedelta(seconds=10)))
    redis_client.hset(keys.feeder_status, "z-gone", stored("z-gone", timedelta(hours=2)))
    procs.start_api()
    ring = RingEvents(redis_client, settings.realtime_stream)
    report = {
        "feeder_id": "b-feeder",
        "config_version": 3,
        "running": True,
        "sent": 120,
        "accepted": 118,
        "duplicates": 2,
        "target_tps": 10.0,
        "achieved_tps": 9.8,
    }
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        assert client.post("/feeder/status", json=report).status_code == 401
        r = client.post("/feeder/status", json=report, auth=AUTH)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        r = client.post("/feeder/status", json={"feeder_id": "a-feeder"}, auth=AUTH)
        assert r.status_code == 200
        r = client.post("/feeder/status", json={"feeder_id": "x", "sent": -1}, auth=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sent"
        r = client.post("/feeder/status", json={"feeder_id": "x", "nope": 1}, auth=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "nope"

        # The first report pruned the feeder silent for 2 h; the 10 s one stays.
        assert redis_client.hget(keys.feeder_status, "z-gone") is None
        assert redis_client.hget(keys.feeder_status, "c-quiet") is not None

        r = client.get("/feeder/status")
        assert r.status_code == 200, r.text
        feeders = r.json()["feeders"]
        assert [f["feeder_id"] for f in feeders] == ["a-feeder", "b-feeder", "c-quiet"]
        a, b, c = feeders
        assert a["alive"] is True and b["alive"] is True and c["alive"] is False
        assert {k: b[k] for k in report} == report
        assert b["conflicts"] == 0 and b["last_error"] is None
        received = _iso(b["received_at"])
        assert abs(datetime.now(UTC) - received) < timedelta(seconds=5)

        raw = orjson.loads(redis_client.hget(keys.feeder_status, "b-feeder"))
        assert raw["received_at"] == b["received_at"] and raw["sent"] == 120

        events = _events(ring, "feeder.status", 2)
        assert [e["feeder_id"] for e in events] == ["b-feeder", "a-feeder"]
        assert events[0]["sent"] == 120 and "received_at" in events[0]

        # Liveness flips once a feeder has been silent for more than 5 s.
        redis_client.hset(keys.feeder_status, "a-feeder", stored("a-feeder", timedelta(seconds=6)))
        assert client.post("/feeder/status", json=report, auth=AUTH).status_code == 200
        feeders = client.get("/feeder/status").json()["feeders"]
        assert [(f["feeder_id"], f["alive"]) for f in feeders] == [
            ("a-feeder", False),
            ("b-feeder", True),
            ("c-quiet", False),
        ]
