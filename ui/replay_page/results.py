"""What the selected replay produced, for one symbol: its candles above the live candles of the
same range (one figure, firings as markers), its view W beside the live one, and the table of
what its sandboxed rules would have fired.

A finished replay never changes: its results are fetched once per session and symbol, not every
second."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from backend.core.alerts.firing import Firing
from backend.core.candles import CandleBar
from backend.core.replay import TERMINAL_STATES, Replay
from backend.core.view import View
from backend.settings import UiSettings
from ui.api_client import BackendClient, BackendError
from ui.replay_charts import replay_figure
from ui.replay_status import firing_rows, view_rows
from ui.resources import get_backend_client

INTERVALS = ("1m", "5m", "15m", "1h")
LIVE_CANDLE_LIMIT = 5_000  # the API's cap; a longer range shows its newest candles
CACHE_KEY = "replay_results_cache"  # (identity, Results) of a finished replay
CHART_CONFIG = {"displaylogo": False, "scrollZoom": True}
FIRING_COLUMNS = {
    "fired_at": st.column_config.TextColumn("Fired at (event time, UTC)"),
    "rule": st.column_config.TextColumn("Rule"),
    "symbol": st.column_config.TextColumn("Symbol"),
    "what": st.column_config.TextColumn("What"),
    "observed": st.column_config.NumberColumn("Observed"),
    "price": st.column_config.NumberColumn("Tick price"),
    "event_id": st.column_config.TextColumn("Tick"),
}


@dataclass(frozen=True, slots=True)
class Results:
    replayed: list[CandleBar]
    live: list[CandleBar]
    firings: list[Firing]
    replay_view: View | None
    live_view: View | None


def _fetch(client: BackendClient, replay: Replay, symbol: str, interval: str) -> Results:
    firings = client.get_replay_firings(replay.id).firings if replay.alerts == "sandbox" else []
    return Results(
        replayed=client.get_replay_candles(replay.id, symbol, interval).candles,
        live=client.get_candles(
            symbol, interval, limit=LIVE_CANDLE_LIMIT, start=replay.from_, end=replay.to
        ).candles,
        firings=firings,
        replay_view=client.get_replay_view(replay.id, symbol),
        live_view=client.get_view(symbol),
    )


def _results(settings: UiSettings, replay: Replay, symbol: str, interval: str) -> Results:
    identity = (replay.id, replay.state, symbol, interval)
    cached = st.session_state.get(CACHE_KEY)
    if cached is not None and cached[0] == identity:
        return cached[1]
    got = _fetch(get_backend_client(settings), replay, symbol, interval)
    if replay.state in TERMINAL_STATES:
        st.session_state[CACHE_KEY] = (identity, got)
    return got


def results(settings: UiSettings, replay: Replay) -> None:
    symbol_col, interval_col = st.columns([3, 1])
    symbol = symbol_col.selectbox("Symbol", replay.symbols, key="replay_symbol")
    interval = interval_col.selectbox("Interval", INTERVALS, key="replay_interval")
    if symbol not in replay.symbols:  # the selection moved to another replay
        symbol = replay.symbols[0]
    try:
        got = _results(settings, replay, symbol, interval)
    except BackendError as exc:
        st.warning(f"Results unavailable: {exc.message} Retrying…", icon=":material/warning:")
        return
    figure = replay_figure(
        got.replayed, got.live, got.firings, symbol=symbol, interval=interval, replay_id=replay.id
    )
    chart_col, view_col = st.columns([3, 1])
    chart_col.plotly_chart(figure, key="replay_chart", config=CHART_CONFIG)
    with view_col:
        st.markdown("**View W: replay vs live**")
        st.dataframe(pd.DataFrame(view_rows(got.replay_view, got.live_view)), hide_index=True)
    if replay.alerts != "sandbox":
        return
    rows = firing_rows(got.firings)
    st.markdown(f"**Would have fired: {len(rows):,}** (every symbol, never delivered)")
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            column_config=FIRING_COLUMNS,
            hide_index=True,
            key="replay_firings",
        )
