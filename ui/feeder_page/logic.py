"""Pure logic of the Feeder page's Streamlit parts: what the form's widgets mean, what the badges
and messages say, the table's total row. Kept apart from `st.*` so unit tests can call it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ui.feeder_panel import (
    RATE_FIELDS,
    STATUS_COLUMNS,
    FormValues,
    active_burst_until,
    form_fields,
    format_until,
    rate_from_percent,
    resolve_tps,
)


def form_values(base: Mapping[str, Any], value: Callable[[str], Any]) -> FormValues:
    """The form's widgets, read by field name through `value`, as what Apply diffs against
    `base` (the exact TPS input wins over the slider only when it was changed)."""
    return FormValues(
        running=bool(value("running")),
        symbols=list(value("symbols")),
        sources=list(value("sources")),
        tps=resolve_tps(float(base.get("tps", 0.0)), value("tps_slider"), value("tps_exact")),
        mode=str(value("mode")),
        **{name: rate_from_percent(value(name)) for name in RATE_FIELDS},
    )


def burst_outcome(
    update: Mapping[str, Any], new: Mapping[str, Any], now: datetime
) -> tuple[str, str]:
    """(kind, message) for the flash after a burst PUT answered `new`: a start that the config
    does not show as running is said plainly rather than reported as started."""
    until = active_burst_until(new, now)
    if update["burst"] is None:
        return "success", f"Burst cancelled (config v{new.get('version')})."
    if until is not None:
        burst = update["burst"]
        return (
            "success",
            f"Market open: ×{burst['multiplier']:g} for {burst['seconds']:g} s, until "
            f"{format_until(until, now)}.",
        )
    return "info", f"Config v{new.get('version')} has no running burst."


def config_badges(config: Mapping[str, Any], now: datetime) -> list[str]:
    """The live config as Markdown badges: version, running or paused, TPS and mode, a burst."""
    badges = [f":blue-badge[Config v{config.get('version')}]"]
    badges.append(":green-badge[Running]" if config.get("running") else ":orange-badge[Paused]")
    badges.append(f":gray-badge[{float(config.get('tps') or 0.0):g} TPS · {config.get('mode')}]")
    until = active_burst_until(config, now)
    if until is not None:
        burst = config.get("burst") or {}
        badges.append(
            f":violet-badge[Burst ×{float(burst.get('multiplier') or 1):g} "
            f"until {format_until(until, now)}]"
        )
    return badges


def drift_note(base: Mapping[str, Any] | None, config: Mapping[str, Any]) -> str | None:
    """Say so when another operator changed a field the form shows since it was loaded."""
    if base is None or form_fields(base) == form_fields(config):
        return None
    return (
        f"The config changed since this form was loaded (v{base.get('version')} → "
        f"v{config.get('version')}). Apply still sends only your changes; "
        "“Reload form” shows the new values."
    )


def total_row(totals: Mapping[str, float]) -> dict[str, Any]:
    """The Σ row under the per-feeder table (no report age: it is not one feeder's)."""
    row: dict[str, Any] = {name: totals.get(name) for name in STATUS_COLUMNS}
    row.update(
        feeder_id="Σ total",
        status=f"{int(totals['alive'])} alive",
        config_version="",
        last_error="",
    )
    row["report_age_s"] = None
    return row
