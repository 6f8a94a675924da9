"""`make run` keeps going when a process dies: the real launcher, each kind of process SIGKILLed.

The launcher runs as `make run` does, against the test's servers, with the feeder sending at a
modest rate and recording every answered tick. Each kind of process is killed in turn (a Dramatiq
worker *child* of `worker`, then `alerts`, `history`, the feeder, the API, the gateway, the UI).
After each kill: every other process kept its pid and start time and stayed answering, the killed
one is back (new pid, answering or consuming again), and `/stats` counted the restart. At the end
the feeder is paused, the pipeline drains, the launcher is stopped with SIGTERM (exit 0, nothing
left behind) and every tick the feeder saw accepted is in PostgreSQL exactly once.

The seconds until each process was back are recorded, not asserted (speed belongs in
benchmarks): the table is printed (run with `-s`) and written to `artifacts/supervision.json`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from backend.settings import Settings
from tests.support.launcher import REPO_ROOT, Launched, answers, launched, log_lines, stop
from tests.support.verify import stored_rows
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ARTIFACT = REPO_ROOT / "artifacts" / "supervision.json"
# `worker`: a Dramatiq child
ORDER = ("worker", "alerts", "history", "feeder", "api", "gateway", "ui")
START_S = 90  # a cold start of seven Python processes on a busy 2-core machine
BACK_S = 60


@dataclass
class Kill:
    process: str  # the Procfile process that had to restart
    victim: str  # what was SIGKILLed
    back_after_s: float  # kill → back (new pid, answering / consuming)
    others_unchanged: bool
    restarts_before: int
    restarts_after: int
    last_exit: int | None


def stats(api: httpx.Client) -> dict[str, Any] | None:
    try:
        response = api.get("/stats")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def restarts(api: httpx.Client, process: str) -> int:
    body = wait_for(lambda: stats(api), BACK_S, what="/stats")
    return int(body["processes"].get(process, {}).get("count", 0))


def counter(api: httpx.Client, name: str) -> int:
    body = wait_for(lambda: stats(api), BACK_S, what="/stats")
    return int(body["counters"][name])


def all_up(run: Launched, api: httpx.Client) -> bool:
    assert run.proc.poll() is None, "the launcher exited"
    if set(run.children()) != set(ORDER):
        return False
    if not (answers(f"{run.api_url}/health/liveness") and answers(f"{run.ui_url}/_stcore/health")):
        return False
    if not answers(f"{run.gateway_url}/health/readiness"):
        return False
    if not answers(f"{run.history_url}/health/readiness"):
        return False
    body = stats(api)
    return bool(body and body["gauges"]["workers"] >= 2 and body["counters"]["calc_ticks"] > 0)


def advancing(api: httpx.Client, name: str) -> Callable[[], bool]:
    """A predicate: the pipeline counter `name` has grown past its value now."""
    start = counter(api, name)
    return lambda: (s := stats(api)) is not None and s["counters"][name] > start


def victim_of(run: Launched, process: str) -> psutil.Process:
    """What to kill: the process itself, or for `worker` its oldest child (a Dramatiq worker
    process; Dramatiq forks its workers before anything else)."""
    proc = run.children()[process]
    if process != "worker":
        return proc
    workers = sorted(proc.children(), key=lambda p: (p.create_time(), p.pid))
    assert workers, "the worker has no worker processes"
    return workers[0]


def kill_and_recover(run: Launched, api: httpx.Client, process: str) -> Kill:
    before = run.identities()
    restarts_before = restarts(api, process)
    victim = victim_of(run, process)
    described = f"{process} child" if victim.pid != before[process][0] else process
    started = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)

    def back() -> bool:
        now = run.identities()
        return process in now and now[process] != before[process]

    wait_for(back, BACK_S, interval=0.05, what=f"{process} to be restarted")
    if process == "api":
        wait_for(lambda: answers(f"{run.api_url}/health/liveness"), BACK_S, what="the API")
    elif process == "gateway":
        ready = f"{run.gateway_url}/health/readiness"
        wait_for(lambda: answers(ready), BACK_S, what="the gateway")
    elif process == "ui":
        wait_for(lambda: answers(f"{run.ui_url}/_stcore/health"), BACK_S, what="the UI")
    elif process in ("worker", "feeder"):
        # Back means working: ticks are calculated (worker) / accepted (feeder) again.
        name = "calc_ticks" if process == "worker" else "ingest_accepted"
        wait_for(advancing(api, name), BACK_S, interval=0.1, what=f"{process} to work again")
    back_after = time.monotonic() - started

    after = run.identities()
    others = {name: ident for name, ident in before.items() if name != process}
    unchanged = all(after.get(name) == ident for name, ident in others.items())
    assert unchanged, f"killing {process} restarted {sorted(others.items() - after.items())}"
    assert run.proc.poll() is None, "the launcher exited"
    if process != "api":
        assert answers(f"{run.api_url}/health/liveness"), "the API stopped answering"
    if process != "ui":
        assert answers(f"{run.ui_url}/_stcore/health"), "the UI stopped answering"
    if process != "gateway":
        assert answers(f"{run.gateway_url}/health/readiness"), "the gateway stopped answering"
    counted = wait_for(
        lambda: (n := restarts(api, process)) > restarts_before and n,
        BACK_S,
        what=f"{process}'s restart in /stats",
    )
    entry = stats(api)["processes"][process]  # type: ignore[index]
    return Kill(
        process,
        described,
        round(back_after, 2),
        unchanged,
        restarts_before,
        counted,
        entry["last_exit_code"],
    )


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def recorded_outcomes(path: Path) -> tuple[dict[str, str], int]:
    """event_id -> last outcome from the feeder's record; and the lines that did not parse (a
    line a SIGKILLed feeder left half written, continued by its successor)."""
    outcomes: dict[str, str] = {}
    torn = 0
    for raw in path.read_bytes().splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            torn += 1
            continue
        if "event_id" in line:
            previous = outcomes.get(line["event_id"])
            outcomes[line["event_id"]] = "accepted" if previous == "accepted" else line["outcome"]
    return outcomes, torn


def table(kills: list[Kill], lost: int, doubled: int, counted: dict[str, int]) -> str:
    rows = [f"{'killed':<14} {'back after':>10}  {'others unchanged':<16} restarts  last exit"]
    for k in kills:
        rows.append(
            f"{k.victim:<14} {k.back_after_s:>9.2f}s  {k.others_unchanged!s:<16} "
            f"{k.restarts_before}→{k.restarts_after}      {k.last_exit}"
        )
    rows.append(f"exactly-once after every kill: lost {lost}, doubled {doubled}")
    rows.append(
        "ledger: accepted {accepted}, calculated {calculated}, stored {stored}, recorded as "
        "accepted by the feeder {recorded}".format(**counted)
    )
    return "\n".join(rows)


def test_each_process_killed_comes_back_alone_and_nothing_is_lost(
    settings: Settings, tmp_path: Path
) -> None:
    extra = {"TPS": "20", "WORKER_PROCESSES": "2", "WORKER_THREADS": "2"}
    with (
        launched(settings, tmp_path, **extra) as run,
        httpx.Client(base_url=run.api_url, timeout=5) as api,
    ):
        wait_for(lambda: all_up(run, api), START_S, interval=0.3, what="every process up")
        kills = [kill_and_recover(run, api, process) for process in ORDER]

        # Drain: pause the feeder, wait until it has nothing in flight and nothing waits.
        response = api.put("/feeder/config", json={"running": False})
        assert response.status_code == 200, response.text
        version = response.json()["version"]

        def paused() -> bool:
            feeders = api.get("/feeder/status").json()["feeders"]
            return any(
                f["alive"] and f["config_version"] == version and not f["running"]
                and f["buffered"] == 0
                for f in feeders
            )  # fmt: skip

        wait_for(paused, BACK_S, interval=0.2, what="the feeder to pause")

        def idle() -> bool:
            s = stats(api)
            return bool(
                s
                and s["gauges"]["backlog_ticks"] == 0
                and s["gauges"]["outbox_entries"] == 0
                and s["counters"]["rows_written"] >= 1
            )

        wait_for(idle, BACK_S, interval=0.2, what="the pipeline to drain")
        final = stats(api)
        tree = run.descendants()
        # The feeder writes its record's last lines when it stops: stop everything cleanly.
        assert stop(run) == 0
        assert [p.pid for p in tree if alive(p)] == []

    outcomes, torn = recorded_outcomes(run.record_path)
    accepted = {event_id for event_id, outcome in outcomes.items() if outcome == "accepted"}
    rows, total = stored_rows(settings.psycopg_url)
    lost = len(accepted - rows.keys())
    doubled = total - len(rows)
    restart_lines = [line for line in log_lines(run) if line["message"].startswith("process exit")]
    assert final is not None
    counted = {
        "accepted": final["counters"]["ingest_accepted"],  # by the API, every replica, all along
        "calculated": final["counters"]["calc_ticks"],
        "stored": len(rows),
        "recorded": len(accepted),  # what a SIGKILLed feeder had not flushed is not in its record
    }
    print("\n" + table(kills, lost, doubled, counted))
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(
        json.dumps(
            {
                "kills": [asdict(k) for k in kills],
                **counted,
                "lost": lost,
                "doubled": doubled,
                "torn_record_lines": torn,
                "final_counters": final["counters"],
                "restart_log_lines": restart_lines,
            },
            indent=2,
        )
    )
    assert accepted, "the feeder recorded no accepted tick"
    assert (lost, doubled) == (0, 0)
    # Every tick the API accepted was calculated once and stored once, recorded or not.
    assert counted["accepted"] == counted["calculated"] == counted["stored"]
    assert [line["process_name"] for line in restart_lines] == list(ORDER)
    assert all(k.restarts_after == k.restarts_before + 1 for k in kills)


def test_sigterm_stops_every_child_and_exits_0(settings: Settings, tmp_path: Path) -> None:
    with (
        launched(settings, tmp_path, TPS="5") as run,
        httpx.Client(base_url=run.api_url, timeout=5) as api,
    ):
        wait_for(lambda: all_up(run, api), START_S, interval=0.3, what="every process up")
        tree = run.descendants()
        # The seven, and Dramatiq's worker processes (2 of worker, 1 of alerts, 1 of history).
        assert len(tree) >= 7 + 2 + 1 + 1
        os.kill(run.proc.pid, signal.SIGTERM)
        assert run.proc.wait(60) == 0
        assert [p.pid for p in tree if alive(p)] == []
        stopped = {line["process_name"] for line in log_lines(run) if line["message"] == "stopped"}
        assert stopped == set(ORDER)
        assert not [line for line in log_lines(run) if line["message"].startswith("process exit")]
