"""One reader of the realtime gateway's `/stream` (SSE) per Streamlit server process.

`LiveFeed` runs a daemon thread that keeps the latest view (W) per symbol, a few recent events
and counters, and the recent `alert.fired` firings apart (numbered), so a burst of ticks cannot
push an alert out before every page has toasted it. Streamlit sessions never talk to the gateway
themselves: they poll `snapshot()` from a fragment, so N open browser tabs cost one stream.

The gateway does the catching up: the first connection starts with a `snapshot` of every view;
after any disconnect the feed reconnects (with backoff) sending `Last-Event-ID`, and the gateway
replays exactly the events after it, or says `reset` and sends a fresh snapshot when the ring no
longer holds them. Events arrive in ring order and a symbol's views only move forward there, so
the newest message always wins: no freshness comparison, and no REST merge.

The thread never calls `st.*` (it has no script-run context) and nothing here connects at import
time: the thread starts in `start()`. `receive()` is the thread's whole decoding path and is
public, so unit tests drive the state without a gateway.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from backend.core.events import AlertFired, SymbolUpdated, decode_event
from backend.core.realtime import MISSED, RESET, SNAPSHOT, Missed, Reset, Snapshot
from backend.core.view import View
from ui.gateway_stream import StreamHandle, StreamLost, StreamTarget, describe, read_stream

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedSnapshot:
    """A point-in-time copy of the feed's state; callers may do anything with it."""

    views: dict[str, View] = field(default_factory=dict)  # frozen models, shared
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first, without "view"
    events_received: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    bad_events: int = 0
    last_event_at: datetime | None = None
    connected: bool = False
    # Lost (or never got) the gateway and trying again; the views are the last ones known.
    reconnecting: bool = False
    last_error: str | None = None
    connection_failures: int = 0  # failed or lost connections since start
    running: bool = False
    version: int = 0
    last_id: str | None = None  # ring id of the last message received: where a resume starts
    snapshots: int = 0  # snapshots applied (one per fresh start or reset)
    resets: int = 0
    missed: int = 0  # events the gateway dropped for this feed (it read too slowly)
    # Recent `alert.fired` firings, newest first: {"seq", "received_at", "firing": Firing JSON}.
    # `seq` counts every alert the feed received (1, 2, ...), so a session can tell which are new.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alerts_received: int = 0


class LiveFeed:
    """Background gateway reader holding the latest W per symbol (bounded) and recent events.

    Thread-safe: the reader thread writes under a lock; `snapshot()` hands out copies (the views
    are frozen models, shared), so sessions can never mutate the shared state. `version` grows on
    every change, which lets a caller skip work when nothing happened.
    """

    def __init__(
        self,
        gateway_url: str,
        api_key: str | None = None,
        *,
        max_symbols: int = 5_000,
        max_events: int = 200,
        max_alerts: int = 500,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        connect_timeout: float = 2.0,
        read_timeout: float = 45.0,
    ) -> None:
        self.target = StreamTarget(gateway_url, api_key, connect_timeout, read_timeout)
        self._max_symbols = max_symbols
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._delay = backoff_initial

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = StreamHandle()

        self._views: OrderedDict[str, View] = OrderedDict()
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._events_received = 0
        self._alerts: deque[dict[str, Any]] = deque(maxlen=max_alerts)
        self._alerts_received = 0
        self._events_by_type: dict[str, int] = {}
        self._bad_events = 0
        self._last_event_at: datetime | None = None
        self._connected = False
        self._last_error: str | None = None
        self._connection_failures = 0
        self._last_id: str | None = None
        self._snapshots = 0
        self._resets = 0
        self._missed = 0
        self._version = 0
        # (version, serialized events, serialized alerts): N sessions polling an unchanged feed
        # share one dump.
        self._copy_cache: tuple[int, bytes, bytes] | None = None
        self._alerts_cache: tuple[int, bytes] | None = None  # (alerts_received, dump)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> LiveFeed:
        """Start the reader thread (idempotent); returns self for chaining."""
        with self._lock:
            if self._thread is None and not self._stop_event.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"livefeed:{self.target.url}", daemon=True
                )
                self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish (cutting its connection) and wait; never restarted."""
        self._stop_event.set()
        self._handle.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._changed:
            self._connected = False
            self._bump()

    @property
    def running(self) -> bool:
        """Whether the reader thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def version(self) -> int:
        """Monotonically increasing change counter."""
        with self._lock:
            return self._version

    @property
    def last_id(self) -> str | None:
        """The ring id of the last message received (what a reconnect sends as Last-Event-ID)."""
        with self._lock:
            return self._last_id

    def wait_for_change(self, after_version: int, timeout: float) -> bool:
        """Block until `version > after_version` or `timeout` passes; True if it changed."""
        with self._changed:
            return self._changed.wait_for(lambda: self._version > after_version, timeout)

    # --- reading --------------------------------------------------------------------------
    def snapshot(self) -> FeedSnapshot:
        """A copy of the current state (views, recent events newest first, counters)."""
        with self._lock:
            if self._copy_cache is None or self._copy_cache[0] != self._version:
                self._copy_cache = (
                    self._version,
                    orjson.dumps(list(reversed(self._events))),
                    orjson.dumps(list(reversed(self._alerts))),
                )
            _, blob, alerts_blob = self._copy_cache
            views = dict(self._views)
            running = self.running and not self._stop_event.is_set()
            counters: dict[str, Any] = {
                "events_received": self._events_received,
                "events_by_type": dict(self._events_by_type),
                "bad_events": self._bad_events,
                "last_event_at": self._last_event_at,
                "connected": self._connected,
                "reconnecting": running and not self._connected and self._connection_failures > 0,
                "last_error": self._last_error,
                "connection_failures": self._connection_failures,
                "running": running,
                "version": self._version,
                "last_id": self._last_id,
                "snapshots": self._snapshots,
                "resets": self._resets,
                "missed": self._missed,
                "alerts_received": self._alerts_received,
            }
        events = orjson.loads(blob)  # outside the lock: parsing is the per-session cost
        alerts = orjson.loads(alerts_blob)
        return FeedSnapshot(views=views, events=events, alerts=alerts, **counters)

    def alert_snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """`(alerts_received, alerts newest first)` only: what the notifier polls on every page
        twice a second, without copying the views or parsing the recent events."""
        with self._lock:
            if self._alerts_cache is None or self._alerts_cache[0] != self._alerts_received:
                blob = orjson.dumps(list(reversed(self._alerts)))
                self._alerts_cache = (self._alerts_received, blob)
            received, blob = self._alerts_cache
        return received, orjson.loads(blob)

    # --- writing --------------------------------------------------------------------------
    def receive(self, event: str, data: bytes | str, event_id: str | None = None) -> None:
        """Apply one message of the stream: `event` is its SSE type, `data` its JSON, `event_id`
        its ring id (None for messages outside the ring: reset, missed).

        Anything that does not decode is counted and dropped: one bad publisher must not kill
        the feed (its id still moves the position on, so a resume does not fetch it again).
        """
        try:
            if event == SNAPSHOT:
                self._apply_snapshot(Snapshot.model_validate_json(data), event_id)
            elif event == RESET:
                self._apply_control(RESET, Reset.model_validate_json(data).model_dump(), None)
            elif event == MISSED:
                missed = Missed.model_validate_json(data)
                self._apply_control(MISSED, missed.model_dump(), missed.count)
            else:
                self.ingest(data, event_id)
        except ValidationError:
            with self._changed:
                self._bad_events += 1
                self._advance(event_id)
                self._bump()

    def ingest(self, raw: bytes | str, event_id: str | None = None) -> None:
        """Apply one bus event (`backend.core.events`, as the ring holds it); raises
        `pydantic.ValidationError` for anything else (`receive` counts those)."""
        now = datetime.now(UTC)
        try:
            decoded = decode_event(raw)
        except ValidationError:
            with self._changed:
                self._bad_events += 1
                self._advance(event_id)
                self._bump()
            return

        summary = decoded.model_dump(mode="json", exclude={"view"})
        summary["received_at"] = now.isoformat()
        with self._changed:
            self._advance(event_id)
            self._count(decoded.type, summary, now)
            if isinstance(decoded, SymbolUpdated):
                self._store_view(decoded.symbol, decoded.view)
            elif isinstance(decoded, AlertFired):
                self._alerts_received += 1
                self._alerts.append(
                    {
                        "seq": self._alerts_received,
                        "received_at": summary["received_at"],
                        "firing": summary["firing"],
                    }
                )
            self._bump()

    def _apply_snapshot(self, snapshot: Snapshot, event_id: str | None) -> None:
        """Every view replaced by the snapshot's: it is exactly the state at its ring position."""
        views: OrderedDict[str, View] = OrderedDict()
        bad = 0
        for symbol, raw in sorted(snapshot.views.items()):
            try:
                views[symbol] = View.model_validate(raw)
            except ValidationError:
                bad += 1  # a partial external view: dropped, as a live one would be
        while len(views) > self._max_symbols:
            views.popitem(last=False)
        with self._changed:
            self._views = views
            self._bad_events += bad
            self._snapshots += 1
            self._advance(event_id or snapshot.at)
            self._bump()

    def _apply_control(self, kind: str, fields: dict[str, Any], missed: int | None) -> None:
        now = datetime.now(UTC)
        with self._changed:
            if kind == RESET:
                self._resets += 1  # the views stay until the snapshot that follows replaces them
            if missed is not None:
                self._missed += missed
            self._count(kind, {"type": kind, **fields, "received_at": now.isoformat()}, now)
            self._bump()

    def _count(self, kind: str, summary: dict[str, Any], now: datetime) -> None:
        """Caller holds the lock."""
        self._events_received += 1
        self._events_by_type[kind] = self._events_by_type.get(kind, 0) + 1
        self._last_event_at = now
        self._events.append(summary)

    def _advance(self, event_id: str | None) -> None:
        """Caller holds the lock."""
        if event_id:
            self._last_id = event_id

    def _store_view(self, symbol: str, view: View) -> None:
        """The ring's order is the views' order: the message received last is the newest."""
        self._views[symbol] = view
        self._views.move_to_end(symbol)
        while len(self._views) > self._max_symbols:
            self._views.popitem(last=False)  # the symbol updated longest ago goes first

    def _bump(self) -> None:
        """Record a change; caller holds the lock."""
        self._version += 1
        self._changed.notify_all()

    def _set_connected(self) -> None:
        self._delay = self._backoff_initial
        with self._changed:
            self._connected = True
            self._last_error = None
            self._bump()
        logger.info("live feed connected to %s (after %s)", self.target.url, self._last_id)

    def _set_disconnected(self, error: str) -> None:
        with self._changed:
            was_connected = self._connected
            self._connected = False
            self._last_error = error
            self._connection_failures += 1
            self._bump()
        log = logger.warning if was_connected else logger.debug
        log("live feed lost the gateway (%s); reconnecting", error)

    # --- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        """Read the stream; on any failure back off and reconnect from the last id."""
        while not self._stop_event.is_set():
            wait = self._delay
            try:
                read_stream(
                    self.target, lambda: self.last_id, self._set_connected, self.receive,
                    self._handle,
                )  # fmt: skip
            except StreamLost as lost:
                if self._stop_event.is_set():
                    break
                self._set_disconnected(lost.reason)
                wait = lost.retry_after or self._delay
            except Exception as exc:  # never let the reader die quietly
                logger.exception("live feed crashed; restarting")
                self._set_disconnected(describe(exc))
            if self._stop_event.wait(wait * random.uniform(0.8, 1.2)):
                break
            self._delay = min(self._delay * 2, self._backoff_max)
