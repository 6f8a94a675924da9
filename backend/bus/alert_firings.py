"""Everything a firing sets off, queued on the caller's MULTI: the history record (for
PostgreSQL), the `alert.fired` event (the `ui` channel) and one `alerts.deliver` message per
webhook. The evaluator queues it in the transaction that moves its memory past the crossing, and
the API's test-fire in a transaction of its own; either way all of it happens, or none of it."""

from __future__ import annotations

from redis.asyncio import Redis as AsyncRedis
from redis.client import Pipeline

from backend.bus import stats
from backend.bus.enqueue import queue_message
from backend.bus.keys import ALERTS_DELIVER_ACTOR, ALERTS_DELIVER_QUEUE, Keys
from backend.bus.realtime import Outgoing, Ring
from backend.core.alerts.firing import Firing, sign, webhook_body
from backend.core.alerts.records import UI_CHANNEL, DeliveryJob, DeliveryRecord, FiredRecord
from backend.core.alerts.rules import AlertRule, UiChannel
from backend.core.events import ALERT_FIRED, AlertFired, encode_event
from backend.core.ticks import us_to_iso

ALERTS_FIRED = "alerts_fired"
ALERTS_TEST_FIRED = "alerts_test_fired"


def queue_history(pipe: Pipeline, keys: Keys, record: FiredRecord | DeliveryRecord) -> None:
    """One record on the history stream (field `r`), for the PostgreSQL flusher."""
    pipe.xadd(keys.alert_history, {"r": record.model_dump_json()})


def queue_firing(
    pipe: Pipeline, keys: Keys, ring: Ring, rule: AlertRule, firing: Firing, now_us: int
) -> None:
    """Queue the firing's history record, UI event and webhook jobs on `pipe` (in MULTI)."""
    now_iso = us_to_iso(now_us)
    targets = [UI_CHANNEL if isinstance(c, UiChannel) else c.url for c in rule.channels]
    queue_history(
        pipe,
        keys,
        FiredRecord(
            firing=firing,
            channels=targets,
            disable_rule=rule.trigger == "once" and not firing.test,
            committed_at=now_iso,
        ),
    )
    if UI_CHANNEL in targets:
        event = encode_event(AlertFired(firing=firing))
        ring.queue_append(pipe, Outgoing(ALERT_FIRED, firing.symbol, event))
        queue_history(
            pipe,
            keys,
            DeliveryRecord(
                alert_id=firing.alert_id, channel=UI_CHANNEL, status="delivered", attempts=1,
                latency_ms=0.0, at=now_iso,
            ),
        )  # fmt: skip
    body = webhook_body(firing)
    for hook in rule.webhooks():
        secret = hook.secret.get_secret_value() if hook.secret is not None else None
        job = DeliveryJob(
            alert_id=firing.alert_id,
            rule_id=rule.id,
            url=hook.url,
            body=body.decode(),
            signature=sign(body, secret) if secret is not None else None,
            fired_us=now_us,
            test=firing.test,
        )
        queue_message(
            pipe, keys, ALERTS_DELIVER_QUEUE, ALERTS_DELIVER_ACTOR, [job.model_dump_json().encode()]
        )
        queue_history(
            pipe,
            keys,
            DeliveryRecord(
                alert_id=firing.alert_id, channel=hook.url, status="pending", attempts=0, at=now_iso
            ),
        )
    stats.add_counters(pipe, keys.stats, {ALERTS_TEST_FIRED if firing.test else ALERTS_FIRED: 1})


class AlertFirings:
    """The API's test-fire: one firing queued in a MULTI of its own (async)."""

    def __init__(self, redis: AsyncRedis, keys: Keys, ring: Ring) -> None:
        self._redis = redis
        self._keys = keys
        self._ring = ring

    async def fire(self, rule: AlertRule, firing: Firing, now_us: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            # The queueing helpers only queue commands, which an async pipeline does the same way.
            queue_firing(pipe, self._keys, self._ring, rule, firing, now_us)  # type: ignore[arg-type]
            await pipe.execute()
