"""Rebuilding calc state through the real processes (API + workers, real Redis and PostgreSQL):
whatever is lost or corrupted, and however ticks keep arriving meanwhile (duplicates, a little out
of order), once everything drains every view equals the naive reference over ALL acknowledged
ticks: nothing lost, nothing counted twice (`ticks_total` exact)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from redis import Redis

from backend.bus import ledger
from backend.bus.keys import Keys
from backend.core.ticks import Tick
from backend.settings import Settings
from tests.support.load import SYMBOLS, Load, Stream, Tally, as_tick
from tests.support.processes import AUTH, ROOT, Processes, running, settings_env
from tests.support.verify import stored_count, view_mismatches
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

API_KEY = "rebuild-key"
ADMIN = {"x-api-key": API_KEY}


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_key": SecretStr(API_KEY)})


@pytest.fixture
def system(admin_settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    with running(settings_env(admin_settings), tmp_path) as procs:
        procs.start_api()
        procs.start_worker(processes=2, threads=2)
        yield procs


@pytest.fixture
def redis(admin_settings: Settings) -> Iterator[Redis]:
    client = Redis.from_url(admin_settings.effective_redis_url)
    yield client
    client.close()


def counter(redis: Redis, keys: Keys, name: str) -> int:
    return int(redis.hget(keys.stats, name) or 0)


def state_keys(redis: Redis, keys: Keys) -> list[bytes]:
    ns = keys.namespace
    return [k for p in ("calc:v3", "win3", "winp3") for k in redis.scan_iter(f"{ns}:{p}:*")]


def fences(redis: Redis, keys: Keys) -> list[bytes]:
    return list(redis.scan_iter(keys.rebuild_fence("*")))


def views_exact(procs: Processes, acked: list[Tick]) -> list[str]:
    problems, overcount = view_mismatches(procs.api_url, acked, headers=ADMIN)
    return problems + ([f"{overcount} ticks counted twice"] if overcount else [])


def converged(procs: Processes, tally: Tally, timeout: float = 45) -> None:
    acked = tally.acked_ticks()
    assert acked and not tally.given_up
    wait_for(lambda: not views_exact(procs, acked), timeout, what="views equal to the reference")


def live_load(procs: Processes, seed: int) -> Load:
    """4 symbols, ~5 % resent duplicates, ts up to 0.5 s out of order; no invalid ticks."""
    load = Load(procs.api_url, Stream(seed, dup_rate=0.05, bad_rate=0.0), tps=400, batch=20)
    load.start()
    return load


def views_of_every_symbol(procs: Processes) -> bool:
    with httpx.Client(base_url=procs.api_url, headers=ADMIN, timeout=5) as client:
        return all(client.get(f"/symbols/{s}").status_code == 200 for s in SYMBOLS)


def rebuilds(procs: Processes) -> dict[str, dict[str, Any]]:
    response = httpx.get(procs.api_url + "/admin/rebuild", headers=ADMIN, timeout=5)
    assert response.status_code == 200, response.text
    return {r["symbol"]: r for r in response.json()["rebuilds"]}


def test_lost_states_under_live_load_are_rebuilt_by_calc_itself(
    system: Processes, admin_settings: Settings, redis: Redis
) -> None:
    """(a) Every state key deleted mid-stream: calc finds known symbols without state, fences
    them and asks for rebuilds; no view is reset, none counts a tick twice."""
    keys = Keys.from_settings(admin_settings)
    load = live_load(system, seed=101)
    wait_for(lambda: load.acked_count() > 400 and views_of_every_symbol(system), 30, what="load")
    lost = state_keys(redis, keys)
    assert len(lost) >= 3 * len(SYMBOLS)
    redis.delete(*lost)  # one DEL: every state at once, as a Redis that lost them
    at_loss = load.acked_count()
    wait_for(
        lambda: counter(redis, keys, ledger.REBUILDS_FINISHED) >= len(SYMBOLS), 30,
        what="a rebuild per symbol",
    )  # fmt: skip
    wait_for(lambda: load.acked_count() > at_loss + 400, 30, what="ticks after the rebuilds")
    tally = load.stop()
    converged(system, tally)
    assert not fences(redis, keys)
    assert counter(redis, keys, ledger.REBUILDS_STARTED) == counter(
        redis, keys, ledger.REBUILDS_FINISHED
    )
    assert {s: r["phase"] for s, r in rebuilds(system).items()} == dict.fromkeys(SYMBOLS, "done")
    assert counter(redis, keys, ledger.REBUILD_BUFFERED) > 0  # calc did hold ticks back
    metrics = httpx.get(system.api_url + "/metrics", headers=ADMIN, timeout=5).text
    finished = counter(redis, keys, ledger.REBUILDS_FINISHED)
    assert f"tickstream_rebuilds_finished_total {float(finished)}" in metrics


def test_a_redis_that_lost_calc_state_and_views_is_rebuilt_by_post_admin_rebuild(
    system: Processes, admin_settings: Settings, redis: Redis
) -> None:
    """(b) States, views, the view-order and symbols hashes all gone mid-stream: calc starts the
    symbols over from empty (it cannot know them), then POST /admin/rebuild puts them right."""
    keys = Keys.from_settings(admin_settings)
    load = live_load(system, seed=202)
    wait_for(lambda: load.acked_count() > 400 and views_of_every_symbol(system), 30, what="load")
    views = [keys.view(s) for s in SYMBOLS]
    redis.delete(*state_keys(redis, keys), *views, keys.view_order, keys.symbols)
    wait_for(lambda: views_of_every_symbol(system), 30, what="calc writing views again")
    wait_for(lambda: stored_count(admin_settings.pg_url) > 0, 30, what="ticks in PostgreSQL")

    with httpx.Client(base_url=system.api_url, headers=ADMIN, timeout=10) as api:
        bad = api.post("/admin/rebuild", json={"symbols": ["btc usd"]})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"].startswith("symbols")
        answer = api.post("/admin/rebuild", json={})
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"symbols": sorted(SYMBOLS), "messages": len(SYMBOLS)}
    wait_for(
        lambda: all(r["phase"] == "done" for r in rebuilds(system).values())
        and len(rebuilds(system)) == len(SYMBOLS),
        30, what="every rebuild done",
    )  # fmt: skip
    at_rebuild = load.acked_count()
    wait_for(lambda: load.acked_count() > at_rebuild + 400, 30, what="ticks after the rebuilds")
    tally = load.stop()
    converged(system, tally)
    assert not fences(redis, keys)
    assert all(r["ticks_read"] > 0 for r in rebuilds(system).values())


def post_ticks(procs: Processes, ticks: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        for start in range(0, len(ticks), 100):
            r = client.post("/ingest/ticks", json=ticks[start : start + 100])
            assert r.status_code == 200 and r.json()["accepted"] == len(ticks[start : start + 100])


def quiet_set(seed: int, n: int) -> list[dict[str, Any]]:
    return Stream(seed, dup_rate=0.0, bad_rate=0.0).take(n)


def test_python_m_tasks_rebuild_fixes_a_corrupted_state(
    system: Processes, admin_settings: Settings, redis: Redis
) -> None:
    """(c) A state with wrong totals: the next batch publishes a wrong view; the CLI, run as
    an operator would, rebuilds every symbol and the views are right again."""
    keys = Keys.from_settings(admin_settings)
    sent = quiet_set(seed=303, n=600)
    post_ticks(system, sent)
    acked = [as_tick(t) for t in sent]
    wait_for(lambda: not views_exact(system, acked), 30, what="views")
    raw = orjson.loads(redis.get(keys.state("BTCUSDT")))
    raw["ticks_total"] += 1_000
    raw["window"][0] += 7  # trades_1m off as well
    redis.set(keys.state("BTCUSDT"), orjson.dumps(raw))
    more = quiet_set(seed=304, n=40)
    post_ticks(system, more)
    acked += [as_tick(t) for t in more]
    wait_for(lambda: views_exact(system, acked), 30, what="the corruption showing")

    done = subprocess.run(
        [sys.executable, "-m", "tasks.rebuild"], cwd=ROOT, env=settings_env(admin_settings),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for symbol in SYMBOLS:
        assert f"{symbol}: " in done.stdout and " ticks read" in done.stdout, done.stdout
    assert not views_exact(system, acked)
    assert not fences(redis, keys)


def test_a_state_format_bump_rebuilds_instead_of_resetting_the_view(
    system: Processes, admin_settings: Settings, redis: Redis
) -> None:
    """(d) States only under an older prefix (what a format bump leaves) while the view-order
    hash knows the symbol: the first batch triggers a rebuild; the view never drops to the
    batch's few ticks."""
    keys = Keys.from_settings(admin_settings)
    sent = quiet_set(seed=404, n=400)
    post_ticks(system, sent)
    acked = [as_tick(t) for t in sent]
    wait_for(lambda: not views_exact(system, acked), 30, what="views")
    ns = keys.namespace
    for key in state_keys(redis, keys):
        old = key.decode().replace(f"{ns}:calc:v3:", f"{ns}:calc:v2:")
        redis.rename(key, old.replace(f"{ns}:win3:", f"{ns}:win2:").replace("winp3", "winp2"))
    assert not state_keys(redis, keys) and redis.hexists(keys.view_order, "ETHUSDT")

    ring = admin_settings.realtime_stream
    ((ring_before, _),) = redis.xrevrange(ring, count=1)
    more = [t for t in quiet_set(seed=405, n=40) if t["symbol"] == "ETHUSDT"][:5]
    post_ticks(system, more)
    acked += [as_tick(t) for t in more]
    eth = [t for t in acked if t.symbol == "ETHUSDT"]
    wait_for(lambda: counter(redis, keys, ledger.REBUILDS_FINISHED) == 1, 30, what="rebuild")
    wait_for(lambda: not views_exact(system, acked), 30, what="views")
    # Every ETHUSDT view published since the bump counted the whole history, never the batch.
    published = [
        orjson.loads(fields[b"d"])["view"]["ticks_total"]
        for _id, fields in redis.xrange(ring, min=b"(" + ring_before)
        if fields.get(b"t") == b"symbol.updated" and fields.get(b"s") == b"ETHUSDT"
    ]
    assert published and set(published) == {len(eth)}, published
    assert not fences(redis, keys)
    assert redis.exists(keys.state("ETHUSDT"))
