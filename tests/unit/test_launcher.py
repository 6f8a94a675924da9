"""The launcher hands each Procfile process its settings through `to_env()`."""

from __future__ import annotations

import socket

import pytest
from pydantic import SecretStr

from backend.embedded import EmbeddedServers
from backend.launcher import REPO_ROOT, SHUTDOWN_GRACE_SECONDS, load_procfile, process_env
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
    settings = Settings(
        port=9100, ui_port=9101, gateway_port=9102, max_backlog=5, symbols=["AAA", "BBB"]
    )
    return settings.model_copy(update={"redis_url": SERVERS.redis_url, "pg_url": SERVERS.pg_url})


def test_every_process_gets_the_settings_and_the_servers(
    live: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "from-the-shell")  # not in `live`: a child must not see it
    for name in ("api", "gateway", "worker", "alerts", "history", "feeder", "ui"):
        env = process_env(name, live, SERVERS)
        assert env["REDIS_URL"] == SERVERS.redis_url and env["PG_URL"] == SERVERS.pg_url
        assert env["MAX_BACKLOG"] == "5" and env["SYMBOLS"] == "AAA,BBB"
        assert env["TARGET_URL"] == env["BACKEND_URL"] == "http://127.0.0.1:9100"
        assert env["GATEWAY_URL"] == env["GATEWAY_PUBLIC_URL"] == "http://127.0.0.1:9102"
        assert "API_KEY" not in env
        assert "FEEDER_ID" not in env  # each feeder names itself
        assert env["PYTHONUNBUFFERED"] == "1"


def test_port_is_the_api_s_the_gateway_s_or_the_ui_s(live: Settings) -> None:
    assert process_env("api", live, SERVERS)["PORT"] == "9100"
    assert process_env("gateway", live, SERVERS)["PORT"] == "9102"
    assert process_env("ui", live, SERVERS)["PORT"] == "9101"
    for name in ("worker", "alerts", "history", "feeder"):
        assert "PORT" not in process_env(name, live, SERVERS), name


def test_the_history_service_gets_its_port_and_the_replay_settings(live: Settings) -> None:
    """Its ops port and the replay settings reach it like every setting (`to_env`); the
    command's HISTORY_THREADS is the shell's, passed through untouched."""
    tuned = live.model_copy(
        update={"history_metrics_port": 9301, "replay_ttl": 3_600, "replay_nice": 5}
    )
    env = process_env("history", tuned, SERVERS)
    assert env["HISTORY_METRICS_PORT"] == "9301"
    assert (env["REPLAY_TTL"], env["REPLAY_NICE"], env["REPLAY_SLICE_S"]) == ("3600", "5", "5.0")


def test_explicit_urls_and_secrets_pass_through(live: Settings) -> None:
    configured = live.model_copy(
        update={"target_url": "http://elsewhere:1", "api_key": SecretStr("k")}
    )
    env = process_env("feeder", configured, SERVERS)
    assert env["TARGET_URL"] == "http://elsewhere:1"
    assert env["API_KEY"] == "k"
    public = live.model_copy(update={"gateway_public_url": "https://live.example"})
    env = process_env("api", public, SERVERS)
    assert env["GATEWAY_PUBLIC_URL"] == "https://live.example"
    assert env["GATEWAY_URL"] == "http://127.0.0.1:9102"  # the UI still reads the local one


def test_ports_must_differ_and_be_free(live: Settings) -> None:
    from backend.launcher import check_ports
    from tests.support.servers import free_port

    clash = live.model_copy(update={"gateway_port": live.port})
    assert check_ports(clash) == (
        "PORT and GATEWAY_PORT are both 9100: give each process its own port"
    )
    api, gateway, ui = free_port(), free_port(), free_port()
    free = live.model_copy(update={"port": api, "gateway_port": gateway, "ui_port": ui})
    assert check_ports(free) is None


def test_a_busy_gateway_port_is_refused_naming_its_variable(live: Settings) -> None:
    from backend.launcher import check_ports
    from tests.support.servers import free_port

    free = live.model_copy(update={"port": free_port(), "ui_port": free_port()})
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        problem = check_ports(free.model_copy(update={"gateway_port": port}))
    assert problem == (
        f"port {port} for the gateway is busy: stop whatever listens there or set GATEWAY_PORT"
    )


def test_webhook_delivery_runs_in_a_process_of_its_own() -> None:
    """`make run` starts the delivery worker; calc's worker is a different process, so a slow
    receiver can never take calc's threads."""
    processes = load_procfile()
    assert processes["alerts"].startswith("python -m tasks alerts ")
    assert processes["worker"].startswith("python -m tasks worker ")
    assert SERVICES["alerts"] == "tasks.delivery_worker"
    assert SERVICES["worker"] != SERVICES["alerts"]


def test_replays_run_in_a_process_of_their_own() -> None:
    """`make run` starts the history service: a replay at full speed runs niced in its own
    process, never in calc's threads."""
    processes = load_procfile()
    assert processes["history"] == (
        "python -m tasks history --processes 1 --threads ${HISTORY_THREADS:-4}"
    )
    assert SERVICES["history"] == "tasks.history_worker"
    assert SERVICES["history"] not in {SERVICES["worker"], SERVICES["alerts"]}


def test_every_procfile_command_is_one_program_the_supervisor_can_exec() -> None:
    """The supervisor runs `sh -c "exec <command>"`, so the pid it watches (and the status it
    reports) is the program's; a compound command would defeat that."""
    for name, command in load_procfile().items():
        assert command.startswith("python -m "), name
        assert not any(token in command for token in (";", "&&", "||", "|", "&")), name


def test_the_launcher_supervises_every_procfile_process_in_order(live: Settings) -> None:
    """`run` hands the Procfile, in order, to the Supervisor with each process's env."""
    from backend.supervision.supervisor import Supervisor

    processes = load_procfile()
    seen: list[str] = []

    def env_for(name: str) -> dict[str, str]:
        seen.append(name)
        return process_env(name, live, SERVERS)

    sup = Supervisor(processes, env_for, cwd=REPO_ROOT, grace_s=SHUTDOWN_GRACE_SECONDS)
    assert list(sup.pids()) == ["api", "gateway", "worker", "alerts", "history", "feeder", "ui"]
    assert all(pid is None for pid in sup.pids().values())  # nothing runs before start_all
    assert seen == []
    assert SHUTDOWN_GRACE_SECONDS == 15


def test_the_banner_names_the_gateway(live: Settings) -> None:
    from backend.launcher import _banner

    banner = _banner(live, SERVERS, list(load_procfile()))
    assert "Tickstream is starting: api, gateway, worker, alerts, history, feeder, ui" in banner
    assert "Gateway   http://127.0.0.1:9102/stream" in banner
