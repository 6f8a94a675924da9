"""The Symbol page's metric cards: the view W, twice a second, live feed first.

The live feed's view is the newest there is (the gateway's snapshot and stream, in ring order);
the REST view only stands in while the feed has none for the symbol (it is still connecting).
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from backend.settings import UiSettings
from ui.banners import feed_banner
from ui.resources import get_live_feed
from ui.symbol_page.fallback import last_good
from ui.symbol_page.fetch import fetch_view
from ui.symbol_page.logic import source_caption
from ui.symbol_view import stale_reason, view_metrics

METRICS_EVERY_S = 0.5


@st.fragment(run_every=METRICS_EVERY_S)
def live_metrics(settings: UiSettings, symbol: str) -> None:
    """W as metric cards: the process's live feed's view, else the cached REST one."""
    now = datetime.now(UTC)
    snap = get_live_feed(settings).snapshot()
    result = fetch_view(settings, symbol)
    rest = last_good("view", (symbol,), result)
    if result.error is not None:
        st.warning(
            f"Backend unavailable: {result.error} Showing live updates only; retrying…", icon="⚠️"
        )
    feed_banner(snap)
    view = snap.views.get(symbol) or (rest.data if rest is not None else None)
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
    st.caption(source_caption(view))
