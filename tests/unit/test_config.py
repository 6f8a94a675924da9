"""Settings per process: who reads which group, and `to_env()` reproducing settings in a child."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from backend.settings import (
    ApiSettings,
    BusSettings,
    FeederBenchSettings,
    FeederSettings,
    GatewaySettings,
    Settings,
    SettingsBase,
    StorageSettings,
    UiSettings,
    WorkerSettings,
    child_environment,
    get_api_settings,
    get_feeder_bench_settings,
    get_feeder_settings,
    get_gateway_settings,
    get_settings,
    get_ui_settings,
    get_worker_settings,
)
from backend.settings.base import env_names

PROCESS_CLASSES: list[type[SettingsBase]] = [
    ApiSettings,
    WorkerSettings,
    FeederSettings,
    FeederBenchSettings,
    GatewaySettings,
    UiSettings,
    Settings,
]

# Every field away from its default: lists, secrets, paths, bools, literals, floats.
EVERY_FIELD_SET: dict[str, Any] = {
    "alert_webhook_timeout": 1.5,
    "alert_max_attempts": 3,
    "alert_webhook_deny": ["10.0.0.0/8", "metadata.internal"],
    "alert_host_concurrency": 2,
    "alert_rules_refresh_s": 0.25,
    "redis_url": "redis://:pw@redis.example:6380/2",
    "pg_url": "postgresql://u:p%40ss@pg.example:5433/db",
    "var_dir": Path("/tmp/tickstream var"),
    "embedded_redis_port": 7001,
    "embedded_pg_port": 7002,
    "redis_appendfsync": "always",
    "ingest_username": "feeder-7",
    "ingest_password": SecretStr("p@ss,word=1"),
    "api_key": SecretStr("key-123"),
    "internal_token": SecretStr("tok"),
    "queue_name": "q.x",
    "realtime_stream": "chan:x",
    "realtime_max_events": 500,
    "realtime_retention": 30.0,
    "gateway_port": 9102,
    "gateway_max_clients": 3,
    "gateway_client_queue": 20,
    "gateway_heartbeat_s": 0.5,
    "gateway_retry_ms": 250,
    "gateway_cors_origins": ["https://app.example", "http://localhost:3000"],
    "gateway_public_url": "https://stream.example",
    "gateway_url": "http://gateway.internal:8001",
    "redis_namespace": "ns9",
    "dedup_ttl": 600,
    "dedup_generations": 4,
    "dedup_shards": 77,
    "max_tick_age": 120,
    "max_future_skew": 0.25,
    "ingest_linger_ms": 0.0,
    "ingest_max_batch": 7,
    "max_body_bytes": 2048,
    "max_batch_body_bytes": 4096,
    "max_batch_items": 9,
    "max_backlog": 0,
    "batch_size": 3,
    "flush_interval": 0.1,
    "heartbeat_timeout_ms": 1_500,
    "maintenance_chance": 17,
    "outbox_claim_idle_ms": 250,
    "worker_poll_max_ms": 5,
    "calc_max_retries": 0,
    "calc_split": True,
    "calc_coalesce_messages": 50,
    "calc_coalesce_bytes": 65_536,
    "calc_linger_ms": 5.0,
    "stale_after": 1.0 / 3.0,
    "symbols": ["AAA", "B.B"],
    "sources": ["only"],
    "tps": 12.5,
    "target_url": "http://api.example:9000",
    "seed": 0,
    "ingest_mode": "batch",
    "duplicate_rate": 0.1,
    "out_of_order_rate": 0.2,
    "gap_rate": 0.3,
    "bad_tick_rate": 1.0,
    "feeder_id": "feeder-a",
    "status_interval": 0.5,
    "feeder_record_path": Path("rel/record.jsonl"),
    "port": 9100,
    "ui_port": 9101,
    "backend_url": "https://ui-backend.example",
    "log_level": "DEBUG",
    "ui_password": SecretStr("letmein"),
    "stats_interval": 0.2,
    "stats_retention": 60,
    "tickstream_env": "production",
    "metrics_allow_cidrs": ["10.1.0.0/16", "::1/128"],
    "worker_metrics_port": 0,
    "alerts_metrics_port": 9300,
    "feeder_metrics_port": 9301,
    "history_metrics_port": 9302,
    "replay_ttl": 3_600,
    "replay_slice_s": 2.0,
    "replay_nice": 0,
    "replay_yield_backlog": 50,
}
OPTIONAL_NONE = {
    "redis_url": None,
    "pg_url": None,
    "api_key": None,
    "seed": None,
    "feeder_record_path": None,
    "ui_password": None,
}


def _values(cls: type[SettingsBase], none: bool) -> dict[str, Any]:
    values = EVERY_FIELD_SET | (OPTIONAL_NONE if none else {})
    return {name: value for name, value in values.items() if name in cls.model_fields}


def _clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields.values():
        for name in env_names(field):
            monkeypatch.delenv(name, raising=False)


def test_every_field_of_the_full_settings_is_exercised() -> None:
    assert set(EVERY_FIELD_SET) == set(Settings.model_fields)
    for name, value in EVERY_FIELD_SET.items():
        assert Settings.model_fields[name].get_default(call_default_factory=True) != value, name


@pytest.mark.parametrize("none", [False, True], ids=["all-set", "optional-none"])
@pytest.mark.parametrize("cls", PROCESS_CLASSES, ids=lambda c: c.__name__)
def test_to_env_round_trips_through_keyword_arguments(
    cls: type[SettingsBase], none: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_settings_env(monkeypatch)
    original = cls(**_values(cls, none))
    env = original.to_env()
    assert all(isinstance(value, str) for value in env.values())
    assert cls(**env) == original


@pytest.mark.parametrize("none", [False, True], ids=["all-set", "optional-none"])
@pytest.mark.parametrize("cls", PROCESS_CLASSES, ids=lambda c: c.__name__)
def test_to_env_round_trips_through_a_child_environment(
    cls: type[SettingsBase], none: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = cls(**_values(cls, none))
    # What a child would see: our environment, already holding other values for the same names.
    parent = {name: "stale" for name in ("REDIS_URL", "DATABASE_URL", "API_KEY", "SEED")}
    _clear_settings_env(monkeypatch)
    for name, value in child_environment(original, environ=parent).items():
        monkeypatch.setenv(name, value)
    assert cls() == original


def test_to_env_writes_env_names_and_plain_strings() -> None:
    env = Settings(**EVERY_FIELD_SET).to_env()
    assert env["PG_URL"] == EVERY_FIELD_SET["pg_url"]  # the first alias, not DATABASE_URL
    assert "DATABASE_URL" not in env
    assert env["INGEST_PASSWORD"] == "p@ss,word=1"  # revealed: the child must log in with it
    assert env["API_KEY"] == "key-123"
    assert env["SYMBOLS"] == "AAA,B.B"
    assert env["CALC_SPLIT"] == "true"
    assert env["VAR_DIR"] == "/tmp/tickstream var"
    assert env["SEED"] == "0"  # falsy but set: written
    assert len(env) == len(Settings.model_fields)


def test_to_env_omits_none() -> None:
    env = Settings(**(EVERY_FIELD_SET | OPTIONAL_NONE)).to_env()
    assert not {
        "REDIS_URL",
        "PG_URL",
        "API_KEY",
        "SEED",
        "FEEDER_RECORD_PATH",
        "UI_PASSWORD",
    } & set(env)


def test_child_environment_hides_what_none_means_unset_and_keeps_the_rest() -> None:
    settings = Settings(**(EVERY_FIELD_SET | OPTIONAL_NONE))
    parent = {"PATH": "/bin", "API_KEY": "leaked", "database_url": "postgresql://old", "TPS": "1"}
    env = child_environment(settings, {"EXTRA": "1", "TPS": "99"}, environ=parent)
    assert env["PATH"] == "/bin"
    assert "API_KEY" not in env and "database_url" not in env
    assert env["EXTRA"] == "1" and env["TPS"] == "99"  # overrides win over the settings
    assert env["MAX_BACKLOG"] == "0"


def test_a_default_feeder_id_stays_with_its_process() -> None:
    """Each feeder names itself host-pid: a parent's default must not make its children alike."""
    assert "FEEDER_ID" not in FeederSettings().to_env()
    assert "FEEDER_ID" not in child_environment(FeederSettings(), environ={})
    explicit = FeederSettings(feeder_id="feeder-a")
    assert explicit.to_env()["FEEDER_ID"] == "feeder-a"


def test_the_full_settings_is_every_process_settings() -> None:
    settings = Settings()
    for cls in PROCESS_CLASSES:
        assert isinstance(settings, cls)
    assert set(Settings.model_fields) == set().union(*(c.model_fields for c in PROCESS_CLASSES))


def test_the_feeder_needs_no_redis_and_no_postgres() -> None:
    bus_and_storage = set(BusSettings.model_fields) | set(StorageSettings.model_fields)
    assert not bus_and_storage & set(FeederSettings.model_fields)
    assert not isinstance(FeederSettings(), BusSettings | StorageSettings)
    assert "pg_url" in FeederBenchSettings.model_fields  # the bench verifies in PostgreSQL


def test_each_process_reads_only_its_groups() -> None:
    assert {"gateway_url", "backend_url", "stale_after"} <= set(UiSettings.model_fields)
    # The UI reads the API and the gateway only: no Redis, no PostgreSQL.
    assert not {"redis_url", "realtime_stream", "pg_url", "internal_token", "batch_size"} & set(
        UiSettings.model_fields
    )
    assert {"redis_url", "realtime_stream", "api_key", "gateway_max_clients"} <= set(
        GatewaySettings.model_fields
    )
    assert not {"pg_url", "internal_token", "gateway_url"} & set(GatewaySettings.model_fields)
    assert not {"batch_size", "target_url", "port"} & set(ApiSettings.model_fields)
    assert not {"ingest_password", "target_url", "port"} & set(WorkerSettings.model_fields)
    # The API key reaches workers and feeders only to guard their /metrics.
    assert {"api_key", "metrics_allow_cidrs"} <= set(WorkerSettings.model_fields)
    assert not {"redis_url", "pg_url"} & set(FeederSettings.model_fields)


@pytest.mark.parametrize(
    ("getter", "cls"),
    [
        (get_api_settings, ApiSettings),
        (get_worker_settings, WorkerSettings),
        (get_feeder_settings, FeederSettings),
        (get_feeder_bench_settings, FeederBenchSettings),
        (get_gateway_settings, GatewaySettings),
        (get_ui_settings, UiSettings),
        (get_settings, Settings),
    ],
)
def test_each_getter_builds_its_class_once(getter: Any, cls: type[SettingsBase]) -> None:
    getter.cache_clear()
    try:
        first = getter()
        assert type(first) is cls
        assert getter() is first
    finally:
        getter.cache_clear()


def test_urls_without_a_scheme_are_plain_http() -> None:
    assert FeederSettings(target_url="api:8000/").target_url == "http://api:8000"
    assert UiSettings(backend_url="api:8000").backend_url == "http://api:8000"


def test_the_tick_age_window_must_fit_in_the_dedup_window() -> None:
    """MAX_TICK_AGE + MAX_FUTURE_SKEW <= DEDUP_TTL, or a resend could outlive its event_id's
    de-dup entry; the error names the three settings. Holds for the launcher's union too."""
    assert ApiSettings(dedup_ttl=600, max_tick_age=595, max_future_skew=5).dedup_ttl == 600
    for cls in (ApiSettings, Settings):
        with pytest.raises(ValueError, match=r"MAX_TICK_AGE \(596 s\) \+ MAX_FUTURE_SKEW"):
            cls(dedup_ttl=600, max_tick_age=596, max_future_skew=5)
    defaults = ApiSettings()
    assert defaults.max_tick_age + defaults.max_future_skew <= defaults.dedup_ttl
