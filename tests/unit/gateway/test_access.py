"""Who may connect: the key's three forms, the origin rule, the refusals' shape."""

from __future__ import annotations

import orjson
import pytest

from backend.gateway.access import (
    full,
    key_allowed,
    origin_allowed,
    presented_key,
    unauthorized,
)


@pytest.mark.parametrize(
    ("headers", "query", "key"),
    [
        ({"x-api-key": "h"}, {"key": "q"}, "h"),
        ({"authorization": "Bearer b"}, {"key": "q"}, "b"),
        ({"authorization": "bearer  b2 "}, {}, "b2"),
        ({"x-api-key": "h", "authorization": "Bearer b"}, {}, "h"),
        ({"authorization": "Basic abc"}, {"key": "q"}, "q"),
        ({"authorization": "Bearer"}, {}, None),
        ({}, {"key": ""}, None),
        ({}, {}, None),
    ],
)
def test_the_presented_key(headers: dict[str, str], query: dict[str, str], key: str | None) -> None:
    assert presented_key(headers, query) == key


def test_key_allowed() -> None:
    assert key_allowed(None, None) and key_allowed("any", None)
    assert key_allowed("k", "k")
    assert not key_allowed(None, "k") and not key_allowed("x", "k")


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "gw:8001", [], True),  # not a browser
        ("https://app.example", "gw:8001", ["https://app.example"], True),
        ("https://evil.example", "gw:8001", ["https://app.example"], False),
        ("https://evil.example", "gw:8001", ["*"], True),
        ("http://gw:8001", "gw:8001", [], True),  # the gateway's own origin
        ("http://gw:8001", None, [], False),
        ("http://other:8001", "gw:8001", [], False),
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_refusals_name_their_field() -> None:
    answer = unauthorized()
    assert answer.status_code == 401
    assert orjson.loads(answer.body)["detail"][0]["field"] == "x-api-key"
    limit = full(2)
    assert limit.status_code == 503 and limit.headers["retry-after"] == "5"
    assert orjson.loads(limit.body)["detail"][0]["field"] == "connection"
