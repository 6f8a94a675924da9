"""`python -m feeder`: feed simulated ticks to the ingest API, configured from the environment.

This is the feeder's edge: the only place its `Settings` are built and signals are wired.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from backend.config import Settings, get_settings
from feeder.client import Counters
from feeder.runner import Runner, run_feeder

log = logging.getLogger("feeder")


async def _main(settings: Settings) -> Counters:
    loop = asyncio.get_running_loop()

    def wire_signals(runner: Runner) -> None:
        # First SIGINT/SIGTERM: finish in-flight requests; a second one: stop at once.
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, runner.stop)
            except (NotImplementedError, RuntimeError):  # e.g. Windows: fall back to signal()
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(runner.stop))

    return await run_feeder(settings, runner_ready=wire_signals)


def main() -> int:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: far too chatty at hundreds of ticks per second.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.info("target %s", settings.target_url)
    asyncio.run(_main(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
