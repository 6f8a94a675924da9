"""The real feeder (`python -m feeder`, a subprocess) against a real API, worker, Redis and
Postgres: a faulty feed still ends up in Postgres exactly once, and the control plane steers
the running feeder within seconds."""

from __future__ import annotations

import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from backend.config import Settings
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
    )
    time.sleep(8)
    stop_feeder(procs)

    answers, counters = read_record(record)
    delivered = {a["event_id"] for a in answers if a["outcome"] in STORED}
    refused = {a["event_id"] for a in answers if a["outcome"] not in STORED}
    assert 1_200 <= counters["sent"] <= 1_800  # ~8 s at 200 payloads/s
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


def put_config(client: httpx.Client, **changes: Any) -> float:
    response = client.put("/feeder/config", json=changes)
    assert response.status_code == 200, response.text
    return time.monotonic()


def test_control_plane_steers_the_running_feeder(settings: Settings, tmp_path: Path) -> None:
    keyed = settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    with running(settings_env(keyed), tmp_path) as procs:
        procs.start_api()
        procs.start_worker()
        start_feeder(procs, tmp_path / "sent.jsonl", TPS="50", FEEDER_ID="live-1")
        headers = {"x-api-key": API_KEY}
        with httpx.Client(base_url=procs.api_url, headers=headers, timeout=5) as client:
            status = wait_for(
                lambda: (s := feeder_status(client, "live-1")) and s["achieved_tps"] >= 40 and s,
                15,
                what="the feeder reporting ~50/s",
            )
            assert status["config_version"] == 0 and status["target_tps"] == 50

            # TPS 50 -> 300: the target within ~2 s, the measured rate within ~3-4 s.
            changed = put_config(client, tps=300)
            wait_for(
                lambda: (s := feeder_status(client, "live-1")) and s["target_tps"] == 300,
                2.5,
                what="target_tps 300",
            )
            wait_for(
                lambda: feeder_status(client, "live-1")["achieved_tps"] >= 200,  # type: ignore[index]
                4.5,
                what="achieved_tps to move towards 300",
            )
            moved_after = time.monotonic() - changed
            time.sleep(2)
            status = feeder_status(client, "live-1")
            assert status is not None and 240 <= status["achieved_tps"] <= 360, status

            # Pause: within 2 s the stored row count stops growing.
            put_config(client, running=False)
            time.sleep(2.0)
            paused_at = stored_count(settings.psycopg_url)
            time.sleep(1.5)
            assert stored_count(settings.psycopg_url) == paused_at
            status = feeder_status(client, "live-1")
            assert status is not None and status["running"] is False
            assert status["target_tps"] == 0

            # Resume in batch mode with a burst: rows grow again, at the burst's target.
            put_config(client, running=True, mode="batch", burst={"multiplier": 4, "seconds": 5})
            wait_for(
                lambda: stored_count(settings.psycopg_url) > paused_at + 500,
                5,
                what="rows to grow again after resuming",
            )
            status = feeder_status(client, "live-1")
            assert status is not None and status["target_tps"] == 1_200, status
        stop_feeder(procs)
        log = procs.log("feeder")
    assert "config v1" in log and "config v3" in log
    print(f"achieved_tps reached 200 {moved_after:.1f} s after the PUT (50 -> 300)")
