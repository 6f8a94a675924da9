"""The overload benchmark's whole code path, short: 8 s at 10x with a small MAX_BACKLOG.

The real run is `python -m tests.bench.overload` (60 s). Here the worker is SIGSTOPped for the
first 3 s of the overload, so nothing drains and the high-water mark is certainly reached (no
luck with timing needed): the senders must get 429s, back off, re-send the same batches, and
still every acknowledged tick must end up in md_ticks exactly once and in the views, and the
backlog must return to 0. Nothing here looks at timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench import overload

pytestmark = [pytest.mark.integration, pytest.mark.bench]

# Ticks waiting for calc + for Postgres (each accepted tick counts 2): 1,000 ticks accepted while
# the worker is stopped reach it, a fraction of one second of what the API takes.
MAX_BACKLOG = 2_000
BATCH = 100
SENDERS = 8
INGEST_MAX_BATCH = 2_000  # the product default; the bench passes it to the API explicitly


def test_backlog_bound_follows_the_group_commit() -> None:
    """One hand-off carries whole requests up to INGEST_MAX_BATCH (at least one request), and
    never more than the senders have in flight; the backlog can pass MAX_BACKLOG by 2x that - 1."""
    assert overload.max_handoff_ticks(BATCH, SENDERS, INGEST_MAX_BATCH) == 800  # 8 senders
    assert overload.max_handoff_ticks(500, 16, 2_000) == 2_000  # INGEST_MAX_BATCH
    assert overload.max_handoff_ticks(300, 16, 2_000) == 1_800  # whole requests only
    assert overload.max_handoff_ticks(5_000, 16, 2_000) == 5_000  # one request over the cap
    assert overload.backlog_bound(MAX_BACKLOG, BATCH, SENDERS, INGEST_MAX_BATCH) == 3_599


@pytest.mark.timeout(180)
def test_overload_sheds_backs_off_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_MAX_BATCH", str(INGEST_MAX_BATCH))
    out = tmp_path / "overload.json"
    argv = [
        *("--seconds", "8", "--multiple", "10", "--measure-seconds", "3"),
        *("--max-backlog", str(MAX_BACKLOG), "--batch", str(BATCH), "--senders", str(SENDERS)),
        *("--stall-worker", "3", "--json", str(out)),
    ]
    code = overload.main(argv)

    report = json.loads(out.read_text())
    over, backlog, correctness = report["overload"], report["backlog"], report["correctness"]
    assert report["params"]["max_backlog"] == MAX_BACKLOG
    assert report["params"]["ingest_max_batch"] == INGEST_MAX_BATCH
    assert report["sustainable"]["source"] == "measured" and report["sustainable"]["tps"] > 0
    assert over["http_429"] > 0, over
    # No sender ever had two requests in flight (no timeouts, no errors): the S x B bound holds.
    assert over["acked"] > 0 and over["errors"] == {}, over
    assert report["totals"]["errors"] == {}, report["totals"]
    bound = overload.backlog_bound(MAX_BACKLOG, BATCH, SENDERS, INGEST_MAX_BATCH)
    assert backlog["bound"] == bound
    # Both readings of the backlog (GET /stats and the bench's own) in every phase, incl. the
    # measurement, stay within what the atomic check allows. (That it reached the high-water
    # mark is what the 429s above say: the script refuses only at >= MAX_BACKLOG.)
    samples = report["samples"]
    via_stats = [s["backlog_ticks"] for s in samples if s["backlog_ticks"] is not None]
    via_redis = [s["backlog_ticks_redis"] for s in samples]
    assert via_stats, "GET /stats never answered the sampler"
    assert max(via_stats) <= bound and max(via_redis) <= bound, backlog
    assert report["drain"]["converged"], report["drain"]
    # Drained: no tick waits, by GET /stats and by the counters, and no hand-off is left.
    last = samples[-1]
    assert last["phase"] == "drained"
    assert last["backlog_ticks"] == 0 and last["backlog_ticks_redis"] == 0, last
    assert last["handoffs"] == 0 and last["outbox_ticks"] == 0, last
    assert backlog["end"] == 0, backlog
    assert correctness["missing"] == 0, correctness
    assert correctness["duplicated"] == 0, correctness
    assert correctness["views_exact"], correctness["views"]
    assert correctness["acked"] == report["totals"]["accepted"] + report["totals"]["duplicates"]
    # A 429 writes nothing: batches still refused when the time was up are not stored.
    assert correctness["stored_unacked"]["refused"] == 0, correctness
    assert code == 0
    for label in ("api", "worker total", "redis-server (+fork)", "postgres (sum)"):
        assert report["memory"][label]["rss"]["max"] > 0, label
