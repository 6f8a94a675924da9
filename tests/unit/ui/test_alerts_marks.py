"""What is news for a session (`ui.alerts_marks`): toasts once each, unread counts, rebasing."""

from __future__ import annotations

from tests.unit.ui.alert_samples import live_entry
from ui.alerts_marks import (
    AlertMarks,
    mark_read,
    rebase,
    start_marks,
    to_toast,
    unread_count,
)


# --- toasts and unread ------------------------------------------------------------------------
def test_toasts_only_what_arrived_after_the_session_started_once_each_oldest_first() -> None:
    marks = start_marks(alerts_received=2)
    alerts = [
        live_entry(4, "c"),
        live_entry(3, "b"),
        live_entry(2, "a"),
    ]  # newest first, as the feed gives
    shown, marks = to_toast(alerts, marks)
    assert [f["alert_id"] for f in shown] == ["b", "c"]
    again, marks = to_toast(alerts, marks)
    assert again == []
    # The same alert arriving twice (a re-published event) is toasted once.
    shown, marks = to_toast([live_entry(6, "d"), live_entry(5, "c"), *alerts], marks)
    assert [f["alert_id"] for f in shown] == ["d"]
    assert marks.toasted == ("b", "c", "d")


def test_the_toasted_memory_is_bounded() -> None:
    marks = AlertMarks(baseline=0, read_upto=0, toasted=tuple(str(i) for i in range(1_000)))
    _, marks = to_toast([live_entry(1, "new")], marks)
    assert len(marks.toasted) == 1_000
    assert marks.toasted[-1] == "new" and "0" not in marks.toasted


def test_unread_counts_distinct_firings_since_the_last_look() -> None:
    alerts = [live_entry(5, "e"), live_entry(4, "d"), live_entry(3, "d"), live_entry(2, "b")]
    assert unread_count(alerts, alerts_received=5, read_upto=2) == 2  # d once, e
    assert unread_count(alerts, alerts_received=5, read_upto=5) == 0
    marks = mark_read(start_marks(0), 5)
    assert unread_count(alerts, 5, marks.read_upto) == 0


def test_unread_counts_firings_the_feed_no_longer_holds() -> None:
    # The feed holds seq 101..103 only; the session last looked at seq 10.
    alerts = [live_entry(103, "z"), live_entry(102, "y"), live_entry(101, "x")]
    assert unread_count(alerts, alerts_received=103, read_upto=10) == 3 + 90
    assert unread_count([], alerts_received=7, read_upto=4) == 3


def test_a_restarted_feed_rebases_the_marks() -> None:
    marks = AlertMarks(baseline=50, read_upto=60, toasted=("a",))
    assert rebase(marks, 70) is marks
    assert rebase(marks, 3) == AlertMarks(3, 3, ("a",))
