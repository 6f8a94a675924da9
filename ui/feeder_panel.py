"""Pure logic of the Feeder page: the partial config update, status totals, the rate chart.

No Streamlit import on purpose: the page only draws widgets and calls the backend; everything that
decides what is sent or shown lives here, so unit tests cover it without a Streamlit runtime.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go

from ui.watchlist import parse_ts

# The fields the form edits; `burst` has its own buttons and `version` is the server's.
FORM_FIELDS: tuple[str, ...] = (
    "running",
    "symbols",
    "sources",
    "tps",
    "mode",
    "duplicate_rate",
    "out_of_order_rate",
    "gap_rate",
    "bad_tick_rate",
)
RATE_FIELDS: tuple[str, ...] = ("duplicate_rate", "out_of_order_rate", "gap_rate", "bad_tick_rate")
MODES: tuple[str, ...] = ("single", "batch")
COUNTER_FIELDS: tuple[str, ...] = (
    "sent",
    "accepted",
    "duplicates",
    "conflicts",
    "rejected",
    "retries",
    "dropped",
    "buffered",
)

TPS_SLIDER_MAX = 2_000.0  # the slider's usual range; the exact input goes up to the API's max
RATE_DECIMALS = 6  # rates are sent rounded, so 7 % is 0.07 and not 0.07000000000000001
_EPSILON = 1e-9  # float noise from % ↔ fraction round trips is not a change

RATE_WINDOW_S = 300.0  # the chart shows the last five minutes
MAX_CHART_POINTS = 1_000  # bounded traces, whatever the history's resolution
SESSION_POINTS_MAX = 600  # the per-session ring buffer: ten minutes at one sample a second
UIREVISION = "feeder-rate"
TARGET_COLOR = "#9aa0a6"  # grey: the goal, drawn behind
ACHIEVED_COLOR = "#1f9e89"  # teal: what actually happened

ALIVE_LABEL = "🟢 alive"
SILENT_LABEL = "🔴 silent"


@dataclass(frozen=True, slots=True)
class Fetched:
    """A backend answer or why there is none (`error`, fit for a banner); picklable for caching."""

    value: Any = None
    error: str | None = None


# --- the form → a partial update ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FormValues:
    """What the form holds when Apply is pressed. Rates are fractions in [0, 1]."""

    running: bool
    symbols: Sequence[str]
    sources: Sequence[str]
    tps: float
    mode: str
    duplicate_rate: float
    out_of_order_rate: float
    gap_rate: float
    bad_tick_rate: float


def normalize_names(values: Iterable[Any]) -> list[str]:
    """Trimmed, non-empty, first occurrence kept: free entry must not send " X" or "X" twice."""
    seen: set[str] = set()
    names: list[str] = []
    for value in values:
        name = str(value).strip()
        if name and name not in seen:
            seen.add(name)
            names.append(name)
    return names


def rate_from_percent(percent: float) -> float:
    """A slider's percentage as the fraction the API stores, without float noise."""
    return round(float(percent) / 100.0, RATE_DECIMALS)


def percent_from_rate(rate: Any) -> float:
    """A stored fraction as a slider percentage (0–100)."""
    return round(_number(rate) * 100.0, RATE_DECIMALS - 2)


def resolve_tps(current: float, slider: float, exact: float) -> float:
    """One TPS from two inputs: the exact number wins if it was changed, else the slider.

    Both start at the current value, so whichever the user moved is the one they meant.
    """
    if not _same_number(exact, current):
        return float(exact)
    if not _same_number(slider, current):
        return float(slider)
    return float(current)


def tps_slider_max(current: float) -> float:
    """The slider's top: 2,000, or more if the current TPS is already beyond it."""
    return max(TPS_SLIDER_MAX, float(math.ceil(_number(current))))


def config_update(current: Mapping[str, Any], form: FormValues) -> dict[str, Any]:
    """The partial `PUT /feeder/config` body: only the fields whose value the user changed.

    `current` is the config the form was built from, not a fresh one, so a field someone else
    changed meanwhile is never overwritten by this form's stale default. Symbols and sources are
    compared as sets (the feeder cycles through them; the multiselect reorders on re-adding) and,
    when sent, go in the user's order, trimmed and de-duplicated. Nothing is validated here: the
    API's 422 names the bad field, and the page shows it.
    """
    update: dict[str, Any] = {}
    if bool(form.running) != bool(current.get("running", True)):
        update["running"] = bool(form.running)
    for name in ("symbols", "sources"):
        new = normalize_names(getattr(form, name))
        old = normalize_names(current.get(name) or [])
        if set(new) != set(old) or len(new) != len(old):
            update[name] = new
    if not _same_number(form.tps, current.get("tps")):
        update["tps"] = float(form.tps)
    if form.mode != current.get("mode", "single"):
        update["mode"] = form.mode
    for name in RATE_FIELDS:
        value = round(float(getattr(form, name)), RATE_DECIMALS)
        if not _same_number(value, current.get(name)):
            update[name] = value
    return update


def form_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config the form shows (to tell whether a new version changes the form)."""
    return {name: config.get(name) for name in FORM_FIELDS}


def burst_update(multiplier: float, seconds: float) -> dict[str, Any]:
    """The body that starts a "market open" now (the API stamps `until`)."""
    return {"burst": {"multiplier": float(multiplier), "seconds": float(seconds)}}


CANCEL_BURST: dict[str, Any] = {"burst": None}


def describe_update(current: Mapping[str, Any], update: Mapping[str, Any]) -> str:
    """`tps 10 → 25; running on → off`: what an Apply changed, for the confirmation."""
    parts = [
        f"{name} {_show(current.get(name))} → {_show(value)}"
        for name, value in update.items()
        if name != "burst"
    ]
    return "; ".join(parts) if parts else "nothing"


def active_burst_until(config: Mapping[str, Any], now: datetime) -> datetime | None:
    """When the running burst ends, or None when no burst is in progress."""
    burst = config.get("burst")
    if not isinstance(burst, Mapping):
        return None
    until = parse_ts(burst.get("until"))
    return until if until is not None and until > now else None


def format_until(until: datetime, now: datetime) -> str:
    """`14:31:05 UTC (25 s left)`."""
    left = max(0.0, (until - now).total_seconds())
    return f"{until.astimezone(UTC):%H:%M:%S} UTC ({left:.0f} s left)"


# --- live status --------------------------------------------------------------------------
def status_totals(feeders: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Counters summed over every listed feeder; TPS summed over the alive ones only.

    A silent feeder's counters are still what it did, but its last TPS is no longer happening.
    """
    totals: dict[str, float] = {"feeders": 0, "alive": 0, "target_tps": 0.0, "achieved_tps": 0.0}
    totals.update(dict.fromkeys(COUNTER_FIELDS, 0))
    for feeder in feeders:
        totals["feeders"] += 1
        for name in COUNTER_FIELDS:
            totals[name] += _count(feeder.get(name))
        if feeder.get("alive") is True:
            totals["alive"] += 1
            totals["target_tps"] += _number(feeder.get("target_tps"))
            totals["achieved_tps"] += _number(feeder.get("achieved_tps"))
    return totals


STATUS_COLUMNS: tuple[str, ...] = (
    "feeder_id",
    "status",
    *COUNTER_FIELDS,
    "target_tps",
    "achieved_tps",
    "config_version",
    "report_age_s",
    "last_error",
)


def status_rows(feeders: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """One table row per feeder (columns: STATUS_COLUMNS), in the API's order."""
    rows: list[dict[str, Any]] = []
    for feeder in feeders:
        received = parse_ts(feeder.get("received_at"))
        age = None if received is None else max(0.0, (now - received).total_seconds())
        row: dict[str, Any] = {
            "feeder_id": str(feeder.get("feeder_id", "?")),
            "status": ALIVE_LABEL if feeder.get("alive") is True else SILENT_LABEL,
        }
        row.update({name: _count(feeder.get(name)) for name in COUNTER_FIELDS})
        row["target_tps"] = _number(feeder.get("target_tps"))
        row["achieved_tps"] = _number(feeder.get("achieved_tps"))
        row["config_version"] = f"v{_count(feeder.get('config_version'))}"
        row["report_age_s"] = age
        row["last_error"] = str(feeder.get("last_error") or "")
        rows.append(row)
    return rows


# --- the rate chart -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RatePoint:
    """Target and achieved TPS summed over the alive feeders at one moment."""

    ts: datetime
    target: float
    achieved: float


def _sample_ts(value: Any) -> datetime | None:
    """ISO strings, or epoch numbers (seconds, or milliseconds when that large)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return parse_ts(value)


def rate_points_from_history(samples: Iterable[Any]) -> list[RatePoint]:
    """Points from `/stats/history` samples (`ts`, `gauges.feeders_*_tps`), oldest first.

    Samples without a time or without either gauge are skipped, not guessed.
    """
    points: list[RatePoint] = []
    for sample in samples:
        if not isinstance(sample, Mapping):
            continue
        gauges = sample.get("gauges")
        ts = _sample_ts(sample.get("ts"))
        if not isinstance(gauges, Mapping) or ts is None:
            continue
        target = _finite(gauges.get("feeders_target_tps"))
        achieved = _finite(gauges.get("feeders_achieved_tps"))
        if target is None and achieved is None:
            continue
        points.append(RatePoint(ts, target or 0.0, achieved or 0.0))
    points.sort(key=lambda point: point.ts)
    return points


def rate_point_from_totals(totals: Mapping[str, float], now: datetime) -> RatePoint:
    """What the page saw this refresh, for the fallback ring buffer."""
    return RatePoint(now, _number(totals.get("target_tps")), _number(totals.get("achieved_tps")))


def new_ring_buffer() -> deque[RatePoint]:
    """The per-session fallback history: bounded, the oldest point falls out first."""
    return deque(maxlen=SESSION_POINTS_MAX)


def record_point(buffer: deque[RatePoint], point: RatePoint, min_gap_s: float = 0.5) -> bool:
    """Append unless a point was taken within `min_gap_s` (a full rerun right after the timer)."""
    if buffer and (point.ts - buffer[-1].ts).total_seconds() < min_gap_s:
        return False
    buffer.append(point)
    return True


def choose_points(history: Sequence[RatePoint], session: Sequence[RatePoint]) -> list[RatePoint]:
    """The server's history when it has any, else what this session has seen."""
    return list(history) if history else list(session)


def rate_figure(
    points: Sequence[RatePoint], now: datetime, window_s: float = RATE_WINDOW_S
) -> go.Figure:
    """Achieved (line) vs target (dashed step) TPS over the last `window_s` seconds.

    Bounded to MAX_CHART_POINTS; a constant `uirevision` keeps the user's zoom across refreshes.
    """
    start = now - timedelta(seconds=window_s)
    shown = sorted((p for p in points if start <= p.ts <= now), key=lambda p: p.ts)
    shown = shown[-MAX_CHART_POINTS:]
    xs = [p.ts for p in shown]
    fig = go.Figure()
    target_line = {"dash": "dash", "shape": "hv", "width": 1.5, "color": TARGET_COLOR}
    achieved_line = {"width": 2, "color": ACHIEVED_COLOR}
    fig.add_trace(_rate_line(xs, [p.target for p in shown], "target", target_line))
    fig.add_trace(_rate_line(xs, [p.achieved for p in shown], "achieved", achieved_line))
    fig.update_layout(
        uirevision=UIREVISION,
        height=260,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": 1.12, "x": 0},
        yaxis={"title": {"text": "ticks/s"}, "rangemode": "tozero"},
        xaxis={"title": {"text": None}},
    )
    if not shown:
        fig.add_annotation(
            text="No rate samples yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return fig


def _rate_line(xs: list[datetime], ys: list[float], name: str, line: dict[str, Any]) -> go.Scatter:
    """One TPS series; the hover names it, since the two lines often overlap."""
    return go.Scatter(
        x=xs,
        y=ys,
        name=name,
        mode="lines",
        line=line,
        hovertemplate=f"%{{y:,.1f}} ticks/s<extra>{name}</extra>",
    )


# --- small helpers ------------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _number(value: Any) -> float:
    return _finite(value) or 0.0


def _count(value: Any) -> int:
    number = _finite(value)
    return int(number) if number is not None else 0


def _same_number(a: Any, b: Any) -> bool:
    x, y = _finite(a), _finite(b)
    if x is None or y is None:
        return x is None and y is None
    return abs(x - y) <= _EPSILON * max(1.0, abs(x), abs(y))


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
