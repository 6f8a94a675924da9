"""One scenario end to end: a fresh cluster, the clients, the fault, the verdict."""

from __future__ import annotations

import time
from pathlib import Path

from redis import Redis

from tests.chaos.cluster import cluster
from tests.chaos.scenarios import SCENARIOS, Scale
from tests.support.alerts import FiredListener, chaos_rules, put_rules
from tests.support.load import START_PRICE, Load, Stream
from tests.support.verify import Outcome, converge

CONVERGE_TIMEOUT_S = 120.0


def run_scenario(name: str, root: Path, scale: Scale, *, tps: float, seed: int) -> Outcome:
    inject = SCENARIOS[name]
    slug = name.replace(" ", "-").replace("+", "").replace("--", "-")
    with cluster(root / slug) as the_cluster:
        # Alert rules on every symbol: each scenario also checks that no crossing fires twice.
        client = Redis.from_url(the_cluster.settings.effective_redis_url)
        put_rules(client, the_cluster.settings, chaos_rules(START_PRICE))
        client.close()
        listener = FiredListener(the_cluster.settings).start()
        load = Load(the_cluster.api_url, Stream(seed), tps=tps)
        load.start()
        try:
            notes = inject(the_cluster, load, scale)
        finally:
            tally = load.stop()
        finished = time.monotonic()
        try:
            outcome = converge(
                the_cluster, tally, name, CONVERGE_TIMEOUT_S, since=finished, alerts=listener
            )
        finally:
            listener.stop()
        outcome.notes = notes + outcome.notes
        if not outcome.ok:
            outcome.notes.append(f"logs: {the_cluster.procs.log_dir}")
    return outcome
