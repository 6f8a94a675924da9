"""The Feeder page's controls: the config form (one Apply → one PUT) and the burst buttons.

They sit outside the live fragment, in one `st.form`, so the one-second refresh never resets what
the user is typing; the form is built from the config the session remembers (`form_state`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend.core.feeder_config import MAX_TPS
from backend.settings import UiSettings
from ui.feeder_page.actions import apply_form, cancel_burst, reload_form, start_burst
from ui.feeder_page.form_state import BASE_KEY, GEN_KEY, ensure_base, show_flash, widget_key
from ui.feeder_panel import (
    MODES,
    RATE_FIELDS,
    normalize_names,
    percent_from_rate,
    tps_slider_max,
)

RATE_LABELS = {
    "duplicate_rate": ("Duplicates", "Resend the same tick (same event_id)"),
    "out_of_order_rate": ("Out of order", "Hold a tick back and send it later"),
    "gap_rate": ("Gaps", "Skip a sequence number"),
    "bad_tick_rate": ("Bad ticks", "Send a malformed tick (expected 4xx, never retried)"),
}


def render_controls(settings: UiSettings) -> None:
    """The form (one Apply → one PUT) and the burst buttons; outside the live fragment."""
    show_flash()
    error = ensure_base(settings)
    base: dict[str, Any] | None = st.session_state.get(BASE_KEY)
    if base is None:
        st.warning(
            f"Feeder controls unavailable: {error} They appear as soon as the backend answers.",
            icon="⚠️",
        )
        return
    generation = st.session_state.setdefault(GEN_KEY, 0)

    def key(name: str) -> str:
        return widget_key(generation, name)

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
            on_click=apply_form,
            args=(settings, generation),
        )
    caption, reload = st.columns([4, 1], vertical_alignment="center")
    caption.caption(
        f"Editing config v{base.get('version')}. Apply sends only the fields you changed."
    )
    reload.button("Reload form", key="feeder_reload", on_click=reload_form, args=(settings,))

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
        "Market open", key="feeder_burst_start", on_click=start_burst, args=(settings,),
        type="primary",
    )  # fmt: skip
    cancel.button(
        "Cancel burst", key="feeder_burst_cancel", on_click=cancel_burst, args=(settings,)
    )
