"""UI soak: one page open in a real browser for N minutes while the feeder sends T ticks/s.

    python -m tests.bench.ui_soak [--minutes 10] [--tps 100] [--page /] [--json PATH]

Measures, not asserts: the Streamlit server's RSS and CPU (from /proc, the whole process tree) at
the start and every `--every` seconds, the browser's JS heap, and whether the page kept updating
(the watchlist's `ticks_total` keeps growing). It starts the real system (API, worker, feeder,
Streamlit) on REDIS_URL / PG_URL when set, else on embedded servers in a temp dir.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from backend.settings import Settings
from tests.bench.candles_bench.database import throwaway_database
from tests.bench.text import fmt_bytes, say, table
from tests.integration.ui.chromium import CHROMIUM_FLAGS, INSTALL_HINT, find_chromium
from tests.support.processes import make_settings, running, settings_env
from tests.support.servers import free_port, migrate
from tests.support.waiting import wait_for

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Reading:
    elapsed_s: float
    rss_bytes: int
    cpu_s: float  # user + system since the process started
    threads: int
    js_heap_bytes: int
    events_shown: int  # the page's live-feed event count: grows while the page is live


def tree_pids(root: int) -> list[int]:
    """`root` and its descendants (Streamlit forks nothing, but be exact)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def process_usage(root: int) -> tuple[int, float, int]:
    """(RSS bytes, CPU seconds, threads) of the process tree under `root`."""
    rss = threads = 0
    cpu = 0.0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
            threads += int(fields[17])
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return rss, cpu, threads


def events_shown(page: Any) -> int:
    """The live-feed event count in the Live page's caption ("Live feed connected · N events"):
    it grows only while the page's fragment keeps rerunning and the feed keeps receiving."""
    text = str(page.evaluate("() => document.body.innerText"))
    match = re.search(r"Live feed \w+ · ([\d,]+) events?", text)
    return int(match.group(1).replace(",", "")) if match else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between readings")
    parser.add_argument("--page", default="/", help="path of the page to keep open")
    parser.add_argument("--json", type=Path, default=Path("artifacts/soak/ui.json"))
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-soak-")))
        servers, _, db_url = throwaway_database(Settings(), stack, tmp)
        redis_url, embedded = servers.redis_url, servers.embedded
        migrate(db_url)
        settings = make_settings(redis_url, db_url, flush_interval=1.0)
        procs = stack.enter_context(running(settings_env(settings), tmp / "logs"))
        procs.start_api()
        procs.start_worker(processes=1, threads=2)
        procs.start_gateway()  # the UI's live data
        procs.start_feeder(
            SYMBOLS="BTCUSDT,ETHUSDT,SOLUSDT,EURUSD,XAUUSD",
            SOURCES="binance,coinbase,kraken",
            TPS=str(args.tps),
            FEEDER_ID="soak-feeder",
            INGEST_MODE="single",
        )
        ui_url = procs.start_ui(free_port())
        ui_pid = procs.procs["ui"].pid
        say(f"system up (embedded servers: {embedded}); UI {ui_url}, feeder at {args.tps:g}/s")

        chromium = find_chromium()
        if chromium is None:
            raise SystemExit(f"chromium is not installed: {INSTALL_HINT}")
        readings: list[Reading] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(ui_url + args.page)
            page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
            wait_for(lambda: events_shown(page) > 0, 30, what="live events on the page")
            started = time.monotonic()
            deadline = started + args.minutes * 60
            while True:
                rss, cpu, threads = process_usage(ui_pid)
                heap = int(page.evaluate("() => performance.memory?.usedJSHeapSize || 0"))
                elapsed = round(time.monotonic() - started, 1)
                reading = Reading(elapsed, rss, cpu, threads, heap, events_shown(page))
                readings.append(reading)
                say(
                    f"t={reading.elapsed_s:6.0f}s rss={fmt_bytes(rss)} cpu={cpu:.1f}s "
                    f"threads={threads} js_heap={fmt_bytes(heap)} events={reading.events_shown}"
                )
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(args.every, max(0.0, deadline - time.monotonic())))
            page.screenshot(path=str(args.json.parent / "ui-soak-end.png"), full_page=True)
            browser.close()
        feeder = procs.log("feeder")
        for name in ("api", "ui", "feeder"):
            assert procs.procs[name].poll() is None, f"{name} died during the soak"

    first, last = readings[0], readings[-1]
    span = max(1e-9, last.elapsed_s - first.elapsed_s)
    summary = {
        "minutes": args.minutes,
        "tps": args.tps,
        "page": args.page,
        "embedded_servers": embedded,
        "rss_start_bytes": first.rss_bytes,
        "rss_end_bytes": last.rss_bytes,
        "rss_max_bytes": max(r.rss_bytes for r in readings),
        "cpu_seconds_during": round(last.cpu_s - first.cpu_s, 2),
        "cpu_percent_of_one_core": round((last.cpu_s - first.cpu_s) / span * 100, 1),
        "js_heap_start_bytes": first.js_heap_bytes,
        "js_heap_end_bytes": last.js_heap_bytes,
        "events_shown_start": first.events_shown,
        "events_shown_end": last.events_shown,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print()
    print(
        table(
            ["t (s)", "Streamlit RSS", "CPU s (cum.)", "threads", "JS heap", "events shown"],
            [
                [
                    f"{r.elapsed_s:.0f}",
                    fmt_bytes(r.rss_bytes),
                    f"{r.cpu_s:.1f}",
                    str(r.threads),
                    fmt_bytes(r.js_heap_bytes),
                    str(r.events_shown),
                ]
                for r in readings
            ],
        )
    )
    print(
        f"\nStreamlit server: RSS {fmt_bytes(first.rss_bytes)} → {fmt_bytes(last.rss_bytes)} "
        f"(max {fmt_bytes(summary['rss_max_bytes'])}); CPU {summary['cpu_seconds_during']} s "
        f"over {span / 60:.1f} min = {summary['cpu_percent_of_one_core']}% of one core"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"summary": summary, "readings": [asdict(r) for r in readings]}, indent=2)
    )
    say(f"wrote {args.json}; feeder log tail: {feeder.strip().splitlines()[-1:]}")


if __name__ == "__main__":
    main()
