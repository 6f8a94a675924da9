"""What the alert pipeline hands between its stages: a webhook delivery job (the `alerts.deliver`
message) and the history records that wait in Redis for PostgreSQL (fired, and each delivery's
progress), so a firing reaches the history even while PostgreSQL is down."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, TypeAdapter

from backend.core.alerts.firing import Firing
from backend.core.contract import Contract
from backend.core.timestamps import IsoTime

DeliveryStatus = Literal["pending", "delivered", "retrying", "failed", "dead"]
UI_CHANNEL = "ui"  # the history's channel name for the in-app notification; webhooks: their URL


class DeliveryJob(Contract):
    """One webhook delivery: the exact body and signature, computed once when the rule fired,
    so every attempt sends the same bytes under the same `Idempotency-Key`."""

    alert_id: str
    rule_id: str
    url: str
    body: str
    signature: str | None = None
    attempt: int = Field(default=1, ge=1)
    waits: int = Field(
        default=0, ge=0, description="Times this attempt found its host at its concurrency limit"
    )
    slot: str | None = Field(
        default=None,
        description="Lease token of the host slot reserved for this attempt when it was un-parked",
    )
    fired_us: int = Field(description="When the firing was committed (wall clock, µs)")
    test: bool = False

    @property
    def destination(self) -> str:
        """What delivery slots and parking are per: the URL's host and port (its origin without
        the scheme). Two receivers on one machine (different ports) are different servers: a
        slow or dead one must not queue a healthy one's jobs behind its own."""
        parts = urlsplit(self.url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class FiredRecord(Contract):
    kind: Literal["fired"] = "fired"
    firing: Firing
    channels: list[str] = Field(description="'ui' and each webhook URL")
    disable_rule: bool = Field(default=False, description="Trigger `once`: the rule is done")
    committed_at: IsoTime


class DeliveryRecord(Contract):
    kind: Literal["delivery"] = "delivery"
    alert_id: str
    channel: str
    status: DeliveryStatus
    attempts: int = Field(ge=0)
    last_error: str | None = None
    latency_ms: float | None = None
    at: IsoTime


HistoryRecord = Annotated[FiredRecord | DeliveryRecord, Field(discriminator="kind")]
_HISTORY = TypeAdapter(HistoryRecord)


def decode_history_record(raw: bytes | str) -> FiredRecord | DeliveryRecord:
    return _HISTORY.validate_json(raw)
