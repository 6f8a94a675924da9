"""What makes a simulated feed look like a real one: resends, late ticks, lost ticks, garbage.

`FaultyFeed` wraps the clean `Simulator` and hands out exactly one payload to send per call, so
the pacing loop's TPS is the rate of payloads on the wire whatever the fault rates are:
- duplicate: a backup feed resends a tick (same event_id, same payload) 1-3 sends later;
- out of order: a tick is held back and sent after 2-5 later ones (its event time unchanged);
- gap: a tick is generated (its seq consumed) but never sent, leaving a hole in the seqs;
- bad: a malformed payload the API must reject with a 4xx (it consumes no seq).
Pure: the rng is passed in, and every fresh tick draws the same random numbers whatever the
rates, so a seed reproduces the run and changing one rate does not reshuffle the others.
"""

from __future__ import annotations

import enum
import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from backend.core.feeder_config import FeederConfig
from feeder.prices import round_price
from feeder.simulator import Simulator

# Fresh ticks tried per call before giving up on finding one to send (rates close to 1).
MAX_TRIES = 64
MAX_RECENT_GAPS = 10_000


@dataclass(frozen=True)
class Rates:
    """Probabilities in [0, 1] applied to each fresh tick."""

    duplicate: float = 0.0
    out_of_order: float = 0.0
    gap: float = 0.0
    bad: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicate", "out_of_order", "gap", "bad"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} rate must be in [0, 1], got {value!r}")

    @classmethod
    def from_config(cls, config: FeederConfig) -> Rates:
        return cls(
            config.duplicate_rate, config.out_of_order_rate, config.gap_rate, config.bad_tick_rate
        )


class Kind(enum.StrEnum):
    NEW = "new"
    LATE = "late"  # sent after later ticks (out of order)
    DUPLICATE = "duplicate"  # a resend of a tick already sent
    BAD = "bad"  # malformed on purpose: a 4xx is the expected answer


class Emission(NamedTuple):
    payload: dict[str, Any]
    kind: Kind

    @property
    def bad(self) -> bool:
        return self.kind is Kind.BAD


def _iso_without_offset(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).replace(tzinfo=None).isoformat()


# Each turns a valid payload into one that `backend.core.validation.validate_tick` rejects.
BAD_KINDS: dict[str, Callable[[dict[str, Any]], object]] = {
    "negative_price": lambda p: p.update(price=-p["price"]),
    "zero_price": lambda p: p.update(price=0),
    "huge_price": lambda p: p.update(price=1e13),
    "nan_string_price": lambda p: p.update(price="NaN"),
    "infinity_string_volume": lambda p: p.update(volume="Infinity"),
    "negative_volume": lambda p: p.update(volume=-1.0),
    "missing_price": lambda p: p.pop("price"),
    "missing_ts": lambda p: p.pop("ts"),
    "bad_symbol": lambda p: p.update(symbol=p["symbol"].lower() + " x"),
    "empty_source": lambda p: p.update(source=""),
    "naive_ts": lambda p: p.update(ts=_iso_without_offset(p["ts"])),
    "unknown_field": lambda p: p.update(exchange="demo"),
    "negative_seq": lambda p: p.update(seq=-1),
}
_BAD_NAMES = tuple(sorted(BAD_KINDS))


@dataclass
class FaultStats:
    """What the feed did; `generated` counts seqs consumed, the others payloads or ticks."""

    generated: int = 0
    emitted: int = 0
    gapped: int = 0
    delayed: int = 0
    duplicated: int = 0
    bad: int = 0


@dataclass(order=True)
class _Held:
    due: int
    order: int
    emission: Emission = field(compare=False)
    dup_after: int | None = field(compare=False, default=None)


class FaultyFeed:
    """One payload per `next()` call: a due held tick or resend first, else a fresh tick."""

    def __init__(
        self,
        simulator: Simulator,
        rng: random.Random,
        rates: Rates | None = None,
        *,
        max_recent_gaps: int = MAX_RECENT_GAPS,
    ) -> None:
        self.simulator = simulator
        self.rng = rng
        self.rates = rates or Rates()
        self.stats = FaultStats()
        # (source, symbol, seq) of the latest ticks never sent: bounded, for tests and logs.
        self.recent_gaps: deque[tuple[str, str, int]] = deque(maxlen=max_recent_gaps)
        self._held: list[_Held] = []
        self._order = 0

    @property
    def held(self) -> int:
        """Payloads waiting to be sent later (late ticks and pending resends)."""
        return len(self._held)

    def next(self, now_ms: int) -> Emission | None:
        """The payload to send now; None only when every tick tried was lost (gap rate ~1)."""
        if self._held and self._held[0].due <= self.stats.emitted:
            return self._emit_held(heapq.heappop(self._held))
        for _ in range(MAX_TRIES):
            u_bad, u_gap, u_late, u_dup = (self.rng.random() for _ in range(4))
            delay, dup_delay = self.rng.randint(2, 5), self.rng.randint(1, 3)
            if u_bad < self.rates.bad:
                self.stats.bad += 1
                return self._emit(Emission(self._bad_tick(now_ms), Kind.BAD), None)
            payload = self.simulator.next_tick(now_ms)
            self.stats.generated += 1
            dup_after = dup_delay if u_dup < self.rates.duplicate else None
            if u_gap < self.rates.gap:
                self.stats.gapped += 1
                self.recent_gaps.append((payload["source"], payload["symbol"], payload["seq"]))
            elif u_late < self.rates.out_of_order:
                self.stats.delayed += 1
                self._hold(self.stats.emitted + delay, Emission(payload, Kind.LATE), dup_after)
            else:
                return self._emit(Emission(payload, Kind.NEW), dup_after)
        if self._held:  # nothing fresh to send this slot: the earliest held one goes now
            return self._emit_held(heapq.heappop(self._held))
        return None

    def flush(self) -> list[Emission]:
        """Everything still held, in due order (with pending resends): sent when stopping."""
        out: list[Emission] = []
        while self._held:
            held = heapq.heappop(self._held)
            out.append(held.emission)
            if held.dup_after is not None:
                out.append(Emission(held.emission.payload, Kind.DUPLICATE))
                self.stats.duplicated += 1
        self.stats.emitted += len(out)
        return out

    def _hold(self, due: int, emission: Emission, dup_after: int | None = None) -> None:
        self._order += 1
        heapq.heappush(self._held, _Held(due, self._order, emission, dup_after))

    def _emit_held(self, held: _Held) -> Emission:
        return self._emit(held.emission, held.dup_after)

    def _emit(self, emission: Emission, dup_after: int | None) -> Emission:
        self.stats.emitted += 1
        if dup_after is not None:
            # The resend is the very same payload: the API must see identical content.
            self.stats.duplicated += 1
            copy_ = Emission(emission.payload, Kind.DUPLICATE)
            self._hold(self.stats.emitted + dup_after - 1, copy_)
        return emission

    def _bad_tick(self, now_ms: int) -> dict[str, Any]:
        """A malformed payload for demos; its own event_id space, so it never shadows a tick."""
        sim = self.simulator
        symbol = self.rng.choice(sim.symbols)
        payload: dict[str, Any] = {
            "symbol": symbol,
            "price": round_price(sim.price(symbol)),
            "volume": 1.0,
            "source": self.rng.choice(sim.sources),
            "ts": int(now_ms),
            "event_id": f"{sim.run_id}-bad-{self.stats.bad}",
        }
        BAD_KINDS[self.rng.choice(_BAD_NAMES)](payload)
        return payload
