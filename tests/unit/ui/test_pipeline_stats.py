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
from ui.charts_pipeline import ALERT_SPECS, CHART_HEIGHT, SPECS, alert_figures, pipeline_figures
from ui.pipeline_health import health_parts
from ui.pipeline_series import pipeline_series, rates, reject_rates
from ui.pipeline_stats import (
    AlertHeadline,
    Headline,
    alert_headline,
    digest,
    format_rate,
    format_seconds,
    headline,
    is_not_found,
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
    alert_le: dict[str, int] | None = None,
    gauges: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One sample as the API sends it, `t` seconds after T0 (without `alert_le`, as stored
    before alerts existed: no `alert_delivery_latency_le` at all)."""
    ts_us = T0_US + round(t * 1_000_000)
    body = {
        "ts": datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat().replace("+00:00", "Z"),
        "ts_us": ts_us,
        "counters": counters or {},
        "rejected": rejected or {},
        "flush_seconds_le": flush_le or {},
        "view_latency_le": view_le or {},
        "gauges": gauges or {},
    }
    if alert_le is not None:
        body["alert_delivery_latency_le"] = alert_le
    return body


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


def alerting(seconds: int = 20) -> list[dict[str, Any]]:
    """Samples every 2 s of a pipeline firing 1 alert/s, each delivered within 0.05–0.1 s but
    one in four refused or dead; every 4 s one more delivery waits."""
    return [
        raw(
            t,
            counters={
                "alerts_fired": t,
                "alerts_test_fired": 1,
                "alerts_delivered": 3 * t // 4,
                "alerts_delivery_retries": t // 2,
                "alerts_delivery_failed": t // 8,
                "alerts_delivery_dead": t // 8,
            },
            alert_le={"0.05": 0, "0.1": 3 * t // 4, "60.0": 3 * t // 4, "+Inf": 3 * t // 4},
            gauges={
                "alert_deliveries_waiting": t // 4,
                "alert_evaluations_waiting": 0,
                "alert_history_entries": 2,
            },
        )
        for t in range(0, seconds + 1, 4)
    ]


class TestAlerts:
    def series(self, body: list[dict[str, Any]], interval: float = 4.0) -> Any:
        return pipeline_series(parse_history({"interval_s": interval, "samples": body}))

    def test_firing_and_delivery_rates_with_failures_and_dead_summed(self) -> None:
        series = self.series(alerting())
        assert series.alert_firings.x == tuple(at(t) for t in (4, 8, 12, 16, 20))
        assert series.alert_firings.ys["alerts_fired"] == (1.0,) * 5
        assert series.alert_firings.ys["alerts_test_fired"] == (0.0,) * 5
        deliveries = series.alert_deliveries.ys
        assert set(deliveries) == {"alerts_delivered", "alerts_undelivered"}
        assert deliveries["alerts_delivered"] == (0.75,) * 5  # 3 per 4 s
        # failed t//8 + dead t//8: 0+0, 1+1, 1+1, 2+2, 2+2 at t = 4..20 → 0, 2, 0, 2, 0 per 4 s
        assert deliveries["alerts_undelivered"] == (0.0, 0.5, 0.0, 0.5, 0.0)

    def test_a_reset_of_the_alert_counters_is_never_a_negative_rate(self) -> None:
        samples = parse_samples(
            [
                raw(0, counters={"alerts_delivered": 40, "alerts_delivery_dead": 9}),
                raw(2, counters={"alerts_delivered": 2, "alerts_delivery_dead": 1}),
            ]
        )
        deliveries = pipeline_series(History(2.0, None, samples)).alert_deliveries.ys
        assert deliveries == {"alerts_delivered": (1.0,), "alerts_undelivered": (0.5,)}

    def test_delivery_latency_quantiles_per_interval_from_the_histogram(self) -> None:
        body = [
            raw(0, alert_le={"0.1": 0, "1.0": 0, "30.0": 0, "+Inf": 0}),
            # 10 deliveries: 4 within 0.1 s, 5 more within 1 s, 1 after a retry (≤ 30 s)
            raw(2, alert_le={"0.1": 4, "1.0": 9, "30.0": 10, "+Inf": 10}),
            raw(4, alert_le={"0.1": 4, "1.0": 9, "30.0": 10, "+Inf": 10}),  # none delivered
            raw(6, alert_le={"0.1": 4, "1.0": 9, "30.0": 10, "+Inf": 12}),  # 2 beyond 300 s
        ]
        latency = self.series(body, interval=2.0).alert_latency
        # p50: rank 5 in (0.1, 1.0] holding ranks 4..9 → 0.1 + 0.9 × 1/5
        assert latency.ys["p50"][0] == pytest.approx(0.28)
        # p95: rank 9.5 in (1.0, 30.0] holding ranks 9..10 → 1 + 29 × 0.5
        assert latency.ys["p95"][0] == pytest.approx(15.5)
        assert (latency.ys["p50"][1], latency.ys["p95"][1]) == (None, None)  # nothing delivered
        # both only in +Inf: nothing finer is known than the highest finite bound seen
        assert latency.ys["p95"][2] == 30.0

    def test_samples_from_before_alerts_read_as_zero_rates_and_unknown_gauges(self) -> None:
        series = self.series([raw(0), raw(4), raw(8)])
        assert series.alert_firings.ys["alerts_fired"] == (0.0, 0.0)
        assert series.alert_deliveries.ys["alerts_undelivered"] == (0.0, 0.0)
        assert series.alert_latency.ys == {"p50": (None, None), "p95": (None, None)}
        assert series.alert_waiting.ys["alert_deliveries_waiting"] == (None, None, None)
        head = alert_headline(parse_samples([raw(0), raw(4)]))
        assert (head.fired_total, head.delivered_total, head.dead_total) == (0, 0, 0)
        assert head.fired_rate == 0.0
        assert head.deliveries_waiting is None  # not known, rather than a false 0
        assert head.delivery_p95_s is None

    def test_waiting_gauges_break_at_missing_samples(self) -> None:
        body = [s for s in alerting() if s["ts_us"] != T0_US + 8_000_000]
        waiting = self.series(body).alert_waiting
        assert waiting.x == tuple(at(t) for t in (0, 4, 8, 12, 16, 20))  # the gap at 8 s
        assert waiting.ys["alert_deliveries_waiting"] == (0, 1, None, 3, 4, 5)
        assert waiting.ys["alert_history_entries"] == (2, 2, None, 2, 2, 2)

    def test_headline_totals_waiting_and_recent_figures(self) -> None:
        head = alert_headline(parse_samples(alerting()))
        assert (head.fired_total, head.test_fired_total) == (20, 1)
        assert head.fired_rate == pytest.approx(1.0)
        assert (head.delivered_total, head.retries_total) == (15, 10)
        assert (head.failed_total, head.dead_total) == (2, 2)
        assert (head.deliveries_waiting, head.evaluations_waiting, head.history_waiting) == (
            5,
            0,
            2,
        )
        # all 15 deliveries in (0.05, 0.1]: p50 rank 7.5 → 0.05 + 0.05 × 0.5, p95 rank 14.25
        assert head.delivery_p50_s == pytest.approx(0.075)
        assert head.delivery_p95_s == pytest.approx(0.0975)

    def test_headline_windows_are_the_last_minute_and_five_minutes(self) -> None:
        body = [
            raw(0, counters={"alerts_fired": 0}, alert_le={"1.0": 0, "10.0": 0, "+Inf": 0}),
            # an old burst: 100 firings, 100 slow deliveries, more than 5 minutes ago
            raw(60, counters={"alerts_fired": 100}, alert_le={"1.0": 0, "10.0": 100, "+Inf": 100}),
            raw(400, counters={"alerts_fired": 100}, alert_le={"1.0": 0, "10.0": 100, "+Inf": 100}),
            raw(420, counters={"alerts_fired": 106}, alert_le={"1.0": 4, "10.0": 100, "+Inf": 104}),
            raw(460, counters={"alerts_fired": 112}, alert_le={"1.0": 8, "10.0": 100, "+Inf": 108}),
        ]
        head = alert_headline(parse_samples(body))
        assert head.fired_rate == pytest.approx(12 / 60)  # 400 → 460 s
        # the last 5 minutes (160 → 460 s): 8 deliveries, all within 1 s; p95 rank 7.6 of 8
        assert head.delivery_p95_s == pytest.approx(0.95)

    def test_empty_history_and_digest(self) -> None:
        assert alert_headline(()) == AlertHeadline()
        stats = digest({"interval_s": 4.0, "samples": alerting()})
        assert stats.alerts.fired_total == 20
        assert stats.series.alert_firings.last("alerts_fired") == pytest.approx(1.0)
        assert digest({"interval_s": 4.0, "samples": []}).alerts == AlertHeadline()

    def test_alert_figures_share_the_pipeline_window_and_show_sparse_latency_as_points(
        self,
    ) -> None:
        series = self.series(alerting())
        figures = alert_figures(series)
        assert list(figures) == list(ALERT_SPECS)
        for key, fig in figures.items():
            assert fig.layout.uirevision == f"pipeline:{key}"
            assert fig.layout.height == CHART_HEIGHT
        names = {key: [trace.name for trace in fig.data] for key, fig in figures.items()}
        assert names == {
            "alert_firings": ["fired", "test fired"],
            "alert_deliveries": ["delivered", "failed + dead"],
            "alert_latency": ["p50", "p95"],
            "alert_waiting": ["webhook jobs", "evaluations", "records to store"],
        }
        pipeline = pipeline_figures(series)
        ranges = {tuple(fig.layout.xaxis.range) for fig in [*figures.values(), *pipeline.values()]}
        assert len(ranges) == 1  # every chart of the page, alerts included, on one window
        latency = figures["alert_latency"]
        assert {trace.mode for trace in latency.data} == {"lines+markers"}
        assert figures["alert_firings"].data[0].mode == "lines"
        assert np.asarray(latency.data[1].y) == pytest.approx([0.0975] * 5)  # seconds, as is
        assert figures["alert_waiting"].data[0].line.shape == "hv"

    def test_the_parser_keeps_the_delivery_histogram(self) -> None:
        (sample,) = parse_samples([raw(0, alert_le={"0.5": 2, "+Inf": "3", "x": "NaN"})])
        assert sample.alert_delivery_latency_le == {"0.5": 2.0, "+Inf": 3.0}
        (old,) = parse_samples([raw(0)])
        assert old.alert_delivery_latency_le == {}


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
        alerts = alert_figures(self.history([]))
        assert list(figures) == list(SPECS)
        assert list(alerts) == list(ALERT_SPECS)
        for fig in [*figures.values(), *alerts.values()]:
            assert [a.text for a in fig.layout.annotations] == ["no data yet"]
            assert fig.layout.xaxis.range is None
