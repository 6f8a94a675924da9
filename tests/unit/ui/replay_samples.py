"""Replays, their candles and their would-have-fired list as the API carries them, for the UI's
tests."""

from __future__ import annotations

from typing import Any

from backend.core.candles import CandleBar
from backend.core.replay import Replay

REPLAY_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def replay_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": REPLAY_ID,
        "state": "running",
        "symbols": ["AAA", "BBB"],
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "speed": "max",
        "alerts": "sandbox",
        "rule_ids": ["inline-1"],
        "ticks_total": 3_000,
        "ticks_read": 1_500,
        "ticks_applied": 1_200,
        "firings": 4,
        "cursor": "2026-01-01T00:05:00Z",
        "rate": 850.0,
        "eta_s": 2.1,
        "created_at": "2026-12-04T10:00:00Z",
        "started_at": "2026-12-04T10:00:01Z",
        "finished_at": None,
        "expires_at": "2026-12-05T10:00:00Z",
        "error": None,
    }
    return data | overrides


def make_replay(**overrides: Any) -> Replay:
    return Replay.model_validate(replay_json(**overrides))


def candle(ts: str, close: float) -> CandleBar:
    return CandleBar(
        ts=ts, open=close - 1, high=close + 1, low=close - 2, close=close, volume=1.5, trades=3,
        vwap=close,
    )  # fmt: skip
