"""What the benchmarks print: time-stamped progress lines, number formats and plain tables."""

from __future__ import annotations

import time
from collections.abc import Sequence

_T0 = time.monotonic()


def elapsed() -> float:
    """Seconds since the benchmark started (since this module was first imported)."""
    return time.monotonic() - _T0


def say(message: str, width: int = 7) -> None:
    """A progress line, stamped with the seconds since the benchmark started."""
    print(f"[{elapsed():{width}.1f}s] {message}", flush=True)


def fmt_int(value: float) -> str:
    return f"{int(value):,}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"x{value:.2f}" if value < 10 else f"x{value:,.0f}"


def fmt_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned text: first column left, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])
