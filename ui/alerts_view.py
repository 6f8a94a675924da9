"""Pure logic of the alert UI: what a toast says, which firings are new or unread for a session,
a form's values as an `AlertRuleSpec`, where each field error goes on the form, and the rows of
the rules and history tables. Kept apart from `st.*` so unit tests can call it.

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
    FLAG_FIELDS,
    NUMERIC_FIELDS,
    AlertRuleOut,
    AlertRuleSpec,
    expiry_error,
)
from backend.core.validation import FieldError

FIELDS: tuple[str, ...] = (*NUMERIC_FIELDS, *FLAG_FIELDS)
CONDITIONS = (
    "crosses_above", "crosses_below", "crosses", "above", "below", "enters_channel",
    "exits_channel",
)  # fmt: skip
TRIGGERS = ("once_per_bar", "once", "every_time")
BARS = ("1m", "5m", "15m", "1h")

FIELD_LABELS = {
    "last_price": "Last price", "change_1m_pct": "Change 1m (%)", "vwap_1m": "VWAP 1m",
    "volume_1m": "Volume 1m", "trades_1m": "Trades 1m", "sma_10": "SMA-10",
    "high_1m": "High 1m", "low_1m": "Low 1m", "gaps_open": "Open gaps",
    "stale": "Stale (flag)", "gap_opened": "Gap opened (flag)",
}  # fmt: skip
CONDITION_LABELS = {
    "crosses_above": "crosses above", "crosses_below": "crosses below", "crosses": "crosses",
    "above": "is above", "below": "is below", "enters_channel": "enters channel",
    "exits_channel": "exits channel",
}  # fmt: skip
_PAST = {
    "crosses_above": "crossed above", "crosses_below": "crossed below", "crosses": "crossed",
    "above": "is above", "below": "is below", "enters_channel": "entered",
    "exits_channel": "left",
}  # fmt: skip
TRIGGER_LABELS = {
    "once_per_bar": "once per bar",
    "once": "once (then the rule pauses)",
    "every_time": "every time (after the cooldown)",
}

TOASTED_KEEP = 1_000  # alert ids a session remembers having toasted


# --- numbers and sentences --------------------------------------------------------------------
def format_number(value: float | None) -> str:
    """A threshold or observed value as people write it: 65,000 / 65,012.5 / 1.08345."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1_000:
        text = f"{value:,.2f}"
    elif magnitude >= 1:
        text = f"{value:,.5f}"
    else:
        text = f"{value:.8f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def threshold_text(condition: str, value: float | None, value2: float | None) -> str:
    """`65,000`, or a channel's `64,000–65,000`."""
    if condition in CHANNEL_CONDITIONS:
        return f"{format_number(value)}–{format_number(value2)}"
    return format_number(value)


def rule_summary(field: str, condition: str, value: float | None, value2: float | None) -> str:
    """What a rule watches: `last_price crosses above 65,000`; a flag: `stale becomes true`."""
    if field in FLAG_FIELDS:
        return f"{field} becomes true"
    return f"{field} {CONDITION_LABELS.get(condition, condition)} " + threshold_text(
        condition, value, value2
    )


def trigger_summary(trigger: str, bar: str, cooldown_s: int) -> str:
    """How often a rule may fire: `once per 1m bar`, `once`, `every time (cooldown 60 s)`."""
    if trigger == "once_per_bar":
        return f"once per {bar} bar"
    if trigger == "every_time":
        return f"every time (cooldown {cooldown_s} s)" if cooldown_s else "every time"
    return "once"


def toast_text(firing: Mapping[str, Any] | Firing) -> str:
    """The toast of one firing: `BTC breakout: BTCUSDT last_price 65,012 crossed above 65,000`."""
    f = firing if isinstance(firing, Firing) else Firing.model_validate(firing)
    if f.field == "stale":
        what = f"{f.symbol} went stale"
    elif f.field == "gap_opened":
        what = f"a sequence gap opened on {f.symbol}"
    else:
        past = _PAST.get(f.condition, f.condition)
        threshold = threshold_text(f.condition, f.value, f.value2)
        what = f"{f.symbol} {f.field} {format_number(f.observed)} {past} {threshold}"
    return f"{'Test · ' if f.test else ''}{f.rule_name}: {what}"


# --- what is new, what is unread --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertMarks:
    """What a session remembers about the feed's alerts (kept in its session state).

    `baseline`: the feed's alert count when the session started (older firings are history, not
    news); `read_upto`: the count when the session last looked at the Alerts page; `toasted`: the
    ids already toasted, oldest first, bounded.
    """

    baseline: int
    read_upto: int
    toasted: tuple[str, ...] = ()


def start_marks(alerts_received: int) -> AlertMarks:
    return AlertMarks(baseline=alerts_received, read_upto=alerts_received)


def rebase(marks: AlertMarks, alerts_received: int) -> AlertMarks:
    """A feed that restarted counts from 0 again: marks beyond its count start over at it."""
    if alerts_received >= marks.baseline and alerts_received >= marks.read_upto:
        return marks
    return AlertMarks(alerts_received, alerts_received, marks.toasted)


def to_toast(
    alerts: Sequence[Mapping[str, Any]], marks: AlertMarks
) -> tuple[list[Mapping[str, Any]], AlertMarks]:
    """The firings to toast now, oldest first, and the marks with them remembered.

    `alerts` is the feed's list, newest first. A firing is toasted once per session (by
    `alert_id`, however often it arrives) and only when it arrived after the session started.
    """
    seen = set(marks.toasted)
    fresh: list[Mapping[str, Any]] = []
    for entry in reversed(alerts):
        alert_id = entry["firing"]["alert_id"]
        if entry["seq"] <= marks.baseline or alert_id in seen:
            continue
        seen.add(alert_id)
        fresh.append(entry["firing"])
    if not fresh:
        return [], marks
    toasted = (*marks.toasted, *(f["alert_id"] for f in fresh))[-TOASTED_KEEP:]
    return fresh, AlertMarks(marks.baseline, marks.read_upto, toasted)


def unread_count(alerts: Sequence[Mapping[str, Any]], alerts_received: int, read_upto: int) -> int:
    """Firings that arrived after `read_upto` (distinct ids), plus those the feed already let
    go of (it keeps the newest few hundred): a busy day still counts right."""
    held = [entry for entry in alerts if entry["seq"] > read_upto]
    ids = {entry["firing"]["alert_id"] for entry in held}
    oldest_held = min((entry["seq"] for entry in alerts), default=alerts_received + 1)
    dropped = max(0, min(oldest_held - 1, alerts_received) - read_upto)
    return len(ids) + dropped


def mark_read(marks: AlertMarks, alerts_received: int) -> AlertMarks:
    return AlertMarks(marks.baseline, alerts_received, marks.toasted)


def unread_label(count: int) -> str:
    return f"{count:,} unread alert{'' if count == 1 else 's'}"


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
