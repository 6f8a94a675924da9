"""Builders of the contract models (W, events, candles, gaps) for tests.

Every builder goes through the model, and overrides are validated with it: a test that names a
field the model no longer has fails at once, so a rename in `backend.core` fails the UI tests
instead of passing them with a hand-written dict the app would never receive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from backend.core.candles import CandleBar, CandlesResponse
from backend.core.events import (
    FeederConfigChanged,
    FeederStatusReported,
    RealtimeEvent,
    SymbolUpdated,
    TickReceived,
    encode_event,
)
from backend.core.feeder_config import FeederConfig
from backend.core.gaps import GapRecord, GapsResponse
from backend.core.ticks import datetime_to_us
from backend.core.view import LastTick, SymbolEntry, SymbolsResponse, View

M = TypeVar("M", bound=BaseModel)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    """The API's spelling of a UTC instant (`...Z`)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _build(model: type[M], defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> M:
    unknown = set(overrides) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {sorted(unknown)}")
    return model.model_validate({**defaults, **overrides})


def make_last_tick(**overrides: Any) -> LastTick:
    defaults = {
        "ts": iso(NOW),
        "price": 1.0,
        "volume": 1.0,
        "source": "binance",
        "event_id": "e-1",
    }
    return _build(LastTick, defaults, overrides)


def make_view(symbol: str = "BTCUSDT", *, now: datetime = NOW, **overrides: Any) -> View:
    """A whole W for `symbol`, its latest tick 2.5 s before `now`, computed 2 s before `now`.

    `last_received_at` follows `last_ts` (and `last_received_us` follows it) unless given, so a
    test that ages a view by its `last_ts` ages it completely.
    """
    last_ts = overrides.get("last_ts", iso(now - timedelta(seconds=2.5)))
    received_at = overrides.get("last_received_at", last_ts)
    defaults: dict[str, Any] = {
        "symbol": symbol,
        "last_price": 67_012.5,
        "last_ts": last_ts,
        "last_event_id": "e-1",
        "last_source": "binance",
        "ticks_total": 10,
        "sma_10": 67_000.25,
        "last_10": (),
        "vwap_1m": 67_005.0,
        "volume_1m": 1.25,
        "trades_1m": 7,
        "high_1m": 67_100.0,
        "low_1m": 66_900.0,
        "open_1m": 66_950.0,
        "change_1m_pct": 0.093,
        "gaps_open": 0,
        "last_received_at": received_at,
        "last_received_us": _us(received_at),
        "updated_at": iso(now - timedelta(seconds=2)),
        "stale": False,
    }
    return _build(View, defaults, overrides)


def view_json(symbol: str = "BTCUSDT", **overrides: Any) -> dict[str, Any]:
    """`make_view` as the API sends it (for fake HTTP backends)."""
    return make_view(symbol, **overrides).model_dump(mode="json")


def symbols_json(views: Mapping[str, View | None]) -> dict[str, Any]:
    """`GET /symbols` for these views, as the API sends it."""
    entries = [SymbolEntry(symbol=s, view=v) for s, v in sorted(views.items())]
    return SymbolsResponse(symbols=entries).model_dump(mode="json")


def symbol_updated(view: View) -> SymbolUpdated:
    return SymbolUpdated(symbol=view.symbol, ts=view.last_ts, view=view)


def make_tick_received(symbol: str = "BTCUSDT", **overrides: Any) -> TickReceived:
    defaults = {
        "symbol": symbol,
        "ts": iso(NOW),
        "price": 1.0,
        "volume": 2.0,
        "source": "binance",
        "event_id": "e-1",
        "count": 1,
    }
    return _build(TickReceived, defaults, overrides)


def feeder_config_changed(**config: Any) -> FeederConfigChanged:
    base = {"symbols": ["BTCUSDT"], "sources": ["binance"], "tps": 10.0}
    return FeederConfigChanged(config=FeederConfig.model_validate({**base, **config}))


def feeder_status_reported(feeder_id: str = "feeder-1", **fields: Any) -> FeederStatusReported:
    return FeederStatusReported.model_validate(
        {"feeder_id": feeder_id, "received_at": iso(NOW), **fields}
    )


def encoded(event: RealtimeEvent) -> bytes:
    """The bytes a publisher puts on the channel for `event`."""
    return encode_event(event)


def make_candle(at: datetime = NOW, **overrides: Any) -> CandleBar:
    """The candle of the bucket starting `at` (a `ts` override wins)."""
    defaults = {
        "ts": iso(at),
        "open": 100.0,
        "high": 101.0,
        "low": 99.0,
        "close": 100.5,
        "volume": 2.0,
        "trades": 3,
        "vwap": 100.25,
    }
    return _build(CandleBar, defaults, overrides)


def candles_response(
    candles: Iterable[CandleBar], symbol: str = "BTCUSDT", interval: str = "1m", **fields: Any
) -> CandlesResponse:
    bars = list(candles)
    start = bars[0].ts if bars else iso(NOW)
    end = bars[-1].ts if bars else iso(NOW)
    body = {
        "symbol": symbol,
        "interval": interval,
        "from": start,
        "to": end,
        "candles": bars,
        "live": {"pending_ticks_included": 0, "complete": True},
        **fields,
    }
    return CandlesResponse.model_validate(body)


def make_gap(**overrides: Any) -> GapRecord:
    """An open gap of 3 ticks (11..13) by default; `missing` follows the bounds unless given."""
    from_seq = overrides.get("from_seq", 11)
    to_seq = overrides.get("to_seq", 13)
    defaults = {
        "source": "binance",
        "from_seq": from_seq,
        "to_seq": to_seq,
        "missing": to_seq - from_seq + 1,
        "detected_at": iso(NOW - timedelta(seconds=10)),
        "closed_at": None,
    }
    return _build(GapRecord, defaults, overrides)


def gaps_response(
    open_: Iterable[GapRecord] = (), closed: Iterable[GapRecord] = (), symbol: str = "BTCUSDT"
) -> GapsResponse:
    return GapsResponse(symbol=symbol, open=list(open_), closed=list(closed))


def _us(stamp: Any) -> int:
    """Epoch µs of an ISO stamp; 0 for one a test made unparseable on purpose."""
    try:
        parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return 0
    return datetime_to_us(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
