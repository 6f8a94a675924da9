"""Dead letters end to end: a batch that keeps failing is dead-lettered with its reason, never
crashes the worker or blocks the ticks behind it, and comes back through the admin API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import Settings
from tests.support.processes import AUTH, running, settings_env
from tests.support.verify import stored_ticks
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

API_KEY = "ops-key"
ADMIN = {"x-api-key": API_KEY}


def tick(symbol: str, price: float) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "price": price,
        "volume": 1.0,
        "source": "binance",
        "ts": datetime.now(UTC).isoformat(),
        "event_id": f"dl-{uuid.uuid4().hex}",
    }


def view_ticks(client: httpx.Client, symbol: str) -> int:
    response = client.get(f"/symbols/{symbol}", headers=ADMIN)
    return response.json()["ticks_total"] if response.status_code == 200 else 0


def test_a_poison_batch_is_dead_lettered_with_its_reason_and_requeued(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    keys = Keys.from_settings(settings)
    redis = Redis.from_url(settings.effective_redis_url)
    env = settings_env(settings) | {"CALC_MAX_RETRIES": "1"}
    with running(env, tmp_path) as procs, httpx.Client(base_url=procs.api_url, auth=AUTH) as api:
        procs.start_api()
        # A corrupted calc state for one symbol: every batch touching it fails in calc.
        redis.set(keys.state("POISON"), b"not json")
        procs.start_worker(processes=1, threads=2)

        # One batch, one calc message: a poison tick and a good one.
        poison, beside = tick("POISON", 10.0), tick("GOODSYM", 99.0)
        answer = api.post("/ingest/ticks", json=[poison, beside])
        assert answer.status_code == 200 and answer.json()["accepted"] == 2, answer.text
        good = [tick("GOODSYM", 100.0 + i) for i in range(5)]
        for item in good:  # after the poison's ack: separate batches, queued behind it
            assert api.post("/ingest/tick", json=item).status_code == 200

        # The ticks behind it are not blocked, and the worker survives.
        # The poison's batch-mate is applied too: a symbol that fails holds back only itself.
        wait_for(lambda: view_ticks(api, "GOODSYM") == 6, 30, what="the good ticks in W")
        listed = wait_for(
            lambda: (r := api.get("/admin/dead-letters", headers=ADMIN).json())["total"] == 1 and r,
            30,
            what="the poison batch in the dead letters",
        )
        [dead] = listed["dead_letters"]
        assert dead["queue"] == settings.queue_name
        assert dead["actor"] == "calc_ticks"
        assert dead["items"] == 2
        assert "POISON" in dead["reason"] and "JSONDecodeError" in dead["reason"], dead
        assert procs.procs["worker"].poll() is None, "the worker died on a poison message"
        stats = api.get("/stats", headers=ADMIN).json()
        assert stats["gauges"]["dead_letters"] == 1
        # Only the unapplied tick of the dead letter left the backlog.
        assert redis.hget(keys.stats, "calc_dead_ticks") == b"1"
        # A dead letter is not waiting for calc (it waits for an operator): once every other
        # tick is applied and stored, nothing counts against MAX_BACKLOG.
        wait_for(
            lambda: api.get("/stats", headers=ADMIN).json()["gauges"]["backlog_ticks"] == 0,
            30,
            what="an empty backlog beside the dead letter",
        )
        # Persistence is independent of calc: every acknowledged tick is stored exactly once.
        wait_for(lambda: len(stored_ticks(settings.psycopg_url)) == 7, 30, what="7 rows")

        # Auth: admin routes need the key.
        assert api.get("/admin/dead-letters").status_code == 401
        assert api.post("/admin/dead-letters/requeue", json={}).status_code == 401
        bad = api.post("/admin/dead-letters/requeue", json={"ids": []}, headers=ADMIN)
        assert bad.status_code == 422
        assert any(d["field"].endswith("ids") for d in bad.json()["detail"]), bad.json()

        # The operator fixes the cause, then requeues: the tick is counted once, the DLQ empties.
        redis.delete(keys.state("POISON"))
        unknown = "no-such-message"
        answer = api.post(
            "/admin/dead-letters/requeue",
            json={"message_ids": [dead["message_id"], unknown]},
            headers=ADMIN,
        ).json()
        assert answer["count"] == 1
        assert answer["requeued"] == [dead["message_id"]]
        assert answer["not_found"] == [unknown]
        wait_for(lambda: view_ticks(api, "POISON") == 1, 30, what="the requeued tick in W")
        wait_for(
            lambda: api.get("/stats", headers=ADMIN).json()["gauges"]["backlog_ticks"] == 0,
            30,
            what="the requeued batch counted in and out of the backlog exactly once",
        )
        assert api.get("/admin/dead-letters", headers=ADMIN).json()["total"] == 0
        again = api.post("/admin/dead-letters/requeue", json={}, headers=ADMIN).json()
        assert again["count"] == 0  # nothing left: requeueing twice changes nothing
        assert view_ticks(api, "POISON") == 1
        assert view_ticks(api, "GOODSYM") == 6  # the requeue did not apply GOODSYM again
        assert redis.hget(keys.stats, "calc_dead_ticks") == b"0"
        assert len(stored_ticks(settings.psycopg_url)) == 7
    redis.close()


def test_admin_routes_are_closed_without_an_api_key(settings: Settings, tmp_path: Path) -> None:
    with running(settings_env(settings), tmp_path) as procs:
        procs.start_api()
        response = httpx.get(procs.api_url + "/admin/dead-letters")
        assert response.status_code == 403
        assert response.json()["detail"][0]["field"] == "x-api-key"
        assert httpx.get(procs.api_url + "/symbols").status_code == 200  # reads stay open
