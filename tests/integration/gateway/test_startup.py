"""A (re)starting gateway accepts no client before it can serve one.

A browser's EventSource treats any answer but 200 as final: it closes for good instead of
reconnecting. So a gateway that listens before its hub has read the ring, and answers a
reconnecting browser 503 (not ready), cuts that browser off for good during an ordinary restart.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import httpx
import pytest

from backend.settings import Settings
from tests.support.processes import Processes
from tests.support.servers import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

WAITING = "cannot read the ring yet"


def stream_status(url: str) -> int | None:
    """The status /stream answers (None: nothing listens); never reads a 200's endless body."""
    try:
        with httpx.Client(timeout=2) as client, client.stream("GET", url) as response:
            return response.status_code
    except httpx.TransportError:
        return None


def test_the_gateway_listens_only_once_its_hub_can_start_clients(
    procs: Processes, settings: Settings
) -> None:
    redis = urlsplit(settings.effective_redis_url)
    # Redis unreachable at first: the proxy accepts, but its upstream refuses every connection.
    proxy = TcpProxy("127.0.0.1", free_port()).start()
    url = procs.gateway_url + "/stream"
    procs.spawn(
        "gateway",
        [sys.executable, "-m", "backend.gateway", "--host", "127.0.0.1",
         "--port", str(procs.gateway_port)],
        {"REDIS_URL": redis._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()},
    )  # fmt: skip
    try:
        # Either it already answers clients, or it says it waits for the ring.
        first = wait_for(
            lambda: stream_status(url) or (WAITING in procs.log("gateway") and "waiting"),
            30, what="the gateway to wait for the ring or to answer",
        )  # fmt: skip
        assert first == "waiting", f"/stream answered {first} before the ring was readable"
        assert stream_status(url) is None  # still not listening: nobody gets a 503

        proxy.target = (redis.hostname or "127.0.0.1", redis.port or 6379)  # Redis is back
        assert wait_for(lambda: stream_status(url), 30, what="/stream to answer") == 200
    finally:
        proxy.cut()
