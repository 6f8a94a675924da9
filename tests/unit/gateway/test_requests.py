"""What a client asks for: filters and where to start, with a 422 naming the field."""

from __future__ import annotations

import orjson
import pytest
from starlette.responses import JSONResponse

from backend.gateway.requests import MAX_SYMBOLS, Wanted, parse_wanted


def refused_field(answer: Wanted | JSONResponse) -> str:
    assert isinstance(answer, JSONResponse) and answer.status_code == 422
    body = orjson.loads(answer.body)
    return body["detail"][0]["field"]


def test_no_query_follows_everything_from_a_snapshot() -> None:
    assert parse_wanted({}, None) == Wanted(None, None, None, None)


def test_filters_are_parsed_as_sets() -> None:
    wanted = parse_wanted({"symbols": "A, B,,A", "types": "tick.received,alert.fired"}, None)
    assert isinstance(wanted, Wanted)
    assert wanted.symbols == {"A", "B"}
    assert wanted.types == {"tick.received", "alert.fired"}


@pytest.mark.parametrize("symbols", ["", "*", " , "])
def test_empty_or_star_symbols_mean_every_symbol(symbols: str) -> None:
    wanted = parse_wanted({"symbols": symbols}, None)
    assert isinstance(wanted, Wanted) and wanted.symbols is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"types": "tick.received,nope"}, "types"),
        ({"symbols": "A," + "X" * 65}, "symbols"),
        ({"symbols": ",".join(f"S{i}" for i in range(MAX_SYMBOLS + 1))}, "symbols"),
        ({"after": "not-an-id"}, "after"),
        ({"after": ""}, "after"),
    ],
)
def test_a_malformed_field_is_refused_by_name(query: dict[str, str], field: str) -> None:
    assert refused_field(parse_wanted(query, None)) == field


def test_after_resumes_and_wins_over_last_event_id() -> None:
    wanted = parse_wanted({"after": "5-1"}, "9-9")
    assert isinstance(wanted, Wanted) and wanted.after == (5, 1) and wanted.invalid_after is None


def test_last_event_id_resumes() -> None:
    wanted = parse_wanted({}, "7-0")
    assert isinstance(wanted, Wanted) and wanted.after == (7, 0)


def test_an_invalid_last_event_id_is_a_reset_not_an_error() -> None:
    # A browser sends back whatever id it got; the gateway cannot refuse its reconnect.
    wanted = parse_wanted({}, "garbage" * 20)
    assert isinstance(wanted, Wanted)
    assert wanted.after is None and wanted.invalid_after == ("garbage" * 20)[:64]


def test_an_empty_last_event_id_starts_from_a_snapshot() -> None:
    wanted = parse_wanted({}, "")
    assert isinstance(wanted, Wanted) and wanted.after is None and wanted.invalid_after is None
