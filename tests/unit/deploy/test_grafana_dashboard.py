"""deploy/grafana/tickstream.json only charts metrics some Tickstream process really exports.

A renamed metric would leave a panel silently empty; here it fails a test instead. The exported
names come from the processes' own registries: the API's, the gateway's, the feeder's, and a
Dramatiq service's (Dramatiq's message metrics plus our per-process gauges).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from backend.api.metrics import ApiMetrics
from backend.gateway.metrics import GatewayMetrics
from feeder.client import Counters
from feeder.ops import FeederCollector
from tasks.ops_endpoints import OpsEndpoints, worker_process_gauges

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "tickstream.json"
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "clamp_min", "clamp_max", "by", "without", "on", "ignoring", "and", "or", "unless",
}  # fmt: skip
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (labels, ranges and functions stripped)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return words - PROMQL_WORDS


def exported(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def dramatiq_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CollectorRegistry:
    # Its boot hook points prometheus_client at a directory through the environment: undo it.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("prometheus_multiproc_dir", str(tmp_path))
    middleware = OpsEndpoints("worker")
    super(OpsEndpoints, middleware).after_process_boot(broker=None)  # Dramatiq's metrics only
    registry = CollectorRegistry()
    for value in vars(middleware).values():
        if isinstance(value, MetricWrapperBase):
            registry.register(value)
    worker_process_gauges(registry)
    return registry


def feeder_registry() -> CollectorRegistry:
    status = SimpleNamespace(target_tps=1.0, achieved_tps=1.0, buffered=0)
    runner: Any = SimpleNamespace(counters=Counters(), status=lambda: status)
    registry = CollectorRegistry()
    registry.register(FeederCollector(runner))
    return registry


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_the_name_extraction_finds_metrics_only():
    expr = 'histogram_quantile(0.99, max by (le) (rate(a_b_le{job="x"}[5m]))) / clamp_min(c, 1e-9)'
    assert metric_names(expr) == {"a_b_le", "c"}


def test_every_dashboard_metric_is_exported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    known = exported(ApiMetrics().registry) | exported(feeder_registry())
    known |= exported(GatewayMetrics().registry)
    known |= exported(dramatiq_registry(monkeypatch, tmp_path))
    used = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    assert used, "no expressions found"
    assert used - known == set()


def test_the_dashboard_uses_a_datasource_variable():
    board = json.loads(DASHBOARD.read_text())
    [variable] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${" + variable["name"] + "}"


def test_the_gateway_has_its_own_row():
    """Clients, delivered/coalesced/dropped, delivery latency and ring resyncs are charted."""
    used = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    gateway = {name for name in exported(GatewayMetrics().registry) if "gateway" in name}
    for name in (
        "tickstream_gateway_clients",
        "tickstream_gateway_delivered_events_total",
        "tickstream_gateway_coalesced_events_total",
        "tickstream_gateway_dropped_events_total",
        "tickstream_gateway_delivery_latency_seconds_bucket",
        "tickstream_gateway_ring_resyncs_total",
    ):
        assert name in gateway and name in used, name
