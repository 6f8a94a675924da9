"""The real feeder (`python -m feeder`, a subprocess) against a real API, worker, Redis and
Postgres: a faulty feed still ends up in Postgres exactly once, and the control plane steers
the running feeder.

Nothing here counts ticks in a wall-clock window: each step waits on something observable (the
feeder's record, its status report and config version, the stored row count). The feeder's
rates are asserted exactly in tests/unit/feeder on simulated time, and measured by
`python -m feeder bench`."""

from __future__ import annotations

import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from backend.settings import Settings
from tests.support.processes import Processes, running, settings_env
from tests.support.verify import stored_count, stored_ticks
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

API_KEY = "ops-key"
STORED = {"accepted", "duplicate", "delivered"}


def start_feeder(procs: Processes, record: Path, **env: str) -> None:
    """`python -m feeder --record PATH` pointed at the test's API (a private harness helper,
    used for its log capture and process-group cleanup)."""
    base = {
        "TARGET_URL": procs.api_url,
        "SYMBOLS": "BTCUSDT,ETHUSDT,EURUSD",
        "SOURCES": "binance,coinbase",
        "SEED": "7",
        "LOG_LEVEL": "INFO",
    }
    procs.spawn("feeder", [sys.executable, "-m", "feeder", "--record", str(record)], base | env)


def stop_feeder(procs: Processes) -> None:
    procs.kill("feeder", signal.SIGTERM)  # graceful: sends held and buffered ticks, then exits
    assert procs.procs["feeder"].returncode == 0, procs.log("feeder")[-3000:]


def answered_so_far(path: Path) -> int:
    """Answers the running feeder has written to its record (it writes in blocks)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def read_record(path: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    answers = [line for line in lines if "event_id" in line]
    [summary] = [line["counters"] for line in lines if "counters" in line]
    return answers, summary


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_faulty_feed_is_stored_exactly_once(
    procs: Processes, settings: Settings, tmp_path: Path, mode: str
) -> None:
    procs.start_api()
    procs.start_worker()
    record = tmp_path / "sent.jsonl"
    start_feeder(
        procs,
        record,
        TPS="200",
        INGEST_MODE=mode,
        DUPLICATE_RATE="0.2",
        OUT_OF_ORDER_RATE="0.2",
        GAP_RATE="0.05",
        BAD_TICK_RATE="0.02",
        FEEDER_ID=f"faulty-{mode}",
    )
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        status = wait_for(
            lambda: feeder_status(client, f"faulty-{mode}"),
            60,
            what="the feeder's first status report",
        )
    assert status["target_tps"] == 200 and status["config_version"] == 0
    wait_for(lambda: answered_so_far(record) >= 1_500, 120, what="1,500 answered payloads")
    stop_feeder(procs)

    answers, counters = read_record(record)
    delivered = {a["event_id"] for a in answers if a["outcome"] in STORED}
    refused = {a["event_id"] for a in answers if a["outcome"] not in STORED}
    assert counters["sent"] >= 1_500
    stored = wait_for(
        lambda: (s := stored_ticks(settings.psycopg_url)) and set(s) == delivered and s,
        20,
        what="Postgres to hold exactly the delivered event_ids",
    )
    # Every unique tick accepted exactly once; every resend answered as a duplicate.
    assert counters["accepted"] == len(stored) == len(delivered)
    assert counters["duplicates"] > 0.1 * counters["accepted"]
    assert counters["conflicts"] == counters["rejected"] == counters["errors"] == 0
    assert counters["dropped"] == 0
    # The malformed ones were all refused and none stored.
    assert counters["bad_sent"] == counters["bad_rejected"] > 0
    assert refused and all("-bad-" in eid for eid in refused) and refused.isdisjoint(stored)
    # Lost ticks leave seq holes per (source, symbol) in what was stored.
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for _eid, symbol, _price, _volume, source, seq in stored.values():
        seqs[(source, symbol)].append(seq)
    holes = sum(max(s) - len(s) for s in seqs.values())
    assert 0.02 * len(stored) <= holes <= 0.1 * len(stored)
    assert len(seqs) == 6
    # The pipeline sees the same holes as open gaps; late ticks opened gaps that then closed.
    symbols = {symbol for _source, symbol in seqs}

    def gaps() -> tuple[int, int]:
        open_missing = closed = 0
        for symbol in symbols:
            body = httpx.get(f"{procs.api_url}/symbols/{symbol}/gaps", timeout=5).json()
            open_missing += sum(g["missing"] for g in body["open"])
            closed += len(body["closed"])
        return open_missing, closed

    _open_missing, closed = wait_for(
        lambda: (g := gaps())[0] == holes and g, 15, what="open gaps == stored seq holes"
    )
    assert closed > 0


def feeder_status(client: httpx.Client, feeder_id: str) -> dict[str, Any] | None:
    response = client.get("/feeder/status")
    assert response.status_code == 200, response.text
    return next((f for f in response.json()["feeders"] if f["feeder_id"] == feeder_id), None)


def put_config(client: httpx.Client, **changes: Any) -> int:
    """Change the config; returns the new version the feeder should report."""
    response = client.put("/feeder/config", json=changes)
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


def reported(client: httpx.Client, feeder_id: str, **expected: Any) -> dict[str, Any]:
    """Wait for a status report of `feeder_id` with these field values."""
    return wait_for(  # type: ignore[no-any-return]
        lambda: (
            (s := feeder_status(client, feeder_id))
            and all(s[k] == v for k, v in expected.items())
            and s
        ),
        30,
        what=f"a report of {feeder_id} with {expected}",
    )


def later_report(client: httpx.Client, feeder_id: str, after: dict[str, Any]) -> dict[str, Any]:
    """Wait for the next report after `after` (a new `received_at`)."""
    return wait_for(  # type: ignore[no-any-return]
        lambda: (
            (s := feeder_status(client, feeder_id))
            and s["received_at"] != after["received_at"]
            and s
        ),
        30,
        what=f"a later report of {feeder_id}",
    )


def test_control_plane_steers_the_running_feeder(settings: Settings, tmp_path: Path) -> None:
    keyed = settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    record = tmp_path / "sent.jsonl"
    pg = settings.psycopg_url
    with running(settings_env(keyed), tmp_path) as procs:
        procs.start_api()
        procs.start_worker()
        start_feeder(procs, record, TPS="50", FEEDER_ID="live-1")
        headers = {"x-api-key": API_KEY}
        with httpx.Client(base_url=procs.api_url, headers=headers, timeout=5) as client:
            first = reported(client, "live-1", config_version=0, target_tps=50, running=True)
            wait_for(lambda: stored_count(pg) > 0, 30, what="the first stored rows")

            # TPS 50 -> 300: the feeder reports the new version and target, and rows keep coming.
            v1 = put_config(client, tps=300)
            status = reported(client, "live-1", config_version=v1)
            assert status["target_tps"] == 300 and status["running"] is True, status
            assert status["accepted"] > first["accepted"]
            grown_from = stored_count(pg)
            wait_for(lambda: stored_count(pg) > grown_from, 30, what="rows to keep growing")

            # Pause: once the feeder reports it (and has nothing in flight), every tick it had
            # accepted is stored, and later reports and the row count stay where they are.
            v2 = put_config(client, running=False)
            paused = reported(client, "live-1", config_version=v2, buffered=0)
            assert paused["running"] is False and paused["target_tps"] == 0, paused
            wait_for(
                lambda: stored_count(pg) == paused["accepted"],
                30,
                what="every accepted tick stored",
            )
            status = later_report(client, "live-1", paused)
            status = later_report(client, "live-1", status)
            assert (status["sent"], status["accepted"]) == (paused["sent"], paused["accepted"])
            assert stored_count(pg) == paused["accepted"]

            # Resume in batch mode with a burst: rows grow again, at the burst's target.
            v3 = put_config(
                client, running=True, mode="batch", burst={"multiplier": 4, "seconds": 120}
            )
            status = reported(client, "live-1", config_version=v3)
            assert status["running"] is True and status["target_tps"] == 1_200, status
            wait_for(
                lambda: stored_count(pg) > paused["accepted"] + 500,
                30,
                what="rows to grow again after resuming",
            )
        stop_feeder(procs)
        log = procs.log("feeder")
        # Every tick the feeder recorded as accepted is stored, exactly once: waited for while
        # the workers still run (once they stop, what is still in the outbox waits for them).
        answers, counters = read_record(record)
        delivered = {a["event_id"] for a in answers if a["outcome"] in STORED}
        assert counters["accepted"] == len(delivered)
        stored = wait_for(
            lambda: (s := stored_ticks(pg)) and set(s) == delivered and s,
            30,
            what="Postgres to hold exactly the accepted event_ids",
        )
    assert "config v1" in log and "config v3" in log
    assert len(stored) == len(delivered)
