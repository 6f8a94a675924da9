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
from redis.exceptions import RedisError

from backend.bus.dead_letters import DeadLetterRecorder, reason_record

log = logging.getLogger(__name__)


class DeadLetterReasons(dramatiq.Middleware):
    def __init__(self, recorder: DeadLetterRecorder) -> None:
        self.recorder = recorder

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        exception = getattr(message, "_exception", None)
        record = reason_record(exception, message.options.get("traceback"), int(time.time() * 1000))
        try:
            self.recorder.record(message.message_id, message.actor_name, message.args, record)
        except RedisError:  # the message is dead-lettered anyway; only the reason is lost
            log.warning("could not record why %s was dead-lettered", message.message_id)
        log.error(
            "dead-lettered %s (%s) after %s retries: %s",
            message.message_id,
            message.actor_name,
            message.options.get("retries", 0),
            exception,
        )
