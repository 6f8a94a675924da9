"""`python -m tests.bench.candles_bench`: see tests/bench/candles_bench/cli.py."""

from __future__ import annotations

import signal
import sys
from typing import Any

from tests.bench.candles_bench.cli import main


def _sigterm_as_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Clean up on kill as on Ctrl-C, and honour Ctrl-C even when started as a background job
    # (which inherits SIGINT ignored).
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
