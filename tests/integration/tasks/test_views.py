"""The one guarded view write, shared by calc and /internal/agg-update: W never goes backwards,
whoever writes it, and both writers order views the same way (last_ts, then last_event_id)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.bus.views import ViewStore
from backend.core.ticks import Tick, us_to_iso
from backend.settings import Settings
from tasks.calc import CalcContext, apply_batch

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000
NOW_US = T0 + 5_000_000


def tick(i: int, ts_us: int) -> Tick:
    return Tick(f"v-{i}", "VW", ts_us, 100.0 + i, 1.0, "s", i + 1, ts_us + 10)


def external(ts_us: int, price: float, event_id: str = "") -> dict[str, Any]:
    return {"symbol": "VW", "last_price": price, "last_ts": us_to_iso(ts_us),
            "last_event_id": event_id}  # fmt: skip


def write_external(settings: Settings, view: dict[str, Any], ts_us: int) -> bool:
    async def run() -> bool:
        client = AsyncRedis.from_url(settings.effective_redis_url)
        try:
            store = ViewStore(client, Keys.from_settings(settings), Ring.from_settings(settings))
            return await store.write(
                symbol="VW", view=view, last_ts_us=ts_us,
                last_event_id=view["last_event_id"], now_us=NOW_US,
            )  # fmt: skip
        finally:
            await client.aclose()

    return asyncio.run(run())


def stored(redis: Redis, settings: Settings) -> dict[str, Any]:
    return orjson.loads(redis.get(Keys.from_settings(settings).view("VW")) or b"{}")


def test_an_older_external_view_does_not_move_w_backwards(settings: Settings, redis_client: Redis):
    assert write_external(settings, external(T0 + 2_000, 2.0), T0 + 2_000)
    assert not write_external(settings, external(T0 + 1_000, 1.0), T0 + 1_000)  # older: refused
    assert stored(redis_client, settings)["last_price"] == 2.0
    # Same time: the event_id decides, as in calc's (ts, event_id) order.
    assert write_external(settings, external(T0 + 2_000, 3.0, "b"), T0 + 2_000)
    assert not write_external(settings, external(T0 + 2_000, 4.0, "a"), T0 + 2_000)
    assert stored(redis_client, settings)["last_price"] == 3.0


def test_calc_and_agg_update_agree_on_the_order(settings: Settings, redis_client: Redis):
    ctx = CalcContext(
        redis=redis_client,
        keys=Keys.from_settings(settings),
        ring=Ring.from_settings(settings),
        done_ttl_s=settings.dedup_ttl,
        stale_after_s=settings.stale_after,
    )
    apply_batch(ctx, "m-1", [tick(0, T0 + 1_000), tick(1, T0 + 2_000)], NOW_US)
    calc_view = stored(redis_client, settings)
    assert calc_view["last_event_id"] == "v-1"
    # An external view older than calc's is refused; calc's view stays.
    assert not write_external(settings, external(T0 + 1_500, 9.0, "x"), T0 + 1_500)
    assert stored(redis_client, settings) == calc_view
    # A newer external view wins; calc then applying older ticks does not move W back...
    assert write_external(settings, external(T0 + 3_000, 7.0, "x"), T0 + 3_000)
    apply_batch(ctx, "m-2", [tick(2, T0 + 2_500)], NOW_US)
    assert stored(redis_client, settings)["last_price"] == 7.0
    # ...while a newer calc view replaces it.
    apply_batch(ctx, "m-3", [tick(3, T0 + 4_000)], NOW_US)
    assert stored(redis_client, settings)["last_event_id"] == "v-3"
    assert stored(redis_client, settings)["ticks_total"] == 4
