"""A tiny synchronous client for the Tickstream REST API, as the UI uses it.

Every failure becomes a `BackendError` carrying a sentence for a human, so pages can show a banner
instead of a stack trace.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

API_KEY_HEADER = "x-api-key"


class BackendError(RuntimeError):
    """The backend answered in a way the UI cannot use; `message` is fit for a banner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnavailable(BackendError):
    """The backend could not be reached, timed out, or failed with a 5xx."""


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

    def list_symbols(self) -> list[dict[str, Any]]:
        """`GET /symbols` → `[{"symbol": ..., "view": W | None}, ...]`."""
        body = self._get_json("/symbols")
        symbols = body.get("symbols") if isinstance(body, dict) else None
        if not isinstance(symbols, list):
            raise BackendError("The backend's /symbols answer has no 'symbols' list.")
        return [entry for entry in symbols if isinstance(entry, dict)]

    def get_view(self, symbol: str) -> dict[str, Any] | None:
        """`GET /symbols/{symbol}` → W, or None when the backend does not know the symbol."""
        body = self._get_json(f"/symbols/{quote(symbol, safe='')}", allow_404=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise BackendError(f"The backend's view of {symbol} is not a JSON object.")
        return body

    def _get_json(self, path: str, *, allow_404: bool = False) -> Any:
        where = f"{self.base_url}{path}"
        try:
            response = self._http.get(path)
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
        if status >= 500:
            raise BackendUnavailable(f"The backend failed with HTTP {status} on {where}.")
        if status in (401, 403):
            raise BackendError(f"The backend refused the UI's API key (HTTP {status}).")
        if status >= 400:
            raise BackendError(f"The backend answered HTTP {status} on {where}.")
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(f"The backend sent something that is not JSON on {where}.") from exc
