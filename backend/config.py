"""The one settings object.

Every process (API, worker, feeder, UI, launcher) builds a `Settings` once at its edge and passes
it in. No other module reads the environment, and nothing here connects to anything.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD", "AAPL"]
DEFAULT_SOURCES = ["binance", "coinbase", "kraken"]


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Configuration for every Tickstream process; see the README's config table."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # --- servers -------------------------------------------------------------------------
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    pg_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PG_URL", "DATABASE_URL")
    )
    var_dir: Path = Field(default=Path("var"), validation_alias="VAR_DIR")
    embedded_redis_port: int = Field(default=6391, validation_alias="EMBEDDED_REDIS_PORT")
    embedded_pg_port: int = Field(default=5441, validation_alias="EMBEDDED_PG_PORT")
    redis_appendfsync: str = Field(default="everysec", validation_alias="REDIS_APPENDFSYNC")

    # --- auth (documented dev defaults; set real ones in the environment) ------------------
    ingest_username: str = Field(default="ingest", validation_alias="INGEST_USERNAME")
    ingest_password: SecretStr = Field(
        default=SecretStr("ingest-dev-password"), validation_alias="INGEST_PASSWORD"
    )
    api_key: SecretStr | None = Field(default=None, validation_alias="API_KEY")
    internal_token: SecretStr = Field(
        default=SecretStr("internal-dev-token"), validation_alias="INTERNAL_TOKEN"
    )

    # --- names on the bus ----------------------------------------------------------------
    queue_name: str = Field(default="ticks.received", validation_alias="QUEUE_NAME")
    pubsub_channel: str = Field(default="realtime:updates", validation_alias="PUBSUB_CHANNEL")
    redis_namespace: str = Field(default="tickstream", validation_alias="REDIS_NAMESPACE")

    # --- ingest --------------------------------------------------------------------------
    dedup_ttl: int = Field(default=86_400, ge=1, validation_alias="DEDUP_TTL")
    max_tick_age: int = Field(default=7 * 86_400, ge=1, validation_alias="MAX_TICK_AGE")
    max_future_skew: float = Field(default=5.0, ge=0, validation_alias="MAX_FUTURE_SKEW")
    ingest_linger_ms: float = Field(default=2.0, ge=0, validation_alias="INGEST_LINGER_MS")
    ingest_max_batch: int = Field(default=2_000, ge=1, validation_alias="INGEST_MAX_BATCH")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, validation_alias="MAX_BODY_BYTES")
    max_batch_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, validation_alias="MAX_BATCH_BODY_BYTES"
    )
    max_batch_items: int = Field(default=5_000, ge=1, validation_alias="MAX_BATCH_ITEMS")
    # Backpressure: ingest answers 429 while this many ticks wait (for calc + for Postgres);
    # 0 turns it off. Each waiting tick costs Redis ~0.3 KB (queue message + outbox entry).
    max_backlog: int = Field(default=200_000, ge=0, validation_alias="MAX_BACKLOG")

    # --- workers and persistence -------------------------------------------------------
    batch_size: int = Field(default=200, ge=1, validation_alias="BATCH_SIZE")
    flush_interval: float = Field(default=1.0, gt=0, validation_alias="FLUSH_INTERVAL")
    heartbeat_timeout_ms: int = Field(
        default=10_000, ge=1_000, validation_alias="HEARTBEAT_TIMEOUT_MS"
    )
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
    stale_after: float = Field(default=10.0, gt=0, validation_alias="STALE_AFTER")

    # --- feeder --------------------------------------------------------------------------
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SYMBOLS), validation_alias="SYMBOLS"
    )
    sources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SOURCES), validation_alias="SOURCES"
    )
    tps: float = Field(default=10.0, ge=0, validation_alias="TPS")
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
    )
    status_interval: float = Field(default=1.0, gt=0, validation_alias="STATUS_INTERVAL")
    # JSONL of what the feeder delivered (event_id + outcome), for tests and audits; off if unset.
    feeder_record_path: Path | None = Field(default=None, validation_alias="FEEDER_RECORD_PATH")

    # --- API / UI ------------------------------------------------------------------------
    port: int = Field(default=8000, validation_alias="PORT")
    ui_port: int = Field(default=8501, validation_alias="UI_PORT")
    backend_url: str = Field(default="http://127.0.0.1:8000", validation_alias="BACKEND_URL")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    # Optional password gate of the UI (Render deploys are public); no gate when unset.
    ui_password: SecretStr | None = Field(default=None, validation_alias="UI_PASSWORD")
    # Pipeline stats: one sample every STATS_INTERVAL s, kept STATS_RETENTION s (the UI's charts).
    stats_interval: float = Field(default=2.0, ge=0.2, le=60, validation_alias="STATS_INTERVAL")
    stats_retention: int = Field(
        default=3_600, ge=60, le=86_400, validation_alias="STATS_RETENTION"
    )

    @field_validator("symbols", "sources", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("target_url", "backend_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        """Render hands services `host:port`; assume plain HTTP inside the private network."""
        value = value.rstrip("/")
        return value if "://" in value else f"http://{value}"

    # --- derived -------------------------------------------------------------------------
    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def uses_embedded_pg(self) -> bool:
        return self.pg_url is None

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def effective_pg_url(self) -> str:
        return self.pg_url or f"postgresql://postgres@127.0.0.1:{self.embedded_pg_port}/postgres"

    @property
    def psycopg_url(self) -> str:
        """The PG URL in the plain libpq form psycopg wants (no SQLAlchemy driver suffix)."""
        url = self.effective_pg_url
        for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql://" + url[len(prefix) :]
        return url

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+psycopg://" + self.psycopg_url[len("postgresql://") :]

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace."""
        return ":".join((self.redis_namespace, *parts))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, built once per process."""
    return Settings()


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The environment for a child process: ours plus `overrides` (used by the launcher)."""
    env = dict(os.environ)
    env.update(overrides)
    return env
