"""The supervisor with real (tiny) processes and a fake clock for the restart delays.

`step()` is driven by hand, so the backoff is exact and nothing sleeps to synchronise: the test
waits for the observable death (the pid gone), then moves the clock.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from backend.supervision.supervisor import Restart, Supervisor, describe_exit
from tests.support.waiting import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def env(name: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WHO": name}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def restarts() -> list[Restart]:
    return []


@pytest.fixture
def make(clock: FakeClock, restarts: list[Restart], tmp_path: Path) -> Iterator[type[Supervisor]]:
    made: list[Supervisor] = []

    def build(commands: dict[str, str], **kwargs: object) -> Supervisor:
        options: dict[str, object] = {
            "cwd": tmp_path,
            "grace_s": 5.0,
            "on_restart": restarts.append,
            "clock": clock,
        }
        options.update(kwargs)
        sup = Supervisor(commands, env, **options)  # type: ignore[arg-type]
        made.append(sup)
        return sup

    yield build  # type: ignore[misc]
    for sup in made:
        sup.shutdown()


def died(sup: Supervisor, name: str) -> bool:
    sup.step()
    return sup.pids()[name] is None


def test_a_dead_process_is_restarted_after_the_backoff_and_the_others_keep_running(
    make: type[Supervisor], clock: FakeClock, restarts: list[Restart]
) -> None:
    sup = make({"crashy": "sh -c 'exit 3'", "steady": "sleep 60"})
    sup.start_all()
    steady = sup.pids()["steady"]
    wait_for(lambda: died(sup, "crashy"), 10, what="crashy to exit")
    assert restarts == []  # counted when it starts again, not before

    clock.now = 0.999
    sup.step()
    assert sup.pids()["crashy"] is None  # 1 s backoff not over
    clock.now = 1.0
    sup.step()
    assert sup.pids()["crashy"] is not None
    assert restarts == [Restart("crashy", 3, restarts=1, delay_s=1.0)]

    wait_for(lambda: died(sup, "crashy"), 10, what="crashy to exit again")
    clock.now = 2.999
    sup.step()
    assert sup.pids()["crashy"] is None  # died at 1.0: 2 s now
    clock.now = 3.0
    sup.step()
    assert [r.delay_s for r in restarts] == [1.0, 2.0]
    assert sup.pids()["steady"] == steady  # never touched


def test_children_get_their_env_their_own_group_and_exec(
    make: type[Supervisor], tmp_path: Path
) -> None:
    sup = make({"a": "sh -c 'echo $WHO > a.out; exec sleep 60'"})
    sup.start_all()
    pid = sup.pids()["a"]
    assert pid is not None
    wait_for(lambda: (tmp_path / "a.out").exists(), 10, what="the child's output")
    assert (tmp_path / "a.out").read_text() == "a\n"
    assert os.getpgid(pid) == pid != os.getpgid(0)  # its own process group
    assert psutil.Process(pid).name() == "sleep"  # `exec`: the pid is the program's


def test_a_killed_process_is_reported_by_its_signal_and_its_group_cleaned(
    make: type[Supervisor], clock: FakeClock, restarts: list[Restart]
) -> None:
    # The leader forks a helper into its group, as Dramatiq forks its workers.
    sup = make({"leader": "sh -c 'sleep 60 & wait'"})
    sup.start_all()
    leader = sup.pids()["leader"]
    assert leader is not None
    helper = wait_for(lambda: psutil.Process(leader).children(), 10, what="the helper")[0]
    os.kill(leader, signal.SIGKILL)
    wait_for(lambda: died(sup, "leader"), 10, what="the leader's death")
    wait_for(lambda: not helper.is_running() or helper.status() == "zombie", 10, what="helper")
    clock.now = 1.0
    sup.step()
    assert restarts == [Restart("leader", -signal.SIGKILL, restarts=1, delay_s=1.0)]
    assert describe_exit(-9) == {"signal": "SIGKILL"} and describe_exit(2) == {"exit_code": 2}


def test_shutdown_terms_every_group_then_kills_what_outstays_the_grace(
    make: type[Supervisor], restarts: list[Restart]
) -> None:
    sup = make(
        {"polite": "sleep 60", "stubborn": "sh -c \"trap '' TERM; sleep 60 & wait\""},
        grace_s=0.5,
        clock=time.monotonic,
    )
    sup.start_all()
    stubborn = sup.pids()["stubborn"]
    assert stubborn is not None
    # Its child exists once the trap is set: from then on SIGTERM is ignored.
    wait_for(lambda: psutil.Process(stubborn).children(), 10, what="the trap to be set")
    sup.shutdown()
    assert sup.returncodes() == {"polite": -signal.SIGTERM, "stubborn": -signal.SIGKILL}
    assert sup.pids() == {"polite": None, "stubborn": None}
    sup.step()  # stopping: nothing comes back
    assert sup.pids() == {"polite": None, "stubborn": None} and restarts == []


def test_first_signal_stops_gracefully_a_second_kills_at_once(
    make: type[Supervisor], caplog: pytest.LogCaptureFixture
) -> None:
    """`run()` as `make run` uses it: Ctrl-C once starts the graceful stop; a second Ctrl-C
    does not wait out the grace period (a minute here) for a process that ignores SIGTERM."""
    sup = make(
        {"stubborn": "sh -c \"trap '' TERM; sleep 60 & wait\""}, grace_s=60.0, clock=time.monotonic
    )

    def press_ctrl_c_twice() -> None:
        pid = wait_for(lambda: sup.pids()["stubborn"], 10, what="the process to start")
        wait_for(lambda: psutil.Process(pid).children(), 10, what="the trap to be set")
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(
            lambda: any(r.message == "stopping every process" for r in caplog.records),
            10,
            what="the graceful stop",
        )
        os.kill(os.getpid(), signal.SIGINT)

    # What SIGINT did before: Python's KeyboardInterrupt, or SIG_IGN when the suite itself runs
    # as a background job of a non-interactive shell (as CI may start it).
    before = signal.getsignal(signal.SIGINT)
    with caplog.at_level(logging.INFO, logger="backend.supervision.supervisor"):
        presser = threading.Thread(target=press_ctrl_c_twice)
        presser.start()
        assert sup.run() == 0
        presser.join()
    assert sup.returncodes() == {"stubborn": -signal.SIGKILL}
    messages = [r.message for r in caplog.records]
    assert "second signal: killing every process now" in messages
    assert "killing after the grace period" not in messages
    assert signal.getsignal(signal.SIGINT) == before  # handlers restored
