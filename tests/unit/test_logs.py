"""JSON log lines: the fields, the context, uvicorn's and Streamlit's loggers taken over."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from backend.log_context import current, log_context, trace_fields
from backend.logs import configure_logging, route_streamlit_logs
from backend.settings import LoggingSettings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Root (and the taken-over loggers) write JSON into a buffer; everything restored after."""
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = (root.handlers[:], root.level)
    saved_named = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate,
            logging.getLogger(n).filters[:], logging.getLogger(n).level)
        for n in names
    }  # fmt: skip
    buffer = io.StringIO()
    configure_logging(LoggingSettings(LOG_LEVEL="INFO"), service="svc", stream=buffer)
    yield buffer
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    for n, (handlers, propagate, filters, level) in saved_named.items():
        logger = logging.getLogger(n)
        logger.handlers[:], logger.propagate, logger.filters[:] = handlers, propagate, filters
        logger.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_line_has_time_level_service_logger_message(stream: io.StringIO) -> None:
    logging.getLogger("some.module").warning("hello %s", "world", extra={"ticks": 3})
    [line] = lines(stream)
    assert list(line)[:5] == ["time", "level", "service", "logger", "message"]
    assert line["level"] == "WARNING" and line["service"] == "svc"
    assert line["logger"] == "some.module" and line["message"] == "hello world"
    assert line["ticks"] == 3
    assert line["time"].endswith("Z")
    parsed = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    for absent in ("levelname", "asctime", "name", "args", "msg"):
        assert absent not in line


def test_exceptions_are_one_line_with_the_traceback_in_a_field(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    [line] = lines(stream)
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exc_info"]


def test_the_context_is_on_every_line_written_inside_it(stream: io.StringIO) -> None:
    log = logging.getLogger("ctx")
    with log_context(trace_id="a" * 32, message_id="m-1"):
        log.info("inside")
        with log_context(symbol="AAPL", event_id="e-1"):
            log.info("nested")
        log.info("explicit", extra={"trace_id": "b" * 32})
    log.info("outside")
    inside, nested, explicit, outside = lines(stream)
    assert inside["trace_id"] == "a" * 32 and inside["message_id"] == "m-1"
    assert "symbol" not in inside
    assert nested | {"symbol": "AAPL", "event_id": "e-1"} == nested
    assert nested["trace_id"] == "a" * 32
    assert explicit["trace_id"] == "b" * 32  # an explicit extra wins
    for key in ("trace_id", "message_id", "symbol", "event_id"):
        assert key not in outside
    assert current() == {}


def test_batch_trace_fields_are_distinct_capped_and_single_ids_named() -> None:
    assert trace_fields(["a", "b", "a"]) == {"trace_ids": ["a", "b"]}
    assert trace_fields(["a", "a"]) == {"trace_ids": ["a"], "trace_id": "a"}
    assert trace_fields([]) == trace_fields([""]) == {"trace_ids": []}
    capped = trace_fields(["a", "b", "c", "d"], limit=2)
    assert capped == {"trace_ids": ["a", "b"], "trace_ids_more": 2}


def access(path: str, status: int) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", path, "1.1", status
    )


def test_uvicorn_access_lines_have_fields_and_the_request_trace(stream: io.StringIO) -> None:
    with log_context(trace_id="c" * 32):
        access("/symbols", 200)
    [line] = lines(stream)
    assert line["logger"] == "uvicorn.access" and line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"], line["client"]) == (
        "POST", "/symbols", 200, "127.0.0.1:5000"
    )  # fmt: skip
    assert line["trace_id"] == "c" * 32


def test_successful_ingest_access_lines_are_debug(stream: io.StringIO) -> None:
    access("/ingest/tick", 200)  # one per tick in single mode: not at INFO
    access("/ingest/tick", 422)  # a rejection stays visible
    [line] = lines(stream)
    assert line["status"] == 422 and line["level"] == "INFO"
    logging.getLogger().setLevel(logging.DEBUG)
    access("/ingest/ticks", 200)
    assert lines(stream)[-1]["level"] == "DEBUG" and lines(stream)[-1]["path"] == "/ingest/ticks"


def test_uvicorn_cli_handlers_are_taken_over_and_color_message_dropped() -> None:
    """uvicorn's CLI installs its own plain handlers (LOGGING_CONFIG) before our app factory
    runs configure_logging: after it, uvicorn's lines are ours."""
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(LoggingSettings(LOG_LEVEL="INFO"), service="api", stream=buffer)
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]", 42, extra={"color_message": "\x1b[1m42\x1b[0m"}
        )
        [line] = lines(buffer)
        assert line["message"] == "Started server process [42]" and line["service"] == "api"
        assert "color_message" not in line
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).filters.clear()


def test_streamlit_loggers_write_json_through_our_handler(stream: io.StringIO) -> None:
    from streamlit import cli_util
    from streamlit import logger as st_logger

    original, original_print = st_logger.setup_formatter, cli_util.print_to_cli
    try:
        route_streamlit_logs()
        log = st_logger.get_logger("streamlit.tickstream_test")
        log.warning("from streamlit")
        st_logger.update_formatter()  # Streamlit re-runs it when its config changes
        log.warning("again")
        cli_util.print_to_cli("  Local URL: ", nl=False, fg="blue")  # the banner, as it prints
        cli_util.print_to_cli("http://localhost:8501", bold=True)
        cli_util.print_to_cli("")
        cli_util.print_to_cli("  Stopping...", fg="blue")
        first, second, url, stopping = lines(stream)
        assert first["logger"] == "streamlit.tickstream_test"
        assert first["message"] == "from streamlit" and first["service"] == "svc"
        assert second["message"] == "again"
        assert not log.handlers and log.propagate
        assert url["message"] == "Local URL: http://localhost:8501"
        assert url["logger"] == stopping["logger"] == "streamlit.cli"
        assert stopping["message"] == "Stopping..."
    finally:
        st_logger.setup_formatter, cli_util.print_to_cli = original, original_print
        st_logger._loggers.pop("streamlit.tickstream_test", None)
        st_logger.update_formatter()
