"""The alert history stream, as its flushers use it: records (field `r`) wait here for
PostgreSQL, read through one consumer group, and are acknowledged and deleted only after the
transaction that wrote them commits (the outbox's pattern; `queue_history` writes them)."""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis

from backend.bus.alert_rules import queue_put
from backend.bus.keys import ALERT_HISTORY_GROUP, Keys
from backend.bus.outbox import ConsumerGroupStream
from backend.core.alerts.rules import AlertRule

RECORD_FIELD = b"r"


class AlertHistoryStream(ConsumerGroupStream):
    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(redis, keys.alert_history, ALERT_HISTORY_GROUP)
        self._keys = keys

    def ack_written(self, entry_ids: Sequence[bytes], disabled: Sequence[AlertRule]) -> None:
        """After the commit, in one MULTI: the rules the batch disabled (trigger `once`) into the
        workers' mirror, and the written entries acknowledged and deleted. If this fails the
        batch is written again, which changes nothing in PostgreSQL and repeats the mirror put."""
        with self._redis.pipeline(transaction=True) as pipe:
            if disabled:
                queue_put(pipe, self._keys, disabled)
            if entry_ids:
                pipe.xack(self._stream, self._group, *entry_ids)
                pipe.xdel(self._stream, *entry_ids)
            pipe.execute()
