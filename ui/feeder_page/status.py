"""The Feeder page's live status: the config badges and the per-feeder table with its totals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from ui.feeder_page.logic import config_badges, drift_note, total_row
from ui.feeder_panel import STATUS_COLUMNS, status_rows, status_totals
from ui.table_columns import counts

STATUS_COLUMN_CONFIG = {
    "feeder_id": st.column_config.TextColumn("Feeder", pinned=True),
    "status": st.column_config.TextColumn("Status", help="Alive = reported within 5 s"),
    **counts(
        sent="Sent",
        accepted="Accepted",
        duplicates="Duplicates",
        conflicts="Conflicts",
        rejected="Rejected",
        retries="Retries",
        dropped="Dropped",
        buffered="Buffered",
    ),
    "target_tps": st.column_config.NumberColumn("Target TPS", format="%.1f"),
    "achieved_tps": st.column_config.NumberColumn("Achieved TPS", format="%.1f"),
    "config_version": st.column_config.TextColumn("Config", help="Config version it runs"),
    "report_age_s": st.column_config.NumberColumn("Last report", format="%.1f s"),
    "last_error": st.column_config.TextColumn("Last error"),
}


def config_line(config: dict[str, Any], base: dict[str, Any] | None, now: datetime) -> None:
    """The live config as badges, and a note when it moved away from the form's."""
    st.markdown(" ".join(config_badges(config, now)))
    note = drift_note(base, config)
    if note is not None:
        st.caption(note)


def render_status(feeders: list[dict[str, Any]], now: datetime) -> dict[str, float]:
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
        rows.append(total_row(totals))
    frame = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    st.dataframe(frame, column_config=STATUS_COLUMN_CONFIG, hide_index=True)
    return totals
