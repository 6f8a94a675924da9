"""Every line the feeder and the UI write through their entry points is a JSON log line.

(The API and the worker: tests/integration/test_trace_logs.py.) Streamlit brings its own loggers
and prints its banner to stdout; `python -m ui` routes both through our JSON handler.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import pytest

from tests.support.processes import Processes, answers_ok
from tests.support.servers import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def json_lines(procs: Processes, name: str) -> list[dict[str, Any]]:
    lines = []
    for raw in procs.log(name).splitlines():
        line = json.loads(raw)  # a plain-text line fails here
        assert {"service", "level", "time", "message", "logger"} <= set(line), raw
        lines.append(line)
    return lines


def test_feeder_lines_are_json(procs: Processes) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: it logs its start and waits
    procs.spawn("feeder", [sys.executable, "-m", "feeder"], {"TARGET_URL": nowhere, "TPS": "5"})
    wait_for(lambda: "feeder" in procs.log("feeder"), 30, what="the feeder's first line")
    procs.kill("feeder", signal.SIGTERM)
    lines = json_lines(procs, "feeder")
    assert lines and all(line["service"] == "feeder" for line in lines)
    assert any(nowhere in line["message"] for line in lines)


def test_ui_lines_are_json_streamlit_ones_included(procs: Processes) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "ui", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--logger.level", "debug",  # Streamlit's own loggers write plenty at DEBUG
    ]  # fmt: skip
    procs.spawn("ui", command, {"BACKEND_URL": f"http://127.0.0.1:{free_port()}"})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_ok(url + "/_stcore/health"), 60, what="Streamlit health")
    procs.kill("ui", signal.SIGTERM)
    lines = json_lines(procs, "ui")
    assert all(line["service"] == "ui" for line in lines)
    loggers = {line["logger"] for line in lines}
    assert any(name.startswith("streamlit.") and name != "streamlit.cli" for name in loggers)
    assert any(str(port) in line["message"] for line in lines if line["logger"] == "streamlit.cli")
    assert "uvicorn.error" in loggers  # Streamlit's server: uvicorn, its default config undone
    assert "uvicorn.access" not in loggers  # Streamlit turns access lines off; they stay off
