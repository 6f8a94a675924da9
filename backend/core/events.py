"""The events on the `realtime:updates` channel, as one discriminated union on `type`.

Publishers build them and readers (the UI's live feed, the SSE stream's consumers, tests) decode
them with `decode_event`, so both sides of the channel share one definition of each event.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from backend.core.alerts.firing import Firing
from backend.core.contract import Contract
from backend.core.feeder_config import FeederConfig, FeederStatus
from backend.core.replay import ReplayProgress
from backend.core.timestamps import IsoTime
from backend.core.view import View

SYMBOL_UPDATED = "symbol.updated"
TICK_RECEIVED = "tick.received"
FEEDER_CONFIG = "feeder.config"
FEEDER_STATUS = "feeder.status"
ALERT_FIRED = "alert.fired"


class SymbolUpdated(Contract):
    """calc stored a new view W of `symbol`; `ts` is the view's `last_ts`."""

    type: Literal["symbol.updated"] = SYMBOL_UPDATED
    symbol: str
    ts: IsoTime
    view: View


class TickReceived(Contract):
    """The latest new tick of `symbol` in one ingest batch, and how many new ticks it had."""

    type: Literal["tick.received"] = TICK_RECEIVED
    symbol: str
    ts: IsoTime
    price: float
    volume: float
    source: str
    event_id: str
    count: int = Field(ge=1)


class FeederConfigChanged(Contract):
    """An operator changed the feeders' config (`PUT /feeder/config`)."""

    type: Literal["feeder.config"] = FEEDER_CONFIG
    config: FeederConfig


class FeederStatusReported(FeederStatus):
    """A feeder's periodic report, stamped with when the API received it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["feeder.status"] = FEEDER_STATUS
    received_at: IsoTime


class AlertFired(Contract):
    """A rule with a `ui` channel fired (or was test-fired): a toast, and a row on Alerts."""

    type: Literal["alert.fired"] = ALERT_FIRED
    firing: Firing


RealtimeEvent = Annotated[
    SymbolUpdated
    | TickReceived
    | FeederConfigChanged
    | FeederStatusReported
    | AlertFired
    | ReplayProgress,
    Field(discriminator="type"),
]
_EVENT = TypeAdapter(RealtimeEvent)


def decode_event(raw: bytes | str) -> RealtimeEvent:
    """One channel message as its event model; raises `pydantic.ValidationError` otherwise."""
    return _EVENT.validate_json(raw)


def encode_event(event: RealtimeEvent) -> bytes:
    """The bytes published on the channel (`type` first, then the event's fields)."""
    return event.__pydantic_serializer__.to_json(event)
