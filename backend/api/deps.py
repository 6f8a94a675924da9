"""FastAPI dependencies: typed access to lifespan-managed resources, and the three auth schemes.

All of them are `async def` although none awaits: FastAPI runs a plain `def` dependency in its
thread pool, and two thread hops per ingest request cost more than the request's own work. They
do no blocking I/O, so the event loop is the right place."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from backend.api.alert_mirror_sync import RuleMirrorSync
from backend.api.errors import ApiError
from backend.api.metrics import ApiMetrics
from backend.api.stats_sampler import StatsSampler
from backend.bus.alert_firings import AlertFirings
from backend.bus.alert_rules import AsyncAlertRuleMirror
from backend.bus.dead_letters import DeadLetters
from backend.bus.event_bus import EventBus
from backend.bus.feeder_registry import FeederRegistry
from backend.bus.group_commit import GroupCommitter
from backend.bus.keys import Keys
from backend.bus.ledger import LedgerReader
from backend.bus.outbox_reader import OutboxReader
from backend.bus.probes import Probes
from backend.bus.process_restarts import ProcessRestartsReader
from backend.bus.rebuild_store import RebuildRequests
from backend.bus.replays import Replays
from backend.bus.samples import SamplesStore
from backend.bus.views import ViewStore
from backend.settings import ApiSettings


@dataclass
class AppState:
    """Everything the lifespan opens, reachable from requests as `request.app.state.resources`.

    Routes reach Redis only through the gateways (`backend.bus`), never a client of their own.
    """

    settings: ApiSettings
    keys: Keys
    pg_pool: AsyncConnectionPool
    committer: GroupCommitter
    metrics: ApiMetrics
    stats: StatsSampler
    events: EventBus
    views: ViewStore
    feeders: FeederRegistry
    dead_letters: DeadLetters
    samples: SamplesStore
    probes: Probes
    ledger: LedgerReader
    outbox: OutboxReader
    alert_rules: AsyncAlertRuleMirror
    alert_firings: AlertFirings
    alert_sync: RuleMirrorSync
    restarts: ProcessRestartsReader  # the launcher's restart counter (`make run`)
    rebuilds: RebuildRequests  # POST/GET /admin/rebuild
    replays: Replays


async def get_resources(request: Request) -> AppState:
    return request.app.state.resources


Resources = Annotated[AppState, Depends(get_resources)]

_basic = HTTPBasic(auto_error=False)
_bearer = HTTPBearer(auto_error=False)
_api_key = APIKeyHeader(name="x-api-key", auto_error=False)


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


async def require_ingest_auth(
    res: Resources, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> None:
    check_ingest_credentials(res, credentials)


async def authenticate_ingest(request: Request, res: AppState) -> None:
    """`require_ingest_auth` without FastAPI's dependency solving, for the ingest hot path
    (routes/ingest mounts POST /ingest/tick directly): the same HTTPBasic parse, the same check."""
    check_ingest_credentials(res, await _basic(request))


def check_ingest_credentials(res: AppState, credentials: HTTPBasicCredentials | None) -> None:
    settings = res.settings
    ok = credentials is not None and (
        _same(credentials.username, settings.ingest_username)
        & _same(credentials.password, settings.ingest_password.get_secret_value())
    )
    if not ok:
        res.metrics.ticks.labels(outcome="rejected", reason="auth").inc()
        raise ApiError(
            401,
            "unauthorized",
            "HTTP Basic credentials required (INGEST_USERNAME / INGEST_PASSWORD)",
            [{"field": "authorization", "reason": "missing or wrong credentials"}],
            headers={"WWW-Authenticate": 'Basic realm="tickstream-ingest"'},
        )


def _check_api_key(given: str | None, expected: SecretStr) -> None:
    """401 unless the x-api-key header matches (constant-time)."""
    if given is None or not _same(given, expected.get_secret_value()):
        raise ApiError(
            401,
            "unauthorized",
            "x-api-key header required",
            [{"field": "x-api-key", "reason": "missing or wrong API key"}],
        )


async def require_read_key(
    res: Resources, api_key: Annotated[str | None, Depends(_api_key)]
) -> None:
    if res.settings.api_key is not None:
        _check_api_key(api_key, res.settings.api_key)


async def require_admin_key(
    res: Resources, api_key: Annotated[str | None, Depends(_api_key)]
) -> None:
    """Operations that change the pipeline (dead-letter requeue): x-api-key, always.

    Unlike reads, admin routes are closed when API_KEY is unset: a dev default must not leave
    requeueing open to anyone who can reach the port.
    """
    expected = res.settings.api_key
    if expected is None:
        raise ApiError(
            403,
            "forbidden",
            "admin routes are disabled until API_KEY is set",
            [{"field": "x-api-key", "reason": "API_KEY is not configured on the API"}],
        )
    _check_api_key(api_key, expected)


async def require_internal_token(
    res: Resources, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    expected = res.settings.internal_token.get_secret_value()
    if credentials is None or not _same(credentials.credentials, expected):
        raise ApiError(
            401,
            "unauthorized",
            "Bearer INTERNAL_TOKEN required",
            [{"field": "authorization", "reason": "missing or wrong bearer token"}],
            headers={"WWW-Authenticate": "Bearer"},
        )


IngestAuth = Depends(require_ingest_auth)
ReadAuth = Depends(require_read_key)
InternalAuth = Depends(require_internal_token)
AdminAuth = Depends(require_admin_key)
