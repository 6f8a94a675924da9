"""The webhook sender against real local HTTP servers (in this process): the resolver is the
only thing injected, to play a DNS that answers what the test needs."""

from __future__ import annotations

import threading
import time

import pytest

from backend.core.alerts.records import DeliveryJob
from backend.core.alerts.rules import parse_deny_list
from tasks.webhook_sender import WebhookSender
from tests.support.webhooks import endless_body, receiving, sleeper, status, trickle

pytestmark = pytest.mark.integration

OPEN = parse_deny_list(["169.254.0.0/16"])


def job(url: str, signature: str | None = "sha256=00") -> DeliveryJob:
    return DeliveryJob(
        alert_id="alert-1", rule_id="r", url=url, body='{"a":1}', signature=signature, fired_us=0
    )


def test_connects_to_the_address_it_checked_and_keeps_the_name() -> None:
    """A name is resolved once, checked, and that address is the one connected to: `Host` (and
    SNI for https) carry the name, so a second lookup can never swap the target."""
    lookups: list[str] = []

    def dns(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    with receiving(status(204)) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        sender = WebhookSender(2.0, OPEN, resolve=dns)
        result = sender.send(job(f"http://hooks.example:{port}/hook"))
    assert result.outcome == "delivered"
    (got,) = receiver.snapshot()
    assert got.headers["host"] == f"hooks.example:{port}"
    assert got.headers["idempotency-key"] == "alert-1"
    assert got.headers["x-tickstream-signature"] == "sha256=00"
    assert got.headers["user-agent"].startswith("Tickstream")
    assert got.body == b'{"a":1}'
    assert lookups == ["hooks.example"]


def test_a_name_resolving_into_the_deny_list_is_refused_without_connecting() -> None:
    with receiving(status(200)) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        deny = parse_deny_list(["127.0.0.0/8"])
        sender = WebhookSender(2.0, deny, resolve=lambda h, p: ["8.8.8.8", "127.0.0.1"])
        result = sender.send(job(f"http://rebound.example:{port}/hook"))
        assert receiver.snapshot() == []
    assert result.outcome == "fail" and "127.0.0.1" in (result.error or "")


def test_a_stuck_dns_lookup_ends_the_attempt() -> None:
    release = threading.Event()

    def stuck(host: str, port: int) -> list[str]:
        release.wait(30)
        return ["127.0.0.1"]

    sender = WebhookSender(0.5, OPEN, resolve=stuck)
    try:
        result = sender.send(job("http://slow-dns.example/hook"))
    finally:
        release.set()
    assert result.outcome == "retry" and "DNS" in (result.error or "")


@pytest.mark.parametrize(
    "behaviour", [sleeper(30), trickle(0.1)], ids=["silent", "trickled-headers"]
)
def test_the_deadline_covers_the_whole_attempt(behaviour) -> None:
    """Per-read timeouts alone would never end a trickle; the watchdog does, at the deadline.
    The bound asserted is generous (20x): it separates "ends" from "hangs", not fast from slow."""
    with receiving(behaviour) as receiver:
        sender = WebhookSender(0.5, OPEN)
        started = time.monotonic()
        result = sender.send(job(receiver.url))
        elapsed = time.monotonic() - started
    assert result.outcome == "retry" and "timeout" in (result.error or "")
    assert elapsed < 10.0


def test_an_endless_error_body_is_read_only_up_to_the_cap() -> None:
    """The server would stream forever at full speed; the attempt ends after the cap, well
    before the (long) deadline, with the status and an excerpt."""
    with receiving(endless_body(503)) as receiver:
        result = WebhookSender(30.0, OPEN).send(job(receiver.url))
    assert (result.outcome, result.status) == ("retry", 503)
    assert (result.error or "").startswith("HTTP 503: xxx")
