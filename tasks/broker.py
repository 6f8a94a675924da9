"""The Dramatiq broker, built from settings. Import and build it before registering actors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from redis import Redis

from backend.bus.keys import CALC_B_QUEUE, REBUILD_QUEUE, Keys
from backend.settings import WorkerSettings

log = logging.getLogger(__name__)


class RecoveringRedisBroker(RedisBroker):
    """A RedisBroker that takes a new identity whenever a broker command loses its connection.

    Dramatiq keeps each fetched message in an ack set named after the broker's id, and hands such a
    set back to the queue only once that id stops sending heartbeats. When Redis dies mid-command
    (killed, failed over, network cut) a live worker can be left holding ids it will never ack:
    a fetch whose reply was lost, an ack or a retry that failed. Under its old id they would stay
    stranded for as long as the process lives. With a fresh id the old one falls silent, and
    maintenance requeues everything it held after `HEARTBEAT_TIMEOUT_MS`. A message that this
    process still finishes is then delivered twice, which calc's done-marker makes harmless.

    It also caps how long an idle consumer sleeps between polls (`poll_max_ms`): Dramatiq's
    back-off grows to the worker timeout (1 s by default), and a message that arrives meanwhile
    waits out the sleep. Only where that wait matters: a delay queue (`<queue>.DQ`, holding
    retries that wait ≥ 200 ms anyway) and the rebuild queue keep Dramatiq's back-off. Every idle
    poll is a script run in Redis and a wake-up of a Python thread, and a worker process has a
    consumer per queue and per delay queue: polling them all at 50 ms cost an idle worker about
    as much CPU as a tenth of its work at 1,000 ticks/s.
    """

    def __init__(
        self,
        *args: Any,
        poll_max_ms: int = 1_000,
        slow_queues: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.poll_max_ms = poll_max_ms
        self.slow_queues = slow_queues

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        if not self.polls_slowly(queue_name):
            timeout = min(timeout, self.poll_max_ms)
        return super().consume(queue_name, prefetch, timeout)

    def polls_slowly(self, queue_name: str) -> bool:
        """Whether an idle consumer of `queue_name` keeps Dramatiq's own back-off."""
        return queue_name.endswith(".DQ") or queue_name in self.slow_queues

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch = super()._dispatch(command)

        def dispatch_or_renew_identity(queue_name: str, *args: Any) -> Any:
            try:
                return dispatch(queue_name, *args)
            except (redis.ConnectionError, redis.TimeoutError):
                self.renew_identity(command)
                raise

        return dispatch_or_renew_identity

    def renew_identity(self, during: str) -> None:
        """Take a fresh id: whatever the old one holds is redelivered once its heartbeat stops
        (also used by calc coalescing, whose claims live in the same ack sets)."""
        old, self.broker_id = self.broker_id, str(uuid4())
        log.warning(
            "lost Redis during %s; broker id %s → %s: what %s held is redelivered",
            during, old, self.broker_id, old,
        )  # fmt: skip


def redis_client(settings: WorkerSettings) -> Redis:
    """A sync client (connects lazily, on first command)."""
    return Redis.from_url(settings.effective_redis_url, health_check_interval=30)


def build_broker(settings: WorkerSettings, client: Redis | None = None) -> RecoveringRedisBroker:
    """A Redis broker whose dead workers' messages come back within ~heartbeat_timeout.

    Dramatiq's defaults (60 s heartbeat timeout, maintenance on 0.1 % of broker calls) leave a
    killed worker's messages stranded for minutes. We use a 10 s timeout and run maintenance on
    every broker call: a pass is two ZRANGEBYSCOREs unless a worker is dead, and idle consumers
    poll every `WORKER_POLL_MAX_MS` at most, so a dead worker's messages return soon after its
    heartbeat expires, and a new message waits at most that long for an idle consumer.
    """
    broker = RecoveringRedisBroker(
        client=client or redis_client(settings),
        namespace=Keys.from_settings(settings).dramatiq_namespace,
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=settings.maintenance_chance,
        poll_max_ms=settings.worker_poll_max_ms,
        # calc-b's queue only carries messages with CALC_SPLIT on.
        slow_queues=frozenset(
            {REBUILD_QUEUE} | ({CALC_B_QUEUE} if not settings.calc_split else set())
        ),
        middleware=[
            AgeLimit(),
            TimeLimit(time_limit=60_000),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(max_retries=settings.calc_max_retries, min_backoff=200, max_backoff=10_000),
            CurrentMessage(),
        ],
    )
    dramatiq.set_broker(broker)
    return broker
