"""Where a client starts: a snapshot, a resume after its last id, or a reset then a snapshot.

A resume reads the ring after the client's id in chunks (each with the ring's bounds, so a gap is
seen, never skipped) until it reaches the hub's position, then joins the live fan-out in the same
step as that check: the events it read and the events the hub offers next meet with nothing in
between and nothing twice (the client's cursor drops anything it already has).
"""

from __future__ import annotations

from backend.core.realtime import RESET, Reset
from backend.core.stream_ids import StreamId, decide_resume, format_id
from backend.gateway.client import Client
from backend.gateway.frames import Control, Event
from backend.gateway.hub import Hub

CHUNK = 500


async def start(
    hub: Hub, client: Client, after: StreamId | None, *, invalid: str | None = None
) -> str:
    """Position `client` and make it live; returns how it started (snapshot, resume, reset).

    `invalid`: the client sent an id that is not a ring id (a reset, as for an aged-out one).
    """
    if invalid is not None:
        client.pin(Control.of(RESET, Reset(after=invalid, reason="not a ring id")))
        hub.start_from_snapshot(client)
        return "reset"
    if after is None:
        hub.start_from_snapshot(client)
        return "snapshot"
    return await catch_up(hub, client, after)


async def catch_up(hub: Hub, client: Client, after: StreamId) -> str:
    epoch = hub.epoch
    client.cursor = after
    checked = False  # the first read also proves the id is one this ring holds
    while True:
        position = hub.position
        if hub.epoch != epoch or position is None:
            return _reset(hub, client, after, "the gateway started again from a fresh ring")
        if checked and client.cursor >= position:
            hub.attach(client)  # no await since the check: nothing can come in between
            return "resume"
        while len(client.queue) >= client.capacity // 2:
            client.drained.clear()
            await client.drained.wait()  # let the writer send before reading more
        # No more than the queue has room for: a backlog must not push out its own events.
        room = min(CHUNK, client.capacity - len(client.queue))
        bounds, entries = await hub.reader.read_after(client.cursor, room)
        checked = True
        decision = decide_resume(client.cursor, bounds.first, bounds.last_generated)
        if decision.verdict == "reset":
            return _reset(hub, client, client.cursor, decision.reason)
        for entry in entries:
            client.offer(Event(entry))


def _reset(hub: Hub, client: Client, after: StreamId, reason: str) -> str:
    client.queue.clear()
    client.cursor = (0, 0)
    client.pin(Control.of(RESET, Reset(after=format_id(after), reason=reason)))
    hub.start_from_snapshot(client)
    return "reset"
