"""Actor registration: thin wrappers that decode a batch and call the calc code.

Actors are created by `register_actors(broker, settings, redis)` rather than at import time, so
they bind to the broker we built (Dramatiq's documented pitfall) and tests can build their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from redis import Redis

from backend.bus.keys import CALC_ACTOR, Keys
from backend.config import Settings
from backend.core.ticks import decode_tick
from tasks.calc import apply_batch


@dataclass(frozen=True)
class Actors:
    calc_ticks: dramatiq.Actor[Any, Any]


def register_actors(broker: dramatiq.Broker, settings: Settings, redis: Redis) -> Actors:
    keys = Keys.from_settings(settings)

    def calc_ticks(ticks: list[list[Any]]) -> None:
        """calc-a + calc-b for one batch of accepted ticks (the message carries the batch)."""
        message = CurrentMessage.get_current_message()
        message_id = message.message_id if message is not None else "no-message"
        apply_batch(
            redis,
            keys,
            settings.pubsub_channel,
            message_id,
            [decode_tick(raw) for raw in ticks],
            now_us=time.time_ns() // 1_000,
            done_ttl_s=settings.dedup_ttl,
        )

    actor = dramatiq.actor(
        calc_ticks,
        actor_name=CALC_ACTOR,
        queue_name=settings.queue_name,
        broker=broker,
        max_retries=settings.calc_max_retries,
    )
    return Actors(calc_ticks=actor)
