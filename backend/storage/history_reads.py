"""Stored ticks read back in event order, for replays (and anything else that re-runs history).

One server-side cursor per symbol, each walking `ix_md_ticks_symbol_ts` in (ts, event_id) order,
merged in Python: PostgreSQL cannot return `symbol = ANY(...)` in (ts, event_id) order from that
index without sorting every matching row first, and a sort of ten million rows is neither fast to
start nor flat in memory. Each cursor holds `fetch` rows at a time, so memory is
O(symbols x fetch) whatever the range. Timestamps are converted to µs here, not in SQL: an
`EXTRACT(EPOCH ...)` per row made PostgreSQL's backend (which runs at normal priority) do ~40 %
of a replay's work; in the replaying process it runs at `REPLAY_NICE`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from backend.core.ticks import Tick, datetime_to_us, us_to_datetime

_SELECT = (
    "SELECT event_id, symbol, ts, price, volume, source, seq, received_at FROM md_ticks "
    "WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s{after} ORDER BY ts, event_id"
)
_AFTER = " AND (ts, event_id) > (%(after_ts)s, %(after_eid)s)"


def count_ticks(
    conn: psycopg.Connection[Any], symbols: Sequence[str], from_us: int, to_us: int
) -> int:
    """Stored ticks of `symbols` with from <= ts < to."""
    row = conn.execute(
        "SELECT count(*) FROM md_ticks WHERE symbol = ANY(%s) AND ts >= %s AND ts < %s",
        (list(symbols), us_to_datetime(from_us), us_to_datetime(to_us)),
    ).fetchone()
    return int(row[0]) if row else 0


def ticks_after(
    conn: psycopg.Connection[Any],
    symbols: Sequence[str],
    from_us: int,
    to_us: int,
    after: tuple[int, str] | None,
    fetch: int = 5_000,
) -> Iterator[Tick]:
    """The stored ticks of `symbols` with from <= ts < to and (ts, event_id) > `after`, in
    (ts, event_id) order. Runs inside the caller's transaction (named cursors need one)."""
    params: dict[str, Any] = {"lo": us_to_datetime(from_us), "hi": us_to_datetime(to_us)}
    if after is not None:
        params |= {"after_ts": us_to_datetime(after[0]), "after_eid": after[1]}
    sql = _SELECT.format(after=_AFTER if after is not None else "")
    streams = [
        _symbol_ticks(conn, f"history_{i}", sql, params | {"symbol": symbol}, fetch)
        for i, symbol in enumerate(sorted(set(symbols)))
    ]
    yield from heapq.merge(*streams, key=lambda t: (t.ts_us, t.event_id))


def _symbol_ticks(
    conn: psycopg.Connection[Any], name: str, sql: str, params: dict[str, Any], fetch: int
) -> Iterator[Tick]:
    with conn.cursor(name=name) as cur:
        cur.itersize = fetch
        cur.execute(sql, params)
        while rows := cur.fetchmany(fetch):
            for event_id, symbol, ts, price, volume, source, seq, received in rows:
                yield Tick(
                    event_id, symbol, datetime_to_us(ts), price, volume, source, seq,
                    datetime_to_us(received),
                )  # fmt: skip
