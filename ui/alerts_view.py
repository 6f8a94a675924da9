"""Pure logic of the alert UI's forms and tables: a form's values as an `AlertRuleSpec`, where
each field error goes on the form, an edit as a patch, and the rows of the rules and history
tables. Kept apart from `st.*` so unit tests can call it (wording: `ui.alerts_text`; what is new
or unread for a session: `ui.alerts_marks`).

A firing reaches the UI two ways: live, as an `alert.fired` event the process's `LiveFeed` holds
(numbered by `seq`, in arrival order), and from `GET /alerts/events` (the history, written to
PostgreSQL a moment later). Toasts and the unread count use the first, the history table both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import ValidationError

from backend.core.alerts.firing import Firing
from backend.core.alerts.history import AlertEvent
from backend.core.alerts.rules import (
    CHANNEL_CONDITIONS,
    AlertRuleOut,
    AlertRuleSpec,
    expiry_error,
)
from backend.core.validation import FieldError
from ui.alerts_text import rule_summary, toast_text


# --- the create form → a spec -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RuleForm:
    """What the create form holds when it is submitted."""

    symbol: str
    field: str
    condition: str
    value: float | None
    value2: float | None = None
    name: str = ""
    trigger: str = "once_per_bar"
    bar: str = "1m"
    cooldown_s: int = 0
    expires_on: date | None = None
    expires_time: time | None = None
    enabled: bool = True
    in_app: bool = True
    webhook_url: str = ""
    webhook_secret: str = ""


# Where each error shows on the form; `form` is the banner above the submit button.
FORM_SLOTS = (
    "name", "symbol", "field", "condition", "value", "value2", "trigger", "bar", "cooldown_s",
    "expires_at", "channels", "webhook_url", "webhook_secret", "form",
)  # fmt: skip


def default_name(form: RuleForm) -> str:
    """A name for a rule the analyst did not name: what it watches."""
    symbol = form.symbol.strip().upper() or "?"
    return f"{symbol} {rule_summary(form.field, form.condition, form.value, form.value2)}"[:120]


def spec_body(form: RuleForm) -> dict[str, Any]:
    """The JSON body the form stands for (before validation).

    `value2` goes only with a channel condition (the form always shows it: a form's inputs cannot
    appear as the condition changes); blank texts mean "none".
    """
    body: dict[str, Any] = {
        "name": form.name.strip() or default_name(form),
        "symbol": form.symbol.strip().upper(),
        "field": form.field,
        "condition": form.condition,
        "trigger": form.trigger,
        "bar": form.bar,
        "cooldown_s": int(form.cooldown_s),
        "enabled": form.enabled,
        "channels": [],
    }
    if form.value is not None:
        body["value"] = float(form.value)
    if form.condition in CHANNEL_CONDITIONS and form.value2 is not None:
        body["value2"] = float(form.value2)
    if form.expires_on is not None:
        at = datetime.combine(form.expires_on, form.expires_time or time(0, 0), tzinfo=UTC)
        body["expires_at"] = at.isoformat().replace("+00:00", "Z")
    if form.in_app:
        body["channels"].append({"type": "ui"})
    url = form.webhook_url.strip()
    if url:
        webhook: dict[str, Any] = {"type": "webhook", "url": url}
        if form.webhook_secret:
            webhook["secret"] = form.webhook_secret
        body["channels"].append(webhook)
    return body


def build_spec(form: RuleForm, now: datetime) -> AlertRuleSpec | list[FieldError]:
    """The spec to POST, or what is wrong with the form (the same checks the API makes that need
    no deployment: the API may still refuse a webhook host on its deny list)."""
    body = spec_body(form)
    if not body["channels"]:
        return [{"field": "channels", "reason": "pick in-app and/or a webhook URL"}]
    if form.webhook_secret and not form.webhook_url.strip():
        return [{"field": "channels.0.secret", "reason": "a secret needs a webhook URL"}]
    try:
        spec = AlertRuleSpec.model_validate(body)
    except ValidationError as exc:
        return validation_errors(exc)
    reason = expiry_error(spec, now)
    if reason is not None:
        return [{"field": "expires_at", "reason": reason}]
    return spec


def validation_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as `{field, reason}`, as the API words them: a rule-level check says
    "value2: reason" and is split into its field."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"])
        reason = str(err["msg"]).removeprefix("Value error, ")
        if not field and ": " in reason:
            field, reason = reason.split(": ", 1)
        out.append({"field": field or "body", "reason": reason})
    return out


def form_slot(field: str) -> str:
    """Which input of the form an error's field path belongs to (`channels.1.url` → the URL)."""
    head = field.split(".", 1)[0]
    if head == "channels":
        if field.endswith("url"):
            return "webhook_url"
        if field.endswith("secret"):
            return "webhook_secret"
        return "channels"
    if head in FORM_SLOTS and head != "form":
        return head
    return "form"


def errors_by_slot(errors: Iterable[FieldError]) -> dict[str, list[str]]:
    """Each error under the input it belongs to; one nobody owns goes to `form`."""
    slots: dict[str, list[str]] = {}
    for error in errors:
        slot = form_slot(error["field"])
        reason = error["reason"] if slot != "form" else f"{error['field']}: {error['reason']}"
        slots.setdefault(slot, []).append(reason)
    return slots


# --- edit → patch -----------------------------------------------------------------------------
def edit_patch(rule: AlertRuleOut, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Only the fields the edit form changed (PATCH merges them into the stored rule)."""
    current = rule.model_dump(mode="json")
    patch: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "name":
            value = str(value).strip()
            if not value:
                continue
        if name == "value2" and rule.condition not in CHANNEL_CONDITIONS:
            continue
        if name in ("value", "value2") and value is not None:
            value = float(value)
        if name == "cooldown_s":
            value = int(value)
        if current.get(name) != value:
            patch[name] = value
    return patch


# --- tables -----------------------------------------------------------------------------------
def rule_state(rule: AlertRuleOut, now: datetime) -> str:
    if rule.expires_at is not None and rule.expires_at <= now:
        return "expired"
    return "active" if rule.enabled else "paused"


def channels_summary(rule: AlertRuleOut) -> str:
    parts = []
    for channel in rule.channels:
        if channel.type == "ui":
            parts.append("in-app")
        else:
            parts.append(f"webhook {channel.url}{' (signed)' if channel.signed else ''}")
    return ", ".join(parts)


def rules_fingerprint(rules: Iterable[AlertRuleOut]) -> tuple[tuple[str, int, bool], ...]:
    """What the rules table shows changes when this does (a `once` rule pausing itself)."""
    return tuple((rule.id, rule.version, rule.enabled) for rule in rules)


HISTORY_COLUMNS = (
    "fired_at", "rule", "symbol", "what", "test", "channel", "status", "attempts",
    "last_error", "latency_ms", "alert_id",
)  # fmt: skip


def _what(firing: Firing) -> str:
    return toast_text(firing).split(": ", 1)[1]


def history_rows(
    events: Sequence[AlertEvent],
    live: Sequence[Mapping[str, Any]] = (),
    *,
    symbol: str | None = None,
    rule_id: str | None = None,
) -> list[dict[str, Any]]:
    """One row per delivery of each firing, newest firing first.

    Firings the live feed brought that the history does not hold yet (it is written to PostgreSQL
    a moment later) come first, their in-app delivery shown as done and the rest as "recording".
    """
    rows: list[dict[str, Any]] = []
    known = {event.alert_id for event in events}
    pending: list[Firing] = []
    for entry in live:  # newest first
        firing = Firing.model_validate(entry["firing"])
        if firing.alert_id in known:
            continue
        if (symbol and firing.symbol != symbol) or (rule_id and firing.rule_id != rule_id):
            continue
        known.add(firing.alert_id)
        pending.append(firing)
    for firing in pending:
        rows.append(_row(firing, channel="ui", status="delivered", attempts=1))
        rows.append(_row(firing, channel="…", status="recording", attempts=None))
    for event in events:
        if not event.deliveries:
            rows.append(_row(event, channel="—", status="—", attempts=None))
        for delivery in event.deliveries:
            rows.append(
                _row(
                    event,
                    channel="in-app" if delivery.channel == "ui" else delivery.channel,
                    status=delivery.status,
                    attempts=delivery.attempts,
                    last_error=delivery.last_error,
                    latency_ms=delivery.latency_ms,
                )
            )
    return rows


def _row(
    firing: Firing,
    *,
    channel: str,
    status: str,
    attempts: int | None,
    last_error: str | None = None,
    latency_ms: float | None = None,
) -> dict[str, Any]:
    channel = "in-app" if channel == "ui" else channel
    return {
        "fired_at": firing.fired_at,
        "rule": firing.rule_name,
        "symbol": firing.symbol,
        "what": _what(firing),
        "test": firing.test,
        "channel": channel,
        "status": status,
        "attempts": attempts,
        "last_error": last_error or "",
        "latency_ms": latency_ms,
        "alert_id": firing.alert_id,
    }


STATUS_COLORS = {
    "delivered": "green",
    "pending": "gray",
    "recording": "gray",
    "retrying": "orange",
    "failed": "red",
    "dead": "red",
}


def status_style(status: Any) -> str:
    """CSS for a delivery status cell (Styler.map): red for failed or dead-lettered."""
    color = STATUS_COLORS.get(str(status))
    return f"color: {color}" if color else ""
