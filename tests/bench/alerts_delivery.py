"""`python -m tests.bench.alerts_delivery`: webhook delivery latency to a healthy receiver, alone
and next to hostile ones (proof 3's receiver side).

Starts the delivery worker as `make run` does (its own process, 8 threads), warms it up, then
fires `--jobs` alerts at a healthy local receiver at `--rate`/s and reads each delivery's
`latency_ms` (firing committed → receiver answered 2xx) from the history stream. The second run
first queues `--hostile` jobs each for a receiver that sleeps 10 s and for a port that refuses
connections, lets that backlog take its first pass, and keeps firing one of each per four
healthy alerts while measuring. Uses REDIS_URL / PG_URL (a private namespace per run). Prints a
table; no timed asserts anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from redis import Redis

from backend.bus.alert_delivery import ALERTS_DELIVERY_PARKED, ALERTS_DELIVERY_RETRIES
from backend.bus.keys import Keys
from backend.core.alerts.records import DeliveryRecord, decode_history_record
from backend.settings import Settings
from tests.support.processes import make_settings, running, settings_env
from tests.support.waiting import wait_for
from tests.support.webhooks import queue_webhook_firings, receiving, refused_url, sleeper, status


def run(base: Settings, jobs: int, rate: float, hostile: int) -> tuple[list[float], bool]:
    """Healthy delivery latencies (ms) and whether the sleeper stayed unanswered throughout."""
    settings = make_settings(base.effective_redis_url, base.pg_url or "")
    redis = Redis.from_url(settings.effective_redis_url)
    keys = Keys.from_settings(settings)

    def count(name: str) -> int:
        return int(float(redis.hget(keys.stats, name) or 0))

    try:
        with (
            running(settings_env(settings), Path(tempfile.mkdtemp())) as procs,
            receiving(sleeper(10), host="127.0.0.2") as slow,
            receiving(status(200)) as ok,
        ):
            procs.start_delivery_worker()
            queue_webhook_firings(redis, settings, ok.url)
            wait_for(lambda: len(ok.snapshot()) >= 1, 30, what="warm-up delivery")
            if hostile:
                queue_webhook_firings(redis, settings, slow.url, n=hostile)
                queue_webhook_firings(redis, settings, refused_url("127.0.0.3"), n=hostile)
                wait_for(
                    lambda: (
                        count(ALERTS_DELIVERY_PARKED) >= hostile - 4
                        and count(ALERTS_DELIVERY_RETRIES) >= hostile
                    ),
                    60,
                    what="the hostile backlog's first pass",
                )
            for i in range(jobs):
                queue_webhook_firings(redis, settings, ok.url)
                if hostile and i % 4 == 0:
                    queue_webhook_firings(redis, settings, slow.url)
                    queue_webhook_firings(redis, settings, refused_url("127.0.0.3"))
                time.sleep(1 / rate)
            wait_for(lambda: len(ok.snapshot()) >= jobs + 1, 60, what="healthy deliveries")
            quiet = slow.answered == 0
            latencies = [
                rec.latency_ms
                for _, fields in redis.xrange(keys.alert_history)
                if isinstance(rec := decode_history_record(fields[b"r"]), DeliveryRecord)
                and rec.status == "delivered"
                and rec.channel == ok.url
                and rec.latency_ms is not None
            ]
            return latencies[1:], quiet  # without the warm-up delivery
    finally:
        leftovers = list(redis.scan_iter(match=f"{settings.redis_namespace}:*", count=1000))
        for start in range(0, len(leftovers), 500):
            redis.delete(*leftovers[start : start + 500])
        redis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.alerts_delivery", description=__doc__
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="healthy alerts per second")
    parser.add_argument("--hostile", type=int, default=100, help="backlog per hostile receiver")
    args = parser.parse_args(argv)
    base = Settings()
    print("| run | deliveries | p50 ms | p95 ms | max ms | sleeper answered meanwhile |")
    print("|---|---|---|---|---|---|")
    for name, hostile in (("healthy alone", 0), ("+ sleeper 10 s + refused", args.hostile)):
        latencies, quiet = run(base, args.jobs, args.rate, hostile)
        p95 = statistics.quantiles(latencies, n=20)[18]
        print(
            f"| {name} | {len(latencies)} | {statistics.median(latencies):.1f} | {p95:.1f} "
            f"| {max(latencies):.1f} | {'no' if quiet else 'yes'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
