"""The launcher hands each Procfile process its settings through `to_env()`."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from backend.embedded import EmbeddedServers
from backend.launcher import load_procfile, process_env
from backend.settings import Settings
from tasks.__main__ import SERVICES

SERVERS = EmbeddedServers(
    redis=None,
    postgres=None,
    redis_url="redis://127.0.0.1:7001/0",
    pg_url="postgresql://postgres@127.0.0.1:7002/postgres",
)


@pytest.fixture
def live() -> Settings:
    """What `run` passes: the launcher's settings pointed at the servers."""
    settings = Settings(port=9100, ui_port=9101, max_backlog=5, symbols=["AAA", "BBB"])
    return settings.model_copy(update={"redis_url": SERVERS.redis_url, "pg_url": SERVERS.pg_url})


def test_every_process_gets_the_settings_and_the_servers(
    live: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "from-the-shell")  # not in `live`: a child must not see it
    for name in ("api", "worker", "alerts", "feeder", "ui"):
        env = process_env(name, live, SERVERS)
        assert env["REDIS_URL"] == SERVERS.redis_url and env["PG_URL"] == SERVERS.pg_url
        assert env["MAX_BACKLOG"] == "5" and env["SYMBOLS"] == "AAA,BBB"
        assert env["TARGET_URL"] == env["BACKEND_URL"] == "http://127.0.0.1:9100"
        assert "API_KEY" not in env
        assert "FEEDER_ID" not in env  # each feeder names itself
        assert env["PYTHONUNBUFFERED"] == "1"


def test_port_is_the_api_s_or_the_ui_s(live: Settings) -> None:
    assert process_env("api", live, SERVERS)["PORT"] == "9100"
    assert process_env("ui", live, SERVERS)["PORT"] == "9101"
    assert "PORT" not in process_env("worker", live, SERVERS)


def test_explicit_urls_and_secrets_pass_through(live: Settings) -> None:
    configured = live.model_copy(
        update={"target_url": "http://elsewhere:1", "api_key": SecretStr("k")}
    )
    env = process_env("feeder", configured, SERVERS)
    assert env["TARGET_URL"] == "http://elsewhere:1"
    assert env["API_KEY"] == "k"


def test_webhook_delivery_runs_in_a_process_of_its_own() -> None:
    """`make run` starts the delivery worker; calc's worker is a different process, so a slow
    receiver can never take calc's threads."""
    processes = load_procfile()
    assert processes["alerts"].startswith("python -m tasks alerts ")
    assert processes["worker"].startswith("python -m tasks worker ")
    assert SERVICES["alerts"] == "tasks.delivery_worker"
    assert SERVICES["worker"] != SERVICES["alerts"]
