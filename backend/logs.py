"""Structured JSON logs: one JSON object per line, the same fields in every process.

Every line has `time` (ISO 8601 UTC), `level`, `service`, `logger` and `message`, then whatever the
current `backend.log_context` holds (`trace_id`, `trace_ids`, `event_id`, `symbol`,
`message_id`), then the record's own extras. uvicorn's access lines also get `client`, `method`,
`path` and `status` as fields, so they can be filtered without parsing the message.

Libraries that bring their own handlers (uvicorn's CLI, Streamlit) are routed through the root
handler here, so nothing a process writes is plain text.

Successful ingest requests are the hot path (one per tick in `single` mode): their access lines
are DEBUG. At INFO, a tick's ingest is the group commit's line, which names every trace id of
the batch (`backend.bus.ingest`).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.orjson import OrjsonFormatter

from backend import log_context
from backend.settings import LoggingSettings

# Loggers that install handlers of their own (and stop propagating); configure_logging takes
# them over. Streamlit's are taken over as it creates them (`route_streamlit_logs`).
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_DROPPED = ("color_message",)  # uvicorn's ANSI-coloured copy of the message


def iso_utc(created: float) -> str:
    """`2026-12-04T12:26:10.123Z` for a record's `created` (epoch seconds)."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonLineFormatter(OrjsonFormatter):
    """The one line format (orjson: the fastest encoder python-json-logger offers)."""

    def __init__(self, service: str) -> None:
        super().__init__("%(message)s", reserved_attrs=[*RESERVED_ATTRS, *_DROPPED])
        self.service = service

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = iso_utc(record.created)
        log_data["level"] = record.levelname
        log_data["service"] = self.service
        log_data["logger"] = record.name
        log_data["message"] = record.message
        if record.name == "uvicorn.access":
            log_data.update(access_fields(record.args))
        log_data.update(message_dict)
        merge_record_extra(record, log_data, reserved=self._skip_fields)


def access_fields(args: Any) -> dict[str, Any]:
    """uvicorn's access record args `(client, method, path, http_version, status)` as fields."""
    if not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, _http_version, status = args
    return {"method": method, "path": path, "status": status, "client": client}


class ContextFilter(logging.Filter):
    """Puts the current log context (trace id, message id, ...) on every record that does not
    carry the field already (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context.current().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class IngestAccessFilter(logging.Filter):
    """Successful ingest requests' access lines become DEBUG: in `single` mode there is one per
    tick, and hot paths log per batch at INFO (the group commit's line names their trace ids)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = access_fields(record.args)
        path, status = fields.get("path"), fields.get("status")
        if not (isinstance(path, str) and path.startswith("/ingest/")):
            return True
        if not isinstance(status, int) or status >= 400:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def json_handler(service: str, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonLineFormatter(service))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(settings: LoggingSettings, service: str, stream: Any = None) -> None:
    """Root logs JSON lines to stderr (or `stream`) at LOG_LEVEL; loggers that had handlers of
    their own now propagate to it instead (their levels are kept)."""
    root = logging.getLogger()
    root.handlers[:] = [json_handler(service, stream)]
    root.setLevel(settings.log_level.upper())
    _adopt_uvicorn_loggers()
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, IngestAccessFilter) for f in access.filters):
        access.addFilter(IngestAccessFilter())


def _adopt_uvicorn_loggers() -> None:
    for name in _OWN_HANDLERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def route_streamlit_logs() -> None:
    """Streamlit gives each of its loggers a plain-text handler and stops propagation
    (`streamlit.logger.setup_formatter`, run for every logger it creates and again whenever its
    config changes). Replace that step: no handler of its own, propagate to our root handler.
    Levels stay Streamlit's (`logger.level`). Its console messages (the URLs banner,
    "Stopping...", static-folder warnings: `cli_util.print_to_cli`) become INFO lines of the
    `streamlit.cli` logger. Its server is uvicorn, configured with uvicorn's default logging
    config (plain handlers) when it starts: that is undone right after."""
    from streamlit import cli_util
    from streamlit import logger as st_logger
    from uvicorn.config import Config

    configure_uvicorn = Config.configure_logging
    if not getattr(configure_uvicorn, "tickstream_json", False):

        def configure_then_adopt(self: Config) -> None:
            configure_uvicorn(self)
            _adopt_uvicorn_loggers()
            if not self.access_log:  # Streamlit turns access lines off: keep them off
                logging.getLogger("uvicorn.access").propagate = False

        configure_then_adopt.tickstream_json = True  # type: ignore[attr-defined]
        Config.configure_logging = configure_then_adopt  # type: ignore[method-assign]

    cli_log = logging.getLogger("streamlit.cli")
    held: list[str] = []

    def print_to_cli(message: str, **kwargs: Any) -> None:
        held.append(str(message))
        if kwargs.get("nl", True) is False:  # the banner's "Local URL: " + the URL: one line
            return
        text = "".join(held).strip()
        held.clear()
        if text:
            cli_log.info("%s", text)

    cli_util.print_to_cli = print_to_cli

    def setup_formatter(logger: logging.Logger) -> None:
        console = getattr(logger, "streamlit_console_handler", None)
        if console is not None:
            logger.removeHandler(console)
        logger.propagate = True

    st_logger.setup_formatter = setup_formatter
    st_logger.update_formatter()
