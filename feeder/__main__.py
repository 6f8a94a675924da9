"""`python -m feeder [--record PATH]`: feed simulated ticks to the ingest API.

This is the feeder's edge: the only place its `FeederSettings` are built (from the environment) and
signals are wired. `--record PATH` (or FEEDER_RECORD_PATH) appends one JSON line per answered
tick, `{"event_id", "outcome"}`, and a final `{"counters": ...}` line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from backend.logs import configure_logging
from backend.settings import FeederSettings, get_feeder_bench_settings, get_feeder_settings
from backend.settings.production import enforce_deploy_policy
from feeder.client import Counters
from feeder.ops import FeederOps
from feeder.runner import Runner, run_feeder

log = logging.getLogger("feeder")


async def _main(settings: FeederSettings) -> Counters:
    loop = asyncio.get_running_loop()
    ops: list[FeederOps] = []  # /metrics and /health/* on FEEDER_METRICS_PORT (0: none)

    def wire_signals(runner: Runner) -> None:
        # First SIGINT/SIGTERM: send what is held and buffered; a second one: stop at once.
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, runner.stop)
            except (NotImplementedError, RuntimeError):  # e.g. Windows: fall back to signal()
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(runner.stop))
        if settings.feeder_metrics_port:
            ops.append(FeederOps(settings, runner))
            ops[0].start()

    try:
        return await run_feeder(settings, runner_ready=wire_signals)
    finally:
        for server in ops:
            await server.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the load generator: python -m feeder bench --tps N ...
        from feeder.bench_cli import main as bench_main

        return bench_main(argv[1:], get_feeder_bench_settings())
    parser = argparse.ArgumentParser(
        prog="python -m feeder", description="Feed simulated ticks to the ingest API."
    )
    parser.add_argument("--record", type=Path, help="JSONL of answered ticks (FEEDER_RECORD_PATH)")
    args = parser.parse_args(argv)
    settings = get_feeder_settings()
    if args.record is not None:
        settings = settings.model_copy(update={"feeder_record_path": args.record})
    configure_logging(settings, service="feeder")
    # httpx logs every request at INFO: far too chatty at hundreds of ticks per second.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    enforce_deploy_policy(settings, "feeder")
    log.info("feeder %s -> %s", settings.feeder_id, settings.target_url)
    asyncio.run(_main(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
