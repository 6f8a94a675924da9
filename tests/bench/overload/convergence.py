"""After the overload: wait until the system drained, then check that nothing acknowledged
was lost, doubled or miscounted."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import psycopg

from tests.bench.overload.ledger import SYMBOLS, Ledger
from tests.bench.overload.options import Options
from tests.bench.overload.sampler import Sampler
from tests.support.verify import stored_count


def views(api: httpx.Client) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for symbol in SYMBOLS:
        r = api.get(f"/symbols/{symbol}")
        out[symbol] = r.json().get("ticks_total") if r.status_code == 200 else None
    return out


def stored_unknown(pg_url: str, ledger: Ledger) -> Counter[str]:
    """Per symbol, the stored ticks of batches that never got a final answer (legitimately)."""
    if not ledger.unknown:
        return Counter()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT symbol, count(*) FROM md_ticks "
            "WHERE split_part(event_id, '-', 2)::bigint = ANY(%s) GROUP BY symbol",
            (sorted(ledger.unknown),),
        ).fetchall()
    return Counter({s: int(n) for s, n in rows})


def wait_converged(
    api: httpx.Client, pg_url: str, sampler: Sampler, ledger: Ledger, opts: Options
) -> dict[str, Any]:
    """Poll until the backlog is empty (0 ticks by GET /stats and by the hash, no hand-off
    waiting), md_ticks has every acknowledged tick and the views count exactly those; gives up
    at the drain timeout or when nothing moved for the stall timeout."""
    started = last_move = time.monotonic()
    expected = ledger.acked_per_symbol() + stored_unknown(pg_url, ledger)
    want_rows = sum(expected.values())
    last: tuple[Any, ...] | None = None
    while True:
        s = sampler.sample()
        rows = stored_count(pg_url)
        seen = views(api)
        now = time.monotonic()
        if (
            s["backlog_ticks"] == 0
            and s["backlog_ticks_redis"] == 0
            and s["handoffs"] == 0
            and rows == want_rows
            and seen == {k: expected[k] or None for k in SYMBOLS}
        ):
            return {"converged": True, "seconds": now - started, "rows": rows, "views": seen}
        state = (
            s["backlog_ticks_redis"],
            s["handoffs"],
            rows,
            tuple(seen.values()),
            s["calc_ticks"],
            s["rows_written"],
        )
        if state != last:
            last, last_move = state, now
        if now - started > opts.drain_timeout or now - last_move > opts.stall_timeout:
            return {
                "converged": False,
                "seconds": now - started,
                "rows": rows,
                "views": seen,
                "backlog_ticks": s["backlog_ticks"],
                "backlog_ticks_redis": s["backlog_ticks_redis"],
                "handoffs": s["handoffs"],
            }
        time.sleep(0.5)


def verify(api: httpx.Client, pg_url: str, ledger: Ledger) -> dict[str, Any]:
    """Every acknowledged event_id in md_ticks exactly once; views count exactly the acked ticks."""
    with psycopg.connect(pg_url) as conn:
        per_batch = conn.execute(
            "SELECT split_part(event_id, '-', 2)::bigint, count(*), count(DISTINCT event_id) "
            "FROM md_ticks WHERE event_id LIKE %s GROUP BY 1",
            (f"{ledger.run}-%",),
        ).fetchall()
        stored_symbols = dict(
            conn.execute("SELECT symbol, count(*) FROM md_ticks GROUP BY symbol").fetchall()
        )
        foreign = int(
            conn.execute(
                "SELECT count(*) FROM md_ticks WHERE event_id NOT LIKE %s", (f"{ledger.run}-%",)
            ).fetchone()[0]  # type: ignore[index]
        )
    stored = {int(k): (int(n), int(d)) for k, n, d in per_batch}
    missing = duplicated = 0
    for k in ledger.acked:
        n, d = stored.get(k, (0, 0))
        missing += max(0, len(ledger.items(k)) - d)
    unacked = {"unknown": 0, "refused": 0, "failed": 0, "never_sent": 0}
    for k, (n, d) in stored.items():
        duplicated += n - d
        if k in ledger.acked:
            continue
        kind = (
            "unknown"
            if k in ledger.unknown
            else "refused"
            if k in ledger.refused
            else "failed"
            if k in ledger.failed
            else "never_sent"
        )
        unacked[kind] += d
    expected = ledger.acked_per_symbol() + stored_unknown(pg_url, ledger)
    seen = views(api)
    view_rows = {
        s: {"expected": expected[s], "ticks_total": seen[s], "stored": stored_symbols.get(s, 0)}
        for s in SYMBOLS
    }
    views_exact = all(
        (v["ticks_total"] or 0) == v["expected"] == v["stored"] for v in view_rows.values()
    )
    return {
        "acked": ledger.acked_ticks(),
        "stored": sum(n for n, _ in stored.values()) + foreign,
        "missing": missing,
        "duplicated": duplicated,
        "stored_unacked": unacked,
        "foreign_rows": foreign,
        "views": view_rows,
        "views_exact": views_exact,
        "ok": missing == 0 and duplicated == 0 and views_exact,
    }
