"""Delivery of ticks to the ingest API over keep-alive HTTP, with safe retries.

A retry always re-sends the very same bytes (same event_id), so the API's idempotency turns a
retry of a request that had in fact landed into a "duplicate" answer: a retry can never double a
tick. Every outcome is counted and no network failure escapes `send`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from backend.config import Settings

log = logging.getLogger(__name__)

INGEST_PATH = "/ingest/tick"
# How many distinct rejection kinds get their body logged; beyond that only the counter moves.
MAX_LOGGED_KINDS = 100
# Network errors repeat by the thousand during an outage: log each kind at most this often.
ERROR_LOG_INTERVAL_S = 10.0


class Outcome(enum.StrEnum):
    """What became of one tick."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # already stored (e.g. an earlier attempt landed): a success
    CONFLICT = "conflict"  # 409: the event_id is known with different content
    REJECTED = "rejected"  # other 4xx: the API will never take it, so not retried
    FAILED = "failed"  # network errors / 5xx / 429 until the retries ran out


@dataclass
class Counters:
    """Per-tick outcomes plus attempts; `sent` counts each tick once, `retries` each re-send."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    retries: int = 0
    errors: int = 0

    def snapshot(self) -> Counters:
        return Counters(**asdict(self))

    def summary(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())


class RetryableStatus(Exception):
    """A 5xx or 429 answer: worth another attempt, after `retry_after` seconds if the API said."""

    def __init__(self, status_code: int, retry_after: float | None, body: str) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after
        self.body = body


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _rejection_kind(response: httpx.Response) -> tuple[Any, ...]:
    """A key that groups rejections by cause (status + validation error locations/types)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return (response.status_code,)
    if isinstance(detail, list):
        parts = tuple(
            (tuple(item.get("loc", ())), item.get("type"))
            for item in detail
            if isinstance(item, dict)
        )
        return (response.status_code, parts)
    if isinstance(detail, str):
        return (response.status_code, detail[:100])
    return (response.status_code,)


class TickClient:
    """POSTs ticks to `{TARGET_URL}/ingest/tick` with Basic auth, retrying transient failures.

    Requests go over up to `max_connections` "lanes", each an `httpx.AsyncClient` holding one
    keep-alive connection. One shared httpx pool degrades badly with many concurrent requests
    (encode/httpx#3215; measured here: ~3x fewer requests/s at 64 in flight than with 64
    independent single-connection clients), and a lane taken per attempt means a slow
    response only ever occupies its own connection.

    Retries: network errors, 5xx and 429, with exponential backoff plus jitter, or exactly the
    server's Retry-After when it sends one (capped at `retry_after_max`). Gives up after
    `max_attempts` attempts or `max_retry_time` seconds, counting the tick as an error.
    Creating the client opens no connection; use `async with` or call `aclose()`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_connections: int = 64,
        timeout: float = 10.0,
        max_attempts: int = 8,
        max_retry_time: float = 60.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        retry_after_max: float = 60.0,
    ) -> None:
        if max_connections < 1 or max_attempts < 1:
            raise ValueError("max_connections and max_attempts must be >= 1")
        self.counters = Counters()
        self.max_attempts = max_attempts
        self.max_retry_time = max_retry_time
        self.retry_after_max = retry_after_max
        self._backoff = wait_exponential_jitter(
            initial=backoff_initial, max=backoff_max, jitter=backoff_initial
        )
        # Env-independent on purpose: all configuration comes from Settings (no proxy/CA env).
        ssl_context = httpx.create_ssl_context(trust_env=False)  # built once: ~40 ms each
        self._new_lane = partial(
            httpx.AsyncClient,
            base_url=settings.target_url.rstrip("/"),
            auth=httpx.BasicAuth(
                settings.ingest_username, settings.ingest_password.get_secret_value()
            ),
            headers={"content-type": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            verify=ssl_context,
            trust_env=False,
        )
        # Idle lanes; None = a lane not opened yet. Lanes are made on first use, so an idle or
        # slow feed holds few connections and nothing is opened before the first tick.
        self._idle: asyncio.Queue[httpx.AsyncClient | None] = asyncio.Queue()
        for _ in range(max_connections):
            self._idle.put_nowait(None)
        self._lanes: list[httpx.AsyncClient] = []
        self._logged_kinds: set[tuple[Any, ...]] = set()
        self._error_logged_at: dict[str, float] = {}

    async def __aenter__(self) -> TickClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            await lane.aclose()

    async def _post(self, body: bytes) -> httpx.Response:
        """One attempt over an idle lane (waits for one when all are busy)."""
        lane = await self._idle.get()
        if lane is None:
            lane = self._new_lane()
            self._lanes.append(lane)
        try:
            return await lane.post(INGEST_PATH, content=body)
        finally:
            self._idle.put_nowait(lane)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_max)
        return self._backoff(state)

    async def send(self, payload: dict[str, Any]) -> Outcome:
        """Deliver one tick; never raises for HTTP or network trouble."""
        body = orjson.dumps(payload)  # encoded once: every attempt carries identical bytes
        self.counters.sent += 1
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((httpx.TransportError, RetryableStatus)),
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_retry_time),
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.counters.retries += 1
                    response = await self._post(body)
                    return self._classify(response)
        except RetryableStatus as exc:
            self._log_error(f"HTTP {exc.status_code}", exc.body)
        except httpx.HTTPError as exc:
            self._log_error(type(exc).__name__, str(exc) or repr(exc))
        self.counters.errors += 1
        return Outcome.FAILED

    def _classify(self, response: httpx.Response) -> Outcome:
        """Map a response to an outcome; raises `RetryableStatus` for 5xx and 429."""
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableStatus(
                status, parse_retry_after(response.headers.get("retry-after")), response.text[:500]
            )
        if 200 <= status < 300:
            if _status_field(response) == "duplicate":
                self.counters.duplicates += 1
                return Outcome.DUPLICATE
            self.counters.accepted += 1
            return Outcome.ACCEPTED
        if status == 409:
            self.counters.conflicts += 1
            self._log_once(response, "conflict")
            return Outcome.CONFLICT
        self.counters.rejected += 1
        self._log_once(response, "rejected")
        return Outcome.REJECTED

    def _log_once(self, response: httpx.Response, what: str) -> None:
        kind = _rejection_kind(response)
        if kind in self._logged_kinds or len(self._logged_kinds) >= MAX_LOGGED_KINDS:
            return
        self._logged_kinds.add(kind)
        log.warning(
            "tick %s: HTTP %s %s (further ones of this kind are only counted)",
            what,
            response.status_code,
            response.text[:1000],
        )

    def _log_error(self, kind: str, detail: str) -> None:
        now = time.monotonic()
        last = self._error_logged_at.get(kind)
        if last is not None and now - last < ERROR_LOG_INTERVAL_S:
            return
        self._error_logged_at[kind] = now
        log.warning("tick delivery failed after retries: %s: %s", kind, detail[:500])


def _status_field(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data.get("status") if isinstance(data, dict) else None
