"""The printed report: the run's figures line by line, then memory per process."""

from __future__ import annotations

from typing import Any

from tests.bench.text import table

MB = 1024 * 1024


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f}"


def render(report: dict[str, Any]) -> str:
    p, s, o, b = report["params"], report["sustainable"], report["overload"], report["backlog"]
    d, c = report["drain"], report["correctness"]
    secs = o["seconds"]
    errors = ", ".join(f"{k} x{v}" for k, v in o["errors"].items()) or "none"
    lines = [
        f"Overload: {p['multiple']:g} x the sustainable rate for {p['seconds']:g} s; batches of "
        f"{p['batch']}, {p['senders']} senders; API 1 process, worker --processes "
        f"{p['worker_processes']} --threads {p['worker_threads']}; "
        f"{report['machine']['cpus']} CPUs",
        f"sustainable rate   {s['tps']:>10,.0f} ticks/s  ({s['source']}: {s['definition']})",
        *(
            [
                f"  measured as      accepted {s['accept_tps']:,.0f}/s, "
                f"calc {s['calc_tps']:,.0f}/s,"
                f" Postgres {s['persist_tps']:,.0f}/s (when the workers keep up, all three are the "
                "API's accept rate)"
            ]
            if s["source"] == "measured"
            else []
        ),
        f"target rate        {o['target_tps']:>10,.0f} ticks/s",
        f"offered rate       {o['offered'] / secs:>10,.0f} ticks/s  (new ticks on the wire; "
        f"{o['offered']:,} in all)",
        f"posted rate        {o['posted'] / secs:>10,.0f} ticks/s  (re-sends after 429 included)",
        f"accepted rate      {o['acked'] / secs:>10,.0f} ticks/s  ({o['accepted']:,} accepted + "
        f"{o['duplicates']:,} duplicates acknowledged)",
        f"429 answers        {o['http_429']:>10,}          ({o['shed']:,} ticks refused; "
        f"{o['abandoned']:,} still refused at the end, not re-sent)",
        f"other errors       {errors}",
        f"answer time        p50 {_s(o['answer_s']['p50'])}, p99 {_s(o['answer_s']['p99'])}, "
        f"max {_s(o['answer_s']['max'])} per POST (a sender waits for it: the closed loop)",
        f"MAX_BACKLOG        {b['max_backlog_setting']:>10,} ticks     "
        f"({'given' if p['max_backlog_given'] else 'product default'}; ingest answers 429 at "
        f">= it; may pass it by < 2 x {b['max_handoff_ticks']:,} ticks per hand-off: "
        f"up to {b['bound']:,})",
        f"backlog max        {_n(b['max']):>10} ticks     (GET /stats gauges.backlog_ticks = "
        f"waiting for calc + waiting for Postgres, 2 per accepted tick; bench's own reads of "
        f"the counters: max {b['max_redis_read']:,}; /stats unanswered in "
        f"{b['stats_unanswered']} of {b['samples']} samples)",
        f"backlog at the end {_n(b['end']):>10} ticks     (hand-offs waiting max "
        f"{b['max_handoffs']:,}: calc queue {b['max_queue']:,} messages + outbox "
        f"{b['max_outbox']:,} entries)",
        f"ticks waiting max  calc {b['max_calc_lag_ticks']:,}, Postgres "
        f"{b['max_persist_lag_ticks']:,}; Redis used_memory max "
        f"{b['max_redis_used_memory'] / MB:,.0f} MB; when drained: "
        f"{b['end_redis_used_memory'] / MB:,.0f} MB in {b['end_redis_keys']:,} keys",
        f"drain time         {d['seconds']:>10.1f} s        "
        f"({'converged' if d['converged'] else 'DID NOT CONVERGE'})",
        f"missing            {c['missing']:>10,}          (of {c['acked']:,} acknowledged)",
        f"duplicated         {c['duplicated']:>10,}          (rows; views exact: "
        f"{'yes' if c['views_exact'] else 'NO'}; stored without ack: "
        f"{sum(c['stored_unacked'].values()):,} {c['stored_unacked']})",
        "",
        "RSS MB: idle (before any load), start / max / at stop of the overload (max includes the "
        "drain), end (drained); max PSS: shared pages split between sharers (sums of forked "
        "processes, e.g. PostgreSQL backends or Redis' AOF-rewrite child, double-count RSS); "
        "CPU %: of one core during the overload",
    ]
    rows = []
    for label, m in report["memory"].items():
        r = m["rss"]
        cpu = m["cpu_pct_overload"]
        rows.append(
            [
                label,
                _mb(r["idle"]),
                _mb(r["start"]),
                _mb(r["max"]),
                _mb(r["at_stop"]),
                _mb(r["end"]),
                _mb(m["pss"]["max"]),
                "-" if cpu is None else f"{cpu:.0f}",
            ]
        )
    headers = ["process", "idle", "start", "max", "at stop", "end", "max PSS", "CPU %"]
    lines.append(table(headers, rows))
    return "\n".join(lines)
