"""The restart policy on a fake clock: exact delays, and the reset once a process stayed up."""

from __future__ import annotations

from backend.supervision.policy import Backoff, RestartPolicy


def crash_loop(backoff: Backoff, deaths: int, *, up_s: float = 0.5) -> list[float]:
    """Start, die after `up_s`, wait the delay, start again ... on simulated time."""
    now, delays = 0.0, []
    for _ in range(deaths):
        backoff.started(now)
        now += up_s
        delay = backoff.exited(now)
        delays.append(delay)
        now += delay
    return delays


def test_delays_double_from_1_s_and_stop_at_30_s() -> None:
    backoff = Backoff()
    assert crash_loop(backoff, 8) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.restarts == 8


def test_sixty_seconds_up_resets_the_backoff() -> None:
    backoff = Backoff()
    assert crash_loop(backoff, 4) == [1.0, 2.0, 4.0, 8.0]
    backoff.started(1_000.0)
    assert backoff.exited(1_060.0) == 1.0  # up exactly 60 s: healthy, a fresh start
    assert crash_loop(backoff, 2) == [2.0, 4.0]
    backoff.started(2_000.0)
    assert backoff.exited(2_059.9) == 8.0  # up just under 60 s: still the crash loop
    assert backoff.restarts == 8


def test_a_death_without_a_start_still_backs_off() -> None:
    """A command that cannot even be spawned counts as a death at once."""
    backoff = Backoff()
    assert [backoff.exited(t) for t in (0.0, 100.0, 200.0)] == [1.0, 2.0, 4.0]


def test_the_policy_is_configurable() -> None:
    backoff = Backoff(RestartPolicy(initial_delay_s=0.5, max_delay_s=3.0, healthy_after_s=5.0))
    assert crash_loop(backoff, 5) == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.started(0.0)
    assert backoff.exited(5.0) == 0.5
