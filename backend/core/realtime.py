"""The realtime protocol's own messages (the gateway's, beside the bus events it relays).

A client of the gateway (SSE or WebSocket) receives bus events (`backend.core.events`), each with
the id of its ring entry, and these: a `snapshot` (the current W of the symbols it follows, at a
ring position), a `reset` (its resume id is no longer in the ring: a snapshot follows), a `missed`
(events dropped for a slow client, by id range). A WebSocket client sends `Op`s. The gateway, the
UI's live feed, the benchmarks and the tests all read and write them through these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from backend.core.contract import Contract

SNAPSHOT = "snapshot"
RESET = "reset"
MISSED = "missed"
RESUMED = "resumed"
SUBSCRIBED = "subscribed"
ERROR = "error"
HELLO = "hello"


class Snapshot(Contract):
    """The current view W of each symbol the client follows (all when it follows all), exactly
    as of ring position `at`: the live events that follow are those after `at`."""

    at: str
    views: dict[str, dict[str, Any]]


class Reset(Contract):
    """The client's resume id (`after`) cannot be continued; a `snapshot` follows at once."""

    after: str
    reason: str


class Missed(Contract):
    """Events dropped from this client's queue because it read too slowly: their ids span
    `first`..`last` (`count` of them); views are never in it unless the queue held nothing
    else, since a newer view of a symbol replaces its queued one instead."""

    first: str
    last: str
    count: int = Field(ge=1)


class Resumed(Contract):
    """(WebSocket) the events after `after` follow (a `resume` op was accepted)."""

    after: str


class Subscribed(Contract):
    """(WebSocket) what the connection follows now: None means every symbol."""

    symbols: list[str] | None
    types: list[str] | None


class ErrorMessage(Contract):
    """(WebSocket) an op was refused; the connection stays open."""

    field: str
    reason: str


class Hello(Contract):
    """(WebSocket) first message: this gateway's limits (heartbeat seconds, queue size)."""

    heartbeat_s: float
    queue: int


# --- WebSocket ops (client → gateway) --------------------------------------------------------
class SubscribeOp(Contract):
    op: Literal["subscribe"]
    symbols: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=10_000
    )


class UnsubscribeOp(Contract):
    op: Literal["unsubscribe"]
    symbols: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=10_000
    )


class ResumeOp(Contract):
    op: Literal["resume"]
    after: str = Field(pattern=r"^\d{1,20}-\d{1,20}$")


Op = Annotated[SubscribeOp | UnsubscribeOp | ResumeOp, Field(discriminator="op")]
OP = TypeAdapter(Op)

ALL_SYMBOLS = "*"  # in subscribe/unsubscribe: every symbol
