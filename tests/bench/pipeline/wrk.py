"""The `wrk` mode: Debian's wrk (C, epoll) posting one unique tick per request, unpaced.

The Python feeder schedules ticks on a clock and spends a core doing it; wrk has no pacing and
costs little, so what it measures is how many single-tick requests a system acknowledges per
second when the client is not the limit (issue 17: `wrk -t1 -c32`, 15 s). The Lua script
(`wrk_ticks.lua`) makes every event_id unique (run id, thread, counter), stamps `ts` with the
current time and rotates symbols and sources as the feeder does.

Exactly once, as the feeder checks it: every acknowledged event_id (the script writes them out)
is in md_ticks once, and nothing else of the run is. wrk ends on a timer and drops what is in
flight, so the script stops sending ticks `STOP_MARGIN_S` before the end (it sends GET
/health/liveness from then on); a tick still unanswered at the end is reported, and only those
may be stored without an acknowledgement.

The result has the feeder's JSON shape (accepted, clock, verification, ack_ms, ...), so the
benchmark's accounting (CPU, RSS, views, Redis) is the same for every mode.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from tests.support.processes import ROOT

SCRIPT = Path(__file__).with_name("wrk_ticks.lua")
STOP_MARGIN_S = 1.0
TIMEOUT_S = 30  # wrk's per-request timeout: a slow system shows as latency, not as errors
DRAIN_TIMEOUT_S = 120.0
DRAIN_IDLE_S = 15.0
INSTALL_HINT = "wrk is not installed: run .ci/ensure-wrk (Debian's wrk, apt-get)"


def wrk_path() -> str | None:
    return shutil.which("wrk")


def authorization(env: dict[str, str]) -> str:
    """The Basic credentials the systems under test were started with."""
    user, password = env["INGEST_USERNAME"], env["INGEST_PASSWORD"]
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def command(
    url: str, run_id: str, auth: str, duration: float, threads: int, connections: int, out: Path
) -> list[str]:
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(INSTALL_HINT)
    stop = max(0.5, duration - STOP_MARGIN_S)
    return [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", f"--timeout={TIMEOUT_S}s",
        "-s", str(SCRIPT), url, "--", run_id, auth, f"{stop:g}", str(out),
    ]  # fmt: skip


def parse_output(stdout: str) -> dict[str, Any]:
    """The script's `WRK_RESULT {json}` line."""
    for line in stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return dict(json.loads(line.removeprefix("WRK_RESULT ")))
    raise ValueError("wrk printed no WRK_RESULT line")


def acknowledged(out: Path) -> set[str]:
    ids: set[str] = set()
    for path in out.glob("accepted-*.txt"):
        ids.update(line for line in path.read_text().splitlines() if line)
    return ids


def verify(
    psycopg_url: str, run_id: str, acked: set[str], unanswered: int, last_ack: float
) -> dict[str, Any]:
    """Wait until md_ticks holds every acknowledged tick (or stops growing), then compare."""
    like = f"{run_id}-%"
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    with psycopg.connect(psycopg_url, autocommit=True) as conn:
        seen, moved = -1, time.monotonic()
        while True:
            row = conn.execute("SELECT count(*) FROM md_ticks WHERE event_id LIKE %s", (like,))
            rows = int(row.fetchone()[0])  # type: ignore[index]
            now = time.monotonic()
            if rows != seen:
                seen, moved = rows, now
            if rows >= len(acked) or now > deadline or now - moved > DRAIN_IDLE_S:
                break
            time.sleep(0.2)
        drain = time.monotonic() - last_ack
        stored_rows = conn.execute(
            "SELECT event_id FROM md_ticks WHERE event_id LIKE %s", (like,)
        ).fetchall()
    stored = [r[0] for r in stored_rows]
    distinct = set(stored)
    missing = len(acked - distinct)
    extra = len(distinct - acked)
    duplicated = len(stored) - len(distinct)
    return {
        "stored": len(stored),
        "missing": missing,
        "extra": extra,
        "duplicated": duplicated,
        "unanswered": unanswered,
        # A tick wrk never got an answer for may or may not be stored (as for any client).
        "exactly_once": missing == 0 and duplicated == 0 and extra <= unanswered,
        "drain_s": round(drain, 2),
    }


def run_wrk(
    url: str,
    env: dict[str, str],
    psycopg_url: str,
    duration: float,
    threads: int,
    connections: int,
    work: Path,
) -> tuple[dict[str, Any] | None, str]:
    """One wrk run against `url`; (the result in the feeder's shape, or None; stderr tail)."""
    run_id = f"wrk{uuid.uuid4().hex[:10]}"
    out = work / run_id
    out.mkdir(parents=True)
    args = command(url, run_id, authorization(env), duration, threads, connections, out)
    try:
        done = subprocess.run(
            args, cwd=ROOT, capture_output=True, timeout=duration + TIMEOUT_S + 30
        )
    except subprocess.TimeoutExpired:
        return None, "wrk timed out"
    stdout = done.stdout.decode(errors="replace")
    tail = (done.stderr.decode(errors="replace") + stdout)[-2000:]
    try:
        w = parse_output(stdout)
    except ValueError:
        return None, f"wrk exit {done.returncode}: {tail}"
    ts = w["threads"]
    sent = sum(t["sent"] for t in ts)
    answered = sum(t["answered"] for t in ts)
    statuses: dict[str, int] = {}
    for t in ts:
        for code, count in t["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    first_send = min(t["first_send"] for t in ts if t["first_send"])
    last_ack = max(t["last_answer"] for t in ts)
    acked = acknowledged(out)
    verification = verify(psycopg_url, run_id, acked, sent - answered, last_ack)
    errors = {f"http:{c}": n for c, n in statuses.items() if not 200 <= int(c) < 300}
    errors |= {f"socket:{k}": n for k, n in w["socket_errors"].items() if n}
    latency = w["latency_ms"]
    result = {
        "mode": "wrk",
        "offered_tps": None,  # unpaced: as fast as the answers come
        "offered": sent,
        "accepted": len(acked),
        "achieved_tps": len(acked) / (last_ack - first_send) if last_ack > first_send else 0.0,
        "requests": answered,
        "duplicates": sum(t["duplicates"] for t in ts),
        "non_2xx": sum(t["non_2xx"] for t in ts),
        "unanswered": sent - answered,
        # wrk's own latency histogram: every request, the last second's liveness checks too.
        "ack_ms": {"p50": latency["p50"], "p95": latency["p95"], "p99": latency["p99"]}
        | {"n": w["requests"]},
        "view_ms": {"p50": None, "p95": None, "p99": None, "n": 0},
        "persist_ms": {"p50": None, "p95": None, "p99": None, "n": 0},
        "errors": errors,
        "verification": verification,
        "run_id": run_id,
        "clock": {"first_send": first_send, "last_ack": last_ack},
        "wrk": {"threads": threads, "connections": connections, "duration_s": w["duration_s"]},
    }
    return result, tail
