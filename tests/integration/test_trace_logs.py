"""One grep for a tick's trace id finds its ingest, its calc and its flush, in JSON lines.

The API and a worker run as real processes through their entry points (`python -m backend.api`,
`python -m tasks worker`), each logging to a file of its own (tests/support/processes.py).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from backend.core.trace import parse_traceparent
from backend.settings import Settings
from tests.support.processes import AUTH, Processes, answers_ok
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
REQUIRED = ("service", "level", "time", "message")


def start(procs: Processes) -> None:
    """The Procfile's `api` and `worker` commands, with this interpreter."""
    procs.spawn(
        "api",
        [sys.executable, "-m", "backend.api", "--host", "127.0.0.1", "--port", str(procs.api_port)],
    )
    wait_for(lambda: answers_ok(procs.api_url + "/health/liveness"), 30, what="API liveness")
    procs.spawn("worker", [sys.executable, "-m", "tasks", "worker", "--processes", "1",
                           "--threads", "2"])  # fmt: skip


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a process's log, parsed: a line that is not a JSON object fails the test."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        line = json.loads(raw)
        assert isinstance(line, dict), raw
        missing = [key for key in REQUIRED if key not in line]
        assert not missing, (missing, raw)
        lines.append(line)
    return lines


def grep(procs: Processes, name: str, trace_id: str) -> list[dict[str, Any]]:
    """The lines of `name`'s log whose text holds `trace_id` (what `grep` would print)."""
    return [line for line in json_lines(procs.log_path(name)) if trace_id in json.dumps(line)]


def post_tick(procs: Processes, event_id: str, headers: dict[str, str]) -> httpx.Response:
    tick = {
        "symbol": "TRACEUSD", "price": 101.5, "volume": 2.0, "source": "itest",
        "ts": int(time.time() * 1000) - 1_000, "event_id": event_id, "seq": 1,
    }  # fmt: skip
    return httpx.post(f"{procs.api_url}/ingest/tick", json=tick, auth=AUTH, headers=headers)


def stored(pg_url: str, event_id: str) -> bool:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT 1 FROM md_ticks WHERE event_id = %s", (event_id,)).fetchone()


def follow(procs: Processes, settings: Settings, event_id: str, trace_id: str) -> None:
    """The tick reaches PostgreSQL; the API's ingest line and the worker's calc and flush lines
    name its trace id; every line of both files is JSON with the required fields."""
    wait_for(lambda: stored(settings.pg_url, event_id), 30, what=f"{event_id} in PostgreSQL")

    def found() -> bool:
        worker = " ".join(line["message"] for line in grep(procs, "worker", trace_id))
        return "calc batch" in worker and "outbox flush" in worker

    wait_for(found, 15, what="calc and flush lines naming the trace id")
    [ingest] = [
        line for line in grep(procs, "api", trace_id) if line["message"].startswith("ingest commit")
    ]
    assert ingest["service"] == "api" and ingest["level"] == "INFO"
    assert trace_id in ingest["trace_ids"] and ingest["accepted"] == 1
    worker = grep(procs, "worker", trace_id)
    [calc] = [line for line in worker if line["message"].startswith("calc batch")]
    [flush] = [line for line in worker if line["message"].startswith("outbox flush")]
    assert calc["service"] == flush["service"] == "worker"
    assert calc["trace_ids"] == [trace_id] and calc["trace_id"] == trace_id
    assert calc["message_id"] == ingest["message_id"] and calc["symbols"] == ["TRACEUSD"]
    assert trace_id in flush["trace_ids"] and flush["rows"] >= 1
    json_lines(procs.log_path("api"))
    json_lines(procs.log_path("worker"))


def test_a_client_trace_id_is_echoed_and_followed_through_every_process(
    procs: Processes, settings: Settings
) -> None:
    start(procs)
    response = post_tick(procs, "trace-1", {"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert response.status_code == 200, response.text
    echoed = parse_traceparent(response.headers["traceparent"])
    assert echoed is not None and echoed.trace_id == TRACE and echoed.parent_id != PARENT
    assert response.headers["x-trace-id"] == TRACE
    follow(procs, settings, "trace-1", TRACE)


def test_without_a_traceparent_a_generated_trace_id_is_echoed_and_followed(
    procs: Processes, settings: Settings
) -> None:
    start(procs)
    # An invalid header is ignored (never a 4xx) like a missing one: both get a new trace id.
    for event_id, headers in (("trace-2", {}), ("trace-3", {"traceparent": "00-bogus-01"})):
        response = post_tick(procs, event_id, headers)
        assert response.status_code == 200, response.text
        trace_id = response.headers["x-trace-id"]
        assert len(trace_id) == 32 and trace_id != TRACE
        echoed = parse_traceparent(response.headers["traceparent"])
        assert echoed is not None and echoed.trace_id == trace_id
        follow(procs, settings, event_id, trace_id)
