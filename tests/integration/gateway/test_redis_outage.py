"""Redis lost and back between the gateway and the ring (a TCP proxy cut): readiness says so,
connected clients carry on from where they were, and a client resumes with nothing lost."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from redis import Redis

from backend.settings import Settings
from tests.integration.gateway.streams import FAST, Publisher, SseStream, sse
from tests.support.processes import Processes
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def readiness(base: str) -> int:
    try:
        return httpx.get(base + "/health/readiness", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def tick_ids(stream: SseStream) -> list[str]:
    return [f.json()["event_id"] for f in stream.events("tick.received")]


def test_redis_lost_and_back_readiness_503_then_clients_resume_with_no_loss(
    procs: Processes, redis_client: Redis, settings: Settings
) -> None:
    url = urlsplit(settings.effective_redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    proxied = settings.effective_redis_url.replace(url.netloc, f"127.0.0.1:{proxy.port}")
    procs.start_gateway(extra_env={**FAST, "REDIS_URL": proxied})
    base = procs.gateway_url
    publisher = Publisher(redis_client, settings)
    try:
        with sse(base + "/stream") as staying:
            staying.wait_events("snapshot", 1)
            with sse(base + "/stream") as leaving:
                before = publisher.ticks("AAA", 3)
                seen = leaving.wait_events("tick.received", 3)
            staying.wait_events("tick.received", 3)

            proxy.cut()
            wait_for(lambda: readiness(base) == 503, 10, what="readiness 503 while cut")
            body = httpx.get(base + "/health/readiness", timeout=2).json()
            assert body["status"] == "unavailable" and body["ring"] != "connected"
            during = publisher.ticks("AAA", 4)  # written to Redis while the gateway is cut off
            refused = httpx.get(
                base + "/stream", headers={"Last-Event-ID": seen[-1].id or ""}, timeout=5
            )
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert refused.json()["detail"][0]["field"] == "redis"

            proxy.restore()
            wait_for(lambda: readiness(base) == 200, 20, what="readiness 200 after the heal")
            after = publisher.ticks("AAA", 2)
            with sse(base + "/stream", {"Last-Event-ID": seen[-1].id or ""}) as back:
                back.wait_events("tick.received", 6)
                assert tick_ids(back) == during + after
                assert back.events("reset") == [] and back.events("snapshot") == []
            marker = publisher.ticks("ZZZ", 1)  # the last event: anything twice came before it
            staying.wait_events("tick.received", 10)
            assert tick_ids(staying) == before + during + after + marker
            assert [f.event for f in staying.events()][:1] == ["snapshot"]
            assert staying.events("reset") == []
    finally:
        proxy.cut()
