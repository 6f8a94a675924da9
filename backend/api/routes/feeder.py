"""The feeder control plane: operators change a running feeder, feeders report back.

A feeder has no inbound port (it may run on another host), so it polls `GET /feeder/config` and
pushes `POST /feeder/status`; the API keeps both in Redis and announces changes on the pub/sub
channel (`feeder.config`, `feeder.status`) for the UI's live panel.

Auth:
- `GET /feeder/config`: the feeder's HTTP Basic (ingest) credentials OR `x-api-key`; open when
  `API_KEY` is unset (reads are open then, as everywhere).
- `PUT /feeder/config`: `x-api-key`. When `API_KEY` is unset this is open too (dev mode): set
  `API_KEY` wherever the API is reachable by anyone who should not steer the feeders.
- `POST /feeder/status`: HTTP Basic (ingest). `GET /feeder/status`: like every read.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, ValidationError

from backend.api.deps import IngestAuth, ReadAuth, Resources
from backend.api.errors import ApiError
from backend.bus import events
from backend.bus.feeder_registry import ConfigContended
from backend.core.feeder_config import FeederConfig, FeederConfigUpdate, FeederStatus
from backend.core.feeder_liveness import (
    ALIVE_WITHIN_S,
    decode_record,
    is_alive,
    is_forgotten,
    received_us,
)
from backend.settings import ApiSettings

log = logging.getLogger(__name__)

router = APIRouter(tags=["feeder"])

MAX_CAS_ATTEMPTS = 100  # optimistic retries of one PUT under contention before a 503

_basic = HTTPBasic(auto_error=False)
_api_key = APIKeyHeader(name="x-api-key", auto_error=False)


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


async def require_feeder_or_read(
    res: Resources,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    """The feeder's Basic credentials or the operators' API key (open when API_KEY is unset)."""
    settings = res.settings
    if settings.api_key is None:
        return
    if api_key is not None and _same(api_key, settings.api_key.get_secret_value()):
        return
    if credentials is not None and (
        _same(credentials.username, settings.ingest_username)
        & _same(credentials.password, settings.ingest_password.get_secret_value())
    ):
        return
    raise ApiError(
        401,
        "unauthorized",
        "x-api-key header or HTTP Basic (INGEST_USERNAME / INGEST_PASSWORD) required",
        [
            {"field": "x-api-key", "reason": "missing or wrong API key"},
            {"field": "authorization", "reason": "missing or wrong credentials"},
        ],
    )


FeederOrReadAuth = Depends(require_feeder_or_read)
# Changing the feeders is an operator action: the API key. Open in dev mode (API_KEY unset).
OperatorAuth = ReadAuth


# --- models only for responses -----------------------------------------------------------------
class FeederStatusEntry(FeederStatus):
    """A feeder's last report, when the API received it, and whether that was recent."""

    model_config = ConfigDict(extra="ignore")

    received_at: datetime
    alive: bool


class FeederStatusList(BaseModel):
    feeders: list[FeederStatusEntry]


class StatusAck(BaseModel):
    status: str = "ok"


# --- pure helpers ---------------------------------------------------------------------------
def default_config(settings: ApiSettings) -> FeederConfig:
    """The config before any PUT: what the feeder would run from its own Settings."""
    return FeederConfig(
        symbols=list(settings.symbols), sources=list(settings.sources), tps=settings.tps
    )


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "reason": err["msg"]}
        for err in exc.errors()
    ]


def merge_update(current: FeederConfig, update: FeederConfigUpdate, now: datetime) -> FeederConfig:
    """`current` with the fields given in `update` (absent ≠ null), version + 1, validated.

    A `burst` starts now (`until = now + seconds`, whatever `until` the body carried);
    `burst: null` cancels a burst. Raises ApiError(422) naming the fields if the result is invalid.
    """
    data = current.model_dump()
    for name in update.model_fields_set:
        if name != "burst":
            data[name] = getattr(update, name)
    if "burst" in update.model_fields_set:
        burst = update.burst
        data["burst"] = (
            None
            if burst is None
            else {**burst.model_dump(), "until": now + timedelta(seconds=burst.seconds)}
        )
    data["version"] = current.version + 1
    try:
        return FeederConfig.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422, "validation_failed", "the resulting feeder config is invalid", _field_errors(exc)
        ) from None


def _load_config(raw: bytes | None, settings: ApiSettings) -> FeederConfig:
    if raw is None:
        try:
            return default_config(settings)
        except ValidationError as exc:
            raise ApiError(
                500,
                "invalid_settings",
                "the feeder defaults from SYMBOLS / SOURCES / TPS are invalid; PUT a config",
                _field_errors(exc),
            ) from None
    return FeederConfig.model_validate_json(raw)


# --- config ---------------------------------------------------------------------------------
_PUT_EXAMPLES: dict[str, Any] = {
    "rates": {
        "summary": "Change the rate and the fault injection",
        "value": {"tps": 50, "duplicate_rate": 0.05, "out_of_order_rate": 0.02, "gap_rate": 0.01},
    },
    "pause": {"summary": "Pause every feeder", "value": {"running": False}},
    "burst": {
        "summary": "Market open: 10× for 30 s, starting now",
        "value": {"burst": {"multiplier": 10, "seconds": 30}},
    },
    "cancel_burst": {"summary": "Cancel a burst in progress", "value": {"burst": None}},
    "symbols": {
        "summary": "Replace the symbol list and switch to batch posting",
        "value": {"symbols": ["BTCUSDT", "ETHUSDT"], "mode": "batch"},
    },
}


@router.get(
    "/feeder/config",
    summary="Current feeder config (feeders poll it)",
    description="The desired state of every feeder. Before the first PUT: defaults from the "
    "API's SYMBOLS / SOURCES / TPS, version 0. Auth: HTTP Basic (ingest) or `x-api-key`; open "
    "when API_KEY is unset.",
    response_model=FeederConfig,
    dependencies=[FeederOrReadAuth],
)
async def get_config(res: Resources) -> FeederConfig:
    return _load_config(await res.feeders.config(), res.settings)


@router.put(
    "/feeder/config",
    summary="Change the feeder config (partial; only the given fields change)",
    description="Merges the given fields into the current config, validates the result, bumps "
    "`version`, stores it atomically and publishes `feeder.config`. `burst` starts a burst now "
    "(the API sets `until = now + seconds`); `burst: null` cancels it. 422 names each invalid "
    "field. Auth: `x-api-key`; open when API_KEY is unset (dev mode).",
    response_model=FeederConfig,
    dependencies=[OperatorAuth],
)
async def put_config(
    res: Resources,
    update: Annotated[FeederConfigUpdate, Body(openapi_examples=_PUT_EXAMPLES)],
) -> FeederConfig:
    def change(raw: bytes | None) -> FeederConfig:
        return merge_update(_load_config(raw, res.settings), update, datetime.now(UTC))

    try:
        return await res.feeders.change_config(change, max_attempts=MAX_CAS_ATTEMPTS)
    except ConfigContended:
        pass  # too many concurrent changes
    raise ApiError(
        503,
        "busy",
        "too many concurrent config changes; retry",
        headers={"Retry-After": "1"},
    )


# --- status ---------------------------------------------------------------------------------
@router.post(
    "/feeder/status",
    summary="A feeder's periodic report",
    description="Stored per `feeder_id` with `received_at`, and published as `feeder.status`. "
    "Entries of feeders silent for over an hour are pruned. Auth: HTTP Basic (ingest).",
    response_model=StatusAck,
    dependencies=[IngestAuth],
)
async def post_status(res: Resources, status: FeederStatus) -> StatusAck:
    now_us = time.time_ns() // 1_000
    reported = events.feeder_status_reported(status, now_us)
    await res.feeders.post_status(reported, now_us=now_us)
    return StatusAck()


@router.get(
    "/feeder/status",
    summary="Last report of every feeder, with liveness",
    description=f"Sorted by `feeder_id`; `alive` = reported within {ALIVE_WITHIN_S:g} s. "
    "Feeders silent for over an hour are not listed.",
    response_model=FeederStatusList,
    dependencies=[ReadAuth],
)
async def get_status(res: Resources) -> FeederStatusList:
    entries = await res.feeders.statuses()
    now_us = time.time_ns() // 1_000
    feeders: list[FeederStatusEntry] = []
    for feeder_id, raw in entries.items():
        record = decode_record(raw)
        received = received_us(record)
        if received is None or is_forgotten(received, now_us):
            continue
        record["feeder_id"] = feeder_id.decode(errors="replace")
        record["alive"] = is_alive(received, now_us)
        try:
            feeders.append(FeederStatusEntry.model_validate(record))
        except ValidationError:
            log.warning("feeder status: skipping unreadable entry for %r", feeder_id)
    feeders.sort(key=lambda entry: entry.feeder_id)
    return FeederStatusList(feeders=feeders)
