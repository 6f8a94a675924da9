"""Symbol page: one symbol in depth — live candles, its view W, recent ticks, sequence gaps.

The controls live outside fragments; symbol, interval, range and SMA period are mirrored in the
URL (`?symbol=BTCUSDT&interval=1m&range=1h&sma=20`), so a view can be shared and the Live page
can link here. Everything that moves refreshes in its own `st.fragment`, never the
whole page: the metrics twice a second (live feed first, REST catch-up merged in), the chart
every 2 s, gaps and history every 3 s. REST reads are cached for a second or two and shared by
all sessions, so N analysts do not multiply the backend's load. A failed read keeps showing the
last good data of this session under a banner that says how old it is, and retries by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from backend.config import Settings
from ui.api_client import BackendError
from ui.banners import feed_banner
from ui.charts import candlestick_figure, empty_figure
from ui.resources import (
    backend_key,
    current_settings,
    fetch_rest_snapshot,
    get_backend_client,
    get_live_feed,
)
from ui.symbol_view import (
    CLOSED_GAP_COLUMNS,
    DEFAULT_HISTORY,
    DEFAULT_INTERVAL,
    DEFAULT_RANGE,
    DEFAULT_SMA,
    HISTORY_MAX,
    HISTORY_MIN,
    INTERVALS,
    OPEN_GAP_COLUMNS,
    RANGES_S,
    SMA_MAX,
    SMA_MIN,
    Fetched,
    candle_limit,
    choose,
    clamp_int,
    csv_filename,
    gap_rows,
    history_csv,
    history_frame,
    missing_total,
    normalize_symbol,
    price_format,
    range_note,
    stale_reason,
    symbol_options,
    view_metrics,
)
from ui.watchlist import merge_views

METRICS_EVERY_S = 0.5
CHART_EVERY_S = 2.0
TABLES_EVERY_S = 3.0
VIEW_TTL_S = 0.5  # the live feed carries the fast path; REST only catches up
CANDLES_TTL_S = 1.5
TABLES_TTL_S = 2.0
LAST_GOOD_KEY = "symbol_page_last_good"
CHART_PAUSE_KEY = "symbol_chart_paused"
CHART_FROZEN_KEY = "symbol_chart_frozen"  # (controls, figure, caption) last drawn, for the pause
CHART_CONFIG = {"displaylogo": False, "scrollZoom": True}


# --- cached REST reads (shared by every session of this process) ---------------------------
Raw = tuple[datetime, Any, str | None]  # (fetched_at, data, error): what the cache stores


def _fetch(call: Callable[[], Any]) -> Raw:
    """The answer, or the error as a sentence: failures are cached too, so a dead backend costs
    one attempt per TTL instead of one per session per refresh.

    Only builtins go into the cache: it pickles values, and an instance of one of our classes
    stops being picklable when Streamlit's file watcher reloads its module under a fragment.
    """
    now = datetime.now(UTC)
    try:
        return (now, call(), None)
    except BackendError as exc:
        return (now, None, exc.message)


_CACHE = {"show_spinner": False, "max_entries": 512, "hash_funcs": {Settings: backend_key}}


@st.cache_data(ttl=VIEW_TTL_S, **_CACHE)
def _cached_view(settings: Settings, symbol: str) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_view(symbol))


@st.cache_data(ttl=CANDLES_TTL_S, **_CACHE)
def _cached_candles(settings: Settings, symbol: str, interval: str, limit: int) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_candles(symbol, interval, limit=limit))


@st.cache_data(ttl=TABLES_TTL_S, **_CACHE)
def _cached_history(settings: Settings, symbol: str, limit: int) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_history(symbol, limit=limit))


@st.cache_data(ttl=TABLES_TTL_S, **_CACHE)
def _cached_gaps(settings: Settings, symbol: str) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_gaps(symbol))


def fetch_view(settings: Settings, symbol: str) -> Fetched:
    """`GET /symbols/{symbol}`: W, or `data=None` when the backend has no ticks for it."""
    return Fetched(*_cached_view(settings, symbol))


def fetch_candles(settings: Settings, symbol: str, interval: str, limit: int) -> Fetched:
    """`GET /symbols/{symbol}/candles`, the current bucket included."""
    return Fetched(*_cached_candles(settings, symbol, interval, limit))


def fetch_history(settings: Settings, symbol: str, limit: int) -> Fetched:
    """`GET /symbols/{symbol}/history?limit=N`, newest first."""
    return Fetched(*_cached_history(settings, symbol, limit))


def fetch_gaps(settings: Settings, symbol: str) -> Fetched:
    """`GET /symbols/{symbol}/gaps`: open and recently closed sequence gaps."""
    return Fetched(*_cached_gaps(settings, symbol))


# --- small rendering helpers --------------------------------------------------------------
def _clock(when: datetime | None) -> str:
    return "—" if when is None else f"{when.astimezone(UTC):%H:%M:%S} UTC"


def _last_good(slot: str, key: tuple[Any, ...], result: Fetched) -> Fetched | None:
    """This session's newest successful read of `slot` for `key`: a blip must not blank a panel."""
    store: dict[str, tuple[tuple[Any, ...], Fetched]] = st.session_state.setdefault(
        LAST_GOOD_KEY, {}
    )
    if result.error is None:
        store[slot] = (key, result)
        return result
    held = store.get(slot)
    return held[1] if held is not None and held[0] == key else None


def _failure_banner(
    what: str, result: Fetched, shown: Fetched | None, headline_error: str | None
) -> None:
    """Say what failed and how old the data on screen is (honest about staleness).

    When the cause is the one the metrics banner already shows (backend unreachable), a quiet
    caption is enough: one loud banner per outage keeps the page calm.
    """
    if result.error is None:
        return
    age = f"showing data from {_clock(shown.fetched_at)}" if shown is not None else "no data yet"
    if result.error == headline_error:
        st.caption(f":material/cloud_off: {what} paused while the backend is unavailable; {age}.")
    else:
        st.warning(f"{what} not updated: {result.error} ({age}; retrying…)", icon="⚠️")


def _sync_query_params(values: dict[str, str]) -> None:
    """Write the controls back to the URL (only what changed), so it can be shared."""
    for name, value in values.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value


# --- live fragments -----------------------------------------------------------------------
@st.fragment(run_every=METRICS_EVERY_S)
def live_metrics(settings: Settings, symbol: str) -> None:
    """W as metric cards: the process's live feed first, the cached REST view merged in."""
    now = datetime.now(UTC)
    snap = get_live_feed(settings).snapshot()
    result = fetch_view(settings, symbol)
    rest = _last_good("view", (symbol,), result)
    if result.error is not None:
        st.warning(
            f"Backend unavailable: {result.error} Showing live updates only; retrying…", icon="⚠️"
        )
    feed_banner(snap)
    rest_views = {symbol: rest.data} if rest is not None else {}
    view = merge_views(rest_views, {symbol: snap.views.get(symbol)}).get(symbol)
    if view is None:
        if result.error is None:
            st.info(
                f"No ticks seen for **{symbol}** yet. Pick another symbol above, or keep this page"
                " open: it fills in as soon as ticks arrive.",
                icon="🔎",
            )
        else:
            st.info("Waiting for data…", icon="⏳")
        return

    reason = stale_reason(view, now, settings.stale_after)
    if reason is not None:
        st.badge(f"Stale: {reason}", icon=":material/warning:", color="orange")
    else:
        st.badge("Live", icon=":material/bolt:", color="green")
    cards = view_metrics(view, now)
    for start in range(0, len(cards), 4):
        for column, card in zip(st.columns(4), cards[start : start + 4], strict=False):
            column.metric(card.label, card.value, card.delta, help=card.help, border=True)
    source = view.last_source or "?"
    st.caption(
        f"Last tick from {source} · event time {view.last_ts or '—'}"
        f" · view computed {view.updated_at or '—'}"
    )


@st.fragment(run_every=CHART_EVERY_S)
def live_chart(
    settings: Settings, symbol: str, interval: str, range_key: str, sma_period: int
) -> None:
    """Candles + SMA + VWAP + volume, redrawn every couple of seconds unless paused.

    Streamlit 1.67 remounts a Plotly chart whose figure changed, so `uirevision` alone cannot keep
    a zoom across live refreshes; pausing re-sends the very figure last drawn, which keeps the
    chart mounted and the analyst's zoom and pan with it.
    """
    paused = st.toggle(
        "Pause chart",
        key=CHART_PAUSE_KEY,
        help="Freeze the chart to zoom and pan at leisure; metrics and tables stay live.",
    )
    identity = (symbol, interval, range_key, sma_period)
    frozen = st.session_state.get(CHART_FROZEN_KEY)
    if paused and frozen is not None and frozen[0] == identity:
        st.plotly_chart(frozen[1], key="symbol_chart", config=CHART_CONFIG)
        st.caption(f"{frozen[2]} · paused")
        return
    limit = candle_limit(range_key, interval)
    # sma_period − 1 extra candles, so the SMA is defined from the first candle on screen.
    result = fetch_candles(settings, symbol, interval, limit + sma_period - 1)
    shown = _last_good("candles", (symbol, interval), result)
    _failure_banner("Chart", result, shown, fetch_view(settings, symbol).error)
    if shown is None:
        figure = empty_figure(symbol, interval, "Waiting for the backend…")
    else:
        figure = candlestick_figure(
            shown.data.candles,
            symbol=symbol,
            interval=interval,
            sma_period=sma_period,
            max_candles=limit,
        )
    st.plotly_chart(figure, key="symbol_chart", config=CHART_CONFIG)
    notes = []
    if shown is not None:
        count = min(len(shown.data.candles), limit)
        notes.append(f"{count} {interval} candle{'' if count == 1 else 's'}")
        pending = shown.data.live.pending_ticks_included
        if pending:
            notes.append(f"includes {pending} live tick(s) not yet in Postgres")
        notes.append(f"updated {_clock(shown.fetched_at)}")
    note = range_note(range_key, interval)
    if note:
        notes.append(note)
    caption = " · ".join(notes)
    if caption:
        st.caption(caption)
    st.session_state[CHART_FROZEN_KEY] = (identity, figure, caption)


@st.fragment(run_every=TABLES_EVERY_S)
def live_gaps(settings: Settings, symbol: str) -> None:
    """Open gaps first and loud; recently closed ones below, quieter."""
    known = fetch_view(settings, symbol)
    if known.error is None and known.data is None:
        st.caption(f"No gap data: no ticks seen for {symbol} yet.")
        return
    result = fetch_gaps(settings, symbol)
    shown = _last_good("gaps", (symbol,), result)
    _failure_banner("Gaps", result, shown, known.error)
    if shown is None:
        return
    open_rows, closed_rows = gap_rows(shown.data, datetime.now(UTC))
    config = {
        "source": st.column_config.TextColumn("Source"),
        "from_seq": st.column_config.NumberColumn("From seq", format="%d"),
        "to_seq": st.column_config.NumberColumn("To seq", format="%d"),
        "missing": st.column_config.NumberColumn("Missing", format="%d"),
        "detected_at": st.column_config.DatetimeColumn("Detected (UTC)", format="HH:mm:ss.SSS"),
        "closed_at": st.column_config.DatetimeColumn("Closed (UTC)", format="HH:mm:ss.SSS"),
        "open_for": st.column_config.TextColumn("Open for"),
        "lasted": st.column_config.TextColumn("Lasted"),
    }
    if open_rows:
        count, missing = len(open_rows), missing_total(open_rows)
        st.error(
            f"{count} open sequence gap{'' if count == 1 else 's'}:"
            f" {missing} tick{'' if missing == 1 else 's'} missing",
            icon="🕳️",
        )
        st.dataframe(
            pd.DataFrame(open_rows, columns=list(OPEN_GAP_COLUMNS)),
            column_config=config,
            hide_index=True,
        )
    else:
        st.success("No open sequence gaps.", icon="✅")
    if closed_rows:
        st.caption("Recently closed")
        st.dataframe(
            pd.DataFrame(closed_rows, columns=list(CLOSED_GAP_COLUMNS)),
            column_config=config,
            hide_index=True,
        )


@st.fragment(run_every=TABLES_EVERY_S)
def live_history(settings: Settings, symbol: str, limit: int) -> None:
    """The last `limit` stored ticks, newest first, with a CSV download of exactly those rows."""
    result = fetch_history(settings, symbol, limit)
    shown = _last_good("history", (symbol, limit), result)
    _failure_banner("History", result, shown, fetch_view(settings, symbol).error)
    if shown is None:
        return
    frame = history_frame(shown.data)
    if frame.empty:
        st.info(f"No stored ticks for {symbol} yet.", icon="⏳")
        return
    st.download_button(
        "Download CSV",
        data=lambda: history_csv(frame),  # built on click, not on every refresh
        file_name=csv_filename(symbol, shown.fetched_at),
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="history_csv",  # a stable identity: the file name changes with every refresh
    )
    st.dataframe(
        frame,
        column_config={
            "ts": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
            "price": st.column_config.NumberColumn(
                "Price", format=price_format(frame["price"].iloc[0])
            ),
            "volume": st.column_config.NumberColumn("Volume"),
            "source": st.column_config.TextColumn("Source"),
            "seq": st.column_config.NumberColumn("Seq", format="%d"),
            "event_id": st.column_config.TextColumn("Event id"),
            "received_at": st.column_config.DatetimeColumn("Received (UTC)", format="HH:mm:ss.SSS"),
        },
        hide_index=True,
    )
    st.caption(
        f"{len(frame)} tick{'' if len(frame) == 1 else 's'} · updated {_clock(shown.fetched_at)}"
    )


@st.fragment(run_every=CHART_EVERY_S)
def wait_for_symbols(settings: Settings) -> None:
    """With nothing to pick yet, poll and rerun the page once: it recovers by itself."""
    rest = fetch_rest_snapshot(settings)
    if rest.views or get_live_feed(settings).snapshot().views:
        st.rerun(scope="app")
    if rest.error:
        st.warning(f"Backend unavailable: {rest.error} Retrying…", icon="⚠️")
    else:
        st.info("No symbols yet: waiting for the first ticks…", icon="⏳")


# --- the page -----------------------------------------------------------------------------
def main() -> None:
    """Controls (outside fragments, mirrored in the URL), then the live panels."""
    settings = current_settings()
    st.title("Symbol")

    raw_symbol = st.query_params.get("symbol")
    requested = normalize_symbol(raw_symbol)
    if raw_symbol and requested is None:
        st.warning(f"“{raw_symbol}” is not a symbol name; pick one below.", icon="⚠️")
    rest = fetch_rest_snapshot(settings)
    live_symbols = get_live_feed(settings).snapshot().views
    options = symbol_options([*rest.views, *live_symbols], requested)
    if not options:
        wait_for_symbols(settings)
        return

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
    _sync_query_params(
        {"symbol": symbol, "interval": interval, "range": range_key, "sma": str(sma_period)}
    )

    live_metrics(settings, symbol)
    live_chart(settings, symbol, interval, range_key, sma_period)

    gaps_col, history_col = st.columns([2, 3])
    with gaps_col:
        st.subheader("Sequence gaps")
        live_gaps(settings, symbol)
    with history_col:
        st.subheader("Recent ticks")
        limit = int(
            st.number_input(
                "Ticks to show",
                min_value=HISTORY_MIN,
                max_value=HISTORY_MAX,
                value=DEFAULT_HISTORY,
                step=100,
                key="history_limit",
            )
            or DEFAULT_HISTORY
        )
        live_history(settings, symbol, limit)


main()
