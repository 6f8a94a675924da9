"""Alert rules (create, read, change, delete, test-fire) and the alert history.

Rules live in PostgreSQL; every change is written there first and then put into the Redis
mirror the workers evaluate from (a failed mirror write is repaired by the background sync, so a
stored change always reaches the workers). The history is read from PostgreSQL, where the
flusher writes what the workers queued in Redis.

Everything needs the API key, reads and writes alike.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from backend.api.deps import ReadAuth, Resources
from backend.api.errors import ApiError, read_json_body
from backend.core.alerts.firing import Firing, FiringTick, firing_id
from backend.core.alerts.history import AlertEventsResponse, TestFireResponse
from backend.core.alerts.rules import (
    AlertRule,
    AlertRuleOut,
    AlertRulePatch,
    AlertRuleSpec,
    AlertRulesResponse,
    denied_reason,
    expiry_error,
    merge_patch,
    parse_deny_list,
    rule_errors,
)
from backend.core.ticks import SYMBOL_RE, us_to_datetime, us_to_iso
from backend.storage import alerts_repo

log = logging.getLogger(__name__)

router = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[ReadAuth])

# Rule ids are ours (UUIDs; tests and tools may use readable ones): printable, no NUL or control
# characters, which PostgreSQL text cannot hold (a NUL would otherwise reach it as a 500).
RULE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
RuleId = Annotated[str, Path(min_length=1, max_length=64, pattern=RULE_ID_PATTERN)]
_INVALID = {422: {"description": "invalid rule; `detail` names each field and reason"}}
_NOT_FOUND = {404: {"description": "no such rule"}}
PG_TIMEOUT_S = 2
RESOLVE_TIMEOUT_S = 1.0


def _inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` inlined: a request body given as `openapi_extra`
    sits inside the OpenAPI document, where `#/$defs/...` would point at nothing."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            out = {key: walk(value) for key, value in node.items()}
            if isinstance(out.get("discriminator"), dict):  # its mapping names the $defs
                out["discriminator"] = {"propertyName": out["discriminator"]["propertyName"]}
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)


def _body(model: type[AlertRuleSpec] | type[AlertRulePatch]) -> dict[str, Any]:
    schema = _inline_schema(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _now_us() -> int:
    return time.time_ns() // 1_000


def _not_found(rule_id: str) -> ApiError:
    return ApiError(
        404, "not_found", f"no alert rule {rule_id}", [{"field": "id", "reason": "no such rule"}]
    )


def _invalid(errors: list[dict[str, str]]) -> ApiError:
    return ApiError(422, "validation_failed", "alert rule rejected", errors)  # type: ignore[arg-type]


async def _resolve(host: str) -> list[str]:
    """The addresses `host` resolves to, or [] if it does not within RESOLVE_TIMEOUT_S (the
    sender checks again at delivery time; a slow resolver must not hold the request)."""
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, None), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def _webhook_error(url: str, deny: Any) -> str | None:
    reason = denied_reason(url, deny)
    host = urlsplit(url).hostname
    if reason is None and host:
        try:
            ipaddress.ip_address(host)
        except ValueError:  # a name: refuse it too if it points into a denied block now
            reason = denied_reason(url, deny, await _resolve(host))
    return reason


async def _validated(res: Resources, raw: Any, now_us: int) -> AlertRuleSpec:
    """The rule `raw` describes, or a 422 naming every bad field: the spec's own checks, then
    the ones that need the time and the deployment (expiry, the webhook deny list)."""
    if not isinstance(raw, dict):
        raise _invalid([{"field": "body", "reason": "must be a JSON object"}])
    try:
        spec = AlertRuleSpec.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(rule_errors(exc)) from None
    errors: list[dict[str, str]] = []
    expired = expiry_error(spec, us_to_datetime(now_us))
    if expired is not None:
        errors.append({"field": "expires_at", "reason": expired})
    deny = parse_deny_list(res.settings.alert_webhook_deny)
    for index, channel in enumerate(spec.channels):
        url = getattr(channel, "url", None)
        reason = await _webhook_error(url, deny) if url is not None else None
        if reason is not None:
            errors.append({"field": f"channels.{index}.url", "reason": reason})
    if errors:
        raise _invalid(errors)
    return spec


def _stored(spec_json: dict[str, Any], **meta: Any) -> AlertRule:
    return AlertRule.model_validate(spec_json | meta)


async def _mirror_put(res: Resources, rule: AlertRule) -> None:
    try:
        await res.alert_rules.put(rule)
    except RedisError as exc:
        # Stored in PostgreSQL, which is the truth: the background sync brings the mirror there.
        log.warning("alert rule %s stored; mirror write failed (%s), resync queued", rule.id, exc)
        res.alert_sync.request()


@router.post(
    "/rules",
    status_code=201,
    response_model=AlertRuleOut,
    summary="Create an alert rule",
    responses=_INVALID,
    openapi_extra=_body(AlertRuleSpec),
)
async def create_rule(request: Request, res: Resources) -> AlertRuleOut:
    raw = await read_json_body(request, res.settings.max_body_bytes)
    now_us = _now_us()
    await _validated(res, raw, now_us)
    now = us_to_datetime(now_us)
    rule = _stored(raw, id=str(uuid.uuid4()), version=1, created_at=now, updated_at=now)
    async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn:
        await alerts_repo.create_rule(conn, rule)
    await _mirror_put(res, rule)
    return rule.public()


@router.get("/rules", response_model=AlertRulesResponse, summary="Alert rules, newest first")
async def list_rules(
    res: Resources,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_RE.pattern)] = None,
) -> AlertRulesResponse:
    async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn:
        rules = await alerts_repo.list_rules(conn, symbol)
    return AlertRulesResponse(rules=[rule.public() for rule in rules])


@router.get(
    "/rules/{rule_id}", response_model=AlertRuleOut, summary="One alert rule", responses=_NOT_FOUND
)
async def get_rule(res: Resources, rule_id: RuleId) -> AlertRuleOut:
    async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn:
        rule = await alerts_repo.get_rule(conn, rule_id)
    if rule is None:
        raise _not_found(rule_id)
    return rule.public()


@router.patch(
    "/rules/{rule_id}",
    response_model=AlertRuleOut,
    summary="Change an alert rule (fields given are merged; the result is validated whole)",
    responses=_INVALID | _NOT_FOUND,
    openapi_extra=_body(AlertRulePatch),
)
async def patch_rule(request: Request, res: Resources, rule_id: RuleId) -> AlertRuleOut:
    raw = await read_json_body(request, res.settings.max_body_bytes)
    if not isinstance(raw, dict):
        raise _invalid([{"field": "body", "reason": "must be a JSON object"}])
    try:
        AlertRulePatch.model_validate(raw)  # each given field's own type, named
    except ValidationError as exc:
        raise _invalid(rule_errors(exc)) from None
    now_us = _now_us()
    async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn, conn.transaction():
        current = await alerts_repo.get_rule(conn, rule_id, for_update=True)
        if current is None:
            raise _not_found(rule_id)
        merged = merge_patch(current, raw)
        await _validated(res, merged, now_us)
        rule = _stored(
            merged,
            id=current.id,
            version=current.version + 1,
            created_at=current.created_at,
            updated_at=us_to_datetime(now_us),
        )
        await alerts_repo.update_rule(conn, rule)
    await _mirror_put(res, rule)
    return rule.public()


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an alert rule (its history stays)",
    responses=_NOT_FOUND,
)
async def delete_rule(res: Resources, rule_id: RuleId) -> Response:
    async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn:
        deleted = await alerts_repo.delete_rule(conn, rule_id)
    if not deleted:
        raise _not_found(rule_id)
    try:
        await res.alert_rules.delete(rule_id)
    except RedisError as exc:
        log.warning("alert rule %s deleted; mirror delete failed (%s), resync queued", rule_id, exc)
        res.alert_sync.request()
    return Response(status_code=204)


def _observed(rule: AlertRule, view: dict[str, Any] | None) -> float:
    value = view.get(rule.field) if view is not None else None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return rule.threshold


def _tick(view: dict[str, Any] | None, now_iso: str) -> FiringTick:
    if view is None:
        return FiringTick(ts=now_iso, event_id="test")
    return FiringTick(
        ts=view["last_ts"],
        event_id=view["last_event_id"],
        price=view.get("last_price"),
        source=view.get("last_source"),
    )


@router.post(
    "/rules/{rule_id}/test",
    status_code=202,
    response_model=TestFireResponse,
    summary="Fire the rule once through every channel, marked test: true",
    responses=_NOT_FOUND,
)
async def test_rule(res: Resources, rule_id: RuleId) -> TestFireResponse:
    # From the mirror, not PostgreSQL: a test-fire works while PostgreSQL is down, and its
    # history record waits in Redis like any other firing's.
    rule = await res.alert_rules.get(rule_id)
    if rule is None:
        raise _not_found(rule_id)
    raw_view = await res.views.view(rule.symbol)
    view = orjson.loads(raw_view) if raw_view is not None else None
    now_us = _now_us()
    now_iso = us_to_iso(now_us)
    firing_key = f"test:{uuid.uuid4()}"
    firing = Firing(
        alert_id=firing_id(rule.id, firing_key),
        rule_id=rule.id,
        rule_version=rule.version,
        rule_name=rule.name,
        symbol=rule.symbol,
        field=rule.field,
        condition=rule.condition,
        value=rule.value,
        value2=rule.value2,
        observed=_observed(rule, view),
        tick=_tick(view, now_iso),
        firing_key=firing_key,
        fired_at=now_iso,
        test=True,
    )
    await res.alert_firings.fire(rule, firing, now_us)
    return TestFireResponse(alert_id=firing.alert_id)


@router.get("/events", response_model=AlertEventsResponse, summary="Alert history, newest first")
async def list_events(
    res: Resources,
    rule_id: Annotated[str | None, Query(max_length=64, pattern=RULE_ID_PATTERN)] = None,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_RE.pattern)] = None,
    since: Annotated[datetime | None, Query(description="ISO-8601 with a UTC offset")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertEventsResponse:
    if since is not None and since.tzinfo is None:
        raise ApiError(
            422, "validation_failed", "request is invalid",
            [{"field": "since", "reason": "must carry a UTC offset (e.g. 2026-12-31T00:00:00Z)"}],
        )  # fmt: skip
    async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn:
        events = await alerts_repo.list_events(
            conn, rule_id=rule_id, symbol=symbol, since=since, limit=limit
        )
    return AlertEventsResponse(events=events)
