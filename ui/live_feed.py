"""One Redis pub/sub subscriber (`backend.bus.event_bus`) per Streamlit server process.

`LiveFeed` runs a daemon thread that listens on the realtime channel and keeps the latest view (W)
per symbol plus a few recent events and counters, and the recent `alert.fired` firings apart
(numbered), so a burst of ticks cannot push an alert out before every page has toasted it.
Streamlit sessions never touch Redis themselves: they poll `snapshot()` from a fragment, so N
open browser tabs cost one subscription, not N.

The thread never calls `st.*` (it has no script-run context) and nothing here connects at import
time: the thread starts in `start()`.
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
import redis
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.bus.event_bus import SyncSubscription
from backend.core.events import AlertFired, SymbolUpdated, decode_event
from backend.core.view import View
from ui.watchlist import freshness

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
    last_error: str | None = None
    connection_failures: int = 0  # failed or lost connections since start
    running: bool = False
    version: int = 0
    # Recent `alert.fired` firings, newest first: {"seq", "received_at", "firing": Firing JSON}.
    # `seq` counts every alert the feed received (1, 2, ...), so a session can tell which are new.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alerts_received: int = 0


class LiveFeed:
    """Background subscriber holding the latest W per symbol (bounded) and recent events.

    Thread-safe: the subscriber thread writes under a lock; `snapshot()` hands out copies (the
    views are frozen models, shared), so sessions can never mutate the shared state. `version`
    grows on every change, which lets a caller skip work when nothing happened.
    """

    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        max_symbols: int = 5_000,
        max_events: int = 200,
        max_alerts: int = 500,
        client_name: str = "tickstream-ui-livefeed",
        poll_timeout: float = 0.5,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        connect_timeout: float = 2.0,
        health_check_interval: int = 10,
    ) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.client_name = client_name
        self._max_symbols = max_symbols
        self._poll_timeout = poll_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._health_check_interval = health_check_interval

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._version = 0
        # (version, serialized events, serialized alerts): N sessions polling an unchanged feed
        # share one dump.
        self._copy_cache: tuple[int, bytes, bytes] | None = None
        self._alerts_cache: tuple[int, bytes] | None = None  # (alerts_received, dump)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> LiveFeed:
        """Start the subscriber thread (idempotent); returns self for chaining."""
        with self._lock:
            if self._thread is None and not self._stop_event.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"livefeed:{self.channel}", daemon=True
                )
                self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it; a stopped feed is not restarted."""
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._changed:
            self._connected = False
            self._bump()

    @property
    def running(self) -> bool:
        """Whether the subscriber thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def version(self) -> int:
        """Monotonically increasing change counter."""
        with self._lock:
            return self._version

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
            counters: dict[str, Any] = {
                "events_received": self._events_received,
                "events_by_type": dict(self._events_by_type),
                "bad_events": self._bad_events,
                "last_event_at": self._last_event_at,
                "connected": self._connected,
                "last_error": self._last_error,
                "connection_failures": self._connection_failures,
                "running": self.running,
                "version": self._version,
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
    def ingest(self, raw: bytes | str) -> None:
        """Apply one raw channel message (the thread's path; public so tests need no Redis).

        Messages that are not one of the channel's events (`backend.core.events`) are counted and
        dropped: one bad publisher must not kill the feed.
        """
        now = datetime.now(UTC)
        try:
            event = decode_event(raw)
        except ValidationError:
            with self._changed:
                self._bad_events += 1
                self._bump()
            return

        summary = event.model_dump(mode="json", exclude={"view"})
        summary["received_at"] = now.isoformat()

        with self._changed:
            self._events_received += 1
            self._events_by_type[event.type] = self._events_by_type.get(event.type, 0) + 1
            self._last_event_at = now
            self._events.append(summary)
            if isinstance(event, SymbolUpdated):
                self._store_view(event.symbol, event.view)
            elif isinstance(event, AlertFired):
                self._alerts_received += 1
                self._alerts.append(
                    {
                        "seq": self._alerts_received,
                        "received_at": summary["received_at"],
                        "firing": summary["firing"],
                    }
                )
            self._bump()

    def _store_view(self, symbol: str, view: View) -> None:
        """Keep the newer of the stored and incoming W (workers may publish out of order)."""
        current = self._views.get(symbol)
        if current is not None and freshness(view) < freshness(current):
            return
        self._views[symbol] = view
        self._views.move_to_end(symbol)
        while len(self._views) > self._max_symbols:
            self._views.popitem(last=False)  # the symbol updated longest ago goes first

    def _bump(self) -> None:
        """Record a change; caller holds the lock."""
        self._version += 1
        self._changed.notify_all()

    def _set_connected(self) -> None:
        with self._changed:
            if self._connected:
                return
            self._connected = True
            self._last_error = None
            self._bump()
        logger.info("live feed subscribed to %s", self.channel)

    def _set_disconnected(self, error: str) -> None:
        with self._changed:
            was_connected = self._connected
            self._connected = False
            self._last_error = error
            self._connection_failures += 1
            self._bump()
        log = logger.warning if was_connected else logger.debug
        log("live feed lost Redis (%s); retrying", error)

    # --- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        """Subscribe, pump messages, and on any failure back off and subscribe again."""
        delay = self._backoff_initial
        while not self._stop_event.is_set():
            subscription: SyncSubscription | None = None
            try:
                subscription = SyncSubscription(
                    self.redis_url,
                    self.channel,
                    socket_connect_timeout=self._connect_timeout,
                    socket_timeout=max(5.0, self._poll_timeout * 4),
                    socket_keepalive=True,
                    health_check_interval=self._health_check_interval,
                    client_name=self.client_name,
                    retry=Retry(NoBackoff(), 0),  # this loop owns reconnects and the backoff
                )
                subscription.open()
                while not self._stop_event.is_set():
                    delivery = subscription.get(timeout=self._poll_timeout)
                    if delivery is None:
                        continue
                    if delivery.subscribed:
                        self._set_connected()
                        delay = self._backoff_initial
                    elif delivery.payload is not None:
                        self.ingest(delivery.payload)
            except (redis.RedisError, OSError) as exc:
                self._set_disconnected(_describe(exc))
            except Exception as exc:  # never let the subscriber die quietly
                logger.exception("live feed crashed; restarting")
                self._set_disconnected(_describe(exc))
            finally:
                if subscription is not None:
                    _close_quietly(*subscription.resources())
            if self._stop_event.wait(delay * random.uniform(0.8, 1.2)):
                break
            delay = min(delay * 2, self._backoff_max)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(*resources: Any) -> None:
    for resource in resources:
        if resource is None:
            continue
        try:
            resource.close()
        except Exception:  # closing a broken connection may itself fail; nothing to do
            logger.debug("ignoring error while closing %r", resource, exc_info=True)
