"""Replays: stored history run again through the same calc (and alert) logic, into a namespace of
their own.

Pure: the request and status contracts shared by the API, the replay actor, the bus event, the UI
and the tests; the pacing rule (when a tick is due, on event time at `speed` x real time); how a
stream of stored ticks is cut into the groups calc applies; and the control transitions (pause,
resume, cancel). Wall-clock time always comes in as an argument.

Why groups are cut the way they are: a group is applied with a done-marker named after the cursor
it starts from, so a worker that dies mid-group and a redelivery that runs it again must cut the
very same group. The cut depends only on the committed cursor and the stored ticks after it (an
event-time grid aligned on `from`, and a size cap), never on how late the wall clock is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from backend.core.alerts.firing import Firing
from backend.core.alerts.rules import AlertRuleSpec
from backend.core.candles import CandleBar, Interval
from backend.core.contract import Contract
from backend.core.gaps import GapRecord
from backend.core.ticks import SYMBOL_RE, Tick, us_to_iso
from backend.core.timestamps import IsoTime

ReplayState = Literal["queued", "running", "paused", "done", "cancelled", "failed"]
TERMINAL_STATES: frozenset[str] = frozenset({"done", "cancelled", "failed"})
AlertsMode = Literal["off", "sandbox"]
Speed = Annotated[float, Field(ge=1, le=1000)] | Literal["max"]

MAX_SYMBOLS = 50
MAX_RULES = 50
GROUP_MAX_TICKS = 5_000  # a group's size cap: one calc batch (and one server-side fetch)
PACE_STEP_US = 50_000  # a paced replay applies a group per ~50 ms of wall time
REPLAY_PROGRESS = "replay.progress"


class ReplayRequest(Contract):
    """`POST /replays`: run the stored ticks of `symbols` with `from <= ts < to` again."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    symbols: list[str] = Field(min_length=1, max_length=MAX_SYMBOLS)
    from_: datetime = Field(alias="from", description="Event time, inclusive (with a UTC offset)")
    to: datetime = Field(description="Event time, exclusive")
    speed: Speed = Field(
        default="max", description="Multiple of real time on event time (1..1000), or 'max'"
    )
    alerts: AlertsMode = Field(
        default="off", description="'sandbox': evaluate `rules` and list what would have fired"
    )
    rule_ids: list[str] = Field(
        default_factory=list, max_length=MAX_RULES, description="Stored rules to backtest"
    )
    rules: list[AlertRuleSpec] = Field(
        default_factory=list, max_length=MAX_RULES, description="Inline rules to backtest"
    )

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not SYMBOL_RE.match(symbol):
                raise ValueError(f"{symbol!r} must match ^[A-Z0-9][A-Z0-9._:/-]{{0,31}}$")
        return sorted(set(value))

    @field_validator("from_", "to")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset (e.g. 2026-12-01T00:00:00Z)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> ReplayRequest:
        if self.to <= self.from_:
            raise ValueError("to: must be after from")
        if self.alerts == "off" and (self.rule_ids or self.rules):
            raise ValueError("alerts: rules given but alerts is 'off' (use 'sandbox')")
        if self.alerts == "sandbox" and not (self.rule_ids or self.rules):
            raise ValueError("alerts: 'sandbox' needs rule_ids or rules to backtest")
        for rule in self.rules:
            if rule.symbol not in self.symbols:
                raise ValueError(f"rules: rule {rule.name!r} is for {rule.symbol}, not replayed")
        return self


class ReplayCreated(Contract):
    id: str


class Replay(Contract):
    """A replay's status (`GET /replays/{id}`, and the `replay.progress` event's payload)."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    id: str
    state: ReplayState
    symbols: list[str]
    from_: IsoTime = Field(alias="from")
    to: IsoTime
    speed: float | Literal["max"]
    alerts: AlertsMode
    rule_ids: list[str] = Field(description="Every rule backtested (inline ones get an id too)")
    ticks_total: int = Field(description="Stored ticks in the range when the replay started")
    ticks_read: int
    ticks_applied: int
    firings: int = Field(description="What the sandboxed rules would have fired so far")
    cursor: IsoTime | None = Field(description="Event time of the last tick applied")
    rate: float = Field(description="Ticks applied per second of wall time, since (re)start")
    eta_s: float | None = Field(description="Seconds left at the current rate, when known")
    created_at: IsoTime
    started_at: IsoTime | None
    finished_at: IsoTime | None
    expires_at: IsoTime = Field(description="When its namespace is deleted (REPLAY_TTL)")
    error: str | None = None


class ReplaysResponse(Contract):
    replays: list[Replay]


class ReplayProgress(Contract):
    """On the realtime ring: a replay started, moved on, paused, resumed or finished."""

    type: Literal["replay.progress"] = REPLAY_PROGRESS
    replay: Replay


class ReplayCandles(Contract):
    """`GET /replays/{id}/candles`: the replay's own candles (1 m, merged up to `interval`)."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    replay_id: str
    symbol: str
    interval: Interval
    candles: list[CandleBar]


class ReplayGaps(Contract):
    replay_id: str
    symbol: str
    open: list[GapRecord]


class ReplayFirings(Contract):
    """`GET /replays/{id}/alerts`: what the sandboxed rules would have fired, in order. Never
    delivered: a replay's firings exist only here."""

    replay_id: str
    firings: list[Firing]


# --- pacing ------------------------------------------------------------------------------------
class Anchor(Contract):
    """Event time `event_us` is due at wall time `wall_us`; later ticks at `speed` x real time."""

    event_us: int
    wall_us: int


def due_at(anchor: Anchor, ts_us: int, speed: float | Literal["max"]) -> int:
    """The wall time (µs) at which the tick at event time `ts_us` is due."""
    if speed == "max":
        return anchor.wall_us
    return anchor.wall_us + int((ts_us - anchor.event_us) / speed)


def rebased(
    anchor: Anchor, next_ts_us: int, now_us: int, speed: float | Literal["max"], slack_us: int
) -> Anchor:
    """`anchor`, or a new one making `next_ts_us` due now when it is more than `slack_us` late.

    A replay that was stopped (paused, or its worker died and the message came back later) must
    not rush through the time it lost: it carries on at `speed` from where it is."""
    if speed != "max" and now_us - due_at(anchor, next_ts_us, speed) > slack_us:
        return Anchor(event_us=next_ts_us, wall_us=now_us)
    return anchor


# --- grouping ----------------------------------------------------------------------------------
def group_width_us(speed: float | Literal["max"]) -> int | None:
    """Event time per group: what `speed` plays in PACE_STEP_US of wall time (None: `max`)."""
    return None if speed == "max" else max(1, int(PACE_STEP_US * speed))


def groups(
    ticks: Iterable[Tick], from_us: int, width_us: int | None, cap: int = GROUP_MAX_TICKS
) -> Iterator[list[Tick]]:
    """Cut `ticks` (in (ts, event_id) order, starting right after a committed cursor) into the
    groups calc applies: a new group at each grid line `from + k * width` and every `cap` ticks.

    The first group starts at the first tick, so the cut is a function of the cursor and the stored
    ticks alone."""
    group: list[Tick] = []
    cell: int | None = None
    for tick in ticks:
        tick_cell = None if width_us is None else (tick.ts_us - from_us) // width_us
        if group and (len(group) >= cap or tick_cell != cell):
            yield group
            group = []
        cell = tick_cell
        group.append(tick)
    if group:
        yield group


# --- control -----------------------------------------------------------------------------------
Control = Literal["pause", "resume", "cancel"]


class ControlError(ValueError):
    """The replay is in no state to take the control asked (→ 409)."""


def apply_control(record: ReplayRecord, control: Control, now_us: int) -> tuple[ReplayRecord, bool]:
    """`record` after `control`, and whether a driver message must be sent (a resume of a paused
    replay). A running replay is only told what is wanted: its driver settles it between two
    groups, so the record never claims a state its driver has not reached."""
    state = record.state
    if state in TERMINAL_STATES:
        raise ControlError(f"replay is {state}")
    update: dict[str, object]
    send = False
    match control:
        case "pause":
            if state == "running":
                update = {"wanted": "paused"}
            else:  # queued (its message will find it paused) or already paused
                update = {"state": "paused", "wanted": None, "anchor": None, "rate_since": None}
        case "resume":
            if state == "paused":
                update = {"state": "queued", "wanted": None, "generation": record.generation + 1}
                send = True
            else:
                update = {"wanted": None}
        case "cancel":
            if state == "running":
                update = {"wanted": "cancelled"}
            else:
                update = {"state": "cancelled", "wanted": None, "finished_us": now_us}
    return record.model_copy(update=update), send


def eta_s(ticks_total: int, ticks_applied: int, rate: float) -> float | None:
    """Seconds left at `rate`; None before the rate is known."""
    if rate <= 0:
        return None
    return max(0, ticks_total - ticks_applied) / rate


# --- the stored record -------------------------------------------------------------------------
class Cursor(Contract):
    """The last tick applied, by (ts, event_id): the replay goes on strictly after it."""

    ts_us: int
    event_id: str


class RateMark(Contract):
    """The rate is measured from here: `applied` ticks done at wall time `wall_us`."""

    applied: int
    wall_us: int


class ReplayRecord(Contract):
    """A replay as Redis keeps it: the request (rules resolved), where it is, and what is wanted.

    `generation` and `step` name the one message that may drive it: a continuation is sent with
    `step + 1` in the very transaction that commits `step`, and a resume after a pause bumps
    `generation`; a message carrying anything else is a stale duplicate and does nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    symbols: list[str]
    from_us: int
    to_us: int
    speed: float | Literal["max"]
    alerts: AlertsMode
    rules: list[dict[str, object]] = Field(default_factory=list)  # AlertRule JSON, resolved
    state: ReplayState = "queued"
    wanted: ReplayState | None = None  # paused / cancelled / running, asked by a control
    generation: int = 0
    step: int = 0
    cursor: Cursor | None = None
    ticks_total: int | None = None  # counted when it first starts
    ticks_read: int = 0
    ticks_applied: int = 0
    firings: int = 0
    anchor: Anchor | None = None
    rate_since: RateMark | None = None
    created_us: int
    started_us: int | None = None
    finished_us: int | None = None
    last_event_us: int = 0
    expires_us: int
    error: str | None = None

    @property
    def rule_ids(self) -> list[str]:
        return [str(rule["id"]) for rule in self.rules]

    def rate(self, now_us: int) -> float:
        """Ticks applied per second of wall time since the replay (re)started."""
        since = self.rate_since
        if since is None:
            return 0.0
        end = self.finished_us if self.finished_us is not None else now_us
        seconds = (end - since.wall_us) / 1_000_000
        return (self.ticks_applied - since.applied) / seconds if seconds > 0 else 0.0

    def status(self, now_us: int) -> Replay:
        """The public status at wall time `now_us`."""
        rate = 0.0 if self.state in ("paused", "queued") else self.rate(now_us)
        total = self.ticks_total or 0
        return Replay(
            id=self.id,
            state=self.state,
            symbols=self.symbols,
            from_=us_to_iso(self.from_us),
            to=us_to_iso(self.to_us),
            speed=self.speed,
            alerts=self.alerts,
            rule_ids=self.rule_ids,
            ticks_total=total,
            ticks_read=self.ticks_read,
            ticks_applied=self.ticks_applied,
            firings=self.firings,
            cursor=us_to_iso(self.cursor.ts_us) if self.cursor is not None else None,
            rate=round(rate, 3),
            eta_s=None if self.state in TERMINAL_STATES else eta_s(total, self.ticks_applied, rate),
            created_at=us_to_iso(self.created_us),
            started_at=us_to_iso(self.started_us) if self.started_us is not None else None,
            finished_at=us_to_iso(self.finished_us) if self.finished_us is not None else None,
            expires_at=us_to_iso(self.expires_us),
            error=self.error,
        )
