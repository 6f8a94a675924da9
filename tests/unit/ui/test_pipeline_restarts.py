"""The Processes part's formatting, from `/stats` answers shaped as the API writes them."""

from __future__ import annotations

from backend.core.processes import ProcessRestarts
from ui.pipeline_restarts import (
    ProcessRow,
    format_ago,
    format_exit,
    process_rows,
    processes_caption,
)

NOW_MS = 1_800_000_000_000


def stats(**processes: ProcessRestarts | dict) -> dict:
    """A /stats body's `processes`, serialised as the API does."""
    return {
        "processes": {
            name: p.model_dump() if isinstance(p, ProcessRestarts) else p
            for name, p in processes.items()
        }
    }


def test_rows_show_count_last_exit_and_when_sorted_by_name() -> None:
    body = stats(
        worker=ProcessRestarts(count=3, last_exit_code=-9, last_restart_ms=NOW_MS - 42_000),
        api=ProcessRestarts(count=1, last_exit_code=1, last_restart_ms=NOW_MS - 180_000),
    )
    assert process_rows(body, NOW_MS) == [
        ProcessRow("api", 1, "exit 1", "3 min ago"),
        ProcessRow("worker", 3, "SIGKILL", "42 s ago"),
    ]
    assert process_rows(body, NOW_MS)[1].note == "last: SIGKILL · 42 s ago"
    assert processes_caption(process_rows(body, NOW_MS)).startswith("4 restarts by")


def test_no_counter_is_no_rows_and_says_so() -> None:
    assert process_rows({}, NOW_MS) == []
    assert process_rows(None, NOW_MS) == []
    assert process_rows({"processes": []}, NOW_MS) == []
    assert processes_caption([]).startswith("No process has been restarted")


def test_a_malformed_entry_is_left_out() -> None:
    body = stats(
        ui={"count": "many"},
        feeder=ProcessRestarts(count=1, last_exit_code=None, last_restart_ms=None),
    )
    assert process_rows(body, NOW_MS) == [ProcessRow("feeder", 1, "—", "—")]


def test_exits_and_ages() -> None:
    assert [format_exit(c) for c in (None, 0, 3, -15, -200)] == [
        "—",
        "exit 0",
        "exit 3",
        "SIGTERM",
        "signal 200",
    ]
    assert format_ago(NOW_MS + 5, NOW_MS) == "0 s ago"  # a launcher clock slightly ahead
    assert format_ago(NOW_MS - 7_200_000, NOW_MS) == "2.0 h ago"
    assert format_ago(NOW_MS - 3 * 86_400_000, NOW_MS) == "3.0 d ago"
    assert ProcessRow("api", 0, "—", "—").note is None
