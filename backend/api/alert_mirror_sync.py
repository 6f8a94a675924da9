"""Keeps the workers' rule mirror (Redis) equal to the rules in PostgreSQL, in the background.

At start-up the API replaces the mirror with the stored rules, so a mirror lost with Redis's data
(or written by an older deployment) comes back. Start-up never waits for it: while PostgreSQL or
Redis is down the sync retries with backoff and the API serves everything else. A route whose
PostgreSQL write committed but whose mirror write failed asks for another sync the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.exceptions import RedisError

from backend.bus.alert_rules import AsyncAlertRuleMirror
from backend.storage.alerts_repo import list_rules

log = logging.getLogger(__name__)


class RuleMirrorSync:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        mirror: AsyncAlertRuleMirror,
        *,
        first_retry_s: float = 0.5,
        max_retry_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self._mirror = mirror
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.syncs = 0  # completed syncs (for tests and logs)

    def request(self) -> None:
        """Sync again soon (a mirror write failed, or the process just started)."""
        self._wanted.set()

    async def start(self) -> None:
        self.request()
        self._task = asyncio.create_task(self._run(), name="alert-rule-mirror-sync")

    async def stop(self) -> None:
        """Cancel the sync, again until it ends: a cancellation that lands inside the pool's
        `getconn` can be swallowed there (and come back as a `PoolTimeout`)."""
        self._stopping = True
        task = self._task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sync_once(self) -> int:
        """Replace the mirror with the stored rules; returns how many.

        The mirror's version is read before PostgreSQL and the replace applies only if it has
        not moved: a rule written meanwhile (its put or delete moves the version) is never
        undone by an older snapshot; the sync reads again instead."""
        while True:
            seen = await self._mirror.version()
            async with self._pool.connection(timeout=5) as conn:
                rules = await list_rules(conn)
            if await self._mirror.replace_all(rules, if_version=seen):
                return len(rules)

    async def _run(self) -> None:
        delay = self._first_retry_s
        while not self._stopping:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                count = await self.sync_once()
            except (psycopg.Error, PoolTimeout, RedisError, OSError, TimeoutError) as exc:
                if self._stopping:
                    return
                log.warning("alert rules: mirror sync failed (%s); retry in %.1fs", exc, delay)
                self._wanted.set()
                await asyncio.sleep(delay)
                delay = min(self._max_retry_s, delay * 2)
                continue
            delay = self._first_retry_s
            self.syncs += 1
            log.info("alert rules: mirror synced from PostgreSQL (%d rules)", count)
