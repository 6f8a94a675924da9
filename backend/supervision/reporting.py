"""Counting restarts in Redis, off the supervision loop.

The launcher, not the process that died, knows a restart happened, so it writes the counter that
/stats, /metrics and the Pipeline page show. Redis may be the very thing that is down: each write
runs on a thread of its own with short timeouts, and a failure is logged, never raised, so a
restart never waits for Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError

from backend.bus.process_restarts import ProcessRestartsStore
from backend.supervision.supervisor import Restart, describe_exit

log = logging.getLogger(__name__)


class RestartReporter:
    """`on_restart` for the `Supervisor`: records each restart through the store, in order."""

    def __init__(
        self,
        store: ProcessRestartsStore,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restarts")

    def __call__(self, restart: Restart) -> None:
        self._executor.submit(self._record, restart, self._clock_ms())

    def _record(self, restart: Restart, now_ms: int) -> None:
        try:
            self._store.record(restart.process, exit_code=restart.exit_code, now_ms=now_ms)
        except RedisError as exc:
            log.warning(
                "restart not counted: Redis unreachable",
                extra={
                    "process_name": restart.process,
                    **describe_exit(restart.exit_code),
                    "error": str(exc),
                },
            )
        except Exception:  # a Future would swallow it: say so, the supervision goes on
            log.exception("restart not counted", extra={"process_name": restart.process})

    def close(self) -> None:
        """Finish the writes already queued (each bounded by the client's timeouts)."""
        self._executor.shutdown(wait=True)
