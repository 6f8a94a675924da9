"""Enqueue a Dramatiq message from inside our own MULTI.

The same HSET + RPUSH as `RedisBroker.enqueue` (layout from `ingest.dramatiq_message_parts`),
queued on a pipeline, so a message is sent if and only if the transaction that decided to send it
commits: a committed state always gets its follow-up work, an aborted one never does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from redis.client import Pipeline

from backend.bus.ingest import dramatiq_message_parts
from backend.bus.keys import Keys


def queue_message(
    pipe: Pipeline, keys: Keys, queue: str, actor: str, items: Sequence[bytes]
) -> str:
    """Queue a message for `actor` whose one argument is the JSON list of `items` (each already
    JSON-encoded); returns its message id."""
    message_id = str(uuid.uuid4())
    head, tail = dramatiq_message_parts(queue, message_id, int(time.time() * 1000), actor)
    pipe.hset(keys.queue_messages(queue), message_id, head + b",".join(items) + tail)
    pipe.rpush(keys.queue_list(queue), message_id)
    return message_id
