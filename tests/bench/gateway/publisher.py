"""The publisher: appends events to the ring at a steady rate, one pipeline every few ms.

Like the product's publishers it uses `Ring.queue_append` (XADD MAXLEN ~); a pipeline per
`batch_ms` tick keeps the pacing smooth at thousands of events/s. Each entry's id is the Redis
server's clock at the append: that is the publish time every latency is measured from.
"""

from __future__ import annotations

import threading
import time

from redis import Redis

from backend.bus.realtime import Ring
from tests.bench.gateway.events import event_stream


class Publisher(threading.Thread):
    def __init__(
        self, redis_url: str, ring: Ring, symbols: list[str], *, rate: float,
        tick_share: float, batch_ms: float,
    ) -> None:  # fmt: skip
        super().__init__(name="publisher", daemon=True)
        self.redis = Redis.from_url(redis_url)
        self.ring = ring
        self.events = event_stream(symbols, tick_share)
        self.rate = rate
        self.batch_s = batch_ms / 1000
        self.appended = 0
        self.late_batches = 0  # batches sent more than one period behind schedule
        self.error: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            self._publish()
        except Exception as exc:  # the scenario checks it: a run without its load is void
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def _publish(self) -> None:
        start = time.monotonic()
        while not self._halt.is_set():
            now = time.monotonic()
            due = int((now - start) * self.rate) - self.appended
            if due > 0:
                pipe = self.redis.pipeline(transaction=False)
                for _ in range(due):
                    self.ring.queue_append(pipe, next(self.events))
                pipe.execute()
                self.appended += due
                if due > 2 * self.rate * self.batch_s:
                    self.late_batches += 1
            next_at = start + (int((now - start) / self.batch_s) + 1) * self.batch_s
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.redis.close()
