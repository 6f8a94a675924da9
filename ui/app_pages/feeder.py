"""Feeder page: steer the simulated exchanges and watch what they report.

Feeders poll `GET /feeder/config` every second and push `POST /feeder/status`; this page edits
the first and shows the second. The controls are one `st.form` outside the live fragment, so the
one-second refresh never resets what the user is typing, and one Apply sends ONE partial PUT with
only the fields the user changed (computed by `ui.feeder_panel.config_update`). Widget keys carry
a generation number: after a successful Apply the generation moves on and the form is rebuilt
from the config the API returned.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from backend.config import Settings
from backend.core.feeder_config import MAX_TPS
from ui.api_client import BackendError
from ui.feeder_panel import (
    CANCEL_BURST,
    MODES,
    RATE_FIELDS,
    STATUS_COLUMNS,
    Fetched,
    FormValues,
    active_burst_until,
    burst_update,
    choose_points,
    config_update,
    describe_update,
    form_fields,
    format_until,
    new_ring_buffer,
    normalize_names,
    percent_from_rate,
    rate_figure,
    rate_from_percent,
    rate_point_from_totals,
    rate_points_from_history,
    record_point,
    resolve_tps,
    status_rows,
    status_totals,
    tps_slider_max,
)
from ui.resources import (
    FetchResult,
    backend_key,
    current_settings,
    fetch_or_error,
    get_backend_client,
)

REFRESH_EVERY_S = 1.0
CONFIG_TTL_S = 1.0  # config and status are shared by every session for this long
HISTORY_TTL_S = 2.0
CHART_MINUTES = 5

BASE_KEY = "feeder_form_base"  # the config the form was built from (what Apply diffs against)
GEN_KEY = "feeder_form_generation"  # part of every form widget key; bumped to rebuild the form
FLASH_KEY = "feeder_flash"  # (kind, message) left by a callback for the next run to show
RING_KEY = "feeder_rate_points"  # this session's own TPS samples, when /stats/history is missing

RATE_LABELS = {
    "duplicate_rate": ("Duplicates", "Resend the same tick (same event_id)"),
    "out_of_order_rate": ("Out of order", "Hold a tick back and send it later"),
    "gap_rate": ("Gaps", "Skip a sequence number"),
    "bad_tick_rate": ("Bad ticks", "Send a malformed tick (expected 4xx, never retried)"),
}

STATUS_COLUMN_CONFIG = {
    "feeder_id": st.column_config.TextColumn("Feeder", pinned=True),
    "status": st.column_config.TextColumn("Status", help="Alive = reported within 5 s"),
    "sent": st.column_config.NumberColumn("Sent", format="localized"),
    "accepted": st.column_config.NumberColumn("Accepted", format="localized"),
    "duplicates": st.column_config.NumberColumn("Duplicates", format="localized"),
    "conflicts": st.column_config.NumberColumn("Conflicts", format="localized"),
    "rejected": st.column_config.NumberColumn("Rejected", format="localized"),
    "retries": st.column_config.NumberColumn("Retries", format="localized"),
    "dropped": st.column_config.NumberColumn("Dropped", format="localized"),
    "buffered": st.column_config.NumberColumn("Buffered", format="localized"),
    "target_tps": st.column_config.NumberColumn("Target TPS", format="%.1f"),
    "achieved_tps": st.column_config.NumberColumn("Achieved TPS", format="%.1f"),
    "config_version": st.column_config.TextColumn("Config", help="Config version it runs"),
    "report_age_s": st.column_config.NumberColumn("Last report", format="%.1f s"),
    "last_error": st.column_config.TextColumn("Last error"),
}


# --- backend reads, shared between sessions for a second ----------------------------------------
_CACHE: dict[str, Any] = {
    "max_entries": 16,
    "show_spinner": False,
    "hash_funcs": {Settings: backend_key},
}


@st.cache_data(ttl=CONFIG_TTL_S, **_CACHE)
def _config(settings: Settings) -> FetchResult:
    return fetch_or_error(get_backend_client(settings).get_feeder_config)


@st.cache_data(ttl=CONFIG_TTL_S, **_CACHE)
def _status(settings: Settings) -> FetchResult:
    return fetch_or_error(get_backend_client(settings).get_feeder_status)


@st.cache_data(ttl=HISTORY_TTL_S, **_CACHE)
def _rate_history(settings: Settings, minutes: int) -> FetchResult:
    client = get_backend_client(settings)
    return fetch_or_error(lambda: client.get_stats_history(minutes)["samples"])


def fetch_config(settings: Settings) -> Fetched:
    """`GET /feeder/config`, shared by all sessions for a second (failures too)."""
    return Fetched(*_config(settings))


def fetch_status(settings: Settings) -> Fetched:
    """`GET /feeder/status` → the list of feeders."""
    return Fetched(*_status(settings))


def fetch_rate_history(settings: Settings, minutes: int) -> Fetched:
    """`GET /stats/history` samples (an older backend has none: the page falls back)."""
    return Fetched(*_rate_history(settings, minutes))


# --- session state --------------------------------------------------------------------------
def _widget_key(generation: int, name: str) -> str:
    return f"feeder_form_{generation}_{name}"


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH_KEY] = (kind, message)


def _show_flash() -> None:
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash is None:
        return
    kind, message = flash
    if kind == "success":
        st.success(message, icon="✅")
    elif kind == "error":
        st.error(message, icon="🚫")
    else:
        st.info(message, icon="ℹ️")


def _set_base(config: dict[str, Any], *, rebuild: bool) -> None:
    """Remember the config the form shows; `rebuild` drops the user's edits for its values."""
    st.session_state[BASE_KEY] = copy.deepcopy(config)  # cached values are shared: never alias
    if rebuild:
        st.session_state[GEN_KEY] = st.session_state.get(GEN_KEY, 0) + 1


def _ensure_base(settings: Settings) -> str | None:
    """Load the form's config on first use; the error (for a banner) when it cannot be had."""
    if st.session_state.get(BASE_KEY) is not None:
        return None
    fetched = fetch_config(settings)
    if fetched.value is None:
        return fetched.error or "no answer"
    _set_base(fetched.value, rebuild=False)
    return None


# --- callbacks (run before the script, so the rerun already shows their outcome) -------------
def _apply(settings: Settings, generation: int) -> None:
    base = st.session_state.get(BASE_KEY)
    if base is None:
        return
    state = st.session_state

    def value(name: str) -> Any:
        return state[_widget_key(generation, name)]

    form = FormValues(
        running=bool(value("running")),
        symbols=list(value("symbols")),
        sources=list(value("sources")),
        tps=resolve_tps(float(base.get("tps", 0.0)), value("tps_slider"), value("tps_exact")),
        mode=str(value("mode")),
        **{name: rate_from_percent(value(name)) for name in RATE_FIELDS},
    )
    update = config_update(base, form)
    if not update:
        _flash("info", f"Nothing to apply: the form matches config v{base.get('version')}.")
        return
    try:
        new = get_backend_client(settings).put_feeder_config(update)
    except BackendError as exc:
        _flash("error", f"Not applied — {exc.message}")
        return
    _config.clear()
    _set_base(new, rebuild=True)
    _flash("success", f"Applied config v{new.get('version')}: {describe_update(base, update)}.")


def _reload(settings: Settings) -> None:
    _config.clear()
    fetched = fetch_config(settings)
    if fetched.value is None:
        _flash("error", f"Could not reload the config — {fetched.error}")
        return
    _set_base(fetched.value, rebuild=True)
    _flash("info", f"Form reloaded from config v{fetched.value.get('version')}.")


def _send_burst(settings: Settings, update: dict[str, Any]) -> None:
    try:
        new = get_backend_client(settings).put_feeder_config(update)
    except BackendError as exc:
        _flash("error", f"Burst not changed — {exc.message}")
        return
    _config.clear()
    base = st.session_state.get(BASE_KEY)
    if base is not None and form_fields(new) == form_fields(base):
        _set_base(new, rebuild=False)  # only the burst moved: keep the user's edits
    until = active_burst_until(new, datetime.now(UTC))
    if update["burst"] is None:
        _flash("success", f"Burst cancelled (config v{new.get('version')}).")
    elif until is not None:
        burst = update["burst"]
        _flash(
            "success",
            f"Market open: ×{burst['multiplier']:g} for {burst['seconds']:g} s, until "
            f"{format_until(until, datetime.now(UTC))}.",
        )
    else:
        _flash("info", f"Config v{new.get('version')} has no running burst.")


def _start_burst(settings: Settings) -> None:
    state = st.session_state
    _send_burst(
        settings, burst_update(state["feeder_burst_multiplier"], state["feeder_burst_seconds"])
    )


def _cancel_burst(settings: Settings) -> None:
    _send_burst(settings, dict(CANCEL_BURST))


# --- controls -------------------------------------------------------------------------------
def render_controls(settings: Settings) -> None:
    """The form (one Apply → one PUT) and the burst buttons; outside the live fragment."""
    _show_flash()
    error = _ensure_base(settings)
    base: dict[str, Any] | None = st.session_state.get(BASE_KEY)
    if base is None:
        st.warning(
            f"Feeder controls unavailable: {error} They appear as soon as the backend answers.",
            icon="⚠️",
        )
        return
    generation = st.session_state.setdefault(GEN_KEY, 0)

    def key(name: str) -> str:
        return _widget_key(generation, name)

    with st.form("feeder_controls"):
        st.toggle(
            "Running",
            value=bool(base.get("running", True)),
            key=key("running"),
            help="Off pauses every feeder (they keep polling and reporting).",
        )
        left, right = st.columns(2)
        symbols = list(base.get("symbols") or [])
        left.multiselect(
            "Symbols",
            options=normalize_names([*symbols, *settings.symbols]),
            default=symbols,
            key=key("symbols"),
            accept_new_options=True,
            help="Type a new symbol and press Enter to add it (A–Z, 0–9 and . _ : / -).",
        )
        sources = list(base.get("sources") or [])
        right.multiselect(
            "Sources",
            options=normalize_names([*sources, *settings.sources]),
            default=sources,
            key=key("sources"),
            accept_new_options=True,
            help="Simulated exchanges; type a new one to add it.",
        )
        tps = float(base.get("tps", 0.0))
        left, right = st.columns([3, 1])
        left.slider(
            "Ticks per second (total)",
            min_value=0.0,
            max_value=tps_slider_max(tps),
            value=tps,
            step=1.0,
            key=key("tps_slider"),
        )
        right.number_input(
            "Exact TPS",
            min_value=0.0,
            max_value=MAX_TPS,
            value=tps,
            step=1.0,
            key=key("tps_exact"),
            help="Wins over the slider when changed; up to 100,000.",
        )
        mode = base.get("mode", "single")
        st.radio(
            "Delivery",
            options=MODES,
            index=MODES.index(mode) if mode in MODES else 0,
            key=key("mode"),
            horizontal=True,
            format_func=lambda m: (
                "single (POST /ingest/tick)" if m == "single" else "batch (POST /ingest/ticks)"
            ),
        )
        columns = st.columns(len(RATE_FIELDS))
        for column, name in zip(columns, RATE_FIELDS, strict=True):
            label, help_text = RATE_LABELS[name]
            column.slider(
                f"{label} (%)",
                min_value=0.0,
                max_value=100.0,
                value=percent_from_rate(base.get(name, 0.0)),
                step=0.1,
                format="%.1f%%",
                key=key(name),
                help=help_text,
            )
        st.form_submit_button(
            "Apply",
            type="primary",
            key="feeder_apply",
            on_click=_apply,
            args=(settings, generation),
        )
    caption, reload = st.columns([4, 1], vertical_alignment="center")
    caption.caption(
        f"Editing config v{base.get('version')}. Apply sends only the fields you changed."
    )
    reload.button("Reload form", key="feeder_reload", on_click=_reload, args=(settings,))

    st.subheader("Market open")
    multiplier, seconds, start, cancel = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    multiplier.number_input(
        "Multiplier", min_value=1.0, max_value=100.0, value=10.0, step=1.0,
        key="feeder_burst_multiplier",
    )  # fmt: skip
    seconds.number_input(
        "Seconds", min_value=1.0, max_value=3600.0, value=30.0, step=5.0,
        key="feeder_burst_seconds",
    )  # fmt: skip
    start.button(
        "Market open", key="feeder_burst_start", on_click=_start_burst, args=(settings,),
        type="primary",
    )  # fmt: skip
    cancel.button(
        "Cancel burst", key="feeder_burst_cancel", on_click=_cancel_burst, args=(settings,)
    )


# --- live status ----------------------------------------------------------------------------
def _config_line(config: dict[str, Any], base: dict[str, Any] | None, now: datetime) -> None:
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
    st.markdown(" ".join(badges))
    if base is not None and form_fields(base) != form_fields(config):
        st.caption(
            f"The config changed since this form was loaded (v{base.get('version')} → "
            f"v{config.get('version')}). Apply still sends only your changes; "
            "“Reload form” shows the new values."
        )


def _render_status(feeders: list[dict[str, Any]], now: datetime) -> dict[str, float]:
    """Draw the headline totals and the per-feeder table; return the totals for the chart's
    fallback samples (no feeder is a real 0 TPS, not a missing sample)."""
    totals = status_totals(feeders)
    if not feeders:
        st.info(
            "No feeder has reported yet. Start one with `python -m feeder` (it posts to "
            "`TARGET_URL`, default http://127.0.0.1:8000, polls this config every second and "
            "reports here).",
            icon="ℹ️",
        )
        return totals
    alive, count = int(totals["alive"]), int(totals["feeders"])
    cells = st.columns(6)
    cells[0].metric("Feeders alive", f"{alive} / {count}")
    cells[1].metric("Target TPS", f"{totals['target_tps']:,.1f}")
    cells[2].metric("Achieved TPS", f"{totals['achieved_tps']:,.1f}")
    cells[3].metric("Accepted", f"{int(totals['accepted']):,}")
    cells[4].metric("Rejected + conflicts", f"{int(totals['rejected'] + totals['conflicts']):,}")
    cells[5].metric("Dropped", f"{int(totals['dropped']):,}")
    rows = status_rows(feeders, now)
    if count > 1:
        total_row: dict[str, Any] = {name: totals.get(name) for name in STATUS_COLUMNS}
        total_row.update(
            feeder_id="Σ total", status=f"{alive} alive", config_version="", last_error=""
        )
        total_row["report_age_s"] = None
        rows.append(total_row)
    frame = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    st.dataframe(frame, column_config=STATUS_COLUMN_CONFIG, hide_index=True)
    return totals


def _render_chart(settings: Settings, totals: dict[str, float] | None, now: datetime) -> None:
    buffer = st.session_state.get(RING_KEY)
    if buffer is None:
        buffer = st.session_state[RING_KEY] = new_ring_buffer()
    if totals is not None:
        record_point(buffer, rate_point_from_totals(totals, now))
    history = fetch_rate_history(settings, CHART_MINUTES)
    server_points = rate_points_from_history(history.value or [])
    points = choose_points(server_points, buffer)
    st.plotly_chart(
        rate_figure(points, now),
        key="feeder_rate_chart",
        config={"displaylogo": False},
    )
    if server_points:
        st.caption(f"Target vs achieved TPS, last {CHART_MINUTES} minutes (/stats/history).")
    else:
        st.caption(
            "Target vs achieved TPS as this page has seen them since it opened "
            "(the backend's /stats/history is not available)."
        )


@st.fragment(run_every=REFRESH_EVERY_S)
def live_status(settings: Settings) -> None:
    """The self-refreshing part: config badges, per-feeder status, totals, the rate chart."""
    now = datetime.now(UTC)
    config = fetch_config(settings)
    base = st.session_state.get(BASE_KEY)
    if config.value is not None and base is None:
        st.rerun(scope="app")  # the backend is back: build the controls
    status = fetch_status(settings)
    error = status.error or config.error
    if error:
        st.warning(f"Live status unavailable: {error} Retrying every second.", icon="⚠️")
    if config.value is not None:
        _config_line(config.value, base, now)
    totals = _render_status(status.value, now) if status.value is not None else None
    st.subheader("Rate")
    _render_chart(settings, totals, now)


st.title("Feeder")
_settings = current_settings()
render_controls(_settings)
st.header("Live status")
live_status(_settings)
