"""Remote control without an inbound port: poll the desired config, push status reports.

A feeder may run anywhere that can reach `TARGET_URL`, so it pulls `GET /feeder/config` every
second (applying a new `version` within about a second) and pushes `POST /feeder/status`
every `STATUS_INTERVAL`. The control plane is optional: when the API is unreachable, answers
404 (an older API) or sends something unreadable, the feeder keeps its last config, which at
first is the one built from its own Settings. Version 0 is the API's "nobody changed
anything" default, so it never overrides what the feeder was started with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httpx
from pydantic import ValidationError

from backend.core.feeder_config import FeederConfig, FeederStatus
from backend.settings import Settings
from feeder.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

CONFIG_PATH = "/feeder/config"
STATUS_PATH = "/feeder/status"
POLL_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 2.0
ERROR_LOG_INTERVAL_S = 30.0


def config_from_settings(settings: Settings) -> FeederConfig:
    """The feeder's own starting config (version 0): SYMBOLS, SOURCES, TPS, mode, rates."""
    return FeederConfig(
        version=0,
        running=True,
        symbols=list(settings.symbols),
        sources=list(settings.sources),
        tps=settings.tps,
        mode=settings.ingest_mode,
        duplicate_rate=settings.duplicate_rate,
        out_of_order_rate=settings.out_of_order_rate,
        gap_rate=settings.gap_rate,
        bad_tick_rate=settings.bad_tick_rate,
    )


class RateMeter:
    """Events per second over the last `window` seconds, from (time, running total) samples."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        # Keep one sample at or before the window's start, so the rate spans the full window.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return max(0.0, (n1 - n0) / (t1 - t0)) if t1 > t0 else 0.0


class ControlClient:
    """The two control-plane calls, with the ingest Basic credentials; never raises."""

    def __init__(self, settings: Settings, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.target_url.rstrip("/"),
            auth=httpx.BasicAuth(
                settings.ingest_username, settings.ingest_password.get_secret_value()
            ),
            timeout=timeout,
            trust_env=False,
        )
        self.last_error: str | None = None
        self._logged_at: dict[str, float] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def fetch_config(self) -> FeederConfig | None:
        """The API's current config, or None (keep the last) when there is none to be had."""
        try:
            response = await self._http.get(CONFIG_PATH)
        except httpx.HTTPError as exc:
            return self._failed("config", f"{type(exc).__name__}: {exc}")
        if response.status_code == 404:
            return self._failed("config", "the API has no /feeder/config (older API?)")
        if response.status_code != 200:
            return self._failed("config", f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            return FeederConfig.model_validate_json(response.content)
        except ValidationError as exc:
            return self._failed("config", f"unreadable config: {exc}")

    async def post_status(self, status: FeederStatus) -> bool:
        try:
            response = await self._http.post(
                STATUS_PATH,
                content=status.model_dump_json(),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            self._failed("status", f"{type(exc).__name__}: {exc}")
            return False
        if response.status_code >= 300:
            self._failed("status", f"HTTP {response.status_code}: {response.text[:200]}")
            return False
        return True

    def _failed(self, call: str, message: str) -> None:
        """Remember and (rarely) log a failed call; "config" failures keep the current config."""
        self.last_error = message[:300]
        now = time.monotonic()
        key = f"{call}:{message[:40]}"
        if now - self._logged_at.get(key, -float("inf")) >= ERROR_LOG_INTERVAL_S:
            self._logged_at[key] = now
            consequence = "keeping the current config" if call == "config" else "will retry"
            log.warning("feeder %s call failed: %s; %s", call, message[:500], consequence)


class Control:
    """Runs the poll and report loops until cancelled.

    `apply` receives each new remote config (version > 0 and not the one applied last);
    `status` builds the report to send. Both cadences run on `clock`, so a test can check them
    on simulated time.
    """

    def __init__(
        self,
        client: ControlClient,
        apply: Callable[[FeederConfig], None],
        status: Callable[[], FeederStatus],
        *,
        applied_version: int = 0,
        poll_interval: float = POLL_INTERVAL_S,
        status_interval: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client = client
        self.apply = apply
        self.status = status
        self.applied_version = applied_version
        self.poll_interval = poll_interval
        self.status_interval = status_interval
        self.clock = clock

    async def run(self) -> None:
        await asyncio.gather(
            self._every(self.poll_interval, self.poll_once),
            self._every(self.status_interval, self.report_once),
        )

    async def poll_once(self) -> bool:
        """Fetch and apply the remote config if it is new; True when something was applied."""
        config = await self.client.fetch_config()
        if config is None or config.version <= 0 or config.version == self.applied_version:
            return False
        self.applied_version = config.version
        burst = config.burst
        log.info(
            "config v%d: running=%s tps=%g mode=%s symbols=%d sources=%d burst=%s",
            config.version,
            config.running,
            config.tps,
            config.mode,
            len(config.symbols),
            len(config.sources),
            f"x{burst.multiplier:g} until {burst.until:%H:%M:%S}"
            if burst and burst.until
            else None,
        )
        self.apply(config)
        return True

    async def report_once(self) -> bool:
        return await self.client.post_status(self.status())

    async def _every(self, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        """Run `step` on a fixed cadence; a slow step delays the next one, never stacks them."""
        next_at = self.clock.monotonic()
        while True:
            try:
                await step()
            except Exception:  # the control plane must never take the feed down
                log.exception("control plane step failed")
            next_at = max(next_at + interval, self.clock.monotonic())
            await self.clock.sleep(next_at - self.clock.monotonic())
