"""The `alerts.deliver` actor: one webhook attempt per message, retries scheduled by us.

Dramatiq's own retries are off (max_retries=0): a retry here is a new message carrying the same
job with `attempt + 1`, delayed by the retry policy (backoff with jitter, Retry-After as a floor),
so the attempt count, the dead state and the history record are ours and visible. Retries go to
a queue of their own (`alerts.deliver.retry`, lower priority), so however many deliveries to a
dead receiver are cycling, a first attempt to a healthy one never queues behind them. A job whose
host is at its concurrency limit is parked on the host's list (`HostSlots`) and its thread moves
on: no delivery thread ever waits for one host while other hosts have work, and a parked job
costs nothing until the host frees a slot, which hands it straight to the oldest parked job.
A daemon thread per worker (`ParkedSweep`) un-parks jobs whose host's slot holder died.

It runs in its own worker process (`tasks.delivery_worker`), so a slow receiver can only ever
occupy delivery threads, never calc's.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from redis import Redis
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from backend.bus.alert_delivery import HostSlots, record_attempt
from backend.bus.keys import (
    ALERTS_DELIVER_ACTOR,
    ALERTS_DELIVER_QUEUE,
    ALERTS_DELIVER_RETRY_ACTOR,
    ALERTS_DELIVER_RETRY_QUEUE,
    Keys,
)
from backend.core.alerts.records import DeliveryJob
from backend.core.alerts.retry import next_delay
from backend.core.alerts.rules import parse_deny_list
from backend.settings import WorkerSettings
from tasks.webhook_sender import WebhookSender

log = logging.getLogger(__name__)

ClockUs = Callable[[], int]
RETRY_PRIORITY = 10  # Dramatiq runs lower numbers first: a fresh job beats a retry in the worker


@dataclass(frozen=True)
class DeliveryActors:
    deliver: dramatiq.Actor[Any, Any]  # first attempts (queued by `queue_firing`)
    retry: dramatiq.Actor[Any, Any]  # later attempts and jobs put back for a full host


# A lease outlives the longest possible attempt (the sender's deadline, plus one socket timeout
# for a connect the watchdog cannot see yet) with room to spare; only a dead worker's lease ever
# reaches it.
LEASE_MARGIN_S = 5.0

# How often each delivery worker looks for jobs parked behind a dead slot holder: one ZRANGE when
# nothing is parked. A stranded job waits for its holder's lease to expire anyway (seconds).
SWEEP_INTERVAL_S = 1.0

# Redis bookkeeping (slot, record, re-send) rides out a short outage rather than losing the job.
ride_out_redis_outage = retry(
    retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
    wait=wait_exponential(multiplier=0.05, max=1.0),
    stop=stop_after_delay(30.0),
    reraise=True,
)


def wall_clock_us() -> int:
    return time.time_ns() // 1_000


def register_delivery_actor(
    broker: dramatiq.Broker,
    settings: WorkerSettings,
    redis_client: Redis,
    sender: WebhookSender | None = None,
    clock_us: ClockUs = wall_clock_us,
    rng: Callable[[], float] = random.random,
) -> DeliveryActors:
    keys = Keys.from_settings(settings)
    timeout = settings.alert_webhook_timeout
    slots = HostSlots(
        redis_client,
        keys,
        limit=settings.alert_host_concurrency,
        lease_ms=int((2 * timeout + LEASE_MARGIN_S) * 1000),
    )
    webhook = sender or WebhookSender(timeout, parse_deny_list(settings.alert_webhook_deny))

    def resend(job: DeliveryJob, delay_s: float) -> None:
        ride_out_redis_outage(retry_actor.send_with_options)(
            args=([job.model_dump(mode="json")],), delay=max(int(delay_s * 1000), 1)
        )

    def deliver_one(job: DeliveryJob) -> None:
        host = job.destination
        token = ride_out_redis_outage(slots.acquire)(host, job, clock_us() // 1000)
        if token is None:
            return  # parked: a release (or the sweep) puts it back on the queue with a slot
        try:
            result = webhook.send(job)
        finally:
            ride_out_redis_outage(slots.release)(host, token, clock_us() // 1000)
        record = ride_out_redis_outage(record_attempt)
        if result.outcome == "delivered":
            record(redis_client, keys, job, "delivered", None, clock_us())
        elif result.outcome == "fail":
            record(redis_client, keys, job, "failed", result.error, clock_us())
            # The host only: a webhook URL's path often carries the receiver's token.
            log.warning("webhook to %s for %s failed: %s", host, job.alert_id, result.error)
        else:
            delay = next_delay(job.attempt, settings.alert_max_attempts, result.retry_after_s, rng)
            if delay is None:
                record(redis_client, keys, job, "dead", result.error, clock_us())
                log.error(
                    "webhook to %s for %s dead after %d attempts: %s",
                    host, job.alert_id, job.attempt, result.error,
                )  # fmt: skip
                return
            # The next attempt is sent before this one is recorded: a crash in between repeats
            # a record, never loses the delivery.
            retry_job = job.model_copy(
                update={"attempt": job.attempt + 1, "waits": 0, "slot": None}
            )
            resend(retry_job, delay)
            record(redis_client, keys, job, "retrying", result.error, clock_us())

    def alerts_deliver(jobs: list[Any]) -> None:
        """Deliver each webhook job of the message (one attempt each)."""
        for raw in jobs:
            deliver_one(DeliveryJob.model_validate(raw))

    deliver_actor = dramatiq.actor(
        alerts_deliver,
        broker=broker,
        actor_name=ALERTS_DELIVER_ACTOR,
        queue_name=ALERTS_DELIVER_QUEUE,
        max_retries=0,
    )
    retry_actor = dramatiq.actor(
        alerts_deliver,
        broker=broker,
        actor_name=ALERTS_DELIVER_RETRY_ACTOR,
        queue_name=ALERTS_DELIVER_RETRY_QUEUE,
        max_retries=0,
        priority=RETRY_PRIORITY,
    )
    broker.add_middleware(ParkedSweep(slots, clock_us))
    return DeliveryActors(deliver=deliver_actor, retry=retry_actor)


class ParkedSweep(dramatiq.Middleware):
    """Runs `HostSlots.sweep` every SWEEP_INTERVAL_S in a daemon thread of each delivery worker
    process: the only way out for jobs parked behind a slot holder that was killed (its lease
    expires but nobody releases). Safe with any number of workers: each host's step is atomic."""

    def __init__(self, slots: HostSlots, clock_us: ClockUs) -> None:
        self.slots = slots
        self.clock_us = clock_us
        self.stopping = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threading.Thread(target=self._run, name="parked-sweep", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.wait(SWEEP_INTERVAL_S):
            try:
                moved = self.slots.sweep(self.clock_us() // 1000)
            except redis.RedisError as exc:  # the next round tries again
                log.warning("parked-job sweep failed: %s", exc)
                continue
            if moved:
                log.info("sweep un-parked %d webhook jobs stranded by a dead slot holder", moved)
