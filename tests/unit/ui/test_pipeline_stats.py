"""The Pipeline page's arithmetic: rates, resets, gaps, quantiles, headline, health, figures.

Samples are built in the JSON shape `GET /stats/history` returns and go through the same parser
as the page, so a drift in field names shows up here. Expected values are computed by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from ui.api_client import BackendClient, BackendError
from ui.charts_pipeline import CHART_HEIGHT, SPECS, pipeline_figures
from ui.pipeline_health import health_parts
from ui.pipeline_stats import (
    Headline,
    digest,
    format_rate,
    format_seconds,
    headline,
    is_not_found,
    pipeline_series,
    rates,
    reject_rates,
)
from ui.stats_samples import (
    History,
    Sample,
    bucket_increase,
    counter_increase,
    histogram_quantile,
    parse_history,
    parse_samples,
)

T0 = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)
T0_US = int(T0.timestamp() * 1_000_000)


def raw(
    t: float,
    *,
    counters: dict[str, float] | None = None,
    rejected: dict[str, int] | None = None,
    flush_le: dict[str, int] | None = None,
    view_le: dict[str, int] | None = None,
    gauges: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One sample as the API sends it, `t` seconds after T0."""
    ts_us = T0_US + round(t * 1_000_000)
    return {
        "ts": datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat().replace("+00:00", "Z"),
        "ts_us": ts_us,
        "counters": counters or {},
        "rejected": rejected or {},
        "flush_seconds_le": flush_le or {},
        "view_latency_le": view_le or {},
        "gauges": gauges or {},
    }


def accepted(*points: tuple[float, int]) -> tuple[Sample, ...]:
    return parse_samples(raw(t, counters={"ingest_accepted": n}) for t, n in points)


def at(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


class TestRates:
    def test_rate_is_the_increase_over_the_real_time_between_samples(self) -> None:
        samples = accepted((0, 0), (2, 10), (4.5, 30))  # the second interval drifted to 2.5 s
        series = rates(samples, 2.0, ["ingest_accepted"])
        assert series.x == (at(2), at(4.5))
        assert series.ys["ingest_accepted"] == (5.0, 8.0)

    def test_a_counter_that_goes_down_is_a_reset_never_a_negative_rate(self) -> None:
        samples = accepted((0, 100), (2, 120), (4, 5), (6, 15))
        values = rates(samples, 2.0, ["ingest_accepted"]).ys["ingest_accepted"]
        assert values == (10.0, 2.5, 5.0)  # after the reset, 5 ticks counted from zero
        assert counter_increase(120, 5) == 5
        assert counter_increase(5, 15) == 10

    def test_a_missing_sample_is_a_gap_not_an_average(self) -> None:
        samples = accepted((0, 0), (2, 10), (6, 50), (8, 60))  # the sample at 4 s is missing
        series = rates(samples, 2.0, ["ingest_accepted"])
        assert series.x == (at(2), at(6), at(8))
        assert series.ys["ingest_accepted"] == (5.0, None, 5.0)

    def test_a_missing_sample_breaks_gauge_lines_with_a_none_point(self) -> None:
        samples = parse_samples(
            raw(t, gauges={"queue_depth": d}) for t, d in ((0, 1), (2, 2), (6, 3), (8, 4))
        )
        depths = pipeline_series(History(2.0, None, samples)).depths
        assert depths.x == (at(0), at(2), at(4), at(6), at(8))
        assert depths.ys["queue_depth"] == (1, 2, None, 3, 4)

    def test_gauges_of_empty_and_single_sample_histories(self) -> None:
        assert pipeline_series(History(2.0, None, ())).depths.x == ()
        one = pipeline_series(History(2.0, None, parse_samples([raw(0, gauges={"workers": 1})])))
        assert one.workers.x == (at(0),)
        assert one.workers.ys["workers"] == (1,)
        assert one.ingest.x == ()

    def test_counters_missing_from_a_sample_count_as_zero(self) -> None:
        samples = parse_samples([raw(0), raw(2, counters={"ingest_duplicate": 4})])
        series = rates(samples, 2.0, ["ingest_duplicate", "ingest_conflict"])
        assert series.ys == {"ingest_duplicate": (2.0,), "ingest_conflict": (0.0,)}

    def test_empty_and_single_sample_inputs_give_empty_rate_series(self) -> None:
        assert rates((), 2.0, ["ingest_accepted"]).x == ()
        single = rates(accepted((0, 7)), 2.0, ["ingest_accepted"])
        assert single.x == ()
        assert single.ys == {"ingest_accepted": ()}
        assert single.last("ingest_accepted") is None

    def test_reject_rates_by_reason_with_the_rest_bounded_into_other(self) -> None:
        samples = parse_samples(
            [
                raw(0, rejected={"price": 0, "ts": 2}),
                raw(2, rejected={"price": 4, "ts": 2, "symbol": 1, "volume": 1}),
            ]
        )
        series = reject_rates(samples, 2.0, limit=2)
        assert set(series.ys) == {"price", "ts", "other"}
        assert series.ys["price"] == (2.0,)
        assert series.ys["ts"] == (0.0,)
        assert series.ys["other"] == (1.0,)  # symbol + volume: 2 rejects in 2 s

    def test_interval_is_inferred_when_the_body_omits_it(self) -> None:
        body = {"samples": [raw(0), raw(3), raw(6), raw(9)]}
        assert parse_history(body).interval_s == 3.0


class TestQuantiles:
    def test_interpolates_linearly_within_the_bucket(self) -> None:
        buckets = {"0.1": 50, "0.5": 90, "1.0": 100, "+Inf": 100}
        # p95: rank 95 lies in (0.5, 1.0] holding ranks 90..100 → 0.5 + 0.5 × 5/10
        assert histogram_quantile(0.95, buckets) == pytest.approx(0.75)
        # p50: rank 50 is the top of the first bucket, which starts at 0
        assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
        assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)

    def test_a_rank_in_the_inf_bucket_answers_the_highest_finite_bound(self) -> None:
        assert histogram_quantile(0.95, {"0.1": 1, "1.0": 5, "+Inf": 10}) == 1.0

    def test_no_observations_is_none(self) -> None:
        assert histogram_quantile(0.95, {"0.1": 0, "+Inf": 0}) is None
        assert histogram_quantile(0.95, {}) is None
        assert histogram_quantile(0.95, {"0.1": 0}, total=0) is None

    def test_total_stands_in_for_a_missing_inf_bucket(self) -> None:
        # flush buckets have no "+Inf": flush_count is the total. Rank 3.8 of 4 lies in
        # (0.005, 0.01] holding ranks 2..4 → 0.005 + 0.005 × 1.8/2
        assert histogram_quantile(0.95, {"0.005": 2, "0.01": 4}, total=4) == pytest.approx(0.0095)
        # one of five flushes took longer than every bucket: p95 is beyond 0.01 → 0.01
        assert histogram_quantile(0.95, {"0.005": 2, "0.01": 4}, total=5) == 0.01

    def test_rejects_a_quantile_outside_0_1(self) -> None:
        with pytest.raises(ValueError, match="quantile"):
            histogram_quantile(1.5, {"+Inf": 1})

    def test_quantiles_come_from_bucket_deltas_between_samples(self) -> None:
        before = {"0.01": 10, "0.1": 20, "+Inf": 20}
        after = {"0.01": 10, "0.1": 28, "+Inf": 30}
        delta = bucket_increase(before, after)
        assert delta == {"0.01": 0, "0.1": 8, "+Inf": 10}
        # p50 of the interval: rank 5 in (0.01, 0.1] holding ranks 0..8 → 0.01 + 0.09 × 5/8
        assert histogram_quantile(0.5, delta) == pytest.approx(0.06625)
        # the same from the samples, as the view-latency chart computes it
        samples = parse_samples([raw(0, view_le=before), raw(2, view_le=after)])
        assert pipeline_series(History(2.0, None, samples)).view_latency.ys["p95"] == (
            0.1,
        )  # rank 9.5 is in +Inf

    def test_a_histogram_that_shrank_was_reset(self) -> None:
        assert bucket_increase({"0.1": 50, "+Inf": 60}, {"0.1": 3, "+Inf": 4}) == {
            "0.1": 3,
            "+Inf": 4,
        }

    def test_flush_mean_and_p95_per_interval(self) -> None:
        samples = parse_samples(
            [
                raw(
                    0,
                    counters={"flush_count": 10, "flush_seconds_sum": 1.0},
                    flush_le={"0.01": 4, "0.05": 8, "0.1": 10},
                ),
                raw(
                    2,
                    counters={"flush_count": 14, "flush_seconds_sum": 1.2},
                    flush_le={"0.01": 4, "0.05": 12, "0.1": 14},
                ),
                raw(  # nothing flushed in this interval
                    4,
                    counters={"flush_count": 14, "flush_seconds_sum": 1.2},
                    flush_le={"0.01": 4, "0.05": 12, "0.1": 14},
                ),
            ]
        )
        flush = pipeline_series(History(2.0, None, samples)).flush_latency
        mean, p95 = flush.ys["mean"], flush.ys["p95"]
        assert mean[0] == pytest.approx(0.05)  # 0.2 s over 4 flushes
        # the 4 flushes all fell in (0.01, 0.05]: rank 3.8 → 0.01 + 0.04 × 3.8/4
        assert p95[0] == pytest.approx(0.048)
        assert mean[1] is None
        assert p95[1] is None


def steady(seconds: int = 20, per_s: int = 3) -> list[dict[str, Any]]:
    """Samples every 2 s of a pipeline accepting `per_s` ticks/s, view latency all ≤ 50 ms."""
    return [
        raw(
            t,
            counters={"ingest_accepted": per_s * t},
            view_le={"0.01": 0, "0.05": 10 * t, "0.1": 10 * t, "+Inf": 10 * t},
            gauges={"queue_depth": 2, "outbox_entries": 7, "outbox_pending": 3, "dead_letters": 1},
        )
        for t in range(0, seconds + 1, 2)
    ]


class TestHeadline:
    def test_figures_from_the_latest_sample_and_the_recent_window(self) -> None:
        head = headline(parse_samples(steady()))
        assert head.ingest_rate == pytest.approx(3.0)
        assert head.accepted_total == 60
        assert (head.queue_depth, head.outbox_entries, head.outbox_pending) == (2, 7, 3)
        assert head.dead_letters == 1
        # all 200 observations in (0.01, 0.05]: rank 190 → 0.01 + 0.04 × 0.95
        assert head.view_p95_s == pytest.approx(0.048)
        assert head.flush_p95_s is None  # nothing flushed

    def test_ingest_rate_survives_a_reset_inside_the_window(self) -> None:
        samples = accepted((0, 500), (2, 520), (4, 6), (6, 26), (8, 46), (10, 66))
        # increases 20, 6 (reset), 20, 20, 20 over 10 s
        assert headline(samples).ingest_rate == pytest.approx(8.6)

    def test_empty_and_single_sample(self) -> None:
        assert headline(()) == Headline()
        head = headline(accepted((0, 42)))
        assert head.accepted_total == 42
        assert head.ingest_rate is None
        assert head.view_p95_s is None


READY = {
    "status": "ok",
    "failed": [],
    "checks": {
        "redis": {"ok": True, "latency_ms": 0.4},
        "postgres": {"ok": True, "latency_ms": 3.2},
        "broker": {"ok": True, "latency_ms": 0.6, "workers": 2, "queue_depth": 5},
    },
}


class TestHealth:
    def test_all_parts_healthy(self) -> None:
        parts = health_parts(READY, api_latency_ms=12.0)
        assert [(p.name, p.ok) for p in parts] == [
            ("API", True),
            ("Redis", True),
            ("Postgres", True),
            ("Workers", True),
        ]
        assert parts[1].detail == "0.4 ms"
        assert parts[3].status == "2 live"
        assert "queue depth 5" in parts[3].detail

    def test_a_failed_part_shows_its_error_and_no_workers_is_unhealthy(self) -> None:
        body = {
            "status": "unavailable",
            "failed": ["postgres"],
            "checks": {
                "redis": {"ok": True, "latency_ms": 0.4},
                "postgres": {"ok": False, "error": "OperationalError: connection refused"},
                "broker": {"ok": True, "workers": 0, "queue_depth": 12},
            },
        }
        api, redis, postgres, workers = health_parts(body)
        assert api.ok is True  # a 503 naming what failed is still an answer
        assert redis.ok is True
        assert postgres.ok is False
        assert postgres.detail == "OperationalError: connection refused"
        assert workers.ok is False
        assert "no live worker" in workers.detail

    def test_no_answer_means_api_down_and_the_rest_unknown(self) -> None:
        api, *rest = health_parts(None, "Cannot reach the backend at http://x (ConnectError).")
        assert api.ok is False
        assert "Cannot reach" in api.detail
        assert [p.ok for p in rest] == [None, None, None]


class TestParsing:
    def test_samples_are_sorted_deduplicated_and_malformed_ones_dropped(self) -> None:
        samples = parse_samples(
            [
                raw(4, counters={"ingest_accepted": 3}),
                {"counters": {}},  # no time
                "garbage",
                raw(0),
                {"ts": "2026-11-21T14:30:02Z", "counters": {"ingest_accepted": "2", "x": "NaN"}},
                raw(4, counters={"ingest_accepted": 4}),  # same time: the later one wins
            ]
        )
        assert [s.ts for s in samples] == [at(0), at(2), at(4)]
        assert samples[1].counters == {"ingest_accepted": 2.0}
        assert samples[2].counter("ingest_accepted") == 4

    @pytest.mark.parametrize(("status", "missing"), [(404, True), (422, False), (503, False)])
    def test_a_404_from_the_real_client_reads_as_an_older_backend(
        self, status: int, missing: bool
    ) -> None:
        """The page tells "no /stats/history" (info) from a failure (warning) by the client's
        message: checked against BackendClient's own wording, not a copy of it."""

        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.path == "/stats/history"
            return httpx.Response(status, json={"detail": "Not Found"})

        transport = httpx.MockTransport(handler)
        client = BackendClient("http://backend.test", transport=transport)
        with client, pytest.raises(BackendError) as caught:
            client.get_stats_history(minutes=15)
        assert is_not_found(caught.value.message) is missing

    def test_formats(self) -> None:
        assert not is_not_found(None)
        assert format_rate(None) == "—"
        assert format_rate(2.345) == "2.3/s"
        assert format_seconds(0.0481) == "48.1 ms"
        assert format_seconds(2.5) == "2.50 s"


def naive(value: Any) -> datetime:
    """A datetime, datetime64 or ISO string as a naive-UTC datetime, for comparing axes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime.fromisoformat(str(np.datetime_as_string(np.datetime64(value, "us"))))


class TestFigures:
    def history(self, body: list[dict[str, Any]]) -> Any:
        return pipeline_series(parse_history({"interval_s": 2.0, "samples": body}))

    def test_every_chart_has_its_traces_a_fixed_uirevision_and_a_shared_range(self) -> None:
        body = steady()
        body.append(raw(24, counters={"ingest_accepted": 70}, rejected={"price": 1}))
        figures = pipeline_figures(self.history(body), minutes=15)
        assert list(figures) == list(SPECS)
        for key, fig in figures.items():
            assert fig.layout.uirevision == f"pipeline:{key}"
            assert fig.layout.height == CHART_HEIGHT
        names = {key: [trace.name for trace in fig.data] for key, fig in figures.items()}
        assert names["ingest"] == ["accepted", "duplicates", "conflicts"]
        assert names["rejects"] == ["price"]
        assert names["depths"] == ["queue", "outbox", "outbox pending"]
        assert names["flush_latency"] == ["mean", "p95"]
        assert names["view_latency"] == ["p95"]
        assert names["workers"] == ["workers"]
        # the key to the lines: each name in its trace's colour; none for a single line
        key = figures["ingest"].layout.title.subtitle.text
        for trace in figures["ingest"].data:
            assert f'<span style="color:{trace.line.color}">━ {trace.name}</span>' in key
        assert not figures["workers"].layout.title.subtitle.text
        assert all(fig.layout.showlegend is False for fig in figures.values())
        ranges = {tuple(fig.layout.xaxis.range) for fig in figures.values()}
        assert len(ranges) == 1  # every chart shows the same window
        # a young pipeline: from its first sample to its last, not an empty 15 minutes
        assert [naive(t) for t in next(iter(ranges))] == [naive(at(0)), naive(at(24))]

    def test_the_window_is_at_most_the_last_minutes_asked_for(self) -> None:
        body = [raw(t, gauges={"workers": 1}) for t in range(0, 20 * 60 + 1, 60)]
        series = pipeline_series(parse_history({"interval_s": 60.0, "samples": body}))
        figures = pipeline_figures(series, minutes=15)
        start, end = figures["workers"].layout.xaxis.range
        assert (naive(start), naive(end)) == (naive(at(5 * 60)), naive(at(20 * 60)))
        assert len(figures["workers"].data[0].x) == 21  # older points are kept, just off-screen

    def test_gaps_stay_gaps_and_latency_is_drawn_in_ms(self) -> None:
        body = [s for s in steady() if s["ts_us"] != T0_US + 10_000_000]  # drop t = 10 s
        figures = pipeline_figures(self.history(body))
        accepted_trace = figures["ingest"].data[0]
        assert accepted_trace.connectgaps is False
        # rates at 2, 4, 6, 8, then the interval 8 → 12 spans the missing sample: a gap
        assert list(accepted_trace.x) == [
            np.datetime64(at(t).replace(tzinfo=None), "us")
            for t in (2, 4, 6, 8, 12, 14, 16, 18, 20)
        ]
        y = np.asarray(accepted_trace.y)
        assert np.isnan(y).tolist() == [False] * 4 + [True] + [False] * 4
        assert y[~np.isnan(y)] == pytest.approx([3.0] * 8)
        view = np.asarray(figures["view_latency"].data[0].y)
        # each 2 s interval: 20 observations in (0.01, 0.05] → p95 = 48 ms
        assert view[~np.isnan(view)] == pytest.approx([48.0] * 8)

    def test_digest_keeps_what_the_page_shows(self) -> None:
        stats = digest({"interval_s": 2.0, "retention_s": 3600, "samples": steady()})
        assert (stats.interval_s, stats.retention_s, stats.sample_count) == (2.0, 3600, 11)
        assert stats.head.accepted_total == 60
        assert stats.series.ingest.last("ingest_accepted") == pytest.approx(3.0)

    def test_empty_history_still_builds_every_chart_with_a_no_data_note(self) -> None:
        figures = pipeline_figures(self.history([]))
        assert list(figures) == list(SPECS)
        for fig in figures.values():
            assert [a.text for a in fig.layout.annotations] == ["no data yet"]
            assert fig.layout.xaxis.range is None
