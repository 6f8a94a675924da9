"""The Pipeline page against a real API and worker (real Redis and Postgres), via AppTest.

The API samples the pipeline every 0.3 s (`STATS_INTERVAL`), so a few posted ticks show up in
`/stats/history` within a second or so. Alert firings are queued as the evaluator queues them and
delivered by a real delivery worker to real receivers, so the Alerts part draws real samples.
What the page shows is checked against what was posted and fired (exact totals), never against
timings. The page gets its Settings through
`st.session_state[SETTINGS_OVERRIDE_KEY]`.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import streamlit as st
from redis import Redis
from streamlit.testing.v1 import AppTest

from backend.settings import Settings
from tests.support.processes import AUTH, running, settings_env
from tests.support.servers import free_port
from tests.support.waiting import wait_for
from tests.support.webhooks import queue_webhook_firings, receiving, status
from ui.resources import SETTINGS_OVERRIDE_KEY

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[3] / "ui" / "app_pages" / "pipeline.py"
ACCEPTED = 6
DELIVERED, REFUSED = 3, 1  # webhook firings answered 204 and 400


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    """Cached clients and fetches are process-wide: every test starts from a clean slate."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def tick(i: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "symbol": "BTCUSDT",
        "price": 100.0 + i,
        "volume": 1.0,
        "source": "pipeline-page",
        "ts": int(time.time() * 1000) - 500,
        "event_id": f"pipeline-page-{i}",
        "seq": i + 1,
    }
    body.update(overrides)
    return body


def open_page(settings: Settings) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    at.session_state[SETTINGS_OVERRIDE_KEY] = settings
    at.run()
    assert not at.exception, at.exception
    return at


def badges(at: AppTest) -> dict[str, tuple[str, str]]:
    """{part: (colour, status)} from the health badges (`:green-badge[:icon: Redis · ok]`)."""
    found: dict[str, tuple[str, str]] = {}
    for markdown in at.markdown:
        match = re.fullmatch(r":(\w+)-badge\[(?::[\w/]+: )?(\w+) · (.+)\]", markdown.value)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def figures(at: AppTest) -> dict[str, dict[str, Any]]:
    """Every Plotly chart on the page as its figure JSON, keyed by its uirevision."""
    out: dict[str, dict[str, Any]] = {}
    for element in at.get("plotly_chart"):
        figure = orjson.loads(element.proto.spec)
        out[figure["layout"]["uirevision"]] = figure
    return out


def ys(trace: dict[str, Any]) -> list[float]:
    """A trace's y values without its gaps (Plotly sends arrays as base64 typed arrays)."""
    y = trace["y"]
    if isinstance(y, dict):
        values = np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
    else:
        values = np.array([np.nan if v is None else v for v in y], dtype=float)
    return [float(v) for v in values if not np.isnan(v)]


def specs(at: AppTest) -> list[str]:
    """The figures exactly as sent to the browser (what decides whether a chart remounts)."""
    return [element.proto.spec for element in at.get("plotly_chart")]


def latest_sample(client: httpx.Client) -> dict[str, Any]:
    samples = client.get("/stats/history", params={"minutes": 5}).json()["samples"]
    return samples[-1] if samples else {}


def test_pipeline_page_shows_health_charts_and_the_posted_ticks(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    env = settings_env(settings) | {"STATS_INTERVAL": "0.3"}
    with (
        running(env, tmp_path) as procs,
        httpx.Client(timeout=5) as client,
        receiving(status(204)) as ok,
        receiving(status(400)) as refusing,
    ):
        ui_settings = settings.model_copy(update={"backend_url": procs.api_url, "api_key": None})

        # Nothing listens yet: a banner, no stack trace.
        at = open_page(ui_settings)
        assert any("Backend unavailable" in error.value for error in at.error)
        assert badges(at)["API"][0] == "red"

        procs.start_api()
        procs.start_worker()
        procs.start_delivery_worker()
        client.base_url = httpx.URL(procs.api_url)

        def workers() -> int:
            body = client.get("/health/readiness").json()
            return int(body["checks"]["broker"].get("workers") or 0)

        wait_for(lambda: workers() >= 1, 30, what="a worker heartbeat")

        # Spread over a few sampling intervals, so several intervals carry ticks.
        posted = [tick(i) for i in range(ACCEPTED)]
        for body in posted:
            response = client.post("/ingest/tick", json=body, auth=AUTH)
            assert response.json()["status"] == "accepted"
            time.sleep(0.15)
        resent = client.post("/ingest/tick", json=posted[0], auth=AUTH)
        assert resent.json()["status"] == "duplicate"
        invalid = client.post("/ingest/tick", json=tick(99, price=-1), auth=AUTH)
        assert invalid.status_code == 422
        queue_webhook_firings(redis_client, settings, ok.url, n=DELIVERED)
        queue_webhook_firings(redis_client, settings, refusing.url, n=REFUSED)

        def settled() -> bool:
            sample = latest_sample(client)
            counters = sample.get("counters", {})
            return (
                counters.get("ingest_accepted") == ACCEPTED
                and counters.get("ingest_duplicate") == 1
                and counters.get("rows_written") == ACCEPTED
                and sample.get("rejected", {}).get("price") == 1
                and sample.get("view_latency_le", {}).get("+Inf", 0) >= 1
                and counters.get("alerts_delivered") == DELIVERED
                and counters.get("alerts_delivery_failed") == REFUSED
                and sample.get("gauges", {}).get("alert_deliveries_waiting") == 0
            )

        wait_for(settled, 30, interval=0.2, what="the posted ticks in /stats/history")

        # The page recovers by itself (the fragment's timer is a rerun here).
        def healthy() -> bool:
            at.run()
            assert not at.exception, at.exception
            return not at.error and badges(at).get("Workers", ("", ""))[0] == "green"

        wait_for(healthy, 15, interval=0.5, what="the page to see the backend")

        shown = badges(at)
        assert shown["API"] == ("green", "ok")
        assert shown["Redis"] == ("green", "ok")
        assert shown["Postgres"] == ("green", "ok")
        live = re.fullmatch(r"(\d+) live", shown["Workers"][1])
        assert live and int(live.group(1)) >= 1

        headline = metrics(at)
        assert headline["Accepted"] == str(ACCEPTED)
        assert headline["Dead letters"] == "0"
        assert re.fullmatch(r"[\d,.]+/s", headline["Ingest rate"])
        assert re.fullmatch(r"[\d,.]+ (ms|s)", headline["View latency p95"])
        assert re.fullmatch(r"[\d,.]+ (ms|s)", headline["Flush p95"])
        # The Alerts part: what was fired and what became of each webhook.
        assert any(header.value == "Alerts" for header in at.subheader)
        assert headline["Alerts fired"] == str(DELIVERED + REFUSED)
        assert headline["Delivered"] == str(DELIVERED)
        assert (headline["Retries"], headline["Failed"], headline["Dead"]) == (
            "0",
            str(REFUSED),
            "0",
        )
        assert headline["Waiting"] == "0"
        assert re.fullmatch(r"[\d,.]+ (ms|s)", headline["Delivery p95"])

        charts = figures(at)
        assert set(charts) == {
            f"pipeline:{key}"
            for key in (
                "ingest",
                "rejects",
                "rows_written",
                "depths",
                "dead_letters",
                "flush_latency",
                "view_latency",
                "workers",
                "alert_firings",
                "alert_deliveries",
                "alert_latency",
                "alert_waiting",
            )
        }
        traces = {trace["name"]: trace for trace in charts["pipeline:ingest"]["data"]}
        assert set(traces) == {"accepted", "duplicates", "conflicts"}
        assert max(ys(traces["accepted"])) > 0
        assert max(ys(traces["duplicates"])) > 0
        assert not any(ys(traces["conflicts"]))
        rejects = charts["pipeline:rejects"]["data"]
        assert [t["name"] for t in rejects] == ["price"]
        assert max(ys(rejects[0])) > 0
        assert max(ys(charts["pipeline:rows_written"]["data"][0])) > 0
        assert ys(charts["pipeline:workers"]["data"][0])[-1] >= 1
        assert ys(charts["pipeline:view_latency"]["data"][0])  # ingest → view was observed
        firings = {trace["name"]: trace for trace in charts["pipeline:alert_firings"]["data"]}
        assert max(ys(firings["fired"])) > 0 and not any(ys(firings["test fired"]))
        outcomes = {t["name"]: t for t in charts["pipeline:alert_deliveries"]["data"]}
        assert max(ys(outcomes["delivered"])) > 0
        assert max(ys(outcomes["failed + dead"])) > 0
        latency = {t["name"]: t for t in charts["pipeline:alert_latency"]["data"]}
        assert ys(latency["p50"]) and ys(latency["p95"])  # deliveries were observed
        waiting = {t["name"]: t for t in charts["pipeline:alert_waiting"]["data"]}
        assert ys(waiting["webhook jobs"])[-1] == 0
        assert any("sample" in caption.value for caption in at.caption)

        # Paused, the very same figures are re-sent (so the browser keeps each chart mounted,
        # zoom included) while the sampler keeps adding samples; unpaused, they move again.
        at.toggle(key="pipeline_charts_paused").set_value(True).run()
        frozen = specs(at)
        samples_then = len(client.get("/stats/history").json()["samples"])
        wait_for(
            lambda: len(client.get("/stats/history").json()["samples"]) > samples_then + 2,
            15,
            what="new samples",
        )
        st.cache_data.clear()  # no waiting for the TTL: the page must see the new samples
        at.run()
        assert not at.exception
        assert specs(at) == frozen
        assert any(caption.value.endswith("paused") for caption in at.caption)
        assert metrics(at)["Accepted"] == str(ACCEPTED)  # the headline is not frozen
        at.toggle(key="pipeline_charts_paused").set_value(False).run()
        assert not at.exception
        assert specs(at) != frozen


def test_pipeline_page_with_a_dead_backend_shows_a_banner(settings: Settings) -> None:
    dead = settings.model_copy(
        update={"backend_url": f"http://127.0.0.1:{free_port()}", "api_key": None}
    )
    at = open_page(dead)
    at.run()  # a refresh (cached failure) still renders cleanly
    assert not at.exception
    assert any("Backend unavailable" in error.value for error in at.error)
    shown = badges(at)
    assert shown["API"] == ("red", "down")
    assert {shown[part][0] for part in ("Redis", "Postgres", "Workers")} == {"gray"}
    assert not at.get("plotly_chart")
    assert not at.metric
