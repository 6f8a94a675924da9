"""What operators can change on a running feeder, and what a feeder reports back.

Shared by the API (which stores and validates it) and the feeder (which polls it). Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.core.ticks import SYMBOL_RE

Rate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# Counters fit in a JSON number every client reads exactly (and in orjson's 64-bit ints).
MAX_COUNT = 2**53
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
MAX_TPS = 100_000.0


class Burst(BaseModel):
    """A "market open": TPS × multiplier for `seconds`, from `until − seconds`."""

    model_config = ConfigDict(extra="forbid")

    multiplier: float = Field(default=10.0, ge=1.0, le=100.0, allow_inf_nan=False)
    seconds: float = Field(default=30.0, gt=0.0, le=3600.0, allow_inf_nan=False)
    until: datetime | None = Field(default=None, description="Set by the API when a burst starts")


class FeederConfig(BaseModel):
    """The desired state of every feeder. `version` grows with each change."""

    model_config = ConfigDict(extra="forbid")

    version: int = 0
    running: bool = True
    symbols: list[str] = Field(min_length=1, max_length=200)
    sources: list[str] = Field(min_length=1, max_length=20)
    tps: float = Field(ge=0.0, le=MAX_TPS, allow_inf_nan=False)
    mode: Literal["single", "batch"] = "single"
    duplicate_rate: Rate = 0.0
    out_of_order_rate: Rate = 0.0
    gap_rate: Rate = 0.0
    bad_tick_rate: Rate = 0.0
    burst: Burst | None = None

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(f"invalid symbols {bad[:5]}: must match {SYMBOL_RE.pattern}")
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        if any(not 1 <= len(s) <= 64 or not s.isprintable() for s in value):
            raise ValueError("each source must be 1-64 printable characters")
        if len(set(value)) != len(value):
            raise ValueError("sources must be unique")
        return value

    def effective_tps(self, now: datetime) -> float:
        """TPS now, counting a burst in progress; 0 while paused."""
        if not self.running:
            return 0.0
        if self.burst is not None and self.burst.until is not None and now < self.burst.until:
            return min(MAX_TPS, self.tps * self.burst.multiplier)
        return self.tps


class FeederConfigUpdate(BaseModel):
    """A partial change (PUT /feeder/config): only the fields given are changed.

    `burst` starts a burst now (the API stamps `until`); `burst: null` cancels one.
    """

    model_config = ConfigDict(extra="forbid")

    running: bool | None = None
    symbols: list[str] | None = None
    sources: list[str] | None = None
    tps: float | None = None
    mode: Literal["single", "batch"] | None = None
    duplicate_rate: float | None = None
    out_of_order_rate: float | None = None
    gap_rate: float | None = None
    bad_tick_rate: float | None = None
    burst: Burst | None = None


class FeederStatus(BaseModel):
    """What a feeder reports every second (POST /feeder/status)."""

    model_config = ConfigDict(extra="forbid")

    feeder_id: str = Field(min_length=1, max_length=128)
    config_version: Count = 0
    running: bool = True
    sent: Count = 0
    accepted: Count = 0
    duplicates: Count = 0
    conflicts: Count = 0
    rejected: Count = 0
    retries: Count = 0
    dropped: Count = 0
    buffered: Count = 0
    target_tps: float = Field(default=0.0, ge=0.0, le=10 * MAX_TPS, allow_inf_nan=False)
    achieved_tps: float = Field(default=0.0, ge=0.0, le=10 * MAX_TPS, allow_inf_nan=False)
    last_error: str | None = Field(default=None, max_length=500)
