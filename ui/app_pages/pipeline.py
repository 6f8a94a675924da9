"""Pipeline page: is the pipeline healthy, and how has it behaved over the last 15 minutes?
Below it, the Alerts part: firings, webhook deliveries and their latency, what waits.

Health comes from `GET /health/readiness` (a 503 naming what failed is an answer, so the API part
stays green); charts and headline figures come from `GET /stats/history`, derived by the pure
functions of `ui.pipeline_stats` and drawn by `ui.charts_pipeline`. Only the fragment reruns on the
timer; the REST answers, failures included, are cached for a moment and shared by every session,
so a dead backend costs one attempt per TTL and the page recovers by itself.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.api_client import BackendError, BackendUnavailable
from ui.charts_pipeline import alert_figures, pipeline_figures
from ui.pipeline_health import HealthPart, health_parts
from ui.pipeline_restarts import process_rows, processes_caption
from ui.pipeline_stats import (
    AlertHeadline,
    Headline,
    PipelineSnapshot,
    PipelineStats,
    digest,
    format_count,
    format_rate,
    format_seconds,
    is_not_found,
)
from ui.resources import BACKEND_HASH_FUNCS, current_settings, get_backend_client

REFRESH_EVERY_S = 2.0
FETCH_TTL_S = 1.5  # below the refresh period, so every refresh sees fresh data
HISTORY_MINUTES = 15
CHART_COLUMNS = 4
PAUSE_KEY = "pipeline_charts_paused"
FROZEN_KEY = "pipeline_frozen_charts"  # (figures, alert figures, caption) last drawn, for the pause
BADGE = {
    True: ("green", ":material/check_circle:"),
    False: ("red", ":material/error:"),
    None: ("gray", ":material/help:"),
}


@st.cache_data(ttl=FETCH_TTL_S, max_entries=16, show_spinner=False, hash_funcs=BACKEND_HASH_FUNCS)
def fetch_pipeline(settings: UiSettings) -> dict[str, Any]:
    """Readiness and the stats history; failures are returned (and cached), never raised.

    Plain dicts only: st.cache_data pickles what it caches, and an instance of one of our classes
    stops pickling once Streamlit re-imports its module after a source edit (a fragment still
    holds the old class), which would break the page until a full reload.
    """
    client = get_backend_client(settings)
    started = time.perf_counter()
    try:
        readiness = client.get_readiness()
    except BackendUnavailable as exc:
        # Unreachable: asking for the history too would only wait for a second timeout.
        return {"readiness_error": exc.message, "history_error": exc.message}
    except BackendError as exc:
        readiness, readiness_error, latency_ms = None, exc.message, None
    else:
        readiness_error, latency_ms = None, (time.perf_counter() - started) * 1000
    history: dict[str, Any] | None = None
    history_error: str | None = None
    missing = False
    try:
        history = client.get_stats_history(minutes=HISTORY_MINUTES)
    except BackendError as exc:
        missing = is_not_found(exc.message)
        history_error = None if missing else exc.message
    if history is not None and not history["samples"]:
        # The sampler has not run yet (a fresh backend): the figures of now still help.
        with contextlib.suppress(BackendError):
            history = {**history, "samples": [client.get_stats()]}
    return {
        "readiness": readiness,
        "readiness_error": readiness_error,
        "api_latency_ms": latency_ms,
        "history": history,
        "history_error": history_error,
        "history_missing": missing,
    }


def load_snapshot(settings: UiSettings) -> PipelineSnapshot:
    """The cached answers, with the history digested into the charts' data."""
    fetched = dict(fetch_pipeline(settings))
    history = fetched.pop("history", None)
    return PipelineSnapshot(**fetched, stats=digest(history) if history is not None else None)


def render_health(parts: list[HealthPart]) -> None:
    """One bordered box per part: name, a coloured badge, latency or the error text."""
    for column, part in zip(st.columns(len(parts)), parts, strict=True):
        color, icon = BADGE[part.ok]
        with column.container(border=True):
            st.badge(f"{part.name} · {part.status}", icon=icon, color=color)
            if part.detail:
                st.caption(part.detail)


@st.cache_data(ttl=FETCH_TTL_S, max_entries=16, show_spinner=False, hash_funcs=BACKEND_HASH_FUNCS)
def fetch_processes(settings: UiSettings) -> dict[str, Any]:
    """`GET /stats` now, for its `processes` (the restart counter is not in the history)."""
    try:
        return {"stats": get_backend_client(settings).get_stats()}
    except BackendError as exc:
        return {"error": exc.message}


def render_processes(settings: UiSettings) -> None:
    """Restarts per process (`make run`'s supervisor): the count, the last exit and when."""
    fetched = fetch_processes(settings)
    if "error" in fetched:
        return  # the banner above already says the backend is unavailable
    rows = process_rows(fetched["stats"], time.time_ns() // 1_000_000)
    st.subheader("Processes")
    st.caption(processes_caption(rows))
    if rows:
        render_metrics(
            [
                (row.process, f"{row.restarts:,} restarts", row.note, "Restarts after it died")
                for row in rows
            ]
        )


def render_banner(snap: PipelineSnapshot) -> None:
    if snap.readiness_error is not None:
        st.error(
            f"Backend unavailable: {snap.readiness_error} Retrying every {REFRESH_EVERY_S:.0f} s.",
            icon="🚨",
        )
        return
    failed = (snap.readiness or {}).get("failed") or []
    if failed:
        st.warning(f"Pipeline degraded: {', '.join(map(str, failed))} failing.", icon="⚠️")


Metric = tuple[str, str, str | None, str]  # label, value, note (under it), help


def render_metrics(metrics: list[Metric]) -> None:
    for column, (label, value, note, help_text) in zip(
        st.columns(len(metrics)), metrics, strict=True
    ):
        column.metric(
            label, value, delta=note, delta_color="off", delta_arrow="off", help=help_text
        )


def render_headline(head: Headline) -> None:
    pending = None if head.outbox_pending is None else f"{head.outbox_pending:,.0f} pending"
    metrics = [
        (
            "Ingest rate",
            format_rate(head.ingest_rate),
            None,
            "Accepted ticks per second, last 10 s",
        ),
        ("Accepted", format_count(head.accepted_total), None, "Ticks accepted since stats began"),
        ("Queue depth", format_count(head.queue_depth), None, "Calc messages waiting for a worker"),
        (
            "Outbox",
            format_count(head.outbox_entries),
            pending,
            "Ingest batches not yet in Postgres (pending: being flushed)",
        ),
        ("Dead letters", format_count(head.dead_letters), None, "Calc messages out of retries"),
        ("View latency p95", format_seconds(head.view_p95_s), None, "Ingest → view W, last minute"),
        ("Flush p95", format_seconds(head.flush_p95_s), None, "One Postgres flush, last minute"),
    ]
    render_metrics(metrics)


def render_alert_headline(head: AlertHeadline) -> None:
    fired = [
        *([format_rate(head.fired_rate)] if head.fired_rate is not None else []),
        *([f"{head.test_fired_total:,.0f} test"] if head.test_fired_total else []),
    ]
    latency = None if head.delivery_p50_s is None else f"p50 {format_seconds(head.delivery_p50_s)}"
    behind = [
        f"{value:,.0f} {what}"
        for value, what in (
            (head.evaluations_waiting, "to evaluate"),
            (head.history_waiting, "to store"),
        )
        if value
    ]
    render_metrics(
        [
            (
                "Alerts fired",
                format_count(head.fired_total),
                " · ".join(fired) or None,
                "Rule firings since stats began; note: their rate over the last minute, and "
                "test firings (counted apart)",
            ),
            (
                "Delivered",
                format_count(head.delivered_total),
                None,
                "Webhooks the receiver accepted (2xx)",
            ),
            (
                "Delivery p95",
                format_seconds(head.delivery_p95_s),
                latency,
                "Firing → webhook delivered, retries included, last 5 minutes",
            ),
            (
                "Retries",
                format_count(head.retries_total),
                None,
                "Webhook attempts that failed and were scheduled again (timeout, 5xx, 429)",
            ),
            (
                "Failed",
                format_count(head.failed_total),
                None,
                "Webhooks refused for good (4xx, 3xx, a denied address): not retried",
            ),
            (
                "Dead",
                format_count(head.dead_total),
                None,
                "Webhooks out of attempts (ALERT_MAX_ATTEMPTS): see GET /alerts/events",
            ),
            (
                "Waiting",
                format_count(head.deliveries_waiting),
                " · ".join(behind) or None,
                "Webhook jobs queued, retries included; note: evaluations queued and "
                "alert records not yet in Postgres",
            ),
        ]
    )


def draw_grid(figures: dict[str, Any]) -> None:
    items = list(figures.items())
    for start in range(0, len(items), CHART_COLUMNS):
        row = items[start : start + CHART_COLUMNS]
        for column, (key, figure) in zip(st.columns(CHART_COLUMNS), row, strict=False):
            column.plotly_chart(
                figure,
                key=f"pipeline_chart_{key}",
                config={"displayModeBar": False, "displaylogo": False},
            )


def render_charts(stats: PipelineStats) -> None:
    """The small multiples and the Alerts part, or the figures frozen when the user paused them.

    Streamlit remounts a Plotly chart whose figure changed, which resets its zoom whatever the
    `uirevision`; re-sending the very same figures while paused keeps each chart mounted, so an
    operator can zoom into a spike. Health and headline figures keep updating meanwhile.
    """
    caption, toggle = st.columns([5, 1], vertical_alignment="center")
    paused = toggle.toggle(
        "Pause charts",
        key=PAUSE_KEY,
        help="Freeze the charts to zoom and pan; health and headline figures keep updating.",
    )
    frozen = st.session_state.get(FROZEN_KEY)
    if paused and frozen is not None and len(frozen) == 3:  # (an older page's shape: redraw)
        figures, alerts, note = frozen
    else:
        count = stats.sample_count
        retention = f", kept {stats.retention_s // 60} min" if stats.retention_s else ""
        note = (
            f"{count:,} sample{'' if count == 1 else 's'} over the last {HISTORY_MINUTES} min · "
            f"one every {stats.interval_s:g} s{retention} · pipeline-wide counters from Redis"
        )
        figures = pipeline_figures(stats.series, HISTORY_MINUTES)
        alerts = alert_figures(stats.series, HISTORY_MINUTES)
        st.session_state[FROZEN_KEY] = (figures, alerts, note)
    caption.caption(f"{note} · paused" if paused else note)
    draw_grid(figures)
    st.subheader("Alerts")
    render_alert_headline(stats.alerts)
    draw_grid(alerts)


@st.fragment(run_every=REFRESH_EVERY_S)
def pipeline_panel(settings: UiSettings) -> None:
    """The self-refreshing part of the page: banner, health, headline figures, charts."""
    snap = load_snapshot(settings)
    render_banner(snap)
    render_health(health_parts(snap.readiness, snap.readiness_error, snap.api_latency_ms))

    if snap.history_missing:
        st.info(
            "This backend has no pipeline statistics (`/stats/history`): it predates them. "
            "Health is shown above; upgrade the API for charts.",
            icon="ℹ️",
        )
        return
    if snap.stats is None:
        if snap.readiness_error is None:  # the backend is up, only the stats failed
            st.warning(f"Pipeline statistics unavailable: {snap.history_error}", icon="⚠️")
        return
    render_headline(snap.stats.head)
    render_charts(snap.stats)
    render_processes(settings)


st.title("Pipeline")
pipeline_panel(current_settings())
