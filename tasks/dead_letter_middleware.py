"""Records why a message was dead-lettered, next to Dramatiq's own dead-letter queue.

Dramatiq moves a message that failed after its retries to `<queue>.XQ` with the body it had when
it was last enqueued, which carries the traceback of the attempt before the last (none at all
with max_retries=0). `after_nack` runs for the final failure, so this is where the real reason is.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
from redis import Redis
from redis.exceptions import RedisError

from backend.bus.dead_letters import (
    DEAD_TICKS_FIELD,
    applied_symbols,
    dead_letter_ticks,
    reason_record,
)
from backend.bus.keys import Keys

log = logging.getLogger(__name__)


class DeadLetterReasons(dramatiq.Middleware):
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        exception = getattr(message, "_exception", None)
        record = reason_record(exception, message.options.get("traceback"), int(time.time() * 1000))
        marker = self.keys.calc_done(message.message_id)
        try:
            # The symbols the batch did apply: their ticks are not waiting, and the marker that
            # says so must outlive the dead letter (a requeue after its TTL would apply them
            # twice). The requeued batch's next applied symbol sets the TTL again.
            done = applied_symbols(self.redis.hkeys(marker))
            ticks = dead_letter_ticks(message.actor_name, message.args, done)
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.dead_letter_reasons, message.message_id, record)
                if done:
                    pipe.persist(marker)
                if ticks:  # no longer waiting for calc: out of the backlog until requeued
                    pipe.hincrby(self.keys.stats, DEAD_TICKS_FIELD, ticks)
                pipe.execute()
        except RedisError:  # the message is dead-lettered anyway; only the reason is lost
            log.warning("could not record why %s was dead-lettered", message.message_id)
        log.error(
            "dead-lettered %s (%s) after %s retries: %s",
            message.message_id,
            message.actor_name,
            message.options.get("retries", 0),
            exception,
        )
