"""The whole benchmark: the servers, every scenario `runs` times, the report and its JSON."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from backend.bus.realtime import Ring
from backend.embedded import EmbeddedRedis
from backend.settings import Settings
from tests.bench.gateway.events import symbol_names
from tests.bench.gateway.options import Options
from tests.bench.gateway.scenario import Setup, run_scenario
from tests.bench.gateway.summary import median_row
from tests.bench.machine import machine
from tests.bench.text import say
from tests.support.processes import make_settings, running, settings_env
from tests.support.servers import free_port


def scenarios(opts: Options) -> list[tuple[str, bool]]:
    servers = ["ours", "baseline"] if opts.baseline else ["ours"]
    stalls = [False, True] if opts.stalled_share > 0 else [False]
    return [(server, stalled) for stalled in stalls for server in servers]


def redis_url_for(settings: Settings, stack: contextlib.ExitStack, tmp: Path) -> str:
    """REDIS_URL when set, else an embedded Redis in `tmp` (the gateway needs no Postgres)."""
    if not settings.uses_embedded_redis:
        return settings.effective_redis_url
    server = EmbeddedRedis(tmp / "redis", free_port())
    server.start()
    stack.callback(server.stop)
    return server.url


def run(opts: Options, base: Settings | None = None) -> dict[str, Any]:
    base = base or Settings()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-gw-")))
        redis_url = redis_url_for(base, stack, tmp)
        embedded = base.uses_embedded_redis
        settings = make_settings(redis_url, base.psycopg_url)
        log_dir = opts.json_path.parent / (opts.json_path.stem + "-logs")
        procs = stack.enter_context(running(settings_env(settings), log_dir))
        work = tmp / "clients"
        work.mkdir()
        setup = Setup(
            procs, redis_url, Ring.from_settings(settings), symbol_names(opts.symbols), work
        )
        where = "embedded" if embedded else "from REDIS_URL"
        say(
            f"Redis {where}; namespace {settings.redis_namespace}; "
            f"{opts.clients:,} clients, {opts.rate:,.0f} events/s"
        )
        results: list[dict[str, Any]] = []
        for run_no in range(1, opts.runs + 1):
            for server, stalled in scenarios(opts):
                results.append(run_scenario(setup, opts, server, stalled, run_no))
    rows = [
        median_row([r for r in results if (r["server"], r["stalled"]) == key])
        for key in scenarios(opts)
    ]
    report = {
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "machine": machine() | {"redis_embedded": embedded},
        "rows": rows,
        "runs": [{k: v for k, v in r.items() if k != "client_rows"} for r in results],
    }
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(report, indent=1, default=str))
    return report
