"""The `alerts.evaluate` actor's body: run each named symbol's new observations through its rules.

calc sends a message naming a symbol in the same MULTI that appends the symbol's observations, so
every committed observation is followed by at least one message. The message carries no
observations: each symbol is drained from its stored cursor (`AlertEvaluationStore`), so a
redelivered message, two messages for one symbol, or two workers on one symbol evaluate every
observation exactly once between them, and a message whose work another already did is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redis import RedisError

from backend.bus.alert_evaluation import AlertEvaluationStore
from backend.bus.alert_rules import RulesCache
from tasks.calc import SymbolLocks, SymbolsFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateContext:
    store: AlertEvaluationStore
    rules: RulesCache
    locks: SymbolLocks = field(default_factory=SymbolLocks)  # this process's threads take turns


def evaluate_symbols(
    ctx: EvaluateContext, symbols: Sequence[str], clock_us: Callable[[], int]
) -> int:
    """Drain each symbol's observation stream; the number of firings.

    A symbol that fails does not hold back the others; the message is then retried by Dramatiq
    (every symbol starts again from its stored cursor, so the ones done are no-ops).
    """
    fired = 0
    failed: list[tuple[str, Exception]] = []
    for symbol in sorted(set(symbols)):
        try:
            with ctx.locks.hold(symbol):
                fired += ctx.store.drain(
                    symbol,
                    ctx.rules.rules_for(symbol),
                    clock_us,
                    reload=lambda s=symbol: ctx.rules.rules_for(s, reload=True),
                )
        except RedisError:
            raise  # Redis is gone: no other symbol would fare better
        except Exception as exc:
            log.exception("alerts: evaluation of %s failed", symbol)
            failed.append((symbol, exc))
    if failed:
        names = ", ".join(symbol for symbol, _ in failed)
        raise SymbolsFailed(f"alert evaluation failed for {names}: {failed[0][1]!r}")
    return fired
