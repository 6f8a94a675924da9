"""POST /ingest/tick answers with orjson bytes; they must be JSONResponse's, byte for byte.

Printable event_ids only: validation refuses any other (core.ticks.TickIn, core.tick_fastpath).
"""

from __future__ import annotations

import orjson
from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st


@given(
    st.sampled_from(["accepted", "duplicate"]),
    st.text(min_size=1, max_size=128).filter(str.isprintable),
)
def test_orjson_body_equals_jsonresponse_body(status: str, event_id: str) -> None:
    body = {"status": status, "event_id": event_id}
    assert orjson.dumps(body) == JSONResponse(body).body
