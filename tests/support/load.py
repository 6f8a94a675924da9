"""Load for the chaos suite: a seeded stream of unique, sequenced ticks with duplicates and a few
invalid ticks mixed in, posted singly and in batches at a steady rate by clients that behave like
the real feeder: anything but a definitive answer (connection refused, timeout, 429, 5xx) is
retried with the same event_ids until the tick is acknowledged."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from backend.core.ticks import Tick, parse_ts_us
from tests.support.processes import AUTH

SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD"]
SOURCES = ["binance", "kraken"]
START_PRICE = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "XAUUSD": 2_400.0, "EURUSD": 1.08}
GIVE_UP_AFTER_S = 180.0  # a client that cannot deliver for this long stops trying (reported)


class Stream:
    """Thread-safe, seeded source of ticks. Duplicates are exact resends of earlier ticks."""

    def __init__(self, seed: int, dup_rate: float = 0.05, bad_rate: float = 0.01) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.dup_rate = dup_rate
        self.bad_rate = bad_rate
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.seq = {(src, sym): 0 for src in SOURCES for sym in SYMBOLS}
        self.price = dict(START_PRICE)
        self.issued: list[dict[str, Any]] = []

    def take(self, n: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self._next() for _ in range(n)]

    def _next(self) -> dict[str, Any]:
        rng = self.rng
        if self.issued and rng.random() < self.dup_rate:
            return dict(rng.choice(self.issued))
        i = next(self.counter)
        symbol, source = rng.choice(SYMBOLS), rng.choice(SOURCES)
        now_ms = int(time.time() * 1000)
        if rng.random() < self.bad_rate:  # refused by validation: must never be stored
            return {
                "symbol": symbol, "price": -1.0, "volume": 1.0, "source": source,
                "ts": now_ms, "event_id": f"chaos{self.seed}-bad-{i}",
            }  # fmt: skip
        self.seq[(source, symbol)] += 1
        self.price[symbol] = round(self.price[symbol] * (1 + rng.gauss(0, 0.0005)), 6)
        tick = {
            "symbol": symbol,
            "price": self.price[symbol],
            "volume": round(rng.lognormvariate(0, 1), 4),
            "source": source,
            "ts": now_ms - rng.randint(0, 500),  # a little out of order, like real feeds
            "event_id": f"chaos{self.seed}-{i:07d}",
            "seq": self.seq[(source, symbol)],
        }
        self.issued.append(tick)
        return tick


@dataclass
class Tally:
    """What the clients saw. `acked` maps event_id → the tick, for the reference views."""

    sent: int = 0  # ticks posted, duplicates included, retries not
    retries: int = 0  # ticks re-posted after a failed attempt
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)
    given_up: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)  # status codes and error kinds
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked_ticks(self) -> list[Tick]:
        return [as_tick(t) for t in self.acked.values()]


def as_tick(body: dict[str, Any]) -> Tick:
    return Tick(
        body["event_id"], body["symbol"], parse_ts_us(body["ts"]), float(body["price"]),
        float(body["volume"]), body["source"], body.get("seq"), 0,
    )  # fmt: skip


class Load:
    """`senders` client threads sharing `tps`; odd ones post single ticks, even ones batches."""

    def __init__(
        self, api_url: str, stream: Stream, tps: float, senders: int = 4, batch: int = 20
    ) -> None:
        self.api_url = api_url
        self.stream = stream
        self.tps = tps
        self.senders = senders
        self.batch = batch
        self.tally = Tally()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.stopped_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        for i in range(self.senders):
            size = self.batch if i % 2 == 0 else 1
            thread = threading.Thread(target=self._send_loop, args=(size,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = GIVE_UP_AFTER_S + 30) -> Tally:
        """Stop issuing new ticks; wait until every tick already issued has a definitive answer."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)
        self.stopped_at = time.monotonic()
        return self.tally

    def acked_count(self) -> int:
        with self.tally.lock:
            return len(self.tally.acked)

    def _send_loop(self, size: int) -> None:
        interval = size / (self.tps / self.senders)
        next_at = time.monotonic()
        with httpx.Client(base_url=self.api_url, auth=AUTH, timeout=5) as client:
            while not self.stopping.is_set():
                ticks = self.stream.take(size)
                with self.tally.lock:
                    self.tally.sent += len(ticks)
                self._deliver(client, ticks)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()  # behind (an outage): no burst to catch up

    def _deliver(self, client: httpx.Client, ticks: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER_S
        attempt = 0
        while True:
            if attempt:
                with self.tally.lock:
                    self.tally.retries += len(ticks)
            attempt += 1
            wait = min(0.1 * 2 ** min(attempt, 4), 1.0)
            try:
                if len(ticks) == 1:
                    response = client.post("/ingest/tick", json=ticks[0])
                else:
                    response = client.post("/ingest/ticks", json=ticks)
            except httpx.HTTPError as exc:
                self._count(type(exc).__name__)
                response = None
            if response is not None:
                self._count(str(response.status_code))
                if response.status_code == 200:
                    self._record(ticks, response.json())
                    return
                if response.status_code == 422 and len(ticks) == 1:
                    with self.tally.lock:
                        self.tally.rejected.add(ticks[0]["event_id"])
                    return
                if response.status_code == 429:
                    wait = float(response.headers.get("Retry-After", "1"))
            if time.monotonic() + wait > deadline:
                with self.tally.lock:
                    self.tally.given_up.update(t["event_id"] for t in ticks)
                return
            time.sleep(wait)

    def _count(self, what: str) -> None:
        with self.tally.lock:
            self.tally.answers[what] += 1

    def _record(self, ticks: list[dict[str, Any]], body: dict[str, Any]) -> None:
        refused = {item["index"] for item in body.get("rejected", [])} if len(ticks) > 1 else set()
        with self.tally.lock:
            for index, tick in enumerate(ticks):
                if index in refused:
                    self.tally.rejected.add(tick["event_id"])
                else:
                    self.tally.acked[tick["event_id"]] = tick
