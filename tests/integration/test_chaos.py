"""The chaos suite, shortened (`make chaos` runs the full one): each scenario against a private
Tickstream, then every acknowledged tick in PostgreSQL exactly once, views equal to the reference
computed from the acknowledged set, no process dead that the scenario did not kill, and no alert
crossing fired twice (every observation evaluated, every committed firing seen once)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from tests.chaos.cluster import cluster
from tests.chaos.run import run_scenario
from tests.chaos.scenarios import SCENARIOS, SHORT
from tests.support.load import Load, Stream
from tests.support.verify import converge, format_table

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_loses_and_doubles_nothing(name: str, tmp_path: Path) -> None:
    outcome = run_scenario(name, tmp_path, SHORT, tps=300, seed=len(name))
    print("\n" + format_table([outcome]))
    assert outcome.acked > 500, "the clients barely got through: the scenario proved nothing"
    assert outcome.rejected > 0  # the invalid ticks in the stream were refused...
    assert outcome.rejected_stored == 0  # ...and none of them reached storage
    assert outcome.missing == 0 and outcome.duplicated == 0, format_table([outcome])
    assert outcome.views_exact, outcome.view_mismatches
    assert not outcome.unexpected_deaths, outcome.unexpected_deaths
    assert outcome.given_up == 0
    assert outcome.converge_s is not None
    # Alerts: rules fired during the scenario, and no crossing fired twice.
    assert outcome.alerts is not None and outcome.alerts.committed > 0
    assert outcome.alerts.ok, outcome.alerts.text()


def test_the_checker_sees_a_lost_tick_and_a_wrong_view(tmp_path: Path) -> None:
    """The verdict is only worth something if it can fail: claim one more acknowledged tick than
    the system ever received, and the check reports it missing and the views as wrong."""
    with cluster(tmp_path / "checker", workers=1) as the_cluster:
        load = Load(the_cluster.api_url, Stream(seed=3), tps=200)
        load.start()
        time.sleep(2)
        tally = load.stop()
        honest = converge(the_cluster, tally, "honest", timeout=30, since=time.monotonic())
        assert honest.ok, format_table([honest])

        forged = copy.copy(tally)
        phantom = dict(next(iter(tally.acked.values())), event_id="never-sent", seq=None)
        forged.acked = {**tally.acked, "never-sent": phantom}
        lying = converge(the_cluster, forged, "forged", timeout=2, since=time.monotonic())
    assert lying.missing == 1 and not lying.views_exact and not lying.ok
    assert lying.converge_s is None
