"""`python -m tests.bench.alerts_stall`: seed 000's scenario 2 — a webhook that answers in 10 s
must not stall the pipeline.

One system (API, calc workers, the delivery worker), the pipeline bench's batch load (10,000
ticks/s offered, 500-tick batches), three kinds of run alternated so noise hits each alike:
- `no alerts`: no rules;
- `healthy`: 100 rules firing all the time (`crosses`, every_time with a 1 s cooldown, on
  prices the feed keeps crossing: about 100 firings/s), each with a webhook to a healthy receiver;
- `stalled`: the same 100 rules, a third to the healthy receiver, a third to a receiver that
  sleeps 10 s before answering, a third to a port that refuses connections.
Prints, per kind (medians of `--runs`): accepted ticks/s, ack p99, ingest→view p95 (the pipeline
bench's own figures, from `tests.bench.pipeline.bench.one_run`), firings, and the healthy
receiver's delivery latency (its arrival − the firing tick's event time) p50/p95, and how many
times a delivery job found its host full (parked, or re-sent by older versions). No timed asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import redis

from backend.bus.alert_rules import AlertRuleMirror
from backend.bus.keys import Keys
from backend.core.alerts.rules import AlertRule
from backend.core.ticks import parse_ts_us
from tests.bench import text
from tests.bench.machine import machine
from tests.bench.pipeline.bench import one_run
from tests.bench.pipeline.options import Options
from tests.bench.pipeline.procs import Group
from tests.bench.pipeline.systems import ViewWatcher, start_ours
from tests.support.processes import product_settings
from tests.support.servers import PrivateServers, free_port

KINDS = ("no alerts", "healthy", "stalled")
RULES = 100
SLEEP_S = 10.0


class Receivers:
    """Three webhook targets on loopback: healthy (records arrivals), sleeper, refuser. All on
    127.0.0.1 (one host: they share its delivery slots), or with `distinct_hosts` on 127.0.0.1,
    .2 and .3 (three receivers, as in the issue)."""

    def __init__(self, distinct_hosts: bool = False) -> None:
        ips = ("127.0.0.1", "127.0.0.2", "127.0.0.3") if distinct_hosts else ("127.0.0.1",) * 3
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receivers = self

        class Healthy(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receivers.lock:
                    receivers.arrivals.append((time.time(), orjson.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Sleeper(Healthy):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(SLEEP_S)
                self.send_response(204)
                self.end_headers()

        self.healthy = ThreadingHTTPServer((ips[0], free_port()), Healthy)
        self.sleeper = ThreadingHTTPServer((ips[1], free_port()), Sleeper)
        self.sleeper.daemon_threads = self.healthy.daemon_threads = True
        self.refused_url = f"http://{ips[2]}:{free_port()}/hook"  # nothing listens there
        for server in (self.healthy, self.sleeper):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def url(self, server: ThreadingHTTPServer) -> str:
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def take(self) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            out, self.arrivals = self.arrivals, []
        return out

    def close(self) -> None:
        for server in (self.healthy, self.sleeper):
            server.shutdown()


def rules_for(
    kind: str, symbols: list[str], prices: dict[str, float], rx: Receivers
) -> list[AlertRule]:
    if kind == "no alerts":
        return []
    now = datetime.now(UTC)
    targets = [rx.url(rx.healthy)]
    if kind == "stalled":
        targets = [rx.url(rx.healthy), rx.url(rx.sleeper), rx.refused_url]
    rules = []
    for i in range(RULES):
        symbol = symbols[i % len(symbols)]
        # Thresholds within ±0.05 % of the price: the feed's walk crosses them all the time.
        threshold = prices[symbol] * (1 + (i / RULES - 0.5) / 1000)
        rules.append(
            AlertRule.model_validate(
                {
                    "id": f"bench-{kind.replace(' ', '-')}-{i}", "version": 1,
                    "created_at": now, "updated_at": now, "name": f"bench {i}",
                    "symbol": symbol, "field": "last_price", "condition": "crosses",
                    "value": threshold, "trigger": "every_time", "cooldown_s": 1,
                    "channels": [{"type": "webhook", "url": targets[i % len(targets)]}],
                }
            )
        )  # fmt: skip
    return rules


def settle(rx: Receivers, quiet_s: float = 1.0, limit_s: float = 20.0) -> None:
    """Let deliveries still in flight for the last run arrive (until none for `quiet_s`)."""
    deadline = time.monotonic() + limit_s
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with rx.lock:
            count = len(rx.arrivals)
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def delivery_worker(system: Any, threads: int) -> Iterator[None]:
    import sys

    proc = system.spawn(
        "delivery",
        [sys.executable, "-m", "dramatiq", "tasks.delivery_worker", "--processes", "1",
         "--threads", str(threads)],
    )  # fmt: skip
    system.groups.append(Group("delivery", proc.pid, split=True))
    yield


def busy_count(client: redis.Redis, keys: Keys) -> int:
    """Times a delivery job found its host full: parked (now) or bounced (the older design's
    `alerts_delivery_host_busy`), so the figure compares across versions."""
    raw = client.hmget(keys.stats, "alerts_delivery_parked", "alerts_delivery_host_busy")
    return sum(int(v or 0) for v in raw)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--batch-tps", type=float, default=10_000.0)
    parser.add_argument("--json", type=Path, default=Path("artifacts/bench/alerts_stall.json"))
    parser.add_argument(
        "--distinct-hosts",
        action="store_true",
        help="receivers on 127.0.0.1/.2/.3 (their own slots) instead of all on 127.0.0.1",
    )
    args = parser.parse_args(argv)
    opts = Options(runs=args.runs, duration=args.duration, batch_tps=args.batch_tps)
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    rx = Receivers(args.distinct_hosts)
    with contextlib.ExitStack() as stack:
        stack.callback(rx.close)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-stall-")))
        servers = PrivateServers.start(stack, tmp)
        settings = product_settings(servers.redis.url, servers.postgres.url)
        keys = Keys.from_settings(settings)
        client = stack.enter_context(redis.Redis.from_url(servers.redis.url))
        mirror = AlertRuleMirror(client, keys)
        system = start_ours(servers, settings, tmp / "logs", 1, 2, 4)
        stack.callback(system.stop)
        stack.enter_context(delivery_worker(system, 8))
        headers = {"x-api-key": settings.api_key.get_secret_value()} if settings.api_key else {}
        watcher = ViewWatcher(system.url, headers)
        watcher.start()
        stack.callback(watcher.stop)
        watcher.ready.wait(10)
        text.say("warm-up run (prices for the thresholds)")
        one_run(system, watcher, servers, "batch", opts, seed=99, work=tmp, profiler=None)
        symbols = sorted(s.decode() for s in client.hkeys(keys.symbols))
        prices = {
            s: orjson.loads(client.get(keys.view(s)) or b"{}").get("last_price", 100.0)
            for s in symbols
        }
        for k in range(args.runs):
            for kind in KINDS:
                mirror.replace_all(rules_for(kind, symbols, prices, rx))
                time.sleep(1.0)  # the workers' rule cache refreshes every 0.5 s
                rx.take()
                fired0 = int(client.hget(keys.stats, "alerts_fired") or 0)
                busy0 = busy_count(client, keys)
                r = one_run(
                    system, watcher, servers, "batch", opts, seed=k + 1, work=tmp, profiler=None
                )
                arrivals = rx.take()
                latencies = [
                    (at - parse_ts_us(body["fired_at"]) / 1e6) * 1000 for at, body in arrivals
                ]
                r |= {
                    "kind": kind,
                    "run": k + 1,
                    "firings": int(client.hget(keys.stats, "alerts_fired") or 0) - fired0,
                    "healthy_deliveries": len(arrivals),
                    "host_busy": busy_count(client, keys) - busy0,
                    "healthy_latency_ms": {
                        "p50": quantile(latencies, 0.5),
                        "p95": quantile(latencies, 0.95),
                    },
                }
                runs.append(r)
                text.say(
                    f"{kind:9} run {k + 1}: {r.get('accepted_tps') or 0:,.0f} ticks/s, "
                    f"ack p99 {r.get('ack_ms', {}).get('p99')}, view p95 "
                    f"{r.get('view_ms', {}).get('p95')}, firings {r['firings']:,}, "
                    f"healthy deliveries {len(arrivals):,}"
                )
        mirror.replace_all([])
    summary: dict[str, dict[str, float | None]] = {}
    for kind in KINDS:
        rs = [r for r in runs if r["kind"] == kind and "ack_ms" in r]

        def med(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return statistics.median(present) if present else None

        summary[kind] = {
            "accepted_tps": med([r["accepted_tps"] for r in rs]),
            "ack_p99_ms": med([r["ack_ms"]["p99"] for r in rs]),
            "view_p95_ms": med([r["view_ms"]["p95"] for r in rs]),
            "firings": med([r["firings"] for r in rs]),
            "healthy_deliveries": med([r["healthy_deliveries"] for r in rs]),
            "host_busy": med([r["host_busy"] for r in rs]),
            "healthy_p50_ms": med([r["healthy_latency_ms"]["p50"] for r in rs]),
            "healthy_p95_ms": med([r["healthy_latency_ms"]["p95"] for r in rs]),
        }

    def cell(v: float | None, spec: str = "{:,.0f}") -> str:
        return "-" if v is None else spec.format(v)

    print(
        text.table(
            ["run kind", "accepted ticks/s", "ack p99 ms", "ingest→view p95 ms", "firings",
             "healthy deliveries", "healthy p50 ms", "healthy p95 ms", "host busy"],
            [
                [kind, cell(s["accepted_tps"]), cell(s["ack_p99_ms"], "{:,.1f}"),
                 cell(s["view_p95_ms"], "{:,.1f}"), cell(s["firings"]),
                 cell(s["healthy_deliveries"]), cell(s["healthy_p50_ms"]),
                 cell(s["healthy_p95_ms"]), cell(s["host_busy"])]
                for kind, s in summary.items()
            ],
        )
    )  # fmt: skip
    out = {
        "params": vars(args) | {"rules": RULES, "sleep_s": SLEEP_S},
        "machine": machine(),
        "runs": runs,
        "summary": summary,
        "took_s": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
