"""The naive baseline (tests/bench/baseline) as a real uvicorn process against real Postgres.

It must honour the same contract as the product for the bench to compare like with like: a
tick is committed before its 200, duplicates store nothing, errors name the field, and GET
/stream carries `symbol.updated` views naming the tick.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from backend.settings import Settings
from tests.support.processes import AUTH, Processes
from tests.support.servers import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.bench]


def tick(symbol: str = "BTCUSDT", **overrides: Any) -> dict[str, Any]:
    base = {
        "symbol": symbol,
        "price": 64_000.5,
        "volume": 0.25,
        "source": "binance",
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "event_id": f"base-{uuid.uuid4().hex[:12]}",
        "seq": None,
    }
    return base | overrides


def rows(settings: Settings, *event_ids: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(settings.psycopg_url) as conn:
        found = conn.execute(
            "SELECT event_id, symbol, price, volume, source, seq, received_at FROM md_ticks "
            "WHERE event_id = ANY(%s)",
            (list(event_ids),),
        ).fetchall()
    return {row[0]: row for row in found}


def total_rows(settings: Settings) -> int:
    with psycopg.connect(settings.psycopg_url) as conn:
        return conn.execute("SELECT count(*) FROM md_ticks").fetchone()[0]  # type: ignore[index]


@pytest.fixture
def client(procs: Processes) -> Iterator[httpx.Client]:
    """The baseline on its own port (a fresh process: its views start empty)."""
    port = free_port()
    procs.spawn(
        "baseline",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.baseline.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/health/liveness", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 30, what="baseline liveness")
    with httpx.Client(base_url=url, auth=AUTH, timeout=10) as c:
        yield c


def test_tick_is_committed_before_the_ack_and_duplicates_store_nothing(
    client: httpx.Client, settings: Settings
) -> None:
    t = tick(seq=7)
    r = client.post("/ingest/tick", json=t)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "event_id": t["event_id"]}
    # No waiting: the naive design commits before it answers.
    stored = rows(settings, t["event_id"])[t["event_id"]]
    assert stored[1:6] == ("BTCUSDT", 64_000.5, 0.25, "binance", 7)

    again = client.post("/ingest/tick", json=t)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": t["event_id"]}
    assert total_rows(settings) == 1


def test_invalid_tick_is_422_naming_the_field(client: httpx.Client, settings: Settings) -> None:
    r = client.post("/ingest/tick", json=tick(price=-1))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_failed"
    assert [e["field"] for e in body["detail"]] == ["price"]
    assert total_rows(settings) == 0


def test_wrong_credentials_are_401(client: httpx.Client, settings: Settings) -> None:
    r = client.post("/ingest/tick", json=tick(), auth=("ingest", "wrong"))
    assert r.status_code == 401
    assert r.json()["detail"][0]["field"] == "authorization"
    assert "basic" in r.headers["www-authenticate"].lower()
    assert client.post("/ingest/tick", json=tick(), auth=None).status_code == 401
    assert total_rows(settings) == 0


def test_batch_reports_each_item(client: httpx.Client, settings: Settings) -> None:
    first = tick()
    assert client.post("/ingest/tick", json=first).json()["status"] == "accepted"
    fresh = [tick("ETHUSDT", price=3_000.0 + i) for i in range(3)]
    batch = [fresh[0], first, tick(volume=-1), fresh[1], fresh[2]]
    r = client.post("/ingest/ticks", json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    assert [(x["index"], [e["field"] for e in x["errors"]]) for x in body["rejected"]] == [
        (2, ["volume"])
    ]
    assert set(rows(settings, *(t["event_id"] for t in fresh))) == {t["event_id"] for t in fresh}
    assert total_rows(settings) == 4
    assert client.post("/ingest/ticks", json=[]).status_code == 422


def _next_update(lines: Iterator[str]) -> dict[str, Any]:
    """The next `symbol.updated` on the stream (the event line, then its data line)."""
    for line in lines:
        if line == "event: symbol.updated":
            data = next(lines)
            assert data.startswith("data: ")
            return orjson.loads(data[6:])
    raise AssertionError("stream ended")


def test_stream_carries_the_view_of_each_stored_tick(client: httpx.Client) -> None:
    # Two XAUUSD ticks before the subscriber connects, one ETHUSDT tick it filters out.
    for i in range(2):
        client.post("/ingest/tick", json=tick("XAUUSD", price=2_000.0 + i))
    with client.stream("GET", "/stream", params={"symbols": "XAUUSD,EURUSD"}) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        client.post("/ingest/tick", json=tick("ETHUSDT"))
        t = tick("XAUUSD", price=2_010.0, ts=int(time.time() * 1000))
        assert client.post("/ingest/tick", json=t).json()["status"] == "accepted"
        event = _next_update(lines)
        assert event["type"] == "symbol.updated"
        assert event["symbol"] == "XAUUSD"
        view = event["view"]
        assert view["last_event_id"] == t["event_id"]
        assert view["ticks_total"] == 3
        assert view["last_price"] == 2_010.0
        assert view["trades_1m"] == 3
        assert view["high_1m"] == 2_010.0 and view["low_1m"] == 2_000.0
        # A duplicate changes nothing, so it publishes nothing: the next event is the next tick.
        client.post("/ingest/tick", json=t)
        t2 = tick("EURUSD", price=1.08)
        client.post("/ingest/tick", json=t2)
        event = _next_update(lines)
        assert event["view"]["last_event_id"] == t2["event_id"]
        assert event["view"]["ticks_total"] == 1
