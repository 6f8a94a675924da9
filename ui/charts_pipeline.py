"""Plotly figures of the Pipeline page: small multiples over the same time window, pure builders.

Each figure has a fixed `uirevision`, so a user's zoom survives a redraw of the same chart (but
Streamlit remounts a chart whose data changed: the page's pause re-sends frozen figures for
that); every chart shares the x range, so a spike lines up across charts; traces are a
bounded, fixed set per chart (reject reasons are capped in `ui.pipeline_stats`). A None in a
series is a gap in the line (NaN in the y array, `connectgaps=False`), never bridged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import plotly.graph_objects as go

from ui.pipeline_series import PipelineSeries, Series

CHART_HEIGHT = 240
UIREVISION_PREFIX = "pipeline"
PALETTE = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")

LABELS: Mapping[str, str] = {
    "ingest_accepted": "accepted",
    "ingest_duplicate": "duplicates",
    "ingest_conflict": "conflicts",
    "rows_written": "rows written",
    "queue_depth": "queue",
    "calc_b_depth": "calc-b queue",
    "outbox_entries": "outbox",
    "outbox_pending": "outbox pending",
    "dead_letters": "dead letters",
    "workers": "workers",
    "alerts_fired": "fired",
    "alerts_test_fired": "test fired",
    "alerts_delivered": "delivered",
    "alerts_undelivered": "failed + dead",
    "alert_deliveries_waiting": "webhook jobs",
    "alert_evaluations_waiting": "evaluations",
    "alert_history_entries": "records to store",
}


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """How one series is drawn: `scale` converts units (s → ms), `step` for counts of things,
    `markers` for sparse data (a value between two gaps is a lone point, which a line omits)."""

    key: str
    title: str
    y_title: str
    scale: float = 1.0
    step: bool = False
    y_format: str = ",.3~r"
    markers: bool = False


def utc_axis(times: Sequence[datetime]) -> np.ndarray:
    """Times as naive-UTC datetime64: Plotly draws dates without zones, and arrays (unlike lists
    of objects) skip Plotly's per-element validation, which costs seconds on 15 minutes of data."""
    micros = [round(t.timestamp() * 1_000_000) for t in times]  # aware or UTC-naive alike
    return np.array(micros, dtype="int64").astype("datetime64[us]")


def _y(values: Sequence[float | None], scale: float) -> np.ndarray:
    return np.array([math.nan if v is None else v * scale for v in values], dtype=float)


def key_line(names: Sequence[str]) -> str:
    """Each line's name in its colour, on one line (Plotly titles take this much HTML)."""
    return " ".join(
        f'<span style="color:{PALETTE[i % len(PALETTE)]}">━ {name}</span>'
        for i, name in enumerate(names)
    )


def line_figure(
    series: Series,
    spec: ChartSpec,
    *,
    x_range: tuple[datetime, datetime] | None = None,
    labels: Mapping[str, str] = LABELS,
) -> go.Figure:
    """One compact time-series chart with a line per series name, in a stable colour.

    Built in one constructor call: Plotly's update_* helpers cost more than the data.
    """
    x = utc_axis(series.x)
    traces = [
        go.Scatter(
            x=x,
            y=_y(values, spec.scale),
            name=labels.get(name, name),
            mode="lines+markers" if spec.markers else "lines",
            marker={"size": 5} if spec.markers else None,
            line={
                "color": PALETTE[index % len(PALETTE)],
                "width": 1.6,
                "shape": "hv" if spec.step else "linear",
            },
            connectgaps=False,
            hovertemplate=f"%{{y:{spec.y_format}}}<extra>{labels.get(name, name)}</extra>",
        )
        for index, (name, values) in enumerate(series.ys.items())
    ]
    names = [labels.get(name, name) for name in series.ys]
    has_data = any(v is not None for values in series.ys.values() for v in values)
    layout = {
        # The key to the lines is a one-line subtitle in their colours, not a legend: a legend
        # wraps on a chart this narrow and shrinks its plot, so a row's plots would not align.
        "title": {
            "text": spec.title,
            "font": {"size": 14},
            "x": 0.0,
            "xanchor": "left",
            "y": 0.98,
            "yanchor": "top",
            "subtitle": {"text": key_line(names) if len(names) > 1 else "", "font": {"size": 11}},
        },
        "height": CHART_HEIGHT,
        "margin": {"l": 8, "r": 8, "t": 54, "b": 8},
        "uirevision": f"{UIREVISION_PREFIX}:{spec.key}",
        "showlegend": False,
        "hovermode": "x unified",
        "xaxis": {
            "type": "date",
            "range": list(utc_axis(x_range)) if x_range else None,
            "showgrid": False,
            "tickformat": "%H:%M",
            "hoverformat": "%H:%M:%S UTC",
        },
        "yaxis": {"title": {"text": spec.y_title}, "rangemode": "tozero"},
        "annotations": []
        if has_data
        else [
            {
                "text": "no data yet",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "font": {"color": "#888"},
            }
        ],
    }
    return go.Figure(data=traces, layout=layout)


SPECS: Mapping[str, ChartSpec] = {
    "ingest": ChartSpec("ingest", "Ingest rate", "ticks/s"),
    "rejects": ChartSpec("rejects", "Rejected by reason", "ticks/s"),
    "rows_written": ChartSpec("rows_written", "Rows written to Postgres", "rows/s"),
    "depths": ChartSpec("depths", "Queue and outbox depth", "entries", step=True),
    "dead_letters": ChartSpec("dead_letters", "Dead letters", "messages", step=True),
    "flush_latency": ChartSpec("flush_latency", "Flush latency", "ms", scale=1000.0),
    "view_latency": ChartSpec("view_latency", "Ingest → view latency", "ms", scale=1000.0),
    "workers": ChartSpec("workers", "Workers", "processes", step=True),
}
# The Alerts part: its own row, on the same window as the pipeline's charts.
ALERT_SPECS: Mapping[str, ChartSpec] = {
    "alert_firings": ChartSpec("alert_firings", "Alert firings", "firings/s"),
    "alert_deliveries": ChartSpec("alert_deliveries", "Webhook deliveries", "deliveries/s"),
    # Seconds, not ms: with retries a delivery can take minutes. Markers: deliveries are sparse.
    "alert_latency": ChartSpec("alert_latency", "Firing → delivered latency", "s", markers=True),
    "alert_waiting": ChartSpec("alert_waiting", "Alert work waiting", "entries", step=True),
}


def time_range(series: PipelineSeries, minutes: float) -> tuple[datetime, datetime] | None:
    """The window every chart shows: from the oldest point (at most `minutes` back) to the
    newest point of any chart, so a young pipeline fills the width and spikes line up."""
    every = (
        series.ingest,
        series.rejects,
        series.rows_written,
        series.depths,
        series.dead_letters,
        series.flush_latency,
        series.view_latency,
        series.workers,
        series.alert_firings,
        series.alert_deliveries,
        series.alert_latency,
        series.alert_waiting,
    )
    starts = [s.x[0] for s in every if s.x]
    if not starts:
        return None
    end = max(s.x[-1] for s in every if s.x)
    return max(min(starts), end - timedelta(minutes=minutes)), end


def pipeline_figures(series: PipelineSeries, minutes: float = 15) -> dict[str, go.Figure]:
    """Every chart of the page, keyed by a stable name (also the Streamlit element key)."""
    x_range = time_range(series, minutes)
    data: Mapping[str, Series] = {
        "ingest": series.ingest,
        "rejects": series.rejects,
        "rows_written": series.rows_written,
        "depths": series.depths,
        "dead_letters": series.dead_letters,
        "flush_latency": series.flush_latency,
        "view_latency": series.view_latency,
        "workers": series.workers,
    }
    return {key: line_figure(data[key], SPECS[key], x_range=x_range) for key in SPECS}


def alert_figures(series: PipelineSeries, minutes: float = 15) -> dict[str, go.Figure]:
    """The Alerts part's charts, keyed like `pipeline_figures` and on the same window, so a
    burst of firings lines up with the ingest spike that caused it."""
    x_range = time_range(series, minutes)
    data: Mapping[str, Series] = {
        "alert_firings": series.alert_firings,
        "alert_deliveries": series.alert_deliveries,
        "alert_latency": series.alert_latency,
        "alert_waiting": series.alert_waiting,
    }
    return {key: line_figure(data[key], ALERT_SPECS[key], x_range=x_range) for key in ALERT_SPECS}
