"""A tiny synchronous client for the Tickstream REST API, as the UI uses it.

Every failure becomes a `BackendError` carrying a sentence for a human, so pages can show a banner
instead of a stack trace. Views, candles and gaps are parsed into the backend's own contract
models (`backend.core`), so a field the backend renamed fails here, loudly, not as a blank cell.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from backend.core.alerts.history import AlertEventsResponse, TestFireResponse
from backend.core.alerts.rules import AlertRuleOut, AlertRuleSpec, AlertRulesResponse
from backend.core.candles import CandlesResponse
from backend.core.gaps import GapsResponse
from backend.core.replay import (
    Control,
    Replay,
    ReplayCandles,
    ReplayCreated,
    ReplayFirings,
    ReplayRequest,
    ReplaysResponse,
)
from backend.core.validation import FieldError
from backend.core.view import SymbolEntry, View

logger = logging.getLogger(__name__)

Model = TypeVar("Model", bound=BaseModel)

API_KEY_HEADER = "x-api-key"
READINESS_TIMEOUT_S = 5.0


class BackendError(RuntimeError):
    """The backend answered in a way the UI cannot use; `message` is fit for a banner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnavailable(BackendError):
    """The backend could not be reached, timed out, or failed with a 5xx."""


class BackendNotFound(BackendError):
    """HTTP 404 where the caller did not expect one (a rule deleted meanwhile, say)."""


class BackendRejected(BackendError):
    """HTTP 422: the backend named each bad field; a form shows `fields` next to its inputs."""

    def __init__(self, message: str, fields: list[FieldError]) -> None:
        super().__init__(message)
        self.fields = fields


class BackendClient:
    """Thin wrapper over one `httpx.Client` (connection pooling; safe to share across threads)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 2.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`transport` is for tests (httpx.MockTransport); production uses the default pool."""
        self.base_url = base_url.rstrip("/")
        headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def list_symbols(self) -> list[SymbolEntry]:
        """`GET /symbols` → one entry per symbol, its view W or None.

        A view that is not a whole `View` (one stored by an external calc, say) costs its
        symbol the view, not the whole list.
        """
        body = self._get_json("/symbols")
        symbols = body.get("symbols") if isinstance(body, dict) else None
        if not isinstance(symbols, list):
            raise BackendError("The backend's /symbols answer has no 'symbols' list.")
        return [entry for raw in symbols if (entry := _symbol_entry(raw)) is not None]

    def get_view(self, symbol: str) -> View | None:
        """`GET /symbols/{symbol}` → W, or None when the backend does not know the symbol."""
        body = self._get_json(f"/symbols/{quote(symbol, safe='')}", allow_404=True)
        if body is None:
            return None
        return _parse(View, body, f"view of {symbol}")

    def get_history(self, symbol: str, limit: int = 200) -> list[dict[str, Any]]:
        """`GET /symbols/{symbol}/history?limit=N` → the newest ticks first."""
        body = self._get_json(f"/symbols/{quote(symbol, safe='')}/history", params={"limit": limit})
        if not isinstance(body, list):
            raise BackendError(f"The backend's history of {symbol} is not a list.")
        return [row for row in body if isinstance(row, dict)]

    def get_candles(
        self,
        symbol: str,
        interval: str = "1m",
        *,
        limit: int = 500,
        start: str | None = None,
        end: str | None = None,
    ) -> CandlesResponse:
        """`GET /symbols/{symbol}/candles` → the candles, oldest first, and the live part."""
        params: dict[str, Any] = {"interval": interval, "limit": limit}
        if start is not None:
            params["from"] = start
        if end is not None:
            params["to"] = end
        body = self._get_json(f"/symbols/{quote(symbol, safe='')}/candles", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("candles"), list):
            raise BackendError(f"The backend's candles of {symbol} have no 'candles' list.")
        return _parse(CandlesResponse, body, f"candles of {symbol}")

    def get_gaps(self, symbol: str) -> GapsResponse:
        """`GET /symbols/{symbol}/gaps` → open and recently closed sequence gaps."""
        body = self._get_json(f"/symbols/{quote(symbol, safe='')}/gaps")
        if not isinstance(body, dict):
            raise BackendError(f"The backend's gaps of {symbol} are not a JSON object.")
        return _parse(GapsResponse, body, f"gaps of {symbol}")

    def get_feeder_config(self) -> dict[str, Any]:
        """`GET /feeder/config` → the desired state of every feeder."""
        body = self._get_json("/feeder/config")
        if not isinstance(body, dict):
            raise BackendError("The backend's feeder config is not a JSON object.")
        return body

    def put_feeder_config(self, update: dict[str, Any]) -> dict[str, Any]:
        """`PUT /feeder/config` with a partial update → the new config.

        A 422 becomes a `BackendError` whose message lists each field and reason.
        """
        body = self._send_json("PUT", "/feeder/config", update)
        if not isinstance(body, dict):
            raise BackendError("The backend's feeder config is not a JSON object.")
        return body

    def get_feeder_status(self) -> list[dict[str, Any]]:
        """`GET /feeder/status` → the last report of every feeder, with `alive`."""
        body = self._get_json("/feeder/status")
        feeders = body.get("feeders") if isinstance(body, dict) else None
        if not isinstance(feeders, list):
            raise BackendError("The backend's /feeder/status answer has no 'feeders' list.")
        return [entry for entry in feeders if isinstance(entry, dict)]

    def get_readiness(self) -> dict[str, Any]:
        """`GET /health/readiness`, whose 503 body (what failed) is an answer, not an error."""
        # Longer than the probe's own 2 s per-check deadline, so a slow Postgres reads as
        # "Postgres slow", not as "API down".
        body = self._get_json("/health/readiness", accept=(503,), timeout=READINESS_TIMEOUT_S)
        if not isinstance(body, dict):
            raise BackendError("The backend's readiness answer is not a JSON object.")
        return body

    def get_stats(self) -> dict[str, Any]:
        """`GET /stats` → one pipeline-wide sample taken now."""
        body = self._get_json("/stats")
        if not isinstance(body, dict):
            raise BackendError("The backend's /stats answer is not a JSON object.")
        return body

    def get_stats_history(self, minutes: int = 15) -> dict[str, Any]:
        """`GET /stats/history?minutes=N` → `{"interval_s", "samples": [...]}`, oldest first."""
        body = self._get_json("/stats/history", params={"minutes": minutes})
        if not isinstance(body, dict) or not isinstance(body.get("samples"), list):
            raise BackendError("The backend's /stats/history answer has no 'samples' list.")
        return body

    # --- alerts ---------------------------------------------------------------------------
    def list_alert_rules(self, symbol: str | None = None) -> list[AlertRuleOut]:
        """`GET /alerts/rules[?symbol=X]` → the rules, newest first (secrets never come back)."""
        params = {"symbol": symbol} if symbol else None
        body = self._get_json("/alerts/rules", params=params)
        return _parse(AlertRulesResponse, body, "alert rules").rules

    def get_alert_rule(self, rule_id: str) -> AlertRuleOut | None:
        """`GET /alerts/rules/{id}` → the rule, or None when there is no such rule."""
        body = self._get_json(f"/alerts/rules/{quote(rule_id, safe='')}", allow_404=True)
        return None if body is None else _parse(AlertRuleOut, body, "alert rule")

    def create_alert_rule(self, spec: AlertRuleSpec) -> AlertRuleOut:
        """`POST /alerts/rules` → the stored rule; a 422 raises `BackendRejected` (fields)."""
        body = self._send_json("POST", "/alerts/rules", spec_json(spec))
        return _parse(AlertRuleOut, body, "new alert rule")

    def update_alert_rule(self, rule_id: str, patch: dict[str, Any]) -> AlertRuleOut:
        """`PATCH /alerts/rules/{id}` with only the changed fields (`AlertRulePatch` JSON)."""
        body = self._send_json("PATCH", f"/alerts/rules/{quote(rule_id, safe='')}", patch)
        return _parse(AlertRuleOut, body, "updated alert rule")

    def delete_alert_rule(self, rule_id: str) -> bool:
        """`DELETE /alerts/rules/{id}` → True, or False when it was already gone."""
        try:
            self._request("DELETE", f"/alerts/rules/{quote(rule_id, safe='')}")
        except BackendNotFound:
            return False
        return True

    def test_alert_rule(self, rule_id: str) -> TestFireResponse:
        """`POST /alerts/rules/{id}/test` → the id of the test firing (sent on every channel)."""
        body = self._send_json("POST", f"/alerts/rules/{quote(rule_id, safe='')}/test", None)
        return _parse(TestFireResponse, body, "test firing")

    def list_alert_events(
        self,
        *,
        rule_id: str | None = None,
        symbol: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> AlertEventsResponse:
        """`GET /alerts/events` → firings newest first, each with its deliveries' state."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("rule_id", rule_id), ("symbol", symbol), ("since", since)):
            if value:
                params[name] = value
        body = self._get_json("/alerts/events", params=params)
        return _parse(AlertEventsResponse, body, "alert history")

    # --- replays ---------------------------------------------------------------------------
    def start_replay(self, request: ReplayRequest) -> str:
        """`POST /replays` → the new replay's id; a 422 raises `BackendRejected` (fields)."""
        body = self._send_json("POST", "/replays", replay_json(request))
        return _parse(ReplayCreated, body, "new replay").id

    def list_replays(self, limit: int = 100) -> list[Replay]:
        """`GET /replays` → every replay still kept, newest first."""
        body = self._get_json("/replays", params={"limit": limit})
        return _parse(ReplaysResponse, body, "replays").replays

    def get_replay(self, replay_id: str) -> Replay | None:
        """`GET /replays/{id}` → its state and progress, or None once it expired."""
        body = self._get_json(f"/replays/{quote(replay_id, safe='')}", allow_404=True)
        return None if body is None else _parse(Replay, body, "replay")

    def control_replay(self, replay_id: str, control: Control) -> Replay:
        """`POST /replays/{id}/pause|resume|cancel` → the replay after it (HTTP 409, a state
        that does not allow it, raises `BackendError` with the API's reason)."""
        path = f"/replays/{quote(replay_id, safe='')}/{control}"
        return _parse(Replay, self._send_json("POST", path, None), f"replay after {control}")

    def get_replay_view(self, replay_id: str, symbol: str) -> View | None:
        """`GET /replays/{id}/symbols/{symbol}` → the replay's W, or None before its first tick."""
        path = f"/replays/{quote(replay_id, safe='')}/symbols/{quote(symbol, safe='')}"
        body = self._get_json(path, allow_404=True)
        return None if body is None else _parse(View, body, f"replay view of {symbol}")

    def get_replay_candles(
        self, replay_id: str, symbol: str, interval: str = "1m"
    ) -> ReplayCandles:
        """`GET /replays/{id}/symbols/{symbol}/candles` → the replay's candles, oldest first."""
        path = f"/replays/{quote(replay_id, safe='')}/symbols/{quote(symbol, safe='')}/candles"
        body = self._get_json(path, params={"interval": interval})
        return _parse(ReplayCandles, body, f"replay candles of {symbol}")

    def get_replay_firings(self, replay_id: str) -> ReplayFirings:
        """`GET /replays/{id}/alerts` → what the sandboxed rules would have fired, in order."""
        body = self._get_json(f"/replays/{quote(replay_id, safe='')}/alerts")
        return _parse(ReplayFirings, body, "replay firings")

    def _get_json(
        self,
        path: str,
        *,
        allow_404: bool = False,
        params: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (),
        timeout: float | None = None,
    ) -> Any:
        return self._request(
            "GET", path, allow_404=allow_404, params=params, accept=accept, timeout=timeout
        )

    def _send_json(self, method: str, path: str, payload: Any) -> Any:
        return self._request(method, path, json=payload)

    def _request(
        self,
        method: str,
        path: str,
        *,
        allow_404: bool = False,
        params: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (),
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        where = f"{self.base_url}{path}"
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, path, params=params, json=json, **extra)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(
                f"The backend at {self.base_url} did not answer in time."
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"Cannot reach the backend at {self.base_url} ({type(exc).__name__})."
            ) from exc
        status = response.status_code
        if status == 404 and allow_404:
            return None
        if status == 204:
            return None
        if status in accept:
            return _json_or_error(response, where)
        if status >= 500:
            raise BackendUnavailable(
                f"The backend failed with HTTP {status} on {where}{_reason(response)}."
            )
        if status in (401, 403):
            raise BackendError(f"The backend refused the UI's API key (HTTP {status}).")
        if status == 404:
            raise BackendNotFound(
                f"The backend answered HTTP {status} on {where}{_reason(response)}."
            )
        if status == 422:
            raise BackendRejected(
                f"The backend answered HTTP {status} on {where}{_reason(response)}.",
                field_errors(response),
            )
        if status >= 400:
            raise BackendError(f"The backend answered HTTP {status} on {where}{_reason(response)}.")
        return _json_or_error(response, where)


def spec_json(spec: AlertRuleSpec) -> dict[str, Any]:
    """The create body: the spec as JSON with webhook secrets in clear (a dump masks them)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    for out, channel in zip(data["channels"], spec.channels, strict=True):
        secret = getattr(channel, "secret", None)
        if secret is not None:
            out["secret"] = secret.get_secret_value()
    return data


def replay_json(request: ReplayRequest) -> dict[str, Any]:
    """The `POST /replays` body: `from` by its alias, inline rules without their channels (a
    sandbox never delivers; the API drops them anyway)."""
    data = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    for rule in data["rules"]:
        rule.pop("channels", None)
    return data


def field_errors(response: httpx.Response) -> list[FieldError]:
    """The `{field, reason}` list of an error body (`detail`, or `errors`), or nothing."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    raw = body.get("detail")
    if not isinstance(raw, list):
        raw = body.get("errors")
    if not isinstance(raw, list):
        return []
    return [
        {"field": str(item.get("field") or "body"), "reason": str(item.get("reason") or "invalid")}
        for item in raw
        if isinstance(item, dict)
    ]


def _parse(model: type[Model], body: Any, what: str) -> Model:
    """`body` as `model`, or a `BackendError` naming the first field that does not fit."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise BackendError(
            f"The backend's {what} does not match the UI's contract ({where}: {error['msg']})."
        ) from None


def _symbol_entry(raw: Any) -> SymbolEntry | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("symbol"), str):
        return None
    try:
        return SymbolEntry.model_validate(raw)
    except ValidationError as exc:
        logger.warning("view of %s does not match the contract: %s", raw["symbol"], exc)
        return SymbolEntry(symbol=raw["symbol"], view=None)


def _json_or_error(response: httpx.Response, where: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise BackendError(f"The backend sent something that is not JSON on {where}.") from exc


def _reason(response: httpx.Response) -> str:
    """`: message (field: reason; ...)` from an API error body, or nothing."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body["message"])] if body.get("message") else []
    details = body.get("detail")
    if not isinstance(details, list):
        details = body.get("errors")
    if isinstance(details, list):
        fields = [
            f"{d.get('field')}: {d.get('reason')}"
            for d in details
            if isinstance(d, dict) and d.get("field")
        ]
        if fields:
            parts.append("; ".join(fields))
    return f": {' — '.join(parts)}" if parts else ""
