"""The alert history as the API answers it (`GET /alerts/events`): each firing with the state of
each of its deliveries."""

from __future__ import annotations

from pydantic import Field

from backend.core.alerts.firing import Firing
from backend.core.alerts.records import DeliveryStatus
from backend.core.contract import Contract
from backend.core.timestamps import IsoTime


class AlertDelivery(Contract):
    channel: str = Field(description="'ui', or the webhook URL")
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    latency_ms: float | None = Field(default=None, description="Firing committed → delivered")
    updated_at: IsoTime


class AlertEvent(Firing):
    committed_at: IsoTime = Field(description="When the evaluation that fired it committed")
    deliveries: list[AlertDelivery]


class AlertEventsResponse(Contract):
    events: list[AlertEvent] = Field(description="Newest first")


class TestFireResponse(Contract):
    alert_id: str
