"""What was sent and what came of it: every batch by number, and the senders' tally."""

from __future__ import annotations

import random
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

SYMBOLS = ("OVA", "OVB", "OVC", "OVD", "OVE")
SOURCE = "bench"


@dataclass
class Ledger:
    """Every batch by number: event_id `<run>-<batch>-<index>`, symbol SYMBOLS[index % 5],
    volume 1, source "bench", ts and price the same for the whole batch.

    Kept per batch, not per tick, so the bench's own memory stays small at a million ticks.
    """

    run: str = field(default_factory=lambda: f"ov{secrets.token_hex(3)}")
    next_batch: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    acked: dict[int, list[int] | None] = field(default_factory=dict)  # None: every item
    refused: set[int] = field(default_factory=set)  # last answer 429 at the deadline: not written
    unknown: set[int] = field(default_factory=set)  # no final answer: may or may not be stored
    failed: set[int] = field(default_factory=set)  # a final non-retryable error answer

    def new_batch(self, n: int) -> tuple[int, bytes]:
        k = self.next_batch
        self.next_batch += 1
        self.sizes[k] = n
        ts = datetime.now(UTC).isoformat()
        # A stationary market: one price per batch, pseudo-random in 95..105, no trend. (A trend
        # keeps evicting the window's low or high, which makes calc re-read the whole window.)
        price = round(95.0 + 10.0 * random.Random(k).random(), 2)
        body = [
            {
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "price": price,
                "volume": 1.0,
                "source": SOURCE,
                "ts": ts,
                "event_id": f"{self.run}-{k}-{i}",
            }
            for i in range(n)
        ]
        return k, orjson.dumps(body)

    def items(self, k: int) -> list[int]:
        """The acknowledged item indices of batch k."""
        acked = self.acked[k]
        return list(range(self.sizes[k])) if acked is None else acked

    def acked_ticks(self) -> int:
        return sum(self.sizes[k] if v is None else len(v) for k, v in self.acked.items())

    def acked_per_symbol(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for k in self.acked:
            for i in self.items(k):
                out[SYMBOLS[i % len(SYMBOLS)]] += 1
        return out


@dataclass
class Tally:
    """What the senders saw, in ticks unless named otherwise."""

    batches: int = 0
    offered: int = 0  # distinct ticks put on the wire (first attempts)
    posted: int = 0  # ticks POSTed, re-sends included
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0  # acknowledged as duplicates (a re-send after a lost answer)
    rejected: int = 0  # items rejected inside a 200 answer
    http_429: int = 0  # 429 answers
    shed: int = 0  # ticks in 429'd requests
    abandoned: int = 0  # ticks whose last answer was a 429 when the time was up: never written
    unknown: int = 0  # ticks without a final answer: may or may not be stored
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds per answered request

    @property
    def acked(self) -> int:
        return self.accepted + self.duplicates
