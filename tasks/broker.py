"""The Dramatiq broker, built from settings. Import and build it before registering actors."""

from __future__ import annotations

import dramatiq
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

from backend.bus.keys import Keys
from backend.config import Settings


def redis_client(settings: Settings) -> Redis:
    """A sync client (connects lazily, on first command)."""
    return Redis.from_url(settings.effective_redis_url, health_check_interval=30)


def build_broker(settings: Settings, client: Redis | None = None) -> RedisBroker:
    """A Redis broker whose dead workers' messages come back within ~heartbeat_timeout.

    Dramatiq's defaults (60 s heartbeat timeout, maintenance on 0.1 % of broker calls) leave a
    killed worker's messages stranded for minutes. We use a 10 s timeout and run maintenance on
    every broker call: a pass is two ZRANGEBYSCOREs unless a worker is dead, and consumers poll
    at least once a second, so a dead worker's messages return ~1 s after its heartbeat expires.
    """
    broker = RedisBroker(
        client=client or redis_client(settings),
        namespace=Keys.from_settings(settings).dramatiq_namespace,
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=settings.maintenance_chance,
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
