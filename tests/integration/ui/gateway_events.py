"""Producing realtime events for the UI's tests the way the product does: into the ring.

The UI reads a real gateway process, which reads the ring (`backend.bus.realtime`); these helpers
write to it with the product's own writers: a view goes through the guarded view write (stored
W + `symbol.updated`, as calc does, so a gateway's snapshot has it too), any other event is
appended as its publisher appends it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from backend.bus.keys import Keys
from backend.bus.realtime import Outgoing, Ring
from backend.bus.views import queue_write
from backend.core.events import RealtimeEvent, encode_event
from backend.core.view import View
from backend.settings import Settings, UiSettings
from tests.support.builders import iso, make_last_tick, make_view
from tests.support.servers import free_port


def dead_url() -> str:
    """A local URL with nothing listening: every connection is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


def live_view(symbol: str, price: float, ticks: int = 1) -> View:
    """A whole, current W of `symbol` at `price` after `ticks` ticks (its event order grows
    with `ticks`, so later calls are newer views)."""
    now = datetime.now(UTC)
    stamp = iso(now)
    return make_view(
        symbol,
        now=now,
        last_price=price,
        last_ts=stamp,
        last_event_id=f"e-{ticks:09d}",
        ticks_total=ticks,
        sma_10=price,
        vwap_1m=None,
        volume_1m=0.5,
        trades_1m=ticks,
        high_1m=price,
        low_1m=price,
        open_1m=price,
        change_1m_pct=0.0,
        last_10=[make_last_tick(ts=stamp, price=price, volume=0.5)],
        updated_at=stamp,
    )


def write_view(redis: Redis, settings: Settings, view: View) -> None:
    """Store `view` and append its `symbol.updated`, in one MULTI (calc's write)."""
    now_us = time.time_ns() // 1_000
    with redis.pipeline(transaction=True) as pipe:
        queue_write(
            pipe, Keys.from_settings(settings), Ring.from_settings(settings),
            symbol=view.symbol, view=view, last_ts_us=now_us,
            last_event_id=view.last_event_id, now_us=now_us,
        )  # fmt: skip
        (written,) = pipe.execute()
    assert written == 1, f"the view write of {view.symbol} was refused as older"


def append_event(redis: Redis, settings: Settings, event: RealtimeEvent) -> None:
    """Append any other bus event (`alert.fired`, `tick.received`, ...) to the ring."""
    symbol: Any = getattr(event, "symbol", None)
    with redis.pipeline(transaction=False) as pipe:
        Ring.from_settings(settings).queue_append(
            pipe, Outgoing(event.type, symbol, encode_event(event))
        )
        pipe.execute()


def ui_settings(settings: Settings, gateway_url: str, backend_url: str | None = None) -> UiSettings:
    """What a UI session runs with: the UI's own settings class, which has no Redis and no
    database field at all; this test's gateway, and a backend (dead unless given)."""
    return UiSettings(
        gateway_url=gateway_url,
        backend_url=backend_url or dead_url(),
        api_key=settings.api_key,
        stale_after=settings.stale_after,
        ui_password=None,
    )
