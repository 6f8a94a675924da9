"""The workers' copy of the alert rules: a Redis hash mirrored from PostgreSQL, and a per-process
cache that reloads when the rules' version moves.

PostgreSQL holds the rules (the API writes there first); the mirror is what evaluation reads, so
evaluation keeps working while PostgreSQL is down and a rule change reaches every worker within
`ALERT_RULES_REFRESH_S` without a query per message. The API rewrites the whole mirror at start-up,
so a mirror lost with Redis's data comes back.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus.keys import Keys
from backend.bus.lua import queue_alert_rule_put, replace_alert_rules
from backend.core.alerts.conditions import RuleIndex
from backend.core.alerts.rules import AlertRule


def queue_put(pipe: Any, keys: Keys, rules: Iterable[AlertRule]) -> None:
    """Queue `rules` into the mirror (on the caller's MULTI, sync or async), each unless the
    mirror already holds that version of it or a newer one: writers that race (two PATCHes, a
    PATCH and the flusher disabling a `once` rule) cannot leave an older version behind."""
    for rule in rules:
        queue_alert_rule_put(
            pipe, rules=keys.alert_rules, version=keys.alert_rules_version, rule_id=rule.id,
            rule_json=rule.mirror_json(), rule_version=rule.version,
        )  # fmt: skip


class AlertRuleMirror:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def put(self, rule: AlertRule) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            queue_put(pipe, self._keys, [rule])
            pipe.execute()

    def delete(self, rule_id: str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.alert_rules, rule_id)
            pipe.incr(self._keys.alert_rules_version)
            pipe.execute()

    def replace_all(self, rules: Iterable[AlertRule]) -> None:
        """Make the mirror exactly `rules` (the API's start-up sync from PostgreSQL)."""
        mapping = {rule.id: rule.mirror_json() for rule in rules}
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.alert_rules)
            if mapping:
                pipe.hset(self._keys.alert_rules, mapping=mapping)  # type: ignore[arg-type]
            pipe.incr(self._keys.alert_rules_version)
            pipe.execute()

    def version(self) -> int:
        return int(self._redis.get(self._keys.alert_rules_version) or 0)

    def load(self) -> tuple[int, list[AlertRule]]:
        """The version and every rule, read together."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.alert_rules_version)
            pipe.hgetall(self._keys.alert_rules)
            raw_version, raw_rules = pipe.execute()
        rules = [AlertRule.model_validate(orjson.loads(raw)) for raw in raw_rules.values()]
        return int(raw_version or 0), rules


class AsyncAlertRuleMirror:
    """The API's side of the mirror (async): the same commands as `AlertRuleMirror`'s writes.

    The API writes PostgreSQL first and the mirror second; a mirror write lost to a Redis outage
    is repaired by the next `replace_all` (the API's background sync)."""

    def __init__(self, redis: AsyncRedis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def put(self, rule: AlertRule) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            queue_put(pipe, self._keys, [rule])
            await pipe.execute()

    async def delete(self, rule_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.alert_rules, rule_id)
            pipe.incr(self._keys.alert_rules_version)
            await pipe.execute()

    async def version(self) -> int:
        return int(await self._redis.get(self._keys.alert_rules_version) or 0)

    async def replace_all(self, rules: Iterable[AlertRule], *, if_version: int) -> bool:
        """Make the mirror exactly `rules` (read from PostgreSQL after the caller read the
        mirror's version `if_version`); False, nothing changed, if a rule was put or deleted
        since: the caller reads PostgreSQL again. This is what lets the sync run while routes
        (of this or another API process) change rules."""
        return await replace_alert_rules(
            self._redis,
            rules=self._keys.alert_rules,
            version=self._keys.alert_rules_version,
            if_version=if_version,
            mapping={rule.id: rule.mirror_json() for rule in rules},
        )

    async def get(self, rule_id: str) -> AlertRule | None:
        raw = await self._redis.hget(self._keys.alert_rules, rule_id)
        return AlertRule.model_validate(orjson.loads(raw)) if raw is not None else None


class RulesCache:
    """This process's rules, per symbol, as `RuleIndex`es; reloaded when the version moves.

    The version is checked at most every `refresh_s` (one GET), so a change takes effect within
    that on every worker; between checks a lookup is a dict read. Thread-safe: indexes are
    rebuilt whole and swapped in.
    """

    def __init__(
        self,
        mirror: AlertRuleMirror,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mirror = mirror
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = float("-inf")
        self._by_symbol: dict[str, RuleIndex] = {}
        self._live_symbols: frozenset[str] = frozenset()
        self._empty = RuleIndex(())

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked_at < self._refresh_s:
            return
        with self._lock:
            if now - self._checked_at < self._refresh_s:
                return
            if self._mirror.version() != self._version:
                version, rules = self._mirror.load()
                grouped: dict[str, list[AlertRule]] = defaultdict(list)
                for rule in rules:
                    grouped[rule.symbol].append(rule)
                self._by_symbol = {s: RuleIndex(r, version) for s, r in grouped.items()}
                self._empty = RuleIndex((), version)
                self._live_symbols = frozenset(
                    s for s, r in grouped.items() if any(rule.enabled for rule in r)
                )
                self._version = version
            self._checked_at = now

    def rules_for(self, symbol: str, *, reload: bool = False) -> RuleIndex:
        """`symbol`'s rules; `reload` checks the mirror's version now (a stale cache)."""
        if reload:
            self.invalidate()
        self._refresh()
        return self._by_symbol.get(symbol, self._empty)

    def watched(self, symbol: str) -> bool:
        """Whether `symbol` has an enabled rule: calc only records observations for those."""
        self._refresh()
        return symbol in self._live_symbols

    def invalidate(self) -> None:
        """Check the version on the next lookup (tests; a worker that just changed a rule)."""
        self._checked_at = float("-inf")
