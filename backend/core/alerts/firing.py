"""A firing: one rule, one crossing, one stable id; and the webhook body and signature for it.

The id is derived, never drawn: `alert_id` is a UUID5 of the rule and the firing key (the
observation that fired), so whichever worker evaluates a redelivered message computes the same
id, the history's unique key absorbs the repeat, and a receiver de-duplicates on the
`Idempotency-Key` header it carries.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Literal

import orjson
from pydantic import Field

from backend.core.alerts.rules import AlertField, Condition
from backend.core.contract import Contract
from backend.core.timestamps import IsoTime

ALERTS_NAMESPACE = uuid.UUID("5d0f7f0e-7a43-4f1e-9c55-7f8d7a1e0a13")
SIGNATURE_HEADER = "X-Tickstream-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class FiringTick(Contract):
    """The tick (or, for view fields, the view's latest tick) the rule fired on."""

    ts: IsoTime
    event_id: str
    price: float | None = None
    volume: float | None = None
    source: str | None = None


class Firing(Contract):
    """One notification-worthy crossing: the history row, the `alert.fired` event's payload and
    the webhook body are all this."""

    alert_id: str
    rule_id: str
    rule_version: int = 1
    rule_name: str
    symbol: str
    field: AlertField
    condition: Condition
    value: float | None
    value2: float | None = None
    observed: float
    tick: FiringTick
    firing_key: str = Field(description="What fired: unique per rule in the history")
    fired_at: IsoTime = Field(description="Event time of the observation that fired")
    test: bool = False


def firing_id(rule_id: str, firing_key: str) -> str:
    """The stable alert id of `rule_id` firing on `firing_key`."""
    return str(uuid.uuid5(ALERTS_NAMESPACE, f"{rule_id}\x00{firing_key}"))


WebhookBodyField = Literal[
    "alert_id", "rule_id", "rule_name", "symbol", "field", "condition", "value", "observed",
    "tick", "fired_at", "test",
]  # fmt: skip
WEBHOOK_FIELDS: tuple[str, ...] = WebhookBodyField.__args__  # type: ignore[attr-defined]


def webhook_body(firing: Firing) -> bytes:
    """The exact bytes POSTed (and signed): the documented fields, in a fixed order."""
    data = firing.model_dump(mode="json")
    return orjson.dumps({name: data[name] for name in WEBHOOK_FIELDS})


def sign(body: bytes, secret: str) -> str:
    """`X-Tickstream-Signature`: `sha256=` + hex HMAC-SHA256 of the raw body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does (and the README shows): constant-time compare of the signature."""
    return hmac.compare_digest(sign(body, secret), header)
