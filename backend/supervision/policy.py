"""How long to wait before restarting a process that died: exponential backoff, reset by health.

A process that dies at once (bad config, a port taken) is retried after 1 s, 2 s, 4 s ... up to
30 s, so a crash loop neither spins the CPU nor floods the logs; a process that stayed up 60 s
was healthy, so its next death starts again at 1 s (a rare crash is back within a second).
Pure: the caller passes the times in (monotonic seconds), so tests run on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_DELAY_S = 1.0
MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    initial_delay_s: float = INITIAL_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    healthy_after_s: float = HEALTHY_AFTER_S


DEFAULT_POLICY = RestartPolicy()


class Backoff:
    """One process's backoff state: `started(now)` when it starts, `exited(now)` when it dies."""

    def __init__(self, policy: RestartPolicy = DEFAULT_POLICY) -> None:
        self._policy = policy
        self._next_delay_s = policy.initial_delay_s
        self._started_at: float | None = None
        self.restarts = 0

    def started(self, now: float) -> None:
        self._started_at = now

    def exited(self, now: float) -> float:
        """The delay before the restart of a process that died at `now`; counts the restart."""
        policy = self._policy
        if self._started_at is not None and now - self._started_at >= policy.healthy_after_s:
            self._next_delay_s = policy.initial_delay_s
        delay = self._next_delay_s
        self._next_delay_s = min(delay * 2, policy.max_delay_s)
        self._started_at = None
        self.restarts += 1
        return delay
