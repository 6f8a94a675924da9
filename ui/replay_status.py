"""How the Replay page words a replay: its progress and ETA, which controls its state allows, the
rows of the replay list, the replay-vs-live view table and the would-have-fired table. Pure (no
Streamlit), unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backend.core.alerts.firing import Firing
from backend.core.replay import TERMINAL_STATES, Replay
from backend.core.view import View
from ui.alerts_text import CONDITION_LABELS, format_number, threshold_text

VIEW_FIELDS = (
    "last_price", "last_ts", "ticks_total", "sma_10", "vwap_1m", "volume_1m", "trades_1m",
    "high_1m", "low_1m", "change_1m_pct", "gaps_open",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Controls:
    """Which of Pause / Resume / Cancel the replay's state allows (the API's rules: a 409
    otherwise)."""

    pause: bool
    resume: bool
    cancel: bool


def controls(state: str) -> Controls:
    """Pause a queued or running replay, resume a paused one, cancel any that has not ended."""
    live = state not in TERMINAL_STATES
    return Controls(pause=state in ("queued", "running"), resume=state == "paused", cancel=live)


def progress_fraction(replay: Replay) -> float:
    """ticks_applied / ticks_total in [0, 1]; a finished replay of an empty range is whole."""
    if replay.ticks_total <= 0:
        return 1.0 if replay.state == "done" else 0.0
    return min(1.0, max(0.0, replay.ticks_applied / replay.ticks_total))


def duration_text(seconds: float | None) -> str:
    """`42 s`, `3 min 5 s`, `2 h 10 min`; an em dash when unknown."""
    if seconds is None:
        return "—"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def rate_text(rate: float) -> str:
    return f"{rate:,.0f} ticks/s" if rate >= 10 else f"{rate:,.1f} ticks/s"


def eta_text(replay: Replay) -> str:
    """What is left, in words that fit the state."""
    match replay.state:
        case "done":
            return "finished"
        case "cancelled" | "failed":
            return replay.state
        case "paused":
            return "paused"
        case "queued":
            return "waiting for the history service"
    return f"ETA {duration_text(replay.eta_s)}" if replay.eta_s is not None else "ETA —"


def progress_text(replay: Replay) -> str:
    """The progress bar's label: `1,200 / 3,000 ticks (40%) · 850 ticks/s · ETA 2 s`."""
    pct = progress_fraction(replay) * 100
    parts = [f"{replay.ticks_applied:,} / {replay.ticks_total:,} ticks ({pct:.0f}%)"]
    if replay.state == "running":
        parts.append(rate_text(replay.rate))
    parts.append(eta_text(replay))
    if replay.firings:
        parts.append(f"{replay.firings:,} would-have-fired")
    return " · ".join(parts)


def speed_text(speed: float | str) -> str:
    return "max" if speed == "max" else f"{float(speed):g}×"


def replay_label(replay: Replay) -> str:
    """One line per replay in the picker: state, symbols, range start, short id."""
    symbols = ", ".join(replay.symbols[:3]) + (" …" if len(replay.symbols) > 3 else "")
    # Plain text: a picker's options cannot render Material icons, and emoji need a font the
    # analyst's machine may lack.
    return f"{replay.state} · {symbols} · {replay.from_} → {replay.to} · {replay.id[:8]}"


def replay_rows(replays: Iterable[Replay]) -> list[dict[str, Any]]:
    """The replay list as table rows, newest first (the API's order)."""
    return [
        {
            "id": r.id[:8],
            "state": r.state,
            "symbols": ", ".join(r.symbols),
            "from": r.from_,
            "to": r.to,
            "speed": speed_text(r.speed),
            "alerts": r.alerts,
            "progress": round(progress_fraction(r) * 100, 1),
            "applied": f"{r.ticks_applied:,} / {r.ticks_total:,}",
            "rate": rate_text(r.rate) if r.state == "running" else "—",
            "eta": eta_text(r),
            "firings": r.firings,
            "created": r.created_at,
        }
        for r in replays
    ]


def pick(replays: Sequence[Replay], wanted: str | None) -> str | None:
    """The replay to show: the one asked for while it is listed, else the newest."""
    ids = [r.id for r in replays]
    if wanted in ids:
        return wanted
    return ids[0] if ids else None


def _cell(view: View | None, name: str) -> str:
    if view is None:
        return "—"
    value = getattr(view, name)
    if isinstance(value, float):
        return format_number(value)
    return "—" if value is None else str(value)


def view_rows(replayed: View | None, live: View | None) -> list[dict[str, str]]:
    """Key fields of W side by side: the replay's at its cursor, the live one now."""
    return [
        {"field": name, "replay": _cell(replayed, name), "live": _cell(live, name)}
        for name in VIEW_FIELDS
    ]


def firing_rows(firings: Iterable[Firing], symbol: str | None = None) -> list[dict[str, Any]]:
    """The backtest's would-have-fired list (of `symbol`, or all), in event-time order."""
    return [
        {
            "fired_at": f.fired_at,
            "rule": f.rule_name,
            "symbol": f.symbol,
            "what": f"{f.field} {CONDITION_LABELS.get(f.condition, f.condition)} "
            + threshold_text(f.condition, f.value, f.value2),
            "observed": f.observed,
            "price": f.tick.price,
            "event_id": f.tick.event_id,
        }
        for f in firings
        if symbol is None or f.symbol == symbol
    ]
