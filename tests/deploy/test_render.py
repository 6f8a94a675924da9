"""render.yaml starts each service with the Procfile's command, in production mode."""

from __future__ import annotations

from tests.deploy.common import load_yaml, procfile

SERVICE = {
    "tickstream-api": "api",
    "tickstream-gateway": "gateway",
    "tickstream-worker": "worker",
    "tickstream-alerts": "alerts",
    "tickstream-history": "history",
    "tickstream-feeder": "feeder",
    "tickstream-ui": "ui",
}


def test_start_commands_are_the_procfiles() -> None:
    blueprint = load_yaml("render.yaml")
    starts = {s["name"]: s["startCommand"] for s in blueprint["services"] if "startCommand" in s}
    assert starts == {name: procfile()[process] for name, process in SERVICE.items()}


def test_every_service_runs_in_production_and_gets_the_secrets_production_requires() -> None:
    blueprint = load_yaml("render.yaml")
    common = {v["key"]: v.get("value") for g in blueprint["envVarGroups"] for v in g["envVars"]}
    assert common["TICKSTREAM_ENV"] == "production"
    for service in blueprint["services"]:
        if service["name"] not in SERVICE:
            continue
        keys = {v.get("key") for v in service["envVars"]}
        groups = {v.get("fromGroup") for v in service["envVars"]}
        assert "tickstream-common" in groups, service["name"]
        assert "API_KEY" in keys, service["name"]
