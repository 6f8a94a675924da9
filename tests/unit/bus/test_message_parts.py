"""The ingest script splices ticks into a message that Dramatiq itself must decode."""

from __future__ import annotations

import orjson
from dramatiq import Message

from backend.bus.ingest import dramatiq_message_parts
from backend.bus.keys import CALC_ACTOR
from backend.core.ticks import Tick, decode_tick, encode_tick


def test_spliced_message_decodes_with_dramatiq():
    ticks = [Tick(f"e{i}", "AAA", i, 1.5, 2.0, "s", i, 7) for i in range(3)]
    head, tail = dramatiq_message_parts("ticks.received", "m-1", 1234)
    raw = head + b",".join(encode_tick(t) for t in ticks) + tail
    message = Message.decode(raw)
    assert message.queue_name == "ticks.received"
    assert message.actor_name == CALC_ACTOR
    assert message.message_id == "m-1"
    assert message.options == {"redis_message_id": "m-1"}
    assert [decode_tick(t) for t in message.args[0]] == ticks
    assert orjson.loads(raw)["message_timestamp"] == 1234
