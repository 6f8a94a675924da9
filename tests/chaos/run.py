"""One scenario end to end: a fresh cluster, the clients, the fault, the verdict."""

from __future__ import annotations

import time
from pathlib import Path

from tests.chaos.cluster import cluster
from tests.chaos.scenarios import SCENARIOS, Scale
from tests.support.load import Load, Stream
from tests.support.verify import Outcome, converge

CONVERGE_TIMEOUT_S = 120.0


def run_scenario(name: str, root: Path, scale: Scale, *, tps: float, seed: int) -> Outcome:
    inject = SCENARIOS[name]
    slug = name.replace(" ", "-").replace("+", "").replace("--", "-")
    with cluster(root / slug) as the_cluster:
        load = Load(the_cluster.api_url, Stream(seed), tps=tps)
        load.start()
        try:
            notes = inject(the_cluster, load, scale)
        finally:
            tally = load.stop()
        finished = time.monotonic()
        outcome = converge(the_cluster, tally, name, CONVERGE_TIMEOUT_S, since=finished)
        outcome.notes = notes + outcome.notes
        if not outcome.ok:
            outcome.notes.append(f"logs: {the_cluster.procs.log_dir}")
    return outcome
