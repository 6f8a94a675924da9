"""The rules-scaling benchmark runs end to end on a small stream, and its two evaluators agree."""

from __future__ import annotations

from tests.bench.alerts_rules import main


def test_rules_that_never_fire_add_no_checks() -> None:
    report = main(["--symbols", "10", "--rate", "2000", "--seconds", "2", "--rules",
                   "0,100,1000", "--repeat", "1"])  # fmt: skip
    rows = {(r["rules"], r["near"]): r for r in report["rows"]}
    assert set(rows) == {(0, 0), (100, 100), (1000, 1000), (1000, 100)}
    assert rows[(0, 0)]["firings"] == 0 and rows[(100, 100)]["firings"] > 0
    # 900 far rules on top of 100 near ones: the same checks per tick, the naive one 10x more.
    assert (
        rows[(1000, 100)]["indexed_checked_per_tick"]
        == rows[(100, 100)]["indexed_checked_per_tick"]
    )
    assert (
        rows[(1000, 100)]["naive_checked_per_tick"] > 5 * rows[(100, 100)]["naive_checked_per_tick"]
    )
