"""An alert rule's whole life through the running system's real interfaces: created over REST,
fired by ticks posted to HTTP ingest, evaluated by a calc worker, delivered by the delivery
worker to a real receiver (signed, under its idempotency key), recorded in the history, counted in
/metrics, then paused and deleted."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from backend.bus.keys import Keys
from backend.core.alerts.firing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from backend.settings import Settings
from tests.support.processes import AUTH, Processes
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver, receiving, status

pytestmark = pytest.mark.integration

SECRET = "an-hmac-key-of-32-characters-ok!"


def ticks(symbol: str, prices: list[float], start: int, t0_ms: int) -> list[dict[str, Any]]:
    return [
        {"symbol": symbol, "price": p, "volume": 1.0, "source": "e2e",
         "ts": t0_ms + (start + i) * 1_000, "event_id": f"{symbol}-e2e-{start + i}"}
        for i, p in enumerate(prices)
    ]  # fmt: skip


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_rule_fires_once_per_crossing_is_delivered_signed_recorded_and_counted(
    procs: Processes, redis_client: Redis, settings: Settings
) -> None:
    procs.start_api()
    procs.start_worker(processes=1, threads=2)
    with receiving(status(204)) as hook:
        procs.start_delivery_worker()
        run(procs, hook, redis_client, Keys.from_settings(settings))


def run(procs: Processes, hook: Receiver, redis: Redis, keys: Keys) -> None:
    symbol = f"E2E{int(time.time() * 1000) % 100_000}"
    t0 = (int(time.time()) - 600) // 60 * 60_000
    with httpx.Client(base_url=procs.api_url, timeout=10) as api:
        created = api.post(
            "/alerts/rules",
            json={
                "name": "e2e breakout", "symbol": symbol, "field": "last_price",
                "condition": "crosses_above", "value": 100.0, "trigger": "every_time",
                "channels": [{"type": "ui"},
                             {"type": "webhook", "url": hook.url, "secret": SECRET}],
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
        rule = created.json()
        assert SECRET not in created.text

        def post(prices: list[float], start: int) -> None:
            r = api.post("/ingest/ticks", json=ticks(symbol, prices, start, t0), auth=AUTH)
            assert r.status_code == 200, r.text

        # The workers see the rule within ALERT_RULES_REFRESH_S: post below the line until an
        # evaluation has remembered the symbol, then cross twice.
        below = iter(range(100))

        def evaluated() -> bool:
            post([99.0], next(below))
            return bool(redis.exists(keys.alert_memory(symbol)))

        wait_for(evaluated, 20, interval=0.2, what="the rule in the workers' evaluation")
        post([99.5, 101.0, 102.0, 99.0, 100.5], 200)  # crosses at 101.0 and at 100.5

        got = wait_for(lambda: len(hook.snapshot()) >= 2 and hook.snapshot(), 30, what="2 hooks")
        keys = {r.key for r in got}
        assert len(keys) == 2  # two crossings, two alert ids
        for request in got:
            body = orjson.loads(request.body)
            assert body["rule_id"] == rule["id"] and body["alert_id"] == request.key
            assert request.headers[IDEMPOTENCY_HEADER.lower()] == body["alert_id"]
            assert verify(request.body, SECRET, request.headers[SIGNATURE_HEADER.lower()])
        assert sorted(orjson.loads(r.body)["observed"] for r in got) == [100.5, 101.0]

        def history() -> list[dict[str, Any]]:
            events = api.get("/alerts/events", params={"rule_id": rule["id"]}).json()["events"]
            done = all(d["status"] == "delivered" for e in events for d in e["deliveries"])
            return events if len(events) == 2 and done else []

        events = wait_for(history, 30, what="both firings delivered in the history")
        assert {e["alert_id"] for e in events} == keys
        assert all({d["channel"] for d in e["deliveries"]} == {"ui", hook.url} for e in events)
        assert events[0]["fired_at"] > events[1]["fired_at"]  # newest first

        text = api.get("/metrics").text
        assert metric(text, "tickstream_alerts_fired_total") >= 2
        assert metric(text, "tickstream_alert_deliveries_delivered_total") >= 2
        assert metric(text, "tickstream_alert_deliveries_parked") == 0  # a free host: none wait

        # Paused: crossings no longer fire. Deleted: gone, its history kept.
        paused = api.patch(f"/alerts/rules/{rule['id']}", json={"enabled": False})
        assert paused.status_code == 200 and paused.json()["enabled"] is False
        assert api.delete(f"/alerts/rules/{rule['id']}").status_code == 204
        assert api.get(f"/alerts/rules/{rule['id']}").status_code == 404
        assert len(api.get("/alerts/events", params={"rule_id": rule["id"]}).json()["events"]) == 2
