"""Alert helpers for tests through the running system: rules put straight into the workers'
mirror, and the `alert.fired` events a test's realtime ring carries, collected.

Firings are observed on the channel (the `ui` channel of a rule), not in the history stream: the
history is the PostgreSQL flusher's to consume and delete."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from redis import Redis, RedisError

from backend.bus.alert_evaluation import ALERTS_BAD_OBSERVATIONS
from backend.bus.alert_firings import ALERTS_FIRED
from backend.bus.alert_rules import AlertRuleMirror
from backend.bus.keys import Keys
from backend.core.alerts.firing import Firing
from backend.core.alerts.observations import StoredMemory
from backend.core.alerts.rules import AlertRule
from backend.core.events import AlertFired
from backend.core.stream_ids import format_id, parse_id
from backend.settings import Settings
from backend.storage.alerts_repo import create_rule, delete_rule
from tests.support.ring import RingEvents
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
    """The rules in PostgreSQL (the truth: an API starting later rebuilds the mirror from it)
    and in the workers' Redis mirror."""
    asyncio.run(_store_rules(settings.psycopg_url, rules))
    mirror = AlertRuleMirror(redis, Keys.from_settings(settings))
    for rule in rules:
        mirror.put(rule)
    return mirror


async def _store_rules(conninfo: str, rules: list[AlertRule]) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for rule in rules:
            await delete_rule(conn, rule.id)
            await create_rule(conn, rule)


class FiredEvents:
    """Every `alert.fired` event appended to the test's realtime ring since construction."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys.from_settings(settings)
        self.ring = RingEvents(redis, settings.realtime_stream)
        self.firings: list[Firing] = []

    def poll(self) -> list[Firing]:
        """Read what has arrived; the firings so far."""
        self.firings = [e.firing for _, e in self.ring.poll() if isinstance(e, AlertFired)]
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
        pass  # nothing held: the ring is read on demand


class FiredListener:
    """`FiredEvents` for the chaos suite: a background thread that keeps reading the ring across
    Redis restarts (from where it was: the ring keeps what was appended meanwhile). `gaps`
    counts the times the ring no longer held its place (it could then have missed firings)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys.from_settings(settings)
        self.firings: list[Firing] = []
        self.gaps = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._position: str | None = None

    def start(self) -> FiredListener:
        self._thread.start()
        if not self._subscribed.wait(10):
            raise AssertionError("the alert listener could not read the ring")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def snapshot(self) -> list[Firing]:
        with self._lock:
            return list(self.firings)

    def _run(self) -> None:
        while not self._stop.is_set():
            client = Redis.from_url(self.settings.effective_redis_url, socket_timeout=2)
            try:
                ring = RingEvents(client, self.settings.realtime_stream, self._position)
                if self._position is not None:
                    first: Any = client.xrange(self.settings.realtime_stream, count=1)
                    if first and parse_id(first[0][0]) > parse_id(self._position):
                        self.gaps += 1  # trimmed past us while we were away
                self._subscribed.set()
                while not self._stop.is_set():
                    before = len(ring.events)
                    events = ring.poll()
                    self._position = format_id(ring.position)
                    fresh = [e.firing for _, e in events[before:] if isinstance(e, AlertFired)]
                    if fresh:
                        with self._lock:
                            self.firings.extend(fresh)
                    else:
                        self._stop.wait(0.05)
            except RedisError:
                self._stop.wait(0.2)  # Redis is down or restarting: read again from our place
            finally:
                client.close()


def chaos_rules(start_prices: dict[str, float]) -> list[AlertRule]:
    """Per symbol: every condition and trigger on last_price around its start price (the walk
    crosses it often), and a view field (trades_1m above 20)."""
    rules: list[AlertRule] = []
    for symbol, start in start_prices.items():
        band = start * 0.001
        for i, spec in enumerate(PRICE_RULE_SPECS):
            value = start + (spec["value"] - 100.0) * band * 2
            value2 = None if spec["value2"] is None else value + band
            rules.append(make_rule(f"{symbol}-p{i:02d}", symbol, **spec | {
                "value": value, "value2": value2,
            }))  # fmt: skip
        rules.append(make_rule(f"{symbol}-trades", symbol, field="trades_1m", value=20.0,
                               condition="crosses_above"))  # fmt: skip
    return rules


@dataclass
class AlertsVerdict:
    committed: int  # firings the evaluators committed (alerts_fired)
    seen: int  # alert.fired events received
    distinct: int
    repeated: int  # alert ids seen more than once: a crossing fired twice
    pending: int  # observations not yet evaluated
    bad: int  # undecodable observations skipped
    listener_gaps: int
    inconsistent: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        complete = self.listener_gaps > 0 or self.seen == self.committed
        return (
            self.repeated == 0 and self.pending == 0 and self.bad == 0 and complete
            and self.distinct == self.committed and not self.inconsistent
        )  # fmt: skip

    def text(self) -> str:
        return (
            f"alerts: {self.committed} committed, {self.seen} seen ({self.distinct} distinct,"
            f" {self.repeated} repeated), {self.pending} observations pending, {self.bad} bad,"
            f" listener reconnections {self.listener_gaps}"
            + (f"; inconsistent: {'; '.join(self.inconsistent[:5])}" if self.inconsistent else "")
        )


def alerts_pending(redis: Redis, keys: Keys, symbols: list[str]) -> int:
    return sum(int(redis.xlen(keys.alert_observations(s))) for s in symbols)


def alerts_verdict(
    redis: Redis, settings: Settings, listener: FiredListener, acked: dict[str, dict[str, Any]]
) -> AlertsVerdict:
    """What the alerts did against what they promise: each crossing fired once (no alert id
    twice, and as many distinct ids as committed firings), everything observed evaluated, every
    firing on an acknowledged tick at that tick's price (a `last_price` firing), and the
    evaluator's memory at the symbol's final price."""
    keys = Keys.from_settings(settings)
    firings = listener.snapshot()
    symbols = sorted({t["symbol"] for t in acked.values()})
    counts = Counter(f.alert_id for f in firings)
    inconsistent: list[str] = []
    for f in firings:
        tick = acked.get(f.tick.event_id)
        if tick is None:
            inconsistent.append(f"{f.alert_id} fired on unacknowledged {f.tick.event_id}")
        elif f.field == "last_price" and f.observed != float(tick["price"]):
            inconsistent.append(f"{f.alert_id} observed {f.observed} != {tick['price']}")
    for symbol in symbols:
        raw_view = redis.get(keys.view(symbol))
        memory = StoredMemory.from_json(redis.get(keys.alert_memory(symbol))).memory
        if raw_view is not None and "last_price" in memory.prev:
            last = orjson.loads(raw_view)["last_price"]
            if memory.prev["last_price"] != last:
                inconsistent.append(f"{symbol}: memory at {memory.prev['last_price']}, W {last}")
    return AlertsVerdict(
        committed=int(redis.hget(keys.stats, ALERTS_FIRED) or 0),
        seen=len(firings),
        distinct=len(counts),
        repeated=sum(1 for n in counts.values() if n > 1),
        pending=alerts_pending(redis, keys, symbols),
        bad=int(redis.hget(keys.stats, ALERTS_BAD_OBSERVATIONS) or 0),
        listener_gaps=listener.gaps,
        inconsistent=inconsistent,
    )
