"""Recording a Server-Sent Events stream in a background thread, for tests that keep acting while
the stream flows (posting ticks, killing processes) and look at what arrived afterwards.

The parser is ours rather than httpx-sse's because it also reports comments (`: heartbeat`): a
sign of life that lets the reading thread notice `close()` on a quiet stream, without a read
timeout or a socket closed under a blocked read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from tests.support.waiting import wait_for


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its `id:` (None without one), `event:` and joined `data:` lines."""

    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return orjson.loads(self.data)


def parse(lines: Iterable[str]) -> Iterator[SseEvent | None]:
    """The events of an SSE body, line by line (the WHATWG rules, minus `retry:`); None for each
    comment line."""
    event_id: str | None = None
    kind = ""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseEvent(event_id, kind or "message", "\n".join(data))
            event_id, kind, data = None, "", []
            continue
        if line.startswith(":"):
            yield None
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


class SseRecorder:
    """Connects to `url` and appends every event to `events` until `close()` or the stream ends.

    `start()` returns once the response has started (its status is in `status`), so whatever the
    test does next happens while the client is connected. `close()` is noticed at the next event
    or comment: give the gateway a short GATEWAY_HEARTBEAT_S for a quick close on a quiet stream.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.status: int | None = None
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._events: list[SseEvent] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sse-recorder")

    def start(self, timeout: float = 15) -> SseRecorder:
        self._thread.start()
        if not self._started.wait(timeout):
            raise AssertionError(f"no answer from {self.url} within {timeout}s")
        if self.status != 200:
            raise AssertionError(f"{self.url} answered {self.status} ({self.error!r})")
        return self

    @property
    def events(self) -> list[SseEvent]:
        with self._lock:
            return list(self._events)

    def wait_until(
        self, predicate: Callable[[list[SseEvent]], Any], timeout: float, what: str
    ) -> Any:
        """Wait until `predicate(events so far)` holds; fails early if the stream ended."""

        def check() -> Any:
            if self.ended.is_set():
                raise AssertionError(f"the stream ended ({self.error!r}) before {what}")
            return predicate(self.events)

        return wait_for(check, timeout, what=what)

    def close(self, timeout: float = 10) -> None:
        """Stop reading (noticed at the next event or heartbeat comment) and wait for it."""
        self._stopping.set()
        self._thread.join(timeout)

    def __enter__(self) -> SseRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        timeout = httpx.Timeout(10, read=60)
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("GET", self.url, headers=self.headers) as response,
            ):
                self.status = response.status_code
                self._started.set()
                if response.status_code != 200:
                    return
                for item in parse(response.iter_lines()):
                    if self._stopping.is_set():
                        return
                    if item is not None:
                        with self._lock:
                            self._events.append(item)
        except Exception as exc:  # reported through `error` / `ended`, never lost
            self.error = exc
        finally:
            self._started.set()
            self.ended.set()
