"""What the live feed sends the gateway when it opens `/stream` (pure: no connection)."""

from __future__ import annotations

from ui.gateway_stream import StreamTarget


def test_a_first_connection_sends_the_key_and_no_position() -> None:
    target = StreamTarget("http://gw:8001/", api_key="k-1")
    assert target.url == "http://gw:8001/stream"
    headers = target.headers(None)
    assert headers["x-api-key"] == "k-1"
    assert headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in headers


def test_a_reconnect_resumes_after_the_last_id_received() -> None:
    headers = StreamTarget("http://gw:8001").headers("1700000000000-3")
    assert headers["Last-Event-ID"] == "1700000000000-3"
    assert "x-api-key" not in headers  # no key configured: none sent
