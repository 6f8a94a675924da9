"""The realtime protocol's models: the WebSocket ops a client may send, and the messages."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from backend.core.realtime import (
    OP,
    Missed,
    ResumeOp,
    Snapshot,
    SubscribeOp,
    UnsubscribeOp,
)


def test_ops_are_told_apart_by_op() -> None:
    assert isinstance(OP.validate_json('{"op":"subscribe","symbols":["A"]}'), SubscribeOp)
    assert isinstance(OP.validate_json('{"op":"unsubscribe","symbols":["*"]}'), UnsubscribeOp)
    resume = OP.validate_json('{"op":"resume","after":"17-2"}')
    assert isinstance(resume, ResumeOp) and resume.after == "17-2"


def first_error_field(text: str) -> str:
    with pytest.raises(ValidationError) as caught:
        OP.validate_json(text)
    return ".".join(str(p) for p in caught.value.errors()[0]["loc"])


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"op":"jump"}', ""),  # unknown discriminator: reported at the root
        ('{"op":"subscribe","symbols":[]}', "subscribe.symbols"),
        ('{"op":"subscribe","symbols":[""]}', "subscribe.symbols.0"),
        ('{"op":"subscribe","symbols":"A"}', "subscribe.symbols"),
        ('{"op":"resume","after":"yesterday"}', "resume.after"),
        ('{"op":"resume"}', "resume.after"),
    ],
)
def test_a_bad_op_names_its_field(text: str, field: str) -> None:
    assert first_error_field(text) == field


def test_a_missed_range_counts_at_least_one() -> None:
    with pytest.raises(ValidationError):
        Missed(first="1-0", last="1-0", count=0)


def test_a_snapshot_serializes_as_the_wire_shape() -> None:
    snapshot = Snapshot(at="5-1", views={"A": {"last_price": 1.0}})
    assert orjson.loads(snapshot.model_dump_json()) == {
        "at": "5-1",
        "views": {"A": {"last_price": 1.0}},
    }
