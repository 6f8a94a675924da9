"""Every Dramatiq service of `python -m tasks` has its ops fork and a port of its own."""

from __future__ import annotations

from backend.settings import WorkerSettings
from tasks.__main__ import SERVICES
from tasks.ops_endpoints import FORKS, READS_POSTGRES, OpsEndpoints


def test_every_service_has_its_fork() -> None:
    """Dramatiq asks the middleware for its forks in every worker process at boot: a service
    missing here crashed at start whenever its metrics port was set (the default)."""
    assert set(FORKS) == set(SERVICES)
    for service in SERVICES:
        assert OpsEndpoints(service).forks == [FORKS[service]]
    assert set(SERVICES) >= READS_POSTGRES


def test_every_service_has_its_own_default_port() -> None:
    defaults = WorkerSettings.model_construct()  # the defaults, whatever this shell exports
    ports = {service: defaults.metrics_port(service) for service in SERVICES}
    assert ports == {"worker": 9191, "alerts": 9192, "history": 9194}
