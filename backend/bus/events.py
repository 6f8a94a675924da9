"""Events on the bus (the `realtime:updates` ring): built and decoded through the core models.

The models live in `backend.core.events` (pure, shared with the UI); this module turns the
pipeline's own values (a view, an ingest batch's outcomes, a feeder's report) into their bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from backend.bus.ingest import Outcome, Status
from backend.bus.realtime import Outgoing
from backend.core.events import (
    FEEDER_CONFIG,
    SYMBOL_UPDATED,
    TICK_RECEIVED,
    FeederConfigChanged,
    FeederStatusReported,
    RealtimeEvent,
    TickReceived,
    decode_event,
    encode_event,
)
from backend.core.feeder_config import FeederConfig, FeederStatus
from backend.core.ticks import Tick, us_to_iso
from backend.core.view import View


def view_json(view: View | Mapping[str, Any]) -> bytes:
    """The stored and published bytes of a view (calc's `View`, or an external mapping)."""
    return view.to_json_bytes() if isinstance(view, View) else orjson.dumps(view)


def symbol_updated(
    symbol: str, view: View | Mapping[str, Any], encoded_view: bytes | None = None
) -> bytes:
    """`symbol.updated` for calc's `View` (`encoded_view`: its bytes, when the caller has them).

    A mapping is a view computed outside the pipeline (`/internal/agg-update`), which may be
    partial: it is published as given, and readers that need a whole `View` drop it.
    """
    if isinstance(view, View):
        # `encode_event(SymbolUpdated(...))`, byte for byte, assembled around the view's own
        # bytes: this runs once per view on calc's hot path.
        head = orjson.dumps({"type": SYMBOL_UPDATED, "symbol": symbol, "ts": view.last_ts})
        return head[:-1] + b',"view":' + (encoded_view or view.to_json_bytes()) + b"}"
    return orjson.dumps(
        {"type": SYMBOL_UPDATED, "symbol": symbol, "ts": view["last_ts"], "view": view}
    )


def ticks_received(ticks: Sequence[Tick], outcomes: Sequence[Outcome]) -> list[Outgoing]:
    """One `tick.received` event per symbol per batch: its latest new tick and how many came.

    Coalescing keeps the fast path cheap at tens of thousands of ticks/s while a batch of one
    (the usual case at low rates) is exactly one event per tick.
    """
    latest: dict[str, Tick] = {}
    counts: dict[str, int] = {}
    for tick, outcome in zip(ticks, outcomes, strict=True):
        if outcome.status is not Status.ACCEPTED:
            continue
        counts[tick.symbol] = counts.get(tick.symbol, 0) + 1
        best = latest.get(tick.symbol)
        if best is None or tick.order_key() > best.order_key():
            latest[tick.symbol] = tick
    return [
        Outgoing(
            TICK_RECEIVED,
            symbol,
            encode_event(
                TickReceived.model_construct(
                    symbol=tick.symbol,
                    ts=us_to_iso(tick.ts_us),
                    price=tick.price,
                    volume=tick.volume,
                    source=tick.source,
                    event_id=tick.event_id,
                    count=counts[symbol],
                )
            ),
        )
        for symbol, tick in latest.items()
    ]


def feeder_config_changed(config: FeederConfig) -> Outgoing:
    return Outgoing(FEEDER_CONFIG, None, encode_event(FeederConfigChanged(config=config)))


def outgoing(event: RealtimeEvent) -> Outgoing:
    """Any event model as a ring entry (its type, and its symbol when it has one)."""
    return Outgoing(event.type, getattr(event, "symbol", None), encode_event(event))


def feeder_status_reported(status: FeederStatus, received_at_us: int) -> FeederStatusReported:
    """The report as stored and published: the feeder's fields plus `received_at`."""
    return FeederStatusReported.model_validate(
        {**status.model_dump(), "received_at": us_to_iso(received_at_us)}
    )


def decode(raw: bytes | str) -> RealtimeEvent:
    """A channel message as its event model; raises `ValueError` (pydantic's) if it is none."""
    return decode_event(raw)


def encode(event: RealtimeEvent) -> bytes:
    """The bytes to publish for an event model."""
    return encode_event(event)
