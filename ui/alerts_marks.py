"""Which alerts are news for one Streamlit session: the feed's firings it has not toasted yet
and the count it has not read. Pure (no Streamlit), unit-tested.

Firings reach a session live, as `alert.fired` events the process's `LiveFeed` holds, numbered
in arrival order; a session remembers marks against that count (`AlertMarks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TOASTED_KEEP = 1_000  # alert ids a session remembers having toasted


# --- what is new, what is unread --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertMarks:
    """What a session remembers about the feed's alerts (kept in its session state).

    `baseline`: the feed's alert count when the session started (older firings are history, not
    news); `read_upto`: the count when the session last looked at the Alerts page; `toasted`: the
    ids already toasted, oldest first, bounded.
    """

    baseline: int
    read_upto: int
    toasted: tuple[str, ...] = ()


def start_marks(alerts_received: int) -> AlertMarks:
    return AlertMarks(baseline=alerts_received, read_upto=alerts_received)


def rebase(marks: AlertMarks, alerts_received: int) -> AlertMarks:
    """A feed that restarted counts from 0 again: marks beyond its count start over at it."""
    if alerts_received >= marks.baseline and alerts_received >= marks.read_upto:
        return marks
    return AlertMarks(alerts_received, alerts_received, marks.toasted)


def to_toast(
    alerts: Sequence[Mapping[str, Any]], marks: AlertMarks
) -> tuple[list[Mapping[str, Any]], AlertMarks]:
    """The firings to toast now, oldest first, and the marks with them remembered.

    `alerts` is the feed's list, newest first. A firing is toasted once per session (by
    `alert_id`, however often it arrives) and only when it arrived after the session started.
    """
    seen = set(marks.toasted)
    fresh: list[Mapping[str, Any]] = []
    for entry in reversed(alerts):
        alert_id = entry["firing"]["alert_id"]
        if entry["seq"] <= marks.baseline or alert_id in seen:
            continue
        seen.add(alert_id)
        fresh.append(entry["firing"])
    if not fresh:
        return [], marks
    toasted = (*marks.toasted, *(f["alert_id"] for f in fresh))[-TOASTED_KEEP:]
    return fresh, AlertMarks(marks.baseline, marks.read_upto, toasted)


def unread_count(alerts: Sequence[Mapping[str, Any]], alerts_received: int, read_upto: int) -> int:
    """Firings that arrived after `read_upto` (distinct ids), plus those the feed already let
    go of (it keeps the newest few hundred): a busy day still counts right."""
    held = [entry for entry in alerts if entry["seq"] > read_upto]
    ids = {entry["firing"]["alert_id"] for entry in held}
    oldest_held = min((entry["seq"] for entry in alerts), default=alerts_received + 1)
    dropped = max(0, min(oldest_held - 1, alerts_received) - read_upto)
    return len(ids) + dropped


def mark_read(marks: AlertMarks, alerts_received: int) -> AlertMarks:
    return AlertMarks(marks.baseline, alerts_received, marks.toasted)


def unread_label(count: int) -> str:
    return f"{count:,} unread alert{'' if count == 1 else 's'}"
