"""Settings groups: the fields one concern needs, shared by the processes that have it.

Each group is a mixin; a process's settings class (backend.settings.processes) is the union of
the groups it reads. Field and environment names are the README config table's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from backend.core.alerts.rules import DEFAULT_WEBHOOK_DENY
from backend.core.dedup import DEFAULT_DEDUP_TTL, DEFAULT_GENERATIONS, DEFAULT_SHARDS
from backend.settings.base import SettingsBase, split_csv

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD", "AAPL"]
DEFAULT_SOURCES = ["binance", "coinbase", "kraken"]


def http_url(value: str) -> str:
    """Render hands services `host:port`; assume plain HTTP inside the private network."""
    value = value.rstrip("/")
    return value if "://" in value else f"http://{value}"


class LoggingSettings(SettingsBase):
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")


# Private networks a Prometheus server usually scrapes from (a cluster's pod network, compose's
# bridge, the same host). Anyone else needs the API key to read /metrics.
DEFAULT_METRICS_ALLOW = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


class DeploySettings(SettingsBase):
    """Where this process runs: `production` refuses dev-default secrets (see
    backend.settings.production); `dev` starts with them and logs one warning."""

    tickstream_env: Literal["dev", "production"] = Field(
        default="dev", validation_alias="TICKSTREAM_ENV"
    )


class MetricsAccessSettings(SettingsBase):
    """Who may read a process's /metrics: a client from these networks, or one with the API key."""

    metrics_allow_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_METRICS_ALLOW), validation_alias="METRICS_ALLOW_CIDRS"
    )

    @field_validator("metrics_allow_cidrs", mode="before")
    @classmethod
    def _split_cidrs(cls, value: Any) -> Any:
        return split_csv(value)


class BusSettings(SettingsBase):
    """Redis and the names on it: what every process that talks to the bus agrees on."""

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Where the launcher's embedded Redis listens; every process derives the URL from it.
    embedded_redis_port: int = Field(default=6391, validation_alias="EMBEDDED_REDIS_PORT")
    queue_name: str = Field(default="ticks.received", validation_alias="QUEUE_NAME")
    # The realtime ring: a Redis Stream every bus event is appended to (backend.bus.realtime),
    # capped at about this many entries; the gateway also trims it by age (REALTIME_RETENTION).
    realtime_stream: str = Field(default="realtime:updates", validation_alias="REALTIME_STREAM")
    realtime_max_events: int = Field(
        default=100_000, ge=100, validation_alias="REALTIME_MAX_EVENTS"
    )
    redis_namespace: str = Field(default="tickstream", validation_alias="REDIS_NAMESPACE")
    # De-duplication (backend/core/dedup.py): an accepted event_id is remembered at least
    # DEDUP_TTL s (at most DEDUP_TTL * (1 + 1/DEDUP_GENERATIONS)), as ~30 B of Redis. The
    # defaults fit 10,000 ticks/s for the whole window in 2 GiB (docs/benchmarks/dedup-memory.md);
    # DEDUP_SHARDS keeps each hash small (listpack) at that rate: raise it with the rate or the
    # window (`shards_for`). Changing any of the three forgets what was remembered under the old
    # layout (README "De-duplication window").
    dedup_ttl: int = Field(default=DEFAULT_DEDUP_TTL, ge=1, validation_alias="DEDUP_TTL")
    dedup_generations: int = Field(
        default=DEFAULT_GENERATIONS, ge=1, le=64, validation_alias="DEDUP_GENERATIONS"
    )
    dedup_shards: int = Field(default=DEFAULT_SHARDS, ge=1, validation_alias="DEDUP_SHARDS")
    # A worker silent this long is dead: the broker redelivers its messages, /health and /stats
    # stop counting it.
    heartbeat_timeout_ms: int = Field(
        default=10_000, ge=1_000, validation_alias="HEARTBEAT_TIMEOUT_MS"
    )

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"


class StorageSettings(SettingsBase):
    """PostgreSQL, in the URL forms its two drivers want."""

    pg_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PG_URL", "DATABASE_URL")
    )
    embedded_pg_port: int = Field(default=5441, validation_alias="EMBEDDED_PG_PORT")

    @property
    def uses_embedded_pg(self) -> bool:
        return self.pg_url is None

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


class IngestAuthSettings(SettingsBase):
    """The feeders' HTTP Basic credentials (documented dev defaults; set real ones)."""

    ingest_username: str = Field(default="ingest", validation_alias="INGEST_USERNAME")
    ingest_password: SecretStr = Field(
        default=SecretStr("ingest-dev-password"), validation_alias="INGEST_PASSWORD"
    )


class ApiKeySettings(SettingsBase):
    """The key of the read API: the API checks it, its clients send it; no check when unset."""

    api_key: SecretStr | None = Field(default=None, validation_alias="API_KEY")


class FeedSettings(SettingsBase):
    """What the feeders simulate by default; the API serves it as the initial feeder config."""

    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SYMBOLS), validation_alias="SYMBOLS"
    )
    sources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SOURCES), validation_alias="SOURCES"
    )
    tps: float = Field(default=10.0, ge=0, validation_alias="TPS")

    @field_validator("symbols", "sources", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return split_csv(value)


class ViewSettings(SettingsBase):
    """When a symbol's view counts as stale (calc marks it; the API and the UI show it)."""

    stale_after: float = Field(default=10.0, gt=0, validation_alias="STALE_AFTER")


class AlertSettings(SettingsBase):
    """Alert evaluation and webhook delivery (API: validation and test-fire; workers: the rest)."""

    alert_webhook_timeout: float = Field(
        default=3.0, gt=0, le=30, validation_alias="ALERT_WEBHOOK_TIMEOUT"
    )
    alert_max_attempts: int = Field(default=8, ge=1, le=50, validation_alias="ALERT_MAX_ATTEMPTS")
    # CIDR blocks and host names a webhook may not target (cloud metadata, link-local).
    alert_webhook_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_DENY), validation_alias="ALERT_WEBHOOK_DENY"
    )
    # In-flight deliveries per destination host, across every worker: a slow receiver holds at
    # most this many threads.
    alert_host_concurrency: int = Field(
        default=4, ge=1, le=64, validation_alias="ALERT_HOST_CONCURRENCY"
    )
    # How often a worker checks the rules' version (a rule change takes effect within this).
    alert_rules_refresh_s: float = Field(
        default=0.5, gt=0, le=5, validation_alias="ALERT_RULES_REFRESH_S"
    )

    @field_validator("alert_webhook_deny", mode="before")
    @classmethod
    def _split_deny(cls, value: Any) -> Any:
        return split_csv(value)


class ReplaySettings(SettingsBase):
    """Replays (API: creation and reads; the `history` service: running them)."""

    # A replay's namespace (views, candles, firings) and record live this long past their last
    # change; then Redis deletes them.
    replay_ttl: int = Field(default=86_400, ge=60, validation_alias="REPLAY_TTL")
    # Work one driver message does before handing over to the next (a worker restart resumes
    # from the last committed group, and a long replay never nears Dramatiq's time limit).
    replay_slice_s: float = Field(default=5.0, gt=0, le=30, validation_alias="REPLAY_SLICE_S")
    # The `history` service runs at this niceness: on a shared machine the OS favours live
    # ingest and calc over a replay at `max`.
    replay_nice: int = Field(default=10, ge=0, le=19, validation_alias="REPLAY_NICE")
    # Live calc goes first: while more live ticks than this wait for calc, a replay applies
    # nothing (checked before every group). 0: never give way.
    replay_yield_backlog: int = Field(default=1_000, ge=0, validation_alias="REPLAY_YIELD_BACKLOG")
