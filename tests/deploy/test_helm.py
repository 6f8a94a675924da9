"""Each Helm chart renders (Helm's own Go engine, no helm binary), lints clean, produces valid
Kubernetes objects, runs the Procfile's command in production mode, probes a declared port,
takes every secret from a Secret, and (api, gateway, worker) autoscales its own Deployment.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.deploy.common import PROCESSES, ROOT, procfile

KUBE_VERSION = "1.30.0"
HELM = ROOT / "deploy" / "helm"
SECRETS = {"REDIS_URL", "PG_URL", "INGEST_PASSWORD", "API_KEY", "INTERNAL_TOKEN", "UI_PASSWORD"}
HPA = {"api", "gateway", "worker"}
LISTENS = {
    "api": 8000,
    "gateway": 8001,
    "worker": 9191,
    "alerts": 9192,
    "history": 9194,
    "feeder": 9193,
    "ui": 8501,
}


def render(process: str, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(str(HELM / process)) as chart:
        manifests = chart.render(values or {}, name="tickstream", namespace="tickstream")
    return [
        doc
        for text in manifests.values()
        for doc in yaml.safe_load_all(text)
        if doc  # a template switched off renders to nothing
    ]


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture(scope="module", params=PROCESSES)
def chart(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def test_every_chart_lints_without_errors_or_warnings() -> None:
    for process in PROCESSES:
        report = helm.lint(str(HELM / process), strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, (process, problems)


def test_rendered_objects_are_valid_kubernetes(chart: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = chart
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_command_is_the_procfiles(chart: tuple[str, list[dict[str, Any]]]) -> None:
    process, objects = chart
    assert _container(objects)["command"] == ["sh", "-c", f"exec {procfile()[process]}"]


def test_production_mode_and_secrets_only_from_secret_refs(
    chart: tuple[str, list[dict[str, Any]]],
) -> None:
    process, objects = chart
    env = {e["name"]: e for e in _container(objects)["env"]}
    assert env["TICKSTREAM_ENV"]["value"] == "production"
    assert "API_KEY" in env, "production refuses to start without API_KEY"
    if process in {"api", "worker", "alerts", "history"}:
        assert {"REDIS_URL", "PG_URL"} <= set(env), process
    if process == "gateway":  # the ring is in Redis; the gateway never reads PostgreSQL
        assert "REDIS_URL" in env and "PG_URL" not in env
    if process in {"ui", "feeder"}:  # HTTP only: the API and the gateway
        assert not {"REDIS_URL", "PG_URL"} & set(env), process
    for name in SECRETS & set(env):
        assert "value" not in env[name], f"{name} is a literal"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"], name


def test_probes_hit_the_declared_port_and_the_service_targets_it(
    chart: tuple[str, list[dict[str, Any]]],
) -> None:
    process, objects = chart
    container = _container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(ports.values()) == [LISTENS[process]]
    for probe in ("livenessProbe", "readinessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert port in ports or port in ports.values(), (probe, port)
    health = {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    expected = {"/_stcore/health"} if process == "ui" else {"/health/liveness", "/health/readiness"}
    assert health == expected
    assert container["resources"]["requests"] and container["resources"]["limits"]
    service = _one(objects, "Service")
    deployment = _one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports or port["targetPort"] in ports.values()


def test_api_gateway_and_worker_autoscale_their_own_deployment(
    chart: tuple[str, list[dict[str, Any]]],
) -> None:
    process, objects = chart
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    if process not in HPA:
        assert not hpas
        return
    (hpa,) = hpas
    deployment = _one(objects, "Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["minReplicas"] >= 2


def test_charts_say_next_phase_production_only() -> None:
    assert "next phase / production only" in (HELM / "README.md").read_text().lower()
    for process in PROCESSES:
        chart = yaml.safe_load((HELM / process / "Chart.yaml").read_text())
        assert "next phase / production only" in chart["description"].lower(), process


def test_image_tag_and_secret_name_are_values() -> None:
    objects = render("api", {"image": {"tag": "v1.2.3"}, "secretName": "prod-secrets"})
    container = _container(objects)
    assert container["image"].endswith(":v1.2.3")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert refs == {"prod-secrets"}


def test_the_process_is_told_to_listen_on_the_declared_port(
    chart: tuple[str, list[dict[str, Any]]],
) -> None:
    process, objects = chart
    container = _container(objects)
    variable = {
        "api": "PORT",
        "gateway": "PORT",
        "ui": "PORT",
        "worker": "WORKER_METRICS_PORT",
        "alerts": "ALERTS_METRICS_PORT",
        "history": "HISTORY_METRICS_PORT",
        "feeder": "FEEDER_METRICS_PORT",
    }[process]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[variable] == str(container["ports"][0]["containerPort"])


def test_api_chart_migrates_before_its_pods_start() -> None:
    objects = render("api")
    job = _one(objects, "Job")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["sh", "-c", "exec python -m backend.storage.migrate"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TICKSTREAM_ENV"]["value"] == "production"
    assert env["PG_URL"]["valueFrom"]["secretKeyRef"]["name"] == "tickstream"
    # Its pod is not one of the API's: the Service and the HPA's Deployment never select it.
    selector = _one(objects, "Service")["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    assert not [o for o in render("api", {"migrate": {"enabled": False}}) if o["kind"] == "Job"]
