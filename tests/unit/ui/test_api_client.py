"""BackendClient turns every failure into a BackendError with a sentence for a banner."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from backend.core.view import SymbolEntry
from tests.support.builders import (
    candles_response,
    gaps_response,
    make_candle,
    make_gap,
    make_view,
    symbols_json,
    view_json,
)
from ui.api_client import API_KEY_HEADER, BackendClient, BackendError, BackendUnavailable

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, api_key: str | None = None) -> BackendClient:
    return BackendClient("http://backend.test/", api_key, transport=httpx.MockTransport(handler))


def test_list_symbols_and_api_key_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = symbols_json({"BTCUSDT": None, "ETHUSDT": make_view("ETHUSDT")})
        return httpx.Response(200, json=body)

    with client_for(handler, api_key="k-123") as client:
        assert client.list_symbols() == [
            SymbolEntry(symbol="BTCUSDT", view=None),
            SymbolEntry(symbol="ETHUSDT", view=make_view("ETHUSDT")),
        ]
    assert seen[0].url.path == "/symbols"
    assert seen[0].headers[API_KEY_HEADER] == "k-123"


def test_no_api_key_header_when_unset() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert API_KEY_HEADER not in request.headers
        return httpx.Response(200, json={"symbols": []})

    assert client_for(handler).list_symbols() == []


def test_get_view_quotes_the_symbol_and_maps_404_to_none() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path == b"/symbols/EUR%2FUSD":
            return httpx.Response(200, json=view_json("EUR/USD", last_price=1.08))
        return httpx.Response(404, json={"detail": "unknown symbol"})

    client = client_for(handler)
    assert client.get_view("EUR/USD") == make_view("EUR/USD", last_price=1.08)
    assert client.get_view("NOPE") is None


def test_a_view_outside_the_contract_is_a_backend_error_naming_the_field() -> None:
    partial = {k: v for k, v in view_json("A").items() if k != "last_price"}
    with pytest.raises(BackendError, match="last_price"):
        client_for(lambda request: httpx.Response(200, json=partial)).get_view("A")


def test_list_symbols_drops_junk_entries_and_keeps_a_symbol_whose_view_is_partial() -> None:
    body = {
        "symbols": [
            {"symbol": "A", "view": view_json("A")},
            {"symbol": "B", "view": {"last_price": 42.0}},  # e.g. from /internal/agg-update
            {"view": view_json("C")},
            "junk",
        ]
    }
    entries = client_for(lambda request: httpx.Response(200, json=body)).list_symbols()
    assert entries == [
        SymbolEntry(symbol="A", view=make_view("A")),
        SymbolEntry(symbol="B", view=None),
    ]


def test_candles_and_gaps_are_parsed_into_the_contract() -> None:
    candles = candles_response([make_candle()])
    gaps = gaps_response(open_=[make_gap()])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/candles"):
            return httpx.Response(200, json=candles.model_dump(mode="json"))
        return httpx.Response(200, json=gaps.model_dump(mode="json"))

    client = client_for(handler)
    assert client.get_candles("BTCUSDT") == candles
    assert client.get_gaps("BTCUSDT") == gaps
    renamed = {**candles.model_dump(mode="json"), "bars": []}
    with pytest.raises(BackendError, match="contract"):
        client_for(lambda request: httpx.Response(200, json=renamed)).get_candles("X")


def test_connection_error_is_backend_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BackendUnavailable, match="Cannot reach the backend"):
        client_for(handler).list_symbols()


def test_timeout_is_backend_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(BackendUnavailable, match="did not answer in time"):
        client_for(handler).get_view("BTCUSDT")


def test_5xx_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="HTTP 503"):
        client_for(lambda request: httpx.Response(503)).list_symbols()


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_a_backend_error(status: int) -> None:
    with pytest.raises(BackendError, match="API key") as info:
        client_for(lambda request: httpx.Response(status)).list_symbols()
    assert not isinstance(info.value, BackendUnavailable)


def test_malformed_bodies_are_backend_errors() -> None:
    with pytest.raises(BackendError, match="not JSON"):
        client_for(lambda request: httpx.Response(200, text="<html>")).list_symbols()
    with pytest.raises(BackendError, match="'symbols'"):
        client_for(lambda request: httpx.Response(200, json={"nope": 1})).list_symbols()
