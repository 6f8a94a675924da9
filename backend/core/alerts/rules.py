"""An alert rule: what to watch, when to fire, where to say so.

The contract shared by the REST routes (request and answer), the Redis mirror the workers read,
the evaluation and the UI. Validation names each bad field and the reason; checks that need the
time (`expires_at` in the past) or the deployment (the webhook deny list) are separate functions
so the time and the list are passed in, never read here.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from backend.core.contract import Contract
from backend.core.ticks import SYMBOL_RE

# The numeric fields of W a rule can watch, and the two data-quality fields (true/false, observed
# as 1/0): `stale` (the view is stale) and `gap_opened` (a sequence gap opened in this view).
NUMERIC_FIELDS = (
    "last_price", "change_1m_pct", "vwap_1m", "volume_1m", "trades_1m",
    "sma_10", "high_1m", "low_1m", "gaps_open",
)  # fmt: skip
FLAG_FIELDS = ("stale", "gap_opened")
AlertField = Literal[
    "last_price", "change_1m_pct", "vwap_1m", "volume_1m", "trades_1m",
    "sma_10", "high_1m", "low_1m", "gaps_open", "stale", "gap_opened",
]  # fmt: skip

LEVEL_CONDITIONS = ("above", "below")
EDGE_CONDITIONS = ("crosses_above", "crosses_below", "crosses")
CHANNEL_CONDITIONS = ("enters_channel", "exits_channel")
Condition = Literal[
    "above", "below", "crosses_above", "crosses_below", "crosses", "enters_channel",
    "exits_channel",
]  # fmt: skip
# A flag is true or false: "becomes true" is all a rule can ask of it.
FLAG_CONDITIONS = ("above", "crosses_above")
FLAG_THRESHOLD = 0.5

Trigger = Literal["once", "once_per_bar", "every_time"]
Bar = Literal["1m", "5m", "15m", "1h"]
BAR_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}  # UTC-aligned, like the candles

NAME_MAX = 120
SECRET_MIN = 16  # an HMAC key a receiver can trust is not a short password
# Cloud metadata endpoints and link-local space: never a webhook target (ALERT_WEBHOOK_DENY).
DEFAULT_WEBHOOK_DENY = (
    "169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128",
    "metadata.google.internal", "metadata.goog", "metadata",
)  # fmt: skip


def _printable(value: str) -> str:
    """No NUL or other control characters: PostgreSQL text and JSON cannot hold a NUL, and none
    belongs in a name, a URL or a secret."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


class UiChannel(Contract):
    """An `alert.fired` event on the bus: a toast on every page and a row on the Alerts page."""

    type: Literal["ui"] = "ui"


class WebhookChannel(Contract):
    """POST the firing as JSON to `url`, signed with `secret` (HMAC-SHA256 of the body)."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(max_length=2048)
    secret: SecretStr | None = Field(
        default=None, description=f"HMAC key, at least {SECRET_MIN} characters; never echoed back"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        _printable(value)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        if not parts.hostname:
            raise ValueError("must name a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials (use the secret to sign instead)")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < SECRET_MIN:
            raise ValueError(f"must be at least {SECRET_MIN} characters")
        if value is not None:
            _printable(value.get_secret_value())
        return value


Channel = Annotated[UiChannel | WebhookChannel, Field(discriminator="type")]


def _finite(value: float | None, name: str) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")


class AlertRuleSpec(Contract):
    """What a client sends to create a rule (and what a PATCH is merged into)."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    symbol: str
    field: AlertField
    condition: Condition
    value: float | None = Field(
        default=None, description="Threshold; the channel's low edge. Optional for flag fields."
    )
    value2: float | None = Field(default=None, description="The channel's high edge")
    trigger: Trigger = "once_per_bar"
    bar: Bar = "1m"
    cooldown_s: int = Field(default=0, ge=0, le=7 * 86_400)
    expires_at: datetime | None = None
    enabled: bool = True
    channels: list[Channel] = Field(default_factory=lambda: [UiChannel()], min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _printable(value)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        if not SYMBOL_RE.match(value):
            raise ValueError("must match ^[A-Z0-9][A-Z0-9._:/-]{0,31}$ (upper case)")
        return value

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset (e.g. 2026-12-31T00:00:00Z)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> AlertRuleSpec:
        # Raised as ValueError with "field: reason", split by `rule_errors` into one error each.
        _finite(self.value, "value")
        _finite(self.value2, "value2")
        if self.field in FLAG_FIELDS:
            if self.condition not in FLAG_CONDITIONS:
                raise ValueError(
                    f"condition: a flag field ({self.field}) takes 'above' or 'crosses_above'"
                    " (fires when it becomes true)"
                )
        elif self.value is None:
            raise ValueError("value: field required")
        if self.condition in CHANNEL_CONDITIONS:
            if self.value2 is None:
                raise ValueError(f"value2: field required for {self.condition}")
            if self.value is not None and self.value2 <= self.value:
                raise ValueError("value2: must be greater than value (the channel's high edge)")
        elif self.value2 is not None:
            raise ValueError(f"value2: only channel conditions take it, not {self.condition}")
        return self

    @property
    def threshold(self) -> float:
        return FLAG_THRESHOLD if self.field in FLAG_FIELDS else float(self.value or 0.0)

    def webhooks(self) -> list[WebhookChannel]:
        return [c for c in self.channels if isinstance(c, WebhookChannel)]


class AlertRule(AlertRuleSpec):
    """A stored rule. `version` grows with every change, so a worker's cached copy can tell it is
    stale and a firing names the version that fired."""

    id: str
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime

    def public(self) -> AlertRuleOut:
        """The rule as the API shows it: webhook secrets are never echoed back."""
        data = self.model_dump(mode="json", exclude={"channels"})
        channels: list[dict[str, Any]] = []
        for channel in self.channels:
            if isinstance(channel, WebhookChannel):
                channels.append(
                    {"type": "webhook", "url": channel.url, "signed": channel.secret is not None}
                )
            else:
                channels.append({"type": "ui"})
        return AlertRuleOut.model_validate(data | {"channels": channels})

    def mirror_json(self) -> bytes:
        """The form the Redis mirror holds (secrets included: the workers sign with them)."""
        data = self.model_dump(mode="json")
        for out, channel in zip(data["channels"], self.channels, strict=True):
            if isinstance(channel, WebhookChannel) and channel.secret is not None:
                out["secret"] = channel.secret.get_secret_value()
        return orjson.dumps(data)


class WebhookChannelOut(Contract):
    type: Literal["webhook"] = "webhook"
    url: str
    signed: bool = Field(description="Whether deliveries carry X-Tickstream-Signature")


ChannelOut = Annotated[UiChannel | WebhookChannelOut, Field(discriminator="type")]


class AlertRuleOut(Contract):
    """A rule in an API answer."""

    id: str
    version: int
    name: str
    symbol: str
    field: AlertField
    condition: Condition
    value: float | None
    value2: float | None
    trigger: Trigger
    bar: Bar
    cooldown_s: int
    expires_at: datetime | None
    enabled: bool
    channels: list[ChannelOut]
    created_at: datetime
    updated_at: datetime


class AlertRulesResponse(Contract):
    rules: list[AlertRuleOut]


class AlertRulePatch(Contract):
    """PATCH body: any subset of the spec's fields; the merged rule is validated as a whole."""

    name: str | None = None
    symbol: str | None = None
    field: AlertField | None = None
    condition: Condition | None = None
    value: float | None = None
    value2: float | None = None
    trigger: Trigger | None = None
    bar: Bar | None = None
    cooldown_s: int | None = None
    expires_at: datetime | None = None
    enabled: bool | None = None
    channels: list[Channel] | None = None


def merge_patch(rule: AlertRule, patch: dict[str, Any]) -> dict[str, Any]:
    """The spec fields of `rule` with `patch` (the client's JSON object) laid over them.

    Works on the raw JSON so that an explicit `null` (clear `expires_at` or `value2`) differs
    from an absent field; webhook channels kept as they were keep their secrets.
    """
    base = rule.model_dump(mode="json", exclude={"id", "version", "created_at", "updated_at"})
    for out, channel in zip(base["channels"], rule.channels, strict=True):
        if isinstance(channel, WebhookChannel) and channel.secret is not None:
            out["secret"] = channel.secret.get_secret_value()
    return base | patch


def expiry_error(spec: AlertRuleSpec, now: datetime) -> str | None:
    """Why `expires_at` is refused at `now` (a rule that could never fire), or None."""
    if spec.expires_at is not None and spec.expires_at <= now:
        return "must be in the future"
    return None


def parse_deny_list(
    entries: list[str],
) -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]]:
    """ALERT_WEBHOOK_DENY: CIDR blocks and host names (lower case)."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    names: set[str] = set()
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return networks, names


def denied_reason(
    url: str,
    deny: tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]],
    resolved: list[str] | None = None,
) -> str | None:
    """Why `url` may not be a webhook target, or None.

    Checks the host as written (a literal address or a denied name) and, when given, the addresses
    it resolves to: the sender checks those again at delivery time, so a name that later resolves
    into a denied block (DNS rebinding) is refused then too.
    """
    networks, names = deny
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in names:
        return f"host {host} is on the deny list (ALERT_WEBHOOK_DENY)"
    candidates = [host, *(resolved or [])]
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        mapped = getattr(address, "ipv4_mapped", None)
        for addr in (address, mapped):
            if addr is not None and any(
                addr in net for net in networks if addr.version == net.version
            ):
                return f"address {candidate} is in a denied block (ALERT_WEBHOOK_DENY)"
    return None


_ERROR_REASONS = {
    "missing": "field required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "float_type": "must be a JSON number",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a JSON number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "datetime_type": "must be an ISO-8601 date-time with a UTC offset",
    "datetime_parsing": "must be an ISO-8601 date-time with a UTC offset",
    "datetime_from_date_parsing": "must be an ISO-8601 date-time with a UTC offset",
    "list_type": "must be a JSON array",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
}
_CHANNEL_TAGS = ("ui", "webhook")


def _loc_name(loc: tuple[Any, ...]) -> str:
    """`("channels", 1, "webhook", "url")` → `channels.1.url` (the union's tag is noise)."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if part in _CHANNEL_TAGS and i > 0 and isinstance(loc[i - 1], int):
            continue
        parts.append(str(part))
    return ".".join(parts) or "body"


def rule_errors(exc: ValidationError) -> list[dict[str, str]]:
    """One `{"field", "reason"}` per bad field of a rule, never echoing the input (a secret).

    The cross-field checks (`AlertRuleSpec._shape`) raise "field: reason" at the model's level;
    they are split here so the field is named like any other.
    """
    errors: list[dict[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        field = _loc_name(tuple(err["loc"]))
        if err["type"] == "value_error":
            reason = str(err["msg"]).removeprefix("Value error, ")
            if not err["loc"] and ": " in reason:
                field, reason = reason.split(": ", 1)
        else:
            reason = _ERROR_REASONS.get(err["type"], str(err["msg"]))
        errors.append({"field": field, "reason": reason})
    return errors
