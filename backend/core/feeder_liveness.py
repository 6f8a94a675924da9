"""When a feeder counts as alive, and when it is forgotten: read from its last stored report.

Pure, so the feeder registry (which prunes), GET /feeder/status (which lists) and the stats
sampler (which sums the alive feeders' rates) agree without importing each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

ALIVE_WITHIN_S = 5.0  # a feeder reports every second; silent longer than this → not alive
FORGET_AFTER_S = 3600.0  # entries of feeders silent longer than this are pruned (and not listed)


def received_us(record: Any) -> int | None:
    """`received_at` of a stored record in epoch µs, None if the record is unusable."""
    if not isinstance(record, dict) or not isinstance(record.get("received_at"), str):
        return None
    try:
        received = datetime.fromisoformat(record["received_at"])
    except ValueError:
        return None
    if received.tzinfo is None:
        return None
    return int(received.timestamp() * 1_000_000)


def decode_record(raw: bytes) -> Any:
    """A stored status record, or None when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def is_alive(received: int, now_us: int) -> bool:
    return now_us - received <= ALIVE_WITHIN_S * 1_000_000


def is_forgotten(received: int | None, now_us: int) -> bool:
    """Unreadable, or silent for over FORGET_AFTER_S."""
    return received is None or now_us - received > FORGET_AFTER_S * 1_000_000
