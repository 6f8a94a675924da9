"""Alert helpers for tests through the running system: rules put straight into the workers'
mirror, and the `alert.fired` events a test's pub/sub channel carries, collected.

Firings are observed on the channel (the `ui` channel of a rule), not in the history stream: the
history is the PostgreSQL flusher's to consume and delete."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from backend.bus.alert_evaluation import ALERTS_BAD_OBSERVATIONS
from backend.bus.alert_firings import ALERTS_FIRED
from backend.bus.alert_rules import AlertRuleMirror
from backend.bus.keys import Keys
from backend.core.alerts.firing import Firing
from backend.core.alerts.rules import AlertRule
from backend.core.events import AlertFired, decode_event
from backend.settings import Settings
from tests.support.waiting import wait_for

CREATED = datetime(2026, 1, 1, tzinfo=UTC)

# Every condition and trigger mode on last_price, around 100 (channels 99.5..100.5).
PRICE_RULE_SPECS: list[dict[str, Any]] = [
    {"condition": condition, "value": value, "value2": value2, "trigger": trigger,
     "cooldown_s": cooldown}
    for condition, value, value2 in [
        ("above", 100.0, None), ("below", 100.0, None), ("crosses_above", 100.0, None),
        ("crosses_below", 100.0, None), ("crosses", 100.0, None),
        ("enters_channel", 99.5, 100.5), ("exits_channel", 99.5, 100.5),
    ]
    for trigger, cooldown in [("every_time", 0), ("once_per_bar", 0), ("once", 0),
                              ("every_time", 20)]
]  # fmt: skip


def make_rule(rule_id: str, symbol: str, **spec: Any) -> AlertRule:
    """A stored rule (ui channel unless given), as the API would put it into the mirror."""
    base: dict[str, Any] = {
        "name": rule_id, "symbol": symbol, "field": "last_price", "condition": "crosses_above",
        "value": 100.0, "trigger": "every_time",
    }  # fmt: skip
    return AlertRule.model_validate(
        base | spec | {"id": rule_id, "version": 1, "created_at": CREATED, "updated_at": CREATED}
    )


def price_rules(symbol: str) -> list[AlertRule]:
    return [make_rule(f"{symbol}-r{i:02d}", symbol, **s) for i, s in enumerate(PRICE_RULE_SPECS)]


def as_reference(rules: list[AlertRule]) -> list[dict[str, Any]]:
    """Rules as `tests.alerts_reference` takes them."""
    return [rule.model_dump(mode="json") for rule in rules]


def put_rules(redis: Redis, settings: Settings, rules: list[AlertRule]) -> AlertRuleMirror:
    mirror = AlertRuleMirror(redis, Keys.from_settings(settings))
    for rule in rules:
        mirror.put(rule)
    return mirror


class FiredEvents:
    """Every `alert.fired` event published on the test's channel since construction."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys.from_settings(settings)
        self.pubsub = redis.pubsub()
        self.pubsub.subscribe(settings.pubsub_channel)
        wait_for(lambda: self.pubsub.get_message(timeout=0.2), 5, what="subscription")
        self.firings: list[Firing] = []

    def poll(self) -> list[Firing]:
        """Read what has arrived; the firings so far."""
        while message := self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.01):
            event = decode_event(message["data"])
            if isinstance(event, AlertFired):
                self.firings.append(event.firing)
        return self.firings

    def committed(self) -> int:
        """Firings the evaluators committed (the counter moves in the same MULTI as the event)."""
        return int(self.redis.hget(self.keys.stats, ALERTS_FIRED) or 0)

    def settled(self, symbols: list[str]) -> bool:
        """Every observation recorded so far evaluated, and every firing's event read."""
        pending = sum(int(self.redis.xlen(self.keys.alert_observations(s))) for s in symbols)
        return pending == 0 and len(self.poll()) == self.committed()

    def wait_settled(self, symbols: list[str], timeout: float = 30.0) -> list[Firing]:
        wait_for(lambda: self.settled(symbols), timeout, what="alert evaluation to catch up")
        return self.poll()

    def pairs(self) -> set[tuple[str, str]]:
        return {(f.rule_id, f.tick.event_id) for f in self.firings}

    def repeated_ids(self) -> dict[str, int]:
        counts = Counter(f.alert_id for f in self.firings)
        return {alert_id: n for alert_id, n in counts.items() if n > 1}

    def bad_observations(self) -> int:
        return int(self.redis.hget(self.keys.stats, ALERTS_BAD_OBSERVATIONS) or 0)

    def close(self) -> None:
        self.pubsub.close()
