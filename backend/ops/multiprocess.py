"""Where a Dramatiq service's worker processes leave their metrics for its ops fork to read.

prometheus_client's multiprocess mode: each worker process writes its samples to memory-mapped
files in one directory, and the fork that serves /metrics merges them at scrape. The directory is
keyed by service and port (two services, or two systems on one machine, never share one) and
wiped when the service starts: files of processes from an earlier run would be counted forever.

Both sides compute the path from the same two values, so a worker can tell whether its entry
point (`python -m tasks`) prepared the directory: a bare `python -m dramatiq tasks.worker` did not.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

# prometheus_client reads the first when it is imported; Dramatiq's Prometheus middleware reads
# the second when *it* is imported. Both must be set before the worker processes start.
CLIENT_ENV = "PROMETHEUS_MULTIPROC_DIR"
DRAMATIQ_ENV = "dramatiq_prom_db"


def metrics_dir(service: str, port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"tickstream-metrics-{service}-{port}"


def prepare_metrics_dir(service: str, port: int) -> dict[str, str]:
    """Wipe and create the service's directory; the environment its worker processes need."""
    path = metrics_dir(service, port)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return {CLIENT_ENV: str(path), DRAMATIQ_ENV: str(path)}
