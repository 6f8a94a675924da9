"""Runs one outbox flusher and one alert history flusher per worker process, tied to the
worker's lifecycle."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import WorkerSettings
from tasks.alert_history import AlertHistoryFlusher
from tasks.outbox import OutboxFlusher

log = logging.getLogger(__name__)


class OutboxFlusherMiddleware(dramatiq.Middleware):
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.flusher: OutboxFlusher | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        # Its own connection: the flusher blocks on XREADGROUP.
        redis = Redis.from_url(self.settings.effective_redis_url, health_check_interval=30)
        self.flusher = OutboxFlusher(
            redis=redis,
            keys=Keys.from_settings(self.settings),
            pg_conninfo=self.settings.psycopg_url,
            batch_size=self.settings.batch_size,
            flush_interval_s=self.settings.flush_interval,
            claim_idle_ms=self.settings.outbox_claim_idle_ms,
        )
        self.flusher.start()
        log.info("outbox flusher %s started", self.flusher.name)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self.flusher is not None:
            self.flusher.stop()


class AlertHistoryMiddleware(dramatiq.Middleware):
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.flusher: AlertHistoryFlusher | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        # Its own connection: the flusher blocks on XREADGROUP.
        redis = Redis.from_url(self.settings.effective_redis_url, health_check_interval=30)
        self.flusher = AlertHistoryFlusher(
            redis=redis,
            keys=Keys.from_settings(self.settings),
            pg_conninfo=self.settings.psycopg_url,
            claim_idle_ms=self.settings.outbox_claim_idle_ms,
        )
        self.flusher.start()
        log.info("alert history flusher %s started", self.flusher.name)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self.flusher is not None:
            self.flusher.stop()
