"""GET /stream: moved to the realtime gateway; a 307 sends the client there, query and all.

Long-lived connections live in the gateway's own process (snapshot, resume, slow-client
handling), so the API only answers short requests. A 307 keeps the method and EventSource and
curl -L follow it; the query (`symbols`, `types`, `key`) goes along unchanged.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

router = APIRouter(tags=["stream"])


@router.get(
    "/stream",
    summary="Moved: 307 to the realtime gateway's /stream (GATEWAY_PUBLIC_URL)",
    status_code=307,
    response_class=RedirectResponse,
)
async def stream(request: Request) -> RedirectResponse:
    base = request.app.state.resources.settings.gateway_public_url
    query = request.url.query
    return RedirectResponse(f"{base}/stream" + (f"?{query}" if query else ""), status_code=307)
