"""Pure logic of the Symbol page's Streamlit parts: the captions and messages its panels show.
Kept apart from `st.*` so unit tests can call it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from backend.core.view import View
from ui.symbol_view import Fetched, missing_total, range_note


def clock(when: datetime | None) -> str:
    return "—" if when is None else f"{when.astimezone(UTC):%H:%M:%S} UTC"


def source_caption(view: View) -> str:
    """Where the view's last tick came from, and when it happened and was computed."""
    source = view.last_source or "?"
    return (
        f"Last tick from {source} · event time {view.last_ts or '—'}"
        f" · view computed {view.updated_at or '—'}"
    )


def chart_caption(shown: Fetched | None, interval: str, range_key: str, limit: int) -> str:
    """What the chart shows: how many candles, live ticks not yet stored, when, and the range's
    note (empty when there is nothing to say)."""
    notes = []
    if shown is not None:
        count = min(len(shown.data.candles), limit)
        notes.append(f"{count} {interval} candle{'' if count == 1 else 's'}")
        pending = shown.data.live.pending_ticks_included
        if pending:
            notes.append(f"includes {pending} live tick(s) not yet in Postgres")
        notes.append(f"updated {clock(shown.fetched_at)}")
    note = range_note(range_key, interval)
    if note:
        notes.append(note)
    return " · ".join(notes)


def open_gaps_message(open_rows: Sequence[Mapping[str, Any]]) -> str:
    """The headline over the open gaps: how many, and how many ticks they miss."""
    count, missing = len(open_rows), missing_total(open_rows)
    return (
        f"{count} open sequence gap{'' if count == 1 else 's'}:"
        f" {missing} tick{'' if missing == 1 else 's'} missing"
    )


def history_caption(rows: int, fetched_at: datetime) -> str:
    return f"{rows} tick{'' if rows == 1 else 's'} · updated {clock(fetched_at)}"
