"""GET /stats and /stats/history: the whole pipeline's counters and gauges, now and over time.

The samples are written by the API replicas' `StatsSampler` (one per STATS_INTERVAL across all
replicas); this route only reads them, so any replica answers the same.
"""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from backend.api.deps import ReadAuth, Resources
from backend.api.stats_sampler import take_sample
from backend.core.processes import ProcessRestarts

router = APIRouter(tags=["ops"], dependencies=[ReadAuth])

Minutes = Annotated[int, Query(ge=1, le=60, description="how far back, 1 to 60 minutes")]


# --- models only for the OpenAPI docs and to check /stats against the contract -------------
class StatsCounters(BaseModel):
    """Cumulative since the namespace was created (0 when never incremented).

    The alert counters default to 0: samples stored before alerts existed lack them.
    """

    ingest_accepted: int
    ingest_duplicate: int
    ingest_conflict: int
    ingest_shed: int = Field(0, description="ticks refused with 429 at MAX_BACKLOG")
    calc_batches: int
    calc_ticks: int
    late_ticks: int
    gaps_opened: int
    gaps_closed: int
    rows_written: int
    flush_count: int
    flush_ticks_sum: int
    flush_seconds_sum: float
    alerts_fired: int = Field(0, description="rule firings (each crossing once)")
    alerts_test_fired: int = Field(0, description="test firings (POST /alerts/rules/{id}/test)")
    alerts_observations: int = Field(0, description="observations evaluated against rules")
    alerts_rules_checked: int = Field(0, description="rule checks (observation × rule)")
    alerts_delivered: int = Field(0, description="webhooks delivered (2xx)")
    alerts_delivery_retries: int = Field(0, description="webhook attempts failed, to retry")
    alerts_delivery_failed: int = Field(0, description="webhooks refused for good (e.g. 4xx)")
    alerts_delivery_dead: int = Field(0, description="webhooks out of attempts")


class StatsGauges(BaseModel):
    """Values at the sample's time."""

    backlog_ticks: int = Field(
        description="ticks waiting for calc + ticks waiting for Postgres (vs MAX_BACKLOG)"
    )
    queue_depth: int = Field(description="messages waiting in the calc queue")
    calc_b_depth: int = Field(description="messages waiting in calc.a.done (CALC_SPLIT)")
    dead_letters: int = Field(description="dead-lettered calc messages (both queues)")
    outbox_entries: int = Field(description="outbox batches not yet in Postgres")
    outbox_pending: int = Field(description="outbox batches read by a flusher, not committed")
    workers: int = Field(description="worker processes with a recent heartbeat")
    feeders_alive: int
    feeders_target_tps: float
    feeders_achieved_tps: float
    alert_evaluations_waiting: int = Field(0, description="messages waiting in alerts.evaluate")
    alert_deliveries_waiting: int = Field(
        0, description="webhook jobs waiting in alerts.deliver (retries included)"
    )
    alert_history_entries: int = Field(
        0, description="firing and delivery records not yet in Postgres"
    )


class StatsSample(BaseModel):
    ts: str = Field(examples=["2026-11-21T14:30:00.123456Z"])
    ts_us: int
    counters: StatsCounters
    rejected: dict[str, int] = Field(
        description="rejected ticks by reason (the invalid field, `unknown_field`, `unavailable`)"
    )
    flush_seconds_le: dict[str, int] = Field(description="cumulative flush latency histogram")
    view_latency_le: dict[str, int] = Field(
        description="cumulative ingest→view latency histogram, with `+Inf` = all observations"
    )
    alert_delivery_latency_le: dict[str, int] = Field(
        default_factory=dict,
        description="cumulative firing→webhook delivered latency histogram, with `+Inf` = all "
        "deliveries (absent from samples stored before alerts existed)",
    )
    gauges: StatsGauges


class StatsNow(StatsSample):
    """/stats: a sample, plus what only the present knows (not kept in the history)."""

    processes: dict[str, ProcessRestarts] = Field(
        default_factory=dict,
        description="restarts per Procfile process, counted by the `make run` launcher "
        "(empty when nothing was restarted, or the processes are supervised elsewhere)",
    )


class StatsHistory(BaseModel):
    interval_s: float
    retention_s: int
    samples: list[StatsSample] = Field(description="oldest first")


_UNAVAILABLE = {503: {"description": "Redis unavailable; retry"}}


@router.get(
    "/stats",
    summary="One pipeline-wide sample, taken now",
    response_model=StatsNow,
    responses=_UNAVAILABLE,
)
async def get_stats(res: Resources) -> StatsNow:
    sample = await take_sample(res.ledger)
    return StatsNow.model_validate({**sample, "processes": await res.restarts.all()})


@router.get(
    "/stats/history",
    summary="Pipeline samples of the last `minutes`, oldest first",
    description="One sample per STATS_INTERVAL (written by whichever API replica won the "
    "slot), kept STATS_RETENTION seconds.",
    response_class=Response,
    responses={
        200: {"model": StatsHistory},
        422: {"description": "minutes not in 1..60"},
        **_UNAVAILABLE,
    },
)
async def get_stats_history(res: Resources, minutes: Minutes = 15) -> Response:
    since_ms = int(time.time() * 1000) - minutes * 60_000
    stored = await res.samples.since(since_ms)
    # The samples are stored as JSON we wrote: splice them rather than parse and re-encode.
    samples = b",".join(stored)
    head = orjson.dumps(
        {"interval_s": res.settings.stats_interval, "retention_s": res.settings.stats_retention}
    )
    return Response(head[:-1] + b',"samples":[' + samples + b"]}", media_type="application/json")
