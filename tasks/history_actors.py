"""The `history` service's actors: thin wrappers that decode a message and run the driver."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import psycopg
from redis import Redis

from backend.bus.keys import REPLAY_ACTOR, REPLAY_QUEUE, Keys
from backend.bus.realtime import Ring
from backend.settings import WorkerSettings
from tasks.actors import ClockUs, ride_out_redis_outage, wall_clock_us
from tasks.replay import ReplayEnv, run_slice


def register_history_actors(
    broker: dramatiq.Broker,
    settings: WorkerSettings,
    redis: Redis,
    clock_us: ClockUs = wall_clock_us,
) -> dramatiq.Actor[Any, Any]:
    env = ReplayEnv(
        redis=redis,
        keys=Keys.from_settings(settings),
        ring=Ring.from_settings(settings),
        connect=lambda: psycopg.connect(settings.psycopg_url, connect_timeout=5),
        ttl_s=settings.replay_ttl,
        slice_s=settings.replay_slice_s,
        stale_after_s=settings.stale_after,
        yield_backlog=settings.replay_yield_backlog,
        clock_us=clock_us,
        sleep=time.sleep,
    )

    def replay_run(items: list[Any]) -> None:
        """One slice of replay `items[0]`, if (generation, step) = items[1:] still drive it."""
        replay_id, generation, step = str(items[0]), int(items[1]), int(items[2])
        ride_out_redis_outage(run_slice)(env, replay_id, generation, step)

    return dramatiq.actor(
        replay_run,
        actor_name=REPLAY_ACTOR,
        queue_name=REPLAY_QUEUE,
        broker=broker,
        max_retries=settings.calc_max_retries,
    )
