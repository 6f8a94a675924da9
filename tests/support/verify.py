"""The exactly-once verifier: wait for the system to converge, then measure the promise.

Converged means every acknowledged event_id is in PostgreSQL and every symbol's view and 1-minute
candles (read through the API) equal the naive reference computed from the acknowledged set
alone. `duplicated` counts every kind of double: rows stored twice, ticks a view or a candle
counts more than once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import psycopg
from redis import Redis, RedisError

from backend.bus.alert_firings import ALERTS_FIRED
from backend.bus.keys import ALERTS_EVALUATE_QUEUE, Keys
from backend.core.ticks import Tick, parse_ts_us
from backend.settings import Settings
from tests import reference
from tests.support.alerts import (
    AlertsVerdict,
    FiredListener,
    alerts_pending,
    alerts_verdict,
)
from tests.support.load import Tally

EXACT_FIELDS = (
    "last_price", "last_ts", "last_event_id", "last_source", "ticks_total",
    "trades_1m", "high_1m", "low_1m", "open_1m",
)  # fmt: skip
CLOSE_FIELDS = ("sma_10", "vwap_1m", "volume_1m", "change_1m_pct")
MINUTE_US = 60_000_000


class System(Protocol):
    """What the verifier reads: the system's settings and API, and who died on the way."""

    @property
    def settings(self) -> Settings: ...

    @property
    def api_url(self) -> str: ...

    def unexpected_deaths(self) -> list[str]: ...


@dataclass
class Outcome:
    scenario: str
    sent: int
    acked: int
    rejected: int
    stored: int
    missing: int
    duplicated: int
    dead_lettered: int
    converge_s: float | None  # from the last client answer to "all stored, views exact"
    views_exact: bool
    stored_unacked: int = 0  # stored although the client never saw the 200 (answer lost): fine
    rejected_stored: int = 0  # must be 0: a refused tick never reaches storage
    given_up: int = 0
    unexpected_deaths: list[str] = field(default_factory=list)
    view_mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    alerts: AlertsVerdict | None = None  # when the run had alert rules

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.duplicated == 0
            and self.views_exact
            and self.rejected_stored == 0
            and not self.unexpected_deaths
            and self.given_up == 0
            and (self.alerts is None or self.alerts.ok)
        )


def stored_ticks(pg_url: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT event_id, symbol, price, volume, source, seq FROM md_ticks"
        ).fetchall()
    return {row[0]: row for row in rows}


def stored_count(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM md_ticks").fetchone()[0]  # type: ignore[index]


def stored_rows(pg_url: str) -> tuple[dict[str, int], int]:
    """event_id → how many rows, and the total row count."""
    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT event_id, count(*) FROM md_ticks GROUP BY event_id").fetchall()
    counts = {event_id: n for event_id, n in rows}
    return counts, sum(counts.values())


def view_mismatches(
    api_url: str, acked: list[Tick], base: str = "", headers: dict[str, str] | None = None
) -> tuple[list[str], int]:
    """Differences between each symbol's view and the reference; and how many ticks the views
    count beyond the acknowledged set (a tick counted twice). `base`: where the views are (a
    replay's are under `/replays/<id>`)."""
    by_symbol: dict[str, list[Tick]] = {}
    for tick in acked:
        by_symbol.setdefault(tick.symbol, []).append(tick)
    problems: list[str] = []
    overcount = 0
    with httpx.Client(base_url=api_url + base, timeout=10, headers=headers) as client:
        for symbol, ticks in sorted(by_symbol.items()):
            response = client.get(f"/symbols/{symbol}")
            if response.status_code != 200:
                problems.append(f"{symbol}: HTTP {response.status_code}")
                continue
            got = response.json()
            ref = reference.view(ticks)
            overcount += max(0, int(got.get("ticks_total") or 0) - ref["ticks_total"])
            problems += [
                f"{symbol}.{name}: {got.get(name)!r} != {ref[name]!r}"
                for name in EXACT_FIELDS
                if got.get(name) != ref[name]
            ]
            problems += [
                f"{symbol}.{name}: {got.get(name)!r} !~ {ref[name]!r}"
                for name in CLOSE_FIELDS
                if not reference.close(got.get(name), ref[name])
            ]
            expected_gaps = sum(
                len(reference.gaps({t.seq for t in ticks if t.source == s and t.seq is not None}))
                for s in {t.source for t in ticks}
            )
            if got.get("gaps_open") != expected_gaps:
                problems.append(f"{symbol}.gaps_open: {got.get('gaps_open')} != {expected_gaps}")
            last_10 = [e["event_id"] for e in got.get("last_10", [])]
            if last_10 != ref["last_10"]:
                problems.append(f"{symbol}.last_10 differs")
            candle_problems, candle_overcount = candle_mismatches(client, symbol, ticks)
            problems += candle_problems
            overcount += candle_overcount
    return problems, overcount


def candle_mismatches(
    client: httpx.Client, symbol: str, ticks: list[Tick]
) -> tuple[list[str], int]:
    """1-minute candles (Postgres rollups merged with what is still in the outbox) against the
    reference; and how many trades they count beyond it (a rollup applied twice)."""
    response = client.get(
        f"/symbols/{symbol}/candles",
        params={"interval": "1m", "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
    )
    if response.status_code != 200:
        return [f"{symbol} candles: HTTP {response.status_code}"], 0
    expected = reference.candles(ticks, MINUTE_US)
    got = {parse_ts_us(c["ts"]): c for c in response.json()["candles"]}
    problems = []
    overcount = sum(
        max(0, int(c["trades"]) - (expected[b]["trades"] if b in expected else 0))
        for b, c in got.items()
    )
    if sorted(got) != sorted(expected):
        problems.append(f"{symbol} candles: {len(got)} buckets != {len(expected)}")
        return problems, overcount
    for bucket, candle in got.items():
        ref = expected[bucket]
        wrong = [n for n in ("open", "close", "high", "low", "trades") if candle[n] != ref[n]]
        wrong += [n for n in ("volume", "vwap") if not reference.close(candle[n], ref[n])]
        if wrong:
            problems.append(f"{symbol} candle {candle['ts']}: {', '.join(wrong)} differ")
    return problems, overcount


def dead_letter_count(cluster: System) -> int:
    keys = Keys.from_settings(cluster.settings)
    client = Redis.from_url(cluster.settings.effective_redis_url)
    try:
        queues = [cluster.settings.queue_name, "calc.a.done", ALERTS_EVALUATE_QUEUE]
        return sum(int(client.zcard(keys.dead_letters(q))) for q in queues)
    finally:
        client.close()


def alerts_caught_up(cluster: System, listener: FiredListener, symbols: list[str]) -> bool:
    """Every observation evaluated, and (unless the listener had to reconnect) every committed
    firing's event received."""
    client = Redis.from_url(cluster.settings.effective_redis_url)
    try:
        keys = Keys.from_settings(cluster.settings)
        if alerts_pending(client, keys, symbols):
            return False
        committed = int(client.hget(keys.stats, ALERTS_FIRED) or 0)
        return listener.gaps > 0 or len(listener.snapshot()) >= committed
    finally:
        client.close()


def converge(
    cluster: System,
    tally: Tally,
    scenario: str,
    timeout: float,
    since: float,
    alerts: FiredListener | None = None,
) -> Outcome:
    """Poll until converged (or `timeout`), then measure; `since` is when the clients finished.
    With `alerts`, converged also means alert evaluation caught up, and the outcome carries the
    alerts' verdict."""
    acked = tally.acked_ticks()
    acked_ids = set(tally.acked)
    symbols = sorted({t.symbol for t in acked})
    converged_at: float | None = None
    deadline = time.monotonic() + timeout
    while True:
        try:
            counts, _ = stored_rows(cluster.settings.pg_url)
            missing_now = len(acked_ids - counts.keys())
            problems, _ = view_mismatches(cluster.api_url, acked) if not missing_now else ([1], 0)
            if not missing_now and not problems and alerts is not None:
                problems = [] if alerts_caught_up(cluster, alerts, symbols) else ["alerts"]
        except (psycopg.Error, httpx.HTTPError, RedisError):
            missing_now, problems = 1, ["unreachable"]
        if not missing_now and not problems:
            converged_at = time.monotonic()
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    counts, total = stored_rows(cluster.settings.pg_url)
    problems, overcount = view_mismatches(cluster.api_url, acked)
    stored_acked = acked_ids & counts.keys()
    return Outcome(
        scenario=scenario,
        sent=tally.sent,
        acked=len(acked_ids),
        rejected=len(tally.rejected),
        stored=len(stored_acked),
        missing=len(acked_ids - counts.keys()),
        duplicated=(total - len(counts)) + overcount,
        dead_lettered=dead_letter_count(cluster),
        converge_s=None if converged_at is None else converged_at - since,
        views_exact=not problems,
        stored_unacked=len(counts.keys() - acked_ids - tally.rejected),
        rejected_stored=len(tally.rejected & counts.keys()),
        given_up=len(tally.given_up),
        unexpected_deaths=cluster.unexpected_deaths(),
        view_mismatches=problems[:10],
        answers=dict(tally.answers),
        alerts=None if alerts is None else _alerts_verdict(cluster, alerts, tally),
    )


def _alerts_verdict(cluster: System, listener: FiredListener, tally: Tally) -> AlertsVerdict:
    client = Redis.from_url(cluster.settings.effective_redis_url)
    try:
        return alerts_verdict(client, cluster.settings, listener, tally.acked)
    finally:
        client.close()


def format_table(outcomes: list[Outcome]) -> str:
    head = (
        f"{'scenario':<26}{'sent':>8}{'acked':>8}{'rejected':>9}{'stored':>8}{'missing':>8}"
        f"{'dup':>6}{'dead':>6}{'converge':>10}  result"
    )
    lines = [
        "converge: from the clients' last answer until every acknowledged tick is stored and every"
        " view and candle equals the reference",
        head,
        "-" * len(head),
    ]
    for o in outcomes:
        converge_text = "never" if o.converge_s is None else f"{o.converge_s:.1f} s"
        lines.append(
            f"{o.scenario:<26}{o.sent:>8}{o.acked:>8}{o.rejected:>9}{o.stored:>8}{o.missing:>8}"
            f"{o.duplicated:>6}{o.dead_lettered:>6}{converge_text:>10}  "
            + ("ok" if o.ok else "FAILED")
        )
    for o in outcomes:
        details = list(o.notes)
        if o.stored_unacked:
            details.append(f"{o.stored_unacked} stored whose 200 the client never saw (retried)")
        if o.unexpected_deaths:
            details.append("unexpected deaths: " + "; ".join(o.unexpected_deaths))
        if o.view_mismatches:
            details.append("view mismatches: " + "; ".join(o.view_mismatches))
        if o.rejected_stored:
            details.append(f"{o.rejected_stored} refused ticks stored!")
        if o.given_up:
            details.append(f"{o.given_up} ticks never acknowledged (client gave up)")
        if o.alerts is not None:
            details.append(("" if o.alerts.ok else "FAILED ") + o.alerts.text())
        if details:
            lines.append(f"  {o.scenario}: " + " · ".join(details))
    return "\n".join(lines)


def as_dict(outcome: Outcome) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(outcome) | {"ok": outcome.ok}
