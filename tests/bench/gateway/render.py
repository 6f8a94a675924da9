"""The printed report: one table (ours vs baseline, healthy vs stalled) and what it means."""

from __future__ import annotations

from typing import Any

from tests.bench.text import fmt_bytes, fmt_int, fmt_ms, table

NAMES = {"ours": "gateway", "baseline": "old broadcaster"}


def _ms(value: float | None) -> str:
    return fmt_ms(value) if value is not None else "-"


def _label(row: dict[str, Any]) -> str:
    stalled = f"{row['stalled_clients']} stalled" if row["stalled"] else "healthy"
    return f"{NAMES[row['server']]}, {stalled}"


def render(report: dict[str, Any]) -> str:
    p, m = report["params"], report["machine"]
    rows = report["rows"]
    redis = "embedded" if m["redis_embedded"] else "REDIS_URL"
    lines = [
        f"{p['clients']:,} SSE clients on one server process; {p['rate']:,.0f} events/s published "
        f"({1 - p['tick_share']:.0%} symbol.updated with whole views, {p['tick_share']:.0%} "
        f"tick.received) over {p['symbols']} symbols;",
        f"each client follows {p['per_client']} symbols"
        + (f" ({p['all_share']:.0%} follow every symbol)" if p["all_share"] else "")
        + f"; {p['seconds']:g} s measured per run, medians of {p['runs']} run(s); "
        f"{m['cpus']} CPUs ({m['platform']}), Redis {redis}.",
        "Stalled clients never read (SO_RCVBUF 4 kB) and follow "
        + (
            "every symbol, so their kernel socket buffers (the gateway caps its send buffer at "
            "256 KiB; the baseline's autotunes to ~4 MB) fill within seconds and the server "
            "holds the rest."
            if p.get("stalled_follow") == "all"
            else f"{p['per_client']} symbols like the others."
        )
        + "",
        "Latency: healthy clients only, receive time - ring id ms (publish). CPU: the server "
        "process's utime+stime over the window.",
        "",
    ]
    headers = ["server, clients", "published/s", "delivered/s", "received", "p50 ms", "p99 ms",
               "p99.9 ms", "CPU", "CPU ms/1k", "RSS start", "RSS peak", "RSS end"]  # fmt: skip
    body = [
        [
            _label(r),
            fmt_int(r["published_per_s"]),
            fmt_int(r["deliveries_per_s"]),
            f"{r['received_share'] * 100:.1f} %" if r["received_share"] is not None else "-",
            _ms(r["p50_ms"]),
            _ms(r["p99_ms"]),
            _ms(r["p999_ms"]),
            f"{r['cpu_share'] * 100:.0f} %",
            _ms(r["cpu_ms_per_1000"]),
            fmt_bytes(r["rss_start"]),
            fmt_bytes(r["rss_peak"]),
            fmt_bytes(r["rss_end"]),
        ]
        for r in rows
    ]
    lines.append(table(headers, body))
    for r in rows:
        if r["server"] == "ours" and r["stalled"]:
            lines.append("")
            lines.append(
                f"gateway, stalled clients (GET /clients, median run): coalesced "
                f"{fmt_int(r['stalled_coalesced'])}, dropped {fmt_int(r['stalled_dropped'])} "
                f"(`missed` reports sent: {fmt_int(r['stalled_missed_reports'])}: they go out "
                f"when the client reads again), largest queue "
                f"{fmt_int(r['stalled_queued_max'])}; healthy clients: coalesced "
                f"{fmt_int(r['healthy_coalesced'])}, dropped {fmt_int(r['healthy_dropped'])}."
            )
    for r in report["runs"]:
        if r["stalled"] and r["run"] == 1:
            series = ", ".join(f"{t:.0f} s {fmt_bytes(b)}" for t, b in r["rss_samples"][::10])
            lines.append(f"RSS of the {NAMES[r['server']]} with stalled clients (run 1): {series}.")
    cpu = [f"{_label(r)} {r['client_procs_cpu_share'] * 100:.0f} %" for r in rows]
    lines += [
        "",
        "Client processes' CPU (same machine): " + "; ".join(cpu) + ".",
        "Load average (1 min) at the end of each run: "
        + "; ".join(f"{_label(r)} {', '.join(map(str, r['load_1m']))}" for r in rows)
        + f" (on {m['cpus']} CPUs).",
        "received = the healthy clients' events published in the window, over what their "
        "symbols had in the ring (< 100 %: late, lost or coalesced).",
    ]
    return "\n".join(lines)
