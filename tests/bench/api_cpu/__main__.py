"""API CPU per ingest request: one uvicorn process, a `wrk` client in another process.

Why this shape: the issue's figure is the API's own CPU per request, so the client must not share
the process (or, ideally, the interpreter) and nothing but the API is counted. The API runs
against the machine's Redis (`REDIS_URL`, a private namespace per run); no worker runs, so
MAX_BACKLOG is raised and the ticks just queue. Each run samples `psutil` CPU times of the
uvicorn process before and after `wrk` and divides by the requests wrk completed.

    python -m tests.bench.api_cpu --runs 3 --seconds 8 [--delay-ms 16] [--py-spy out.txt]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

HERE = Path(__file__).parent


def _start_api(port: int, namespace: str) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "REDIS_NAMESPACE": namespace,
        "MAX_BACKLOG": "100000000",
        "LOG_LEVEL": "ERROR",
        "INGEST_USERNAME": "ingest",
        "INGEST_PASSWORD": "ingest-dev-password",
    }
    command = [
        sys.executable, "-m", "uvicorn", "backend.api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/liveness", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the API exited during start-up")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not start")


def _wrk(port: int, seconds: int, connections: int, delay_ms: int = 0) -> tuple[int, int]:
    """(requests completed, non-2xx responses) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(HERE / "unique_tick.lua"),
         f"http://127.0.0.1:{port}", "--", str(delay_ms)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return done, int(bad.group(1)) if bad else 0


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--port", type=int, default=18612)
    p.add_argument(
        "--delay-ms",
        type=int,
        default=0,
        help="pause per connection between requests: a fixed offered rate (0: as fast as it goes)",
    )
    p.add_argument("--py-spy", help="also record a raw --gil py-spy profile of one extra run")
    args = p.parse_args()
    namespace = f"apicpu-{uuid.uuid4().hex[:8]}"
    api = _start_api(args.port, namespace)
    try:
        proc = psutil.Process(api.pid)
        _wrk(args.port, 2, args.connections)  # warm-up: imports, first connections, caches
        per_request_us: list[float] = []
        for run in range(args.runs):
            before = _cpu(proc)
            done, bad = _wrk(args.port, args.seconds, args.connections, args.delay_ms)
            used = _cpu(proc) - before
            per_request_us.append(used / done * 1e6)
            print(
                f"run {run + 1}: {done} requests ({done / args.seconds:.0f}/s, {bad} non-2xx), "
                f"API CPU {used:.2f} s = {per_request_us[-1]:.0f} µs/request",
                flush=True,
            )
        print(f"median API CPU per request: {statistics.median(per_request_us):.0f} µs")
        if args.py_spy:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--gil",
                 "--pid", str(api.pid), "-r", "250", "-d", str(args.seconds), "-o", args.py_spy,
                 "--nonblocking"]
            )  # fmt: skip
            time.sleep(1)
            _wrk(args.port, args.seconds, args.connections, args.delay_ms)
            spy.wait()
    finally:
        api.terminate()
        api.wait(10)
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in client.scan_iter(f"*{namespace}*", count=1000):
            client.delete(key)


if __name__ == "__main__":
    main()
