"""Every environment variable compose, the Helm charts and render.yaml hand a process is one that
process reads, and what they hand it passes that process's own production check.

The other deploy tests compare commands; this one catches the quieter mistakes: a misspelt
setting (`WORKER_METRIC_PORT` is ignored, the port silently stays the default), a value the
settings class rejects, or a secret production requires that an artifact forgot (the process
would exit at start on the cluster, not here). The values go through the real settings classes
and `insecure_settings`, the function each process runs at its edge.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from backend.settings.base import SettingsBase, env_names
from backend.settings.processes import (
    ApiSettings,
    FeederSettings,
    GatewaySettings,
    UiSettings,
    WorkerSettings,
)
from backend.settings.production import insecure_settings
from tests.deploy.common import PROCESSES, ROOT, load_yaml, procfile
from tests.deploy.test_helm import render

SETTINGS: dict[str, type[SettingsBase]] = {
    "api": ApiSettings,
    "gateway": GatewaySettings,
    "worker": WorkerSettings,
    "alerts": WorkerSettings,
    "history": WorkerSettings,
    "feeder": FeederSettings,
    "ui": UiSettings,
}
# Read by something other than the settings classes: the container HEALTHCHECK's shell,
# Render's Python buildpack, Streamlit itself.
NOT_SETTINGS = {"HEALTHCHECK_URL", "PYTHON_VERSION"}
NOT_SETTINGS_PREFIXES = ("STREAMLIT_",)
# What a secret reference resolves to at run time (the value itself is never in the repo).
PLACEHOLDER = {
    "REDIS_URL": "redis://redis.example:6379/0",
    "PG_URL": "postgresql://tickstream:secret@postgres.example:5432/tickstream",
}
RENDER_SERVICE = {f"tickstream-{process}": process for process in PROCESSES}


def _secret(name: str) -> str:
    return PLACEHOLDER.get(name, f"deployed-{name.lower()}")


def _command_variables(process: str) -> set[str]:
    """The variables the Procfile command itself expands (`${WORKER_PROCESSES:-2}`)."""
    return set(re.findall(r"\$\{(\w+)", procfile()[process]))


def _helm_env(process: str) -> dict[str, str]:
    (deployment,) = [o for o in render(process) if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] if "value" in e else _secret(e["name"]) for e in container["env"]}


def _dotenv_example() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.M))


def _compose_env(process: str) -> dict[str, str]:
    """The service's environment as compose would interpolate it with `.env.example`."""
    dotenv = _dotenv_example()

    def interpolate(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if name in dotenv:
            return dotenv[name]
        assert operator == ":-", f"${{{name}}} is required but .env.example does not set it"
        return rest

    service = load_yaml("docker-compose.yml")["services"][process]
    return {
        key: re.sub(r"\$\{(\w+)(:\?|:-)([^}]*)\}", interpolate, str(value))
        for key, value in service["environment"].items()
    }


def _render_env(process: str) -> dict[str, str]:
    blueprint = load_yaml("render.yaml")
    groups = {g["name"]: g["envVars"] for g in blueprint["envVarGroups"]}
    (service,) = [s for s in blueprint["services"] if RENDER_SERVICE.get(s["name"]) == process]
    env: dict[str, str] = {}
    for var in service["envVars"]:
        for item in groups[var["fromGroup"]] if "fromGroup" in var else [var]:
            key = item["key"]
            env[key] = str(item["value"]) if "value" in item else _secret(key)
    return env


ARTIFACTS = {"helm": _helm_env, "compose": _compose_env, "render.yaml": _render_env}


def _known(settings_class: type[SettingsBase]) -> set[str]:
    return {name for field in settings_class.model_fields.values() for name in env_names(field)}


@pytest.mark.parametrize("artifact", sorted(ARTIFACTS))
@pytest.mark.parametrize("process", PROCESSES)
def test_every_variable_is_one_the_process_reads(artifact: str, process: str) -> None:
    env = ARTIFACTS[artifact](process)
    readers = _known(SETTINGS[process]) | _command_variables(process) | NOT_SETTINGS
    unknown = {
        name for name in env if name not in readers and not name.startswith(NOT_SETTINGS_PREFIXES)
    }
    assert not unknown, f"{artifact} gives {process} variables nothing reads: {sorted(unknown)}"


@pytest.mark.parametrize("artifact", sorted(ARTIFACTS))
@pytest.mark.parametrize("process", PROCESSES)
def test_the_process_would_start_in_production_with_what_it_is_given(
    artifact: str, process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_class = SETTINGS[process]
    for name in _known(settings_class):  # only what the artifact sets may count
        monkeypatch.delenv(name, raising=False)
    for name, value in ARTIFACTS[artifact](process).items():
        monkeypatch.setenv(name, value)
    settings: Any = settings_class()
    assert settings.tickstream_env == "production", (artifact, process)
    assert insecure_settings(settings) == [], (artifact, process)


def test_a_missing_secret_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: the API without its internal token is refused."""
    for name in _known(ApiSettings):
        monkeypatch.delenv(name, raising=False)
    for name, value in _helm_env("api").items():
        if name != "INTERNAL_TOKEN":
            monkeypatch.setenv(name, value)
    assert insecure_settings(ApiSettings()) == ["INTERNAL_TOKEN is the documented dev default"]
