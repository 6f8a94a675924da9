"""The import's file side, without a database: rows and their line numbers, Parquet typed
columns, the errors file, a dry run that never connects, and the rebuild seam."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.core.history_import import RowError
from tasks.history_import import import_file, read_rows, rebuild_views, write_errors


def test_csv_rows_carry_the_physical_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(
        'symbol,ts,price,volume,source\n'
        'AAA,1,2,3,x\n'
        '\n'
        'BBB,1,2,3,"multi\nline"\n'
        'CCC,1,2\n'
    )  # fmt: skip
    rows = list(read_rows(path, "csv", 10))
    assert [(line, cells["symbol"]) for line, cells in rows] == [(2, "AAA"), (4, "BBB"), (6, "CCC")]
    assert rows[2][1]["volume"] is None  # a short row: the cell is missing, reported as such


def test_parquet_rows_carry_their_row_index_and_typed_cells(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    ts = [datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC)]
    table = pa.table({"Ticker": ["AAA", "BBB"], "time": pa.array(ts, pa.timestamp("ns", "UTC")),
                      "px": [1.5, 2.0], "size": [1, 2], "unused": ["a", "b"]})  # fmt: skip
    pq.write_table(table, path, row_group_size=1)
    rows = list(read_rows(path, "parquet", 1))
    assert [line for line, _ in rows] == [0, 1]
    assert rows[1][1]["price"] == 2.0 and rows[1][1]["ts"] == ts[1]


def test_the_errors_file_is_csv_or_json_lines_by_its_name(tmp_path: Path) -> None:
    errors = [RowError(3, "price", "must be a number, not 'x'")]
    write_errors(tmp_path / "e.jsonl", errors)
    write_errors(tmp_path / "e.csv", errors)
    line = json.loads((tmp_path / "e.jsonl").read_text())
    assert line == {"line": 3, "field": "price", "reason": "must be a number, not 'x'"}
    with (tmp_path / "e.csv").open(newline="") as f:
        assert list(csv.reader(f)) == [
            ["line", "field", "reason"],
            ["3", "price", errors[0].reason],
        ]


def test_a_dry_run_validates_everything_and_never_connects(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("symbol,ts,price,volume\nAAA,1000,1,1\nbad,1000,1,1\nAAA,1000,1,1\n")

    def connect() -> Any:
        raise AssertionError("a dry run must not connect")

    called: list[set[str]] = []
    report = import_file(connect, path, fmt="csv", dry_run=True, after_import=called.append)
    assert (report.rows, report.bad, report.inserted, report.symbols) == (3, 1, 0, {"AAA"})
    assert [(e.line, e.field) for e in report.errors] == [(3, "symbol")]
    assert called == []


def test_without_tasks_rebuild_the_hook_says_how_views_catch_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "tasks.rebuild", None)  # import fails
    rebuild_views({"AAA"})
    assert "python -m tasks.rebuild" in capsys.readouterr().out
