"""BackendClient's replay calls: the request body, typed answers, 422 fields and 409 reasons."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from backend.core.replay import Replay, ReplayRequest
from tests.unit.ui.replay_samples import REPLAY_ID, replay_json
from ui.api_client import BackendClient, BackendError, BackendRejected

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler) -> BackendClient:
    return BackendClient("http://backend.test/", "k", transport=httpx.MockTransport(handler))


def test_start_posts_the_request_and_returns_the_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": REPLAY_ID})

    request = ReplayRequest.model_validate(
        {"symbols": ["AAA"], "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z",
         "speed": 5, "alerts": "sandbox", "rule_ids": ["r-1"]}
    )  # fmt: skip
    assert client_for(handler).start_replay(request) == REPLAY_ID
    [sent] = seen
    assert (sent.method, sent.url.path, sent.headers["x-api-key"]) == ("POST", "/replays", "k")
    assert json.loads(sent.content) == {
        "symbols": ["AAA"], "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z",
        "speed": 5.0, "alerts": "sandbox", "rule_ids": ["r-1"], "rules": [],
    }  # fmt: skip


def test_reads_are_the_shared_models() -> None:
    firing = {
        "alert_id": "a", "rule_id": "inline-1", "rule_name": "n", "symbol": "AAA",
        "field": "last_price", "condition": "crosses_above", "value": 100.0, "observed": 100.5,
        "tick": {"ts": "2026-01-01T00:00:01Z", "event_id": "e", "price": 100.5},
        "firing_key": "e", "fired_at": "2026-01-01T00:00:01Z",
    }  # fmt: skip
    answers = {
        "/replays": {"replays": [replay_json()]},
        f"/replays/{REPLAY_ID}": replay_json(state="done"),
        f"/replays/{REPLAY_ID}/symbols/AAA/candles": {
            "replay_id": REPLAY_ID, "symbol": "AAA", "interval": "5m", "candles": [],
        },
        f"/replays/{REPLAY_ID}/alerts": {"replay_id": REPLAY_ID, "firings": [firing]},
    }  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in answers:
            return httpx.Response(200, json=answers[request.url.path])
        return httpx.Response(404, json={"detail": [{"field": "symbol", "reason": "no view"}]})

    client = client_for(handler)
    [listed] = client.list_replays()
    assert isinstance(listed, Replay) and listed.state == "running"
    got = client.get_replay(REPLAY_ID)
    assert got is not None and got.state == "done"
    assert client.get_replay("0000000000") is None
    assert client.get_replay_candles(REPLAY_ID, "AAA", "5m").interval == "5m"
    assert client.get_replay_firings(REPLAY_ID).firings[0].observed == 100.5
    assert client.get_replay_view(REPLAY_ID, "AAA") is None  # no view before its first tick


def test_a_control_returns_the_replay_and_a_409_says_why() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pause"):
            return httpx.Response(200, json=replay_json(state="paused"))
        detail = [{"field": "state", "reason": "replay is done"}]
        return httpx.Response(
            409, json={"message": "cannot resume: replay is done", "detail": detail}
        )

    client = client_for(handler)
    assert client.control_replay(REPLAY_ID, "pause").state == "paused"
    with pytest.raises(BackendError, match="state: replay is done"):
        client.control_replay(REPLAY_ID, "resume")


def test_a_422_keeps_each_field() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        detail = [{"field": "rule_ids.0", "reason": "no such rule"}]
        return httpx.Response(422, json={"message": "replay request is invalid", "detail": detail})

    request = ReplayRequest.model_validate(
        {"symbols": ["AAA"], "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z",
         "alerts": "sandbox", "rule_ids": ["nope"]}
    )  # fmt: skip
    with pytest.raises(BackendRejected) as caught:
        client_for(handler).start_replay(request)
    assert caught.value.fields == [{"field": "rule_ids.0", "reason": "no such rule"}]
