"""docker-compose.yml is valid per the compose spec, runs the Procfile's commands after the
migration, keeps Redis durable (AOF), requires its secrets and wires Prometheus and Grafana.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from tests.deploy.common import PROCESSES, ROOT, check_jsonschema, load_yaml, procfile

SECRETS = ("INGEST_PASSWORD", "API_KEY", "INTERNAL_TOKEN", "POSTGRES_PASSWORD")


def _services() -> dict[str, Any]:
    return load_yaml("docker-compose.yml")["services"]


def _container_command(service: dict[str, Any]) -> str:
    """The command the container's shell runs, with compose's `$$` escape undone."""
    command = service["command"]
    assert command[:2] == ["sh", "-c"] and command[2].startswith("exec "), command
    return command[2].removeprefix("exec ").replace("$$", "$")


def test_compose_file_is_valid_per_the_compose_spec() -> None:
    result = check_jsonschema("vendor.compose-spec", "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_app_services_run_the_procfile_commands_after_migrate() -> None:
    services = _services()
    for name in PROCESSES:
        assert _container_command(services[name]) == procfile()[name], name
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert _container_command(services["migrate"]) == "python -m backend.storage.migrate"


def test_app_services_are_production_and_reach_redis_and_postgres_by_service_name() -> None:
    services = _services()
    for name in (*PROCESSES, "migrate"):
        env = services[name]["environment"]
        assert env["TICKSTREAM_ENV"] == "production", name
        if name not in {"feeder", "ui"}:  # HTTP only: they reach the API and the gateway
            assert env["REDIS_URL"].startswith("redis://redis:"), name
        if name not in {"feeder", "ui", "gateway"}:
            assert "@postgres:5432/" in env["PG_URL"], name
    for name in ("feeder", "ui"):
        assert not {"REDIS_URL", "PG_URL"} & set(services[name]["environment"]), name
    assert "PG_URL" not in services["gateway"]["environment"]


def test_the_ui_reads_the_gateway_and_the_api_redirects_to_it() -> None:
    services = _services()
    assert services["ui"]["environment"]["GATEWAY_URL"] == "http://gateway:8001"
    assert services["ui"]["depends_on"]["gateway"]["condition"] == "service_healthy"
    host_port = services["gateway"]["ports"][0].rsplit(":", 1)[0]  # "${GATEWAY_PORT:-8001}"
    public = services["api"]["environment"]["GATEWAY_PUBLIC_URL"]
    assert public == f"http://localhost:{host_port}", public


def test_secrets_are_required_interpolations_never_literals() -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS:
        values = re.findall(rf"^\s+{secret}:\s*(.+)$", raw, re.M)
        assert values, secret
        for value in values:
            assert value.strip() == f"${{{secret}:?set {secret}}}", (secret, value)
    assert "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}@postgres" in raw


def test_env_example_sets_every_required_variable_and_says_dev_only() -> None:
    text = (ROOT / ".env.example").read_text()
    raw = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", raw))
    defined = set(re.findall(r"^(\w+)=", text, re.M))
    assert required <= defined, required - defined
    assert "DEV ONLY" in text
    # The published code defaults would be refused in production: the example must differ.
    assert "ingest-dev-password" not in text and "internal-dev-token" not in text


def test_redis_keeps_an_append_only_file_synced_every_second() -> None:
    command = _services()["redis"]["command"]
    words = shlex.split(command) if isinstance(command, str) else command
    assert words[words.index("--appendonly") + 1] == "yes"
    assert words[words.index("--appendfsync") + 1] == "everysec"


def test_each_app_service_health_checks_its_own_liveness_port() -> None:
    services = _services()
    expected = {
        "api": "http://127.0.0.1:8000/health/liveness",
        # Healthy once its ring reader is connected: the UI waits for that.
        "gateway": "http://127.0.0.1:8001/health/readiness",
        "worker": "http://127.0.0.1:9191/health/liveness",
        "alerts": "http://127.0.0.1:9192/health/liveness",
        "history": "http://127.0.0.1:9194/health/liveness",
        "feeder": "http://127.0.0.1:9193/health/liveness",
        "ui": "http://127.0.0.1:8501/_stcore/health",
    }
    assert set(expected) == set(PROCESSES)
    for name, url in expected.items():
        assert services[name]["environment"]["HEALTHCHECK_URL"] == url, name


def test_prometheus_scrapes_every_process_by_service_name() -> None:
    mount = _services()["prometheus"]["volumes"][0]
    assert mount.startswith("./deploy/prometheus/prometheus.compose.yml:")
    config = load_yaml("deploy/prometheus/prometheus.compose.yml")
    jobs = config["scrape_configs"]
    targets = {t for job in jobs for static in job["static_configs"] for t in static["targets"]}
    assert targets == {
        "api:8000",
        "gateway:8001",
        "worker:9191",
        "alerts:9192",
        "history:9194",
        "feeder:9193",
    }


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard() -> None:
    volumes = _services()["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    dashboard_mount = next(v for v in volumes if v.startswith("./deploy/grafana/tickstream.json:"))
    dashboards = load_yaml("deploy/grafana/provisioning/dashboards/tickstream.yml")
    path = dashboards["providers"][0]["options"]["path"]
    assert dashboard_mount.split(":")[1].startswith(path + "/")
    sources = load_yaml("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert [(s["type"], s["url"]) for s in sources] == [("prometheus", "http://prometheus:9090")]


def test_metrics_ports_agree_across_env_healthcheck_and_prometheus() -> None:
    services = _services()
    config = load_yaml("deploy/prometheus/prometheus.compose.yml")
    scraped = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    for name, variable in (
        ("worker", "WORKER_METRICS_PORT"),
        ("alerts", "ALERTS_METRICS_PORT"),
        ("history", "HISTORY_METRICS_PORT"),
        ("feeder", "FEEDER_METRICS_PORT"),
        ("api", "PORT"),
        ("gateway", "PORT"),
    ):
        env = services[name]["environment"]
        port = env[variable]
        assert f"127.0.0.1:{port}/" in env["HEALTHCHECK_URL"], name
        assert scraped[name] == f"{name}:{port}", name
