"""The Symbol page's controls: symbol, interval, range and SMA period, outside the fragments and
mirrored in the URL (`?symbol=BTCUSDT&interval=1m&range=1h&sma=20`), so a view can be shared and the
Live page can link here."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from backend.settings import UiSettings
from ui.resources import fetch_symbols, get_live_feed
from ui.symbol_view import (
    DEFAULT_INTERVAL,
    DEFAULT_RANGE,
    DEFAULT_SMA,
    INTERVALS,
    RANGES_S,
    SMA_MAX,
    SMA_MIN,
    choose,
    clamp_int,
    normalize_symbol,
    symbol_options,
)

WAIT_EVERY_S = 2.0


@dataclass(frozen=True, slots=True)
class Controls:
    """What the analyst picked: the live panels draw this."""

    symbol: str
    interval: str
    range_key: str
    sma_period: int


def sync_query_params(values: dict[str, str]) -> None:
    """Write the controls back to the URL (only what changed), so it can be shared."""
    for name, value in values.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value


@st.fragment(run_every=WAIT_EVERY_S)
def wait_for_symbols(settings: UiSettings) -> None:
    """With nothing to pick yet, poll and rerun the page once: it recovers by itself."""
    rest = fetch_symbols(settings)
    if rest.symbols or get_live_feed(settings).snapshot().views:
        st.rerun(scope="app")
    if rest.error:
        st.warning(f"Backend unavailable: {rest.error} Retrying…", icon="⚠️")
    else:
        st.info("No symbols yet: waiting for the first ticks…", icon="⏳")


def render_controls(settings: UiSettings) -> Controls | None:
    """The pickers, filled from the URL; None (and a self-recovering wait) with no symbol yet."""
    raw_symbol = st.query_params.get("symbol")
    requested = normalize_symbol(raw_symbol)
    if raw_symbol and requested is None:
        st.warning(f"“{raw_symbol}” is not a symbol name; pick one below.", icon="⚠️")
    rest = fetch_symbols(settings)
    live_symbols = get_live_feed(settings).snapshot().views
    options = symbol_options([*rest.symbols, *live_symbols], requested)
    if not options:
        wait_for_symbols(settings)
        return None

    symbol_col, interval_col, range_col, sma_col = st.columns([3, 3, 3, 2])
    symbol = symbol_col.selectbox(
        "Symbol",
        options,
        index=options.index(requested) if requested in options else 0,
        key="symbol_pick",
    )
    interval = (
        interval_col.segmented_control(
            "Interval",
            INTERVALS,
            default=choose(st.query_params.get("interval"), INTERVALS, DEFAULT_INTERVAL),
            key="interval_pick",
            required=True,
        )
        or DEFAULT_INTERVAL
    )
    range_key = (
        range_col.segmented_control(
            "Range",
            list(RANGES_S),
            default=choose(st.query_params.get("range"), list(RANGES_S), DEFAULT_RANGE),
            key="range_pick",
            required=True,
        )
        or DEFAULT_RANGE
    )
    sma_period = int(
        sma_col.number_input(
            "SMA period",
            min_value=SMA_MIN,
            max_value=SMA_MAX,
            value=clamp_int(st.query_params.get("sma"), DEFAULT_SMA, SMA_MIN, SMA_MAX),
            step=1,
            key="sma_pick",
            help="Simple moving average of candle closes",
        )
        or DEFAULT_SMA
    )
    symbol = symbol or options[0]
    sync_query_params(
        {"symbol": symbol, "interval": interval, "range": range_key, "sma": str(sma_period)}
    )
    return Controls(symbol, interval, range_key, sma_period)
