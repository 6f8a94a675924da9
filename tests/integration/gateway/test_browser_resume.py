"""A real browser's EventSource against the gateway survives the gateway's death (issue #15's third
proof): Chromium holds the views of every symbol from a page that knows nothing but
`new EventSource(gateway + "/stream")`; the gateway process is killed (SIGKILL) mid-stream and
started again on the same port while ticks keep flowing; the browser reconnects by itself with
`Last-Event-ID`, the new process resumes it from the ring, and the page's views end equal to the
API's.

The page comes from a throwaway local HTTP server on another port, so the gateway's CORS origins
are what let it connect, as for a real dashboard served from elsewhere.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gateway.streams import api_views, without_clock
from tests.integration.ui.chromium import CHROMIUM_FLAGS, INSTALL_HINT, find_chromium
from tests.support.load import SYMBOLS, Load, Stream
from tests.support.processes import Processes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>views</title></head><body>
<script>
window.views = {};
window.counters = {opens: 0, snapshots: 0, resets: 0, missed: 0, errors: 0, events: 0,
                   eventsAfterError: 0};
const source = new EventSource(%(gateway)s + "/stream");
source.onopen = () => { window.counters.opens++; };
source.onerror = () => { window.counters.errors++; };
source.addEventListener("snapshot", (e) => {
  window.views = JSON.parse(e.data).views;  // replaces everything held
  window.counters.snapshots++;
});
source.addEventListener("reset", () => { window.counters.resets++; });
source.addEventListener("missed", () => { window.counters.missed++; });
source.addEventListener("symbol.updated", (e) => {
  const body = JSON.parse(e.data);
  window.views[body.symbol] = body.view;
  window.counters.events++;
  if (window.counters.errors > 0) window.counters.eventsAfterError++;
});
</script></body></html>
"""


@contextlib.contextmanager
def page_server(body: str) -> Iterator[str]:
    """Serves `body` at / from a local thread; yields the page's URL (its origin + "/")."""
    encoded = body.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def counters(page: Page) -> dict[str, int]:
    return dict(page.evaluate("window.counters"))


def connections(gateway_url: str, start: str) -> float:
    """tickstream_gateway_connections_total{start=..., transport="sse"} of a running gateway."""
    text = httpx.get(gateway_url + "/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tickstream_gateway_connections_total"
        and sample.labels == {"start": start, "transport": "sse"}
    )


def test_a_browser_resumes_by_itself_after_the_gateway_is_killed_and_restarted(
    procs: Processes,
) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(f"chromium is not installed: {INSTALL_HINT}")
    with page_server(PAGE % {"gateway": f'"{procs.gateway_url}"'}) as page_url:
        origin = page_url.rstrip("/")
        gateway_env = {"GATEWAY_CORS_ORIGINS": origin, "GATEWAY_RETRY_MS": "300"}
        procs.start_api()
        procs.start_worker()
        procs.start_gateway(extra_env=gateway_env)
        load = Load(procs.api_url, Stream(seed=16, dup_rate=0.1, bad_rate=0.0), tps=200)
        load.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
                try:
                    page = browser.new_page()
                    page.goto(page_url)
                    page.wait_for_function(
                        "window.counters.snapshots === 1 && window.counters.events >= 20",
                        timeout=30_000,
                    )

                    # Mid-stream, the gateway dies without a word; ticks keep coming meanwhile.
                    procs.kill("gateway")
                    page.wait_for_function("window.counters.errors >= 1", timeout=30_000)
                    at_kill = load.acked_count()
                    wait_for(lambda: load.acked_count() >= at_kill + 100, 30, what="ticks")
                    procs.start_gateway(extra_env=gateway_env)  # the same port
                    page.wait_for_function("window.counters.eventsAfterError >= 20", timeout=30_000)

                    tally = load.stop()
                    expected = Counter(t["symbol"] for t in tally.acked.values())

                    def totals() -> dict[str, int]:
                        views = api_views(procs.api_url, SYMBOLS)
                        return {s: v["ticks_total"] for s, v in views.items()}

                    wait_for(
                        lambda: totals() == dict(expected), 60,
                        what="the API's views to hold every acknowledged tick",
                    )  # fmt: skip
                    final = api_views(procs.api_url, SYMBOLS)
                    page.wait_for_function(
                        """(totals) => Object.entries(totals).every(
                             ([s, n]) => window.views[s] && window.views[s].ticks_total === n)""",
                        arg=dict(expected),
                        timeout=30_000,
                    )
                    held = page.evaluate("window.views")
                    seen = counters(page)
                finally:
                    browser.close()
        finally:
            load.stop()

    assert not tally.given_up and not tally.rejected
    assert set(held) == set(SYMBOLS)
    for symbol in SYMBOLS:
        assert without_clock(held[symbol]) == without_clock(final[symbol]), symbol
    # It reconnected by itself: an error, then events again on the same EventSource...
    assert seen["errors"] >= 1 and seen["opens"] >= 2 and seen["eventsAfterError"] >= 20, seen
    # ...and resumed after its last id: no reset, no second snapshot, nothing missed.
    assert seen["resets"] == 0 and seen["snapshots"] == 1 and seen["missed"] == 0, seen
    assert connections(procs.gateway_url, "resume") >= 1
    assert connections(procs.gateway_url, "snapshot") == 0


KEYED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>keys</title></head><body>
<script>
window.sources = {};
window.seen = {};
for (const [name, key] of [["right", %(key)s], ["wrong", "not-the-key"]]) {
  const source = new EventSource(%(gateway)s + "/stream?key=" + encodeURIComponent(key));
  window.sources[name] = source;
  window.seen[name] = {opens: 0, errors: 0, snapshots: 0};
  source.onopen = () => { window.seen[name].opens++; };
  source.onerror = () => { window.seen[name].errors++; };
  source.addEventListener("snapshot", () => { window.seen[name].snapshots++; });
}
</script></body></html>
"""


def test_eventsource_authenticates_with_key_and_gives_up_for_good_on_a_refusal(
    procs: Processes,
) -> None:
    """EventSource cannot set headers, so the page's key goes in `key=`; and a refused
    EventSource (any answer but 200) is CLOSED for good: it never retries, which is why the
    gateway must not answer a browser 503 while it starts or has lost the ring."""
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(f"chromium is not installed: {INSTALL_HINT}")
    key = "browser-read-key"
    body = KEYED_PAGE % {"gateway": f'"{procs.gateway_url}"', "key": f'"{key}"'}
    with page_server(body) as page_url:
        procs.start_gateway(
            extra_env={
                "API_KEY": key,
                "GATEWAY_CORS_ORIGINS": page_url.rstrip("/"),
                "GATEWAY_RETRY_MS": "300",
            }
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page()
                page.goto(page_url)
                page.wait_for_function(
                    "() => window.seen.right.snapshots >= 1 && window.seen.wrong.errors >= 1",
                    timeout=15_000,
                )
                states = page.evaluate(
                    "() => [window.sources.right.readyState, window.sources.wrong.readyState]"
                )
                seen = page.evaluate("() => window.seen")
            finally:
                browser.close()
    assert states == [1, 2]  # OPEN; CLOSED (not CONNECTING: no retry will ever come)
    assert seen["right"]["opens"] == 1 and seen["wrong"]["opens"] == 0
