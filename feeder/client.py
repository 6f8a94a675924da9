"""Delivery of ticks to the ingest API over keep-alive HTTP, with safe retries.

A retry always re-sends the very same bytes (same event_ids), so the API's idempotency turns a
retry of a request that had in fact landed into "duplicate" answers: a retry can never double a
tick. Only network errors, 5xx and 429 are retried; any other answer is final. Every outcome is
counted and no network failure escapes `send` / `send_batch`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
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
    stop_never,
    wait_exponential_jitter,
)

from backend.settings import Settings
from feeder.outcomes import (
    Counters,
    Outcome,
    RetryableStatus,
    is_retryable,
    parse_batch_answer,
    parse_retry_after,
    rejection_kind,
)

__all__ = ["Counters", "Outcome", "RetryableStatus", "TickClient", "parse_retry_after"]

log = logging.getLogger(__name__)

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore 1.0.x imports sniffio inside every request; since anyio 4.11 it is often absent,
    # and Python does not cache a failed import, so each request rescanned sys.path. Caching
    # the miss keeps the same behaviour ("not installed") at no cost.
    # See encode/httpcore#1103; installing sniffio would do too.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

INGEST_PATH = "/ingest/tick"
BATCH_PATH = "/ingest/ticks"
# How many distinct rejection kinds get their body logged; beyond that only the counter moves.
MAX_LOGGED_KINDS = 100
# Network errors repeat by the thousand during an outage: log each kind at most this often.
ERROR_LOG_INTERVAL_S = 10.0


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


class TickClient:
    """POSTs ticks to `{TARGET_URL}/ingest/tick` (or a batch to `/ingest/ticks`), Basic auth.

    Requests go over up to `max_connections` "lanes", each an `httpx.AsyncClient` holding one
    keep-alive connection. One shared httpx pool degrades badly with many concurrent requests
    (encode/httpx#3215), and a lane taken per attempt means a slow
    response only ever occupies its own connection.

    Retries: exponential backoff plus jitter, or exactly the server's Retry-After when it sends
    one (capped at `retry_after_max`). Gives up after `max_attempts` attempts or
    `max_retry_time` seconds (None: never, for a caller that buffers and wants no loss),
    counting the tick as an error. Creating the client opens no connection.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_connections: int = 64,
        timeout: float = 10.0,
        max_attempts: int | None = 8,
        max_retry_time: float | None = 60.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        retry_after_max: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if max_connections < 1 or (max_attempts is not None and max_attempts < 1):
            raise ValueError("max_connections and max_attempts must be >= 1")
        self.counters = Counters()
        self.retry_after_max = retry_after_max
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # time.monotonic() of `last_error`
        # time.monotonic() of the last final answer (2xx/4xx): the feeder's readiness probe.
        self.last_answer_at: float | None = None
        # The wait between attempts; tenacity's own (asyncio.sleep) unless a test injects one.
        self._sleep_kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        self._stop = stop_never
        if max_attempts is not None:
            self._stop = self._stop | stop_after_attempt(max_attempts)
        if max_retry_time is not None:
            self._stop = self._stop | stop_after_delay(max_retry_time)
        self._backoff = wait_exponential_jitter(
            initial=backoff_initial, max=backoff_max, jitter=backoff_initial
        )
        # Env-independent on purpose: all configuration comes from Settings (no proxy/CA env).
        ssl_context = httpx.create_ssl_context(trust_env=False)  # built once: building one is slow
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

    async def _post(self, path: str, body: bytes) -> httpx.Response:
        """One attempt over an idle lane (waits for one when all are busy)."""
        lane = await self._idle.get()
        if lane is None:
            lane = self._new_lane()
            self._lanes.append(lane)
        try:
            return await lane.post(path, content=body)
        finally:
            self._idle.put_nowait(lane)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_max)
        return self._backoff(state)

    async def _post_with_retries(self, path: str, body: bytes, ticks: int) -> httpx.Response | None:
        """The first final answer (2xx/4xx), or None once the retries ran out."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((httpx.TransportError, RetryableStatus)),
            stop=self._stop,
            wait=self._wait,
            reraise=True,
            **self._sleep_kwargs,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.counters.retries += ticks
                    try:
                        response = await self._post(path, body)
                    except httpx.TransportError as exc:
                        self._note_error(type(exc).__name__, str(exc) or repr(exc))
                        raise
                    if is_retryable(response.status_code):
                        self._note_error(f"HTTP {response.status_code}", response.text)
                        raise RetryableStatus(
                            response.status_code,
                            parse_retry_after(response.headers.get("retry-after")),
                            response.text[:500],
                        )
                    self.last_answer_at = time.monotonic()
                    return response
        except (RetryableStatus, httpx.HTTPError):
            log.warning("gave up on %d tick(s) after retries: %s", ticks, self.last_error)
        return None

    async def send(self, payload: dict[str, Any] | bytes, *, bad: bool = False) -> Outcome:
        """Deliver one tick; never raises for HTTP or network trouble."""
        # Encoded once: every attempt carries identical bytes.
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.counters.sent += 1
        self.counters.bad_sent += bad
        response = await self._post_with_retries(INGEST_PATH, body, 1)
        outcome = Outcome.FAILED if response is None else self._classify(response, bad)
        self.counters.count(outcome, bad=bad)
        return outcome

    async def send_batch(
        self, bodies: Sequence[bytes], bad: Sequence[bool] | None = None
    ) -> list[Outcome]:
        """Deliver encoded ticks in one `POST /ingest/ticks`; one outcome per item.

        Stored items come back as DELIVERED (the answer counts accepted and duplicates but
        does not say which item was which); the counters get the exact totals.
        """
        bad = bad if bad is not None else [False] * len(bodies)
        self.counters.sent += len(bodies)
        self.counters.bad_sent += sum(bad)
        body = b"[" + b",".join(bodies) + b"]"
        response = await self._post_with_retries(BATCH_PATH, body, len(bodies))
        if response is None:
            outcomes = [Outcome.FAILED] * len(bodies)
        elif 200 <= response.status_code < 300:
            answer = parse_batch_answer(_json(response), len(bodies))
            self.counters.accepted += answer.accepted
            self.counters.duplicates += answer.duplicates
            for index, errors in answer.errors.items():
                if not bad[index]:
                    self._log_once(422, {"detail": errors}, "rejected in batch")
            outcomes = answer.outcomes
        else:  # the whole batch refused (auth, size, not an array): final, not retried
            self._log_once(response.status_code, _json(response), "batch refused")
            outcomes = [Outcome.REJECTED] * len(bodies)
        for outcome, is_bad in zip(outcomes, bad, strict=True):
            if outcome is not Outcome.DELIVERED:
                self.counters.count(outcome, bad=is_bad)
        return outcomes

    def _classify(self, response: httpx.Response, bad: bool) -> Outcome:
        """Map a final single-tick answer to an outcome."""
        status = response.status_code
        if 200 <= status < 300:
            body = _json(response)
            if isinstance(body, dict) and body.get("status") == "duplicate":
                return Outcome.DUPLICATE
            return Outcome.ACCEPTED
        if not bad:  # the deliberately malformed ones are expected to be refused
            self._log_once(status, _json(response), "conflict" if status == 409 else "rejected")
        return Outcome.CONFLICT if status == 409 else Outcome.REJECTED

    def _log_once(self, status: int, body: Any, what: str) -> None:
        kind = rejection_kind(status, body)
        if kind in self._logged_kinds or len(self._logged_kinds) >= MAX_LOGGED_KINDS:
            return
        self._logged_kinds.add(kind)
        log.warning(
            "tick %s: HTTP %s %s (further ones of this kind are only counted)",
            what,
            status,
            orjson.dumps(body)[:1000].decode(errors="replace"),
        )

    def _note_error(self, kind: str, detail: str) -> None:
        """Remember the error for status reports; log each kind at most every 10 s."""
        now = time.monotonic()
        self.last_error, self.last_error_at = f"{kind}: {detail[:300]}", now
        last = self._error_logged_at.get(kind)
        if last is not None and now - last < ERROR_LOG_INTERVAL_S:
            return
        self._error_logged_at[kind] = now
        log.warning("tick delivery failing, retrying: %s: %s", kind, detail[:500])
