"""Settings per process: each process builds only its own class, once, at its edge.

Every class is the union of the shared groups it reads (backend.settings.groups) and the fields
only it reads. Groups are always listed in one order, so the launcher's `Settings`, which
inherits every process's class, is a valid `ApiSettings`, `WorkerSettings`, ... wherever one is
expected (tests and tools pass it around as such).

    process   class                groups (all: logging, deploy)
    API       ApiSettings          metrics access, bus, storage, ingest auth, API key, feed,
                                   view, alerts
    worker    WorkerSettings       metrics access, bus, API key (/metrics), storage, view, alerts
    feeder    FeederSettings       metrics access, ingest auth, API key (/metrics), feed
                                   (no Redis, no Postgres)
    bench     FeederBenchSettings  feeder + storage                  (verifies in Postgres)
    gateway   GatewaySettings      metrics access, bus, API key       (no Postgres)
    UI        UiSettings           API key, feed, view                (no Redis: API + gateway)
    launcher  Settings             all of them + embedded servers and ports
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from backend.settings.base import PER_PROCESS, SettingsBase, split_csv
from backend.settings.groups import (
    AlertSettings,
    ApiKeySettings,
    BusSettings,
    DeploySettings,
    FeedSettings,
    IngestAuthSettings,
    LoggingSettings,
    MetricsAccessSettings,
    ReplaySettings,
    StorageSettings,
    ViewSettings,
    http_url,
)


# --- fields only one process reads ---------------------------------------------------------
class ApiFields(SettingsBase):
    internal_token: SecretStr = Field(
        default=SecretStr("internal-dev-token"), validation_alias="INTERNAL_TOKEN"
    )
    # MAX_TICK_AGE + MAX_FUTURE_SKEW <= DEDUP_TTL (checked by ApiSettings): a tick is refused
    # before the de-dup memory could have forgotten its event_id.
    max_tick_age: int = Field(default=3_540, ge=1, validation_alias="MAX_TICK_AGE")
    max_future_skew: float = Field(default=5.0, ge=0, validation_alias="MAX_FUTURE_SKEW")
    # 5 ms: at 1,000 single-tick requests/s, groups of ~5 instead of ~2 cut the hand-offs, calc
    # messages and fast-path writes per tick; ack p99 stayed under 10 ms (tests/bench/pipeline).
    ingest_linger_ms: float = Field(default=5.0, ge=0, validation_alias="INGEST_LINGER_MS")
    ingest_max_batch: int = Field(default=2_000, ge=1, validation_alias="INGEST_MAX_BATCH")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, validation_alias="MAX_BODY_BYTES")
    max_batch_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, validation_alias="MAX_BATCH_BODY_BYTES"
    )
    max_batch_items: int = Field(default=5_000, ge=1, validation_alias="MAX_BATCH_ITEMS")
    # Backpressure: ingest answers 429 while this many ticks wait (for calc + for Postgres);
    # 0 turns it off. Each waiting tick costs Redis a queue message and an outbox entry.
    max_backlog: int = Field(default=200_000, ge=0, validation_alias="MAX_BACKLOG")
    # Pipeline stats: one sample every STATS_INTERVAL s, kept STATS_RETENTION s (the UI's charts).
    stats_interval: float = Field(default=2.0, ge=0.2, le=60, validation_alias="STATS_INTERVAL")
    stats_retention: int = Field(
        default=3_600, ge=60, le=86_400, validation_alias="STATS_RETENTION"
    )
    # Where browsers and API consumers reach the realtime gateway: the API's /stream sends a 307
    # there.
    gateway_public_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias="GATEWAY_PUBLIC_URL"
    )

    @field_validator("gateway_public_url")
    @classmethod
    def _gateway_scheme(cls, value: str) -> str:
        return http_url(value)


class WorkerFields(SettingsBase):
    batch_size: int = Field(default=200, ge=1, validation_alias="BATCH_SIZE")
    flush_interval: float = Field(default=1.0, gt=0, validation_alias="FLUSH_INTERVAL")
    maintenance_chance: int = Field(
        default=1_000_000, ge=1, le=1_000_000, validation_alias="MAINTENANCE_CHANCE"
    )
    outbox_claim_idle_ms: int = Field(
        default=10_000, ge=100, validation_alias="OUTBOX_CLAIM_IDLE_MS"
    )
    # An idle Dramatiq consumer backs off exponentially up to this before polling again; the
    # CLI default (--worker-timeout, 1 s) put up to a second on the ingest→view latency of a
    # message that arrived during the sleep. An idle poll costs Redis one small script.
    worker_poll_max_ms: int = Field(
        default=50, ge=5, le=5_000, validation_alias="WORKER_POLL_MAX_MS"
    )
    calc_max_retries: int = Field(default=5, ge=0, validation_alias="CALC_MAX_RETRIES")
    calc_split: bool = Field(default=False, validation_alias="CALC_SPLIT")
    # calc coalescing: a worker applying a calc message also takes up to this many messages
    # queued behind it (and at most CALC_COALESCE_BYTES of them) and applies them all in one
    # transaction per symbol. 0 turns it off: one message per step.
    calc_coalesce_messages: int = Field(
        default=200, ge=0, le=10_000, validation_alias="CALC_COALESCE_MESSAGES"
    )
    calc_coalesce_bytes: int = Field(
        default=1_048_576, ge=1_024, validation_alias="CALC_COALESCE_BYTES"
    )
    # How long the thread leading a step waits for more calc messages to join it: the latency
    # a view gives for far fewer transactions when ticks arrive one by one.
    calc_linger_ms: float = Field(default=100.0, ge=0, le=1_000, validation_alias="CALC_LINGER_MS")
    # /metrics and /health/* of the two Dramatiq services (one port per service, served by a
    # fork of its Dramatiq process for all its worker processes); 0 serves none.
    worker_metrics_port: int = Field(
        default=9191, ge=0, le=65_535, validation_alias="WORKER_METRICS_PORT"
    )
    alerts_metrics_port: int = Field(
        default=9192, ge=0, le=65_535, validation_alias="ALERTS_METRICS_PORT"
    )
    history_metrics_port: int = Field(
        default=9194, ge=0, le=65_535, validation_alias="HISTORY_METRICS_PORT"
    )


class FeederFields(SettingsBase):
    target_url: str = Field(default="http://127.0.0.1:8000", validation_alias="TARGET_URL")
    seed: int | None = Field(default=None, validation_alias="SEED")
    ingest_mode: Literal["single", "batch"] = Field(
        default="single", validation_alias="INGEST_MODE"
    )
    duplicate_rate: float = Field(default=0.0, ge=0, le=1, validation_alias="DUPLICATE_RATE")
    out_of_order_rate: float = Field(default=0.0, ge=0, le=1, validation_alias="OUT_OF_ORDER_RATE")
    gap_rate: float = Field(default=0.0, ge=0, le=1, validation_alias="GAP_RATE")
    bad_tick_rate: float = Field(default=0.0, ge=0, le=1, validation_alias="BAD_TICK_RATE")
    feeder_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}"[:128],
        min_length=1,
        max_length=128,
        validation_alias="FEEDER_ID",
        json_schema_extra=PER_PROCESS,
    )
    status_interval: float = Field(default=1.0, gt=0, validation_alias="STATUS_INTERVAL")
    # JSONL of what the feeder delivered (event_id + outcome), for tests and audits; off if unset.
    feeder_record_path: Path | None = Field(default=None, validation_alias="FEEDER_RECORD_PATH")
    # The feeder's /metrics and /health/*; 0 serves none (the load generator serves none).
    feeder_metrics_port: int = Field(
        default=9193, ge=0, le=65_535, validation_alias="FEEDER_METRICS_PORT"
    )

    @field_validator("target_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        return http_url(value)


class GatewayFields(SettingsBase):
    """The realtime gateway (backend.gateway): its port, its clients, the ring's age limit."""

    gateway_port: int = Field(default=8001, ge=1, le=65_535, validation_alias="GATEWAY_PORT")
    # Connections (SSE + WebSocket) one gateway process holds; beyond: 503 with Retry-After.
    gateway_max_clients: int = Field(default=2_000, ge=1, validation_alias="GATEWAY_MAX_CLIENTS")
    # Events queued per client before coalescing/dropping (views of one symbol always coalesce).
    gateway_client_queue: int = Field(
        default=1_000, ge=10, le=100_000, validation_alias="GATEWAY_CLIENT_QUEUE"
    )
    gateway_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, validation_alias="GATEWAY_HEARTBEAT_S"
    )
    # The `retry:` hint (ms) sent on connect: how soon a browser's EventSource reconnects.
    gateway_retry_ms: int = Field(default=2_000, ge=0, validation_alias="GATEWAY_RETRY_MS")
    # Origins a browser page may connect from (CORS for SSE, Origin check for WebSocket);
    # empty: same-origin pages and non-browser clients only; "*": any origin.
    gateway_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="GATEWAY_CORS_ORIGINS"
    )
    # The ring keeps events this long (seconds; REALTIME_MAX_EVENTS caps it too): how far back a
    # client can resume.
    realtime_retention: float = Field(
        default=600.0, ge=1, le=86_400, validation_alias="REALTIME_RETENTION"
    )

    @field_validator("gateway_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        return split_csv(value)


class UiFields(SettingsBase):
    backend_url: str = Field(default="http://127.0.0.1:8000", validation_alias="BACKEND_URL")
    # Where the UI's server process reaches the realtime gateway (its live data).
    gateway_url: str = Field(default="http://127.0.0.1:8001", validation_alias="GATEWAY_URL")
    # Optional password gate of the UI (Render deploys are public); no gate when unset.
    ui_password: SecretStr | None = Field(default=None, validation_alias="UI_PASSWORD")

    @field_validator("backend_url", "gateway_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        return http_url(value)


class LauncherFields(SettingsBase):
    """The embedded servers the launcher starts and the ports it gives the API and the UI."""

    var_dir: Path = Field(default=Path("var"), validation_alias="VAR_DIR")
    redis_appendfsync: str = Field(default="everysec", validation_alias="REDIS_APPENDFSYNC")
    port: int = Field(default=8000, validation_alias="PORT")
    ui_port: int = Field(default=8501, validation_alias="UI_PORT")


# --- one class per process (groups in the module docstring's order) --------------------------
class ApiSettings(
    LoggingSettings,
    DeploySettings,
    MetricsAccessSettings,
    BusSettings,
    StorageSettings,
    IngestAuthSettings,
    ApiKeySettings,
    FeedSettings,
    ViewSettings,
    AlertSettings,
    ReplaySettings,
    ApiFields,
):
    """What the API reads (`create_app`)."""

    @model_validator(mode="after")
    def _window_within_dedup(self) -> ApiSettings:
        """A tick first accepted with ts up to MAX_FUTURE_SKEW ahead can be resent until its ts
        is MAX_TICK_AGE old: the de-dup memory must hold its event_id at least that long."""
        if self.max_tick_age + self.max_future_skew > self.dedup_ttl:
            raise ValueError(
                f"MAX_TICK_AGE ({self.max_tick_age} s) + MAX_FUTURE_SKEW "
                f"({self.max_future_skew:g} s) must not exceed DEDUP_TTL ({self.dedup_ttl} s): "
                "a tick re-sent after its event_id left the de-dup memory would be counted "
                "twice; lower MAX_TICK_AGE or raise DEDUP_TTL"
            )
        return self


class WorkerSettings(
    LoggingSettings,
    DeploySettings,
    MetricsAccessSettings,
    BusSettings,
    StorageSettings,
    ApiKeySettings,
    ViewSettings,
    AlertSettings,
    ReplaySettings,
    WorkerFields,
):
    """What a Dramatiq worker reads (`tasks.worker`, `tasks.delivery_worker`,
    `tasks.history_worker`)."""

    def metrics_port(self, service: str) -> int:
        """The /metrics and /health/* port of Dramatiq service `service` (0: none)."""
        ports = {
            "worker": self.worker_metrics_port,
            "alerts": self.alerts_metrics_port,
            "history": self.history_metrics_port,
        }
        return ports[service]


class FeederSettings(
    LoggingSettings,
    DeploySettings,
    MetricsAccessSettings,
    IngestAuthSettings,
    ApiKeySettings,
    FeedSettings,
    FeederFields,
):
    """What a feeder reads (`python -m feeder`): HTTP only, it may run on another host."""


class FeederBenchSettings(
    LoggingSettings,
    DeploySettings,
    MetricsAccessSettings,
    StorageSettings,
    IngestAuthSettings,
    ApiKeySettings,
    FeedSettings,
    FeederFields,
):
    """The load generator (`python -m feeder bench`): the feeder's fields, plus the API key
    (it reads the stream) and PostgreSQL (it checks every accepted tick there)."""


class GatewaySettings(
    LoggingSettings,
    DeploySettings,
    MetricsAccessSettings,
    BusSettings,
    ApiKeySettings,
    GatewayFields,
):
    """What the realtime gateway reads (`python -m backend.gateway`): the ring, and its clients."""


class UiSettings(
    LoggingSettings,
    DeploySettings,
    ApiKeySettings,
    FeedSettings,
    ViewSettings,
    UiFields,
):
    """What the Streamlit UI reads: the API (REST) and the gateway (live), never Redis."""


class Settings(
    ApiSettings,
    WorkerSettings,
    FeederSettings,
    FeederBenchSettings,
    GatewaySettings,
    UiSettings,
    LauncherFields,
):
    """Every field: the launcher's settings (it passes them on to each child), and the one
    object tests and tools build to drive a whole system."""


LauncherSettings = Settings


# --- built once per process, at its edge ------------------------------------------------------
@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()


@lru_cache(maxsize=1)
def get_worker_settings() -> WorkerSettings:
    return WorkerSettings()


@lru_cache(maxsize=1)
def get_feeder_settings() -> FeederSettings:
    return FeederSettings()


@lru_cache(maxsize=1)
def get_feeder_bench_settings() -> FeederBenchSettings:
    return FeederBenchSettings()


@lru_cache(maxsize=1)
def get_gateway_settings() -> GatewaySettings:
    return GatewaySettings()


@lru_cache(maxsize=1)
def get_ui_settings() -> UiSettings:
    return UiSettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """All settings from the environment, built once per process (the launcher, tests, tools)."""
    return Settings()
