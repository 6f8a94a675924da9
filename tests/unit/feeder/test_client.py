"""Delivery against a real local HTTP server: retries re-send the same tick, 4xx are not retried."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson

from backend.settings import Settings
from feeder.client import Outcome, TickClient, parse_retry_after
from tests.unit.feeder.stub_server import sequence, stub_server

PAYLOAD = {
    "symbol": "BTCUSDT",
    "price": 60_000.5,
    "volume": 0.25,
    "source": "binance",
    "ts": 1_790_000_000_000,
    "event_id": "run-binance-BTCUSDT-1",
    "seq": 1,
}


def settings_for(url: str) -> Settings:
    return Settings(target_url=url, ingest_username="feeder", ingest_password="s3cret")


def deliver(url: str, payload: dict = PAYLOAD, **kwargs: Any) -> tuple[Outcome, TickClient]:
    async def go() -> tuple[Outcome, TickClient]:
        async with TickClient(settings_for(url), **kwargs) as client:  # type: ignore[arg-type]
            return await client.send(payload), client

    return asyncio.run(go())


def test_retries_503_with_same_event_id_until_accepted() -> None:
    busy = (503, {"Retry-After": "0"}, {"detail": "busy"})
    waits: list[float] = []

    async def note_wait(seconds: float) -> None:  # the waits asked for, without waiting
        waits.append(seconds)
        await asyncio.sleep(0)

    with stub_server(sequence(busy, busy, (200, {}, {"status": "accepted"}))) as server:
        # A long backoff proves Retry-After (0 s) is what decides the wait.
        outcome, client = deliver(server.url, backoff_initial=5.0, sleep=note_wait)

    assert outcome is Outcome.ACCEPTED
    assert waits == [0, 0]
    assert len(server.requests) == 3
    assert all(r.payload == PAYLOAD for r in server.requests)
    assert {r.payload["event_id"] for r in server.requests} == {PAYLOAD["event_id"]}
    assert all(r.path == "/ingest/tick" for r in server.requests)
    c = client.counters
    assert (c.sent, c.accepted, c.retries, c.errors, c.rejected) == (1, 1, 2, 0, 0)


def test_sends_basic_auth() -> None:
    with stub_server() as server:
        deliver(server.url)
    expected = "Basic " + base64.b64encode(b"feeder:s3cret").decode()
    assert server.requests[0].headers["Authorization"] == expected


def test_422_is_not_retried() -> None:
    reply = (422, {}, {"detail": [{"loc": ["body", "price"], "type": "value_error"}]})
    with stub_server(sequence(reply)) as server:
        outcome, client = deliver(server.url)
    assert outcome is Outcome.REJECTED
    assert len(server.requests) == 1
    c = client.counters
    assert (c.sent, c.rejected, c.retries, c.accepted, c.errors) == (1, 1, 0, 0, 0)


def test_duplicate_counts_as_success() -> None:
    retry = (429, {"Retry-After": "0"}, {"detail": "slow down"})
    with stub_server(sequence(retry, (200, {}, {"status": "duplicate"}))) as server:
        outcome, client = deliver(server.url)
    assert outcome is Outcome.DUPLICATE
    c = client.counters
    assert (c.duplicates, c.accepted, c.retries, c.errors) == (1, 0, 1, 0)


def test_conflict_is_counted_not_retried() -> None:
    with stub_server(sequence((409, {}, {"detail": "conflict"}))) as server:
        outcome, client = deliver(server.url)
    assert outcome is Outcome.CONFLICT
    assert len(server.requests) == 1
    assert client.counters.conflicts == 1


def test_persistent_5xx_gives_up_as_error() -> None:
    with stub_server(sequence((500, {}, {"detail": "boom"}))) as server:
        outcome, client = deliver(server.url, max_attempts=3, backoff_initial=0.01)
    assert outcome is Outcome.FAILED
    assert len(server.requests) == 3
    c = client.counters
    assert (c.sent, c.retries, c.errors, c.accepted) == (1, 2, 1, 0)


def test_network_error_never_raises() -> None:
    with stub_server() as server:
        url = server.url  # the port is closed once the server has shut down
    outcome, client = deliver(url, max_attempts=3, backoff_initial=0.01)
    assert outcome is Outcome.FAILED
    c = client.counters
    assert (c.sent, c.retries, c.errors) == (1, 2, 1)


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after(None) is None
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    http_date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(http_date, now=now) == 30.0


def batch_of(n: int) -> list[bytes]:
    return [orjson.dumps({**PAYLOAD, "event_id": f"e{i}", "seq": i + 1}) for i in range(n)]


def deliver_batch(
    url: str, bodies: list[bytes], bad: list[bool] | None = None, **kwargs: float | None
) -> tuple[list[Outcome], TickClient]:
    async def go() -> tuple[list[Outcome], TickClient]:
        async with TickClient(settings_for(url), **kwargs) as client:  # type: ignore[arg-type]
            return await client.send_batch(bodies, bad), client

    return asyncio.run(go())


def test_batch_answer_maps_back_to_items_and_counters() -> None:
    conflict = {"field": "event_id", "reason": "already accepted with different content; ..."}
    answer = {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "errors": [{"field": "price", "reason": "must be > 0"}]},
            {"index": 3, "errors": [conflict, {"field": "price", "reason": "differs"}]},
            {"index": 5, "errors": [{"field": "symbol", "reason": "must match"}]},
        ],
    }
    with stub_server(sequence((200, {}, answer))) as server:
        outcomes, client = deliver_batch(
            server.url, batch_of(6), [False, True, False, False, False, False]
        )
    assert [r.path for r in server.requests] == ["/ingest/ticks"]
    assert [p["event_id"] for p in server.requests[0].payload] == [f"e{i}" for i in range(6)]
    D, R, C = Outcome.DELIVERED, Outcome.REJECTED, Outcome.CONFLICT
    assert outcomes == [D, R, D, C, D, R]
    c = client.counters
    assert (c.sent, c.bad_sent, c.accepted, c.duplicates) == (6, 1, 2, 1)
    assert (c.bad_rejected, c.rejected, c.conflicts, c.retries) == (1, 1, 1, 0)


def test_batch_retries_resend_the_same_batch() -> None:
    busy = (503, {"Retry-After": "0"}, {"detail": "busy"})
    ok = (200, {}, {"accepted": 4, "duplicates": 0, "rejected": []})
    with stub_server(sequence(busy, busy, ok)) as server:
        outcomes, client = deliver_batch(server.url, batch_of(4), backoff_initial=5.0)
    assert outcomes == [Outcome.DELIVERED] * 4
    assert len(server.requests) == 3
    assert server.requests[0].payload == server.requests[1].payload == server.requests[2].payload
    assert (client.counters.retries, client.counters.accepted) == (8, 4)  # 2 re-sends x 4 ticks


def test_refused_batch_is_final() -> None:
    with stub_server(sequence((413, {}, {"detail": "too large"}))) as server:
        outcomes, client = deliver_batch(server.url, batch_of(3))
    assert outcomes == [Outcome.REJECTED] * 3 and len(server.requests) == 1
    assert (client.counters.rejected, client.counters.retries) == (3, 0)


def test_bad_tick_rejection_is_expected_and_not_retried() -> None:
    reply = (422, {}, {"detail": [{"field": "price", "reason": "must be > 0"}]})
    with stub_server(sequence(reply)) as server:

        async def go() -> TickClient:
            async with TickClient(settings_for(server.url)) as client:
                assert await client.send({**PAYLOAD, "price": -1}, bad=True) is Outcome.REJECTED
                return client

        client = asyncio.run(go())
    assert len(server.requests) == 1
    c = client.counters
    assert (c.sent, c.bad_sent, c.bad_rejected, c.rejected, c.retries) == (1, 1, 1, 0, 0)


def test_unlimited_retries_ride_out_a_long_run_of_failures() -> None:
    replies = [(503, {"Retry-After": "0"}, {})] * 12 + [(200, {}, {"status": "accepted"})]
    with stub_server(sequence(*replies)) as server:
        outcome, client = deliver(server.url, max_attempts=None, max_retry_time=None)
    assert outcome is Outcome.ACCEPTED and len(server.requests) == 13
    assert client.last_error is not None and "503" in client.last_error
