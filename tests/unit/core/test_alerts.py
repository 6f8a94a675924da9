"""The pure alert core: rule validation, crossing semantics against the naive reference, the
index's cost, firing ids and the webhook signature."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from backend.core.alerts.conditions import (
    Observation,
    RuleIndex,
    SymbolMemory,
    evaluate,
)
from backend.core.alerts.firing import firing_id, sign, verify, webhook_body
from backend.core.alerts.records import DeliveryJob
from backend.core.alerts.rules import (
    DEFAULT_WEBHOOK_DENY,
    AlertRule,
    AlertRuleSpec,
    denied_reason,
    expiry_error,
    merge_patch,
    parse_deny_list,
)
from tests.alerts_reference import expected_price_firings

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
T0_US = int(NOW.timestamp() * 1_000_000)


def make_rule(rule_id: str = "r1", **spec: Any) -> AlertRule:
    base: dict[str, Any] = {
        "name": "test", "symbol": "BTCUSDT", "field": "last_price", "condition": "crosses_above",
        "value": 100.0, "trigger": "every_time",
    }  # fmt: skip
    return AlertRule.model_validate(
        base | spec | {"id": rule_id, "version": 1, "created_at": NOW, "updated_at": NOW}
    )


def price_obs(ts_us: int, event_id: str, price: float) -> Observation:
    return Observation(
        kind="tick", ts_us=ts_us, event_id=event_id, values={"last_price": price}, price=price
    )


def run(rules: list[AlertRule], prices: list[float], step_us: int = 1_000_000) -> list[Any]:
    obs = [price_obs(T0_US + i * step_us, f"e{i:05d}", p) for i, p in enumerate(prices)]
    return evaluate(RuleIndex(rules), SymbolMemory(), obs, NOW, "BTCUSDT").firings


# --- semantics --------------------------------------------------------------------------------
def test_crosses_above_fires_on_each_upward_crossing_only() -> None:
    fired = run([make_rule()], [99, 101, 102, 99, 100, 101])
    assert [f.observed for f in fired] == [101, 101]


def test_a_spike_that_crosses_and_returns_between_two_views_still_fires() -> None:
    # Every tick that becomes the latest is an observation, not only the last of a batch.
    assert [f.observed for f in run([make_rule()], [99, 150, 99])] == [150]


def test_level_fires_when_it_becomes_true_and_rearms_when_false() -> None:
    rule = make_rule(condition="above", value=100.0)
    assert [f.observed for f in run([rule], [101, 102, 99, 103])] == [101, 103]


def test_channel_conditions() -> None:
    enters = make_rule("in", condition="enters_channel", value=10.0, value2=20.0)
    exits = make_rule("out", condition="exits_channel", value=10.0, value2=20.0)
    fired = run([enters, exits], [5, 15, 25, 15])
    assert [(f.rule_id, f.observed) for f in fired] == [("in", 15), ("out", 25), ("in", 15)]


def test_once_disables_itself_after_the_first_firing() -> None:
    assert len(run([make_rule(trigger="once")], [99, 101, 99, 101])) == 1


def test_once_per_bar_fires_at_most_once_per_utc_bar() -> None:
    rule = make_rule(trigger="once_per_bar", bar="1m")
    # Ticks 10 s apart: 6 crossings a minute, one firing per minute.
    fired = run([rule], [99, 101] * 12, step_us=5_000_000)
    buckets = {f.fired_at[:16] for f in fired}
    assert len(fired) == len(buckets) >= 2


def test_cooldown_holds_back_a_repeat_on_event_time() -> None:
    rule = make_rule(cooldown_s=30)
    fired = run([rule], [99, 101] * 10, step_us=5_000_000)  # a crossing every 10 s
    assert [f.tick.ts[14:19] for f in fired] == ["00:05", "00:35", "01:05", "01:35"]
    assert len(fired) == 4  # at 5 s, 35 s, 65 s, 95 s


def test_disabled_and_expired_rules_never_fire() -> None:
    paused = make_rule("p", enabled=False)
    expired = make_rule("x", expires_at=NOW - timedelta(seconds=1))
    assert run([paused, expired], [99, 101, 99, 101]) == []


def test_a_redelivered_evaluation_from_the_committed_memory_fires_nothing_again() -> None:
    rules = RuleIndex([make_rule()])
    obs = [price_obs(T0_US, "a", 99), price_obs(T0_US + 1, "b", 101)]
    first = evaluate(rules, SymbolMemory(), obs, NOW, "BTCUSDT")
    assert len(first.firings) == 1
    # The memory committed with the firing carries the previous value: nothing is crossed anew.
    again = evaluate(rules, first.memory, obs[1:], NOW, "BTCUSDT")
    assert again.firings == []


def test_firing_ids_are_stable_and_distinct_per_crossing() -> None:
    a, b = run([make_rule()], [99, 101, 99, 101])
    assert a.alert_id == firing_id("r1", a.firing_key) and a.alert_id != b.alert_id
    assert run([make_rule()], [99, 101])[0].alert_id == a.alert_id


@pytest.mark.parametrize("seed", range(8))
def test_indexed_evaluation_equals_the_naive_reference(seed: int) -> None:
    rnd = random.Random(seed)
    conditions = ["above", "below", "crosses_above", "crosses_below", "crosses",
                  "enters_channel", "exits_channel"]  # fmt: skip
    specs: list[dict[str, Any]] = []
    for i in range(40):
        condition = rnd.choice(conditions)
        low = rnd.choice([95.0, 98.0, 100.0, 101.5, 103.0])
        spec: dict[str, Any] = {
            "id": f"r{i:02d}", "condition": condition, "value": low,
            "trigger": rnd.choice(["once", "once_per_bar", "every_time"]),
            "cooldown_s": rnd.choice([0, 0, 20]), "bar": rnd.choice(["1m", "5m"]),
        }  # fmt: skip
        if condition.endswith("channel"):
            spec["value2"] = low + rnd.choice([1.0, 3.0])
        specs.append(spec)
    ticks = [
        (T0_US + i * 3_000_000, f"e{i:04d}", round(rnd.uniform(94, 106), 1)) for i in range(300)
    ]
    rules = [make_rule(s["id"], **{k: v for k, v in s.items() if k != "id"}) for s in specs]
    # In batches, each continuing from the memory the previous one committed.
    memory, fired = SymbolMemory(), []
    index = RuleIndex(rules)
    for start in range(0, len(ticks), 37):
        obs = [price_obs(ts, e, p) for ts, e, p in ticks[start : start + 37]]
        result = evaluate(index, memory, obs, NOW, "BTCUSDT")
        memory, fired = result.memory, fired + result.firings
    got = sorted((f.rule_id, f.tick.event_id) for f in fired)
    want = sorted((f.rule_id, f.event_id) for f in expected_price_firings(specs, ticks))
    assert got == want and want


def test_cost_does_not_grow_with_rules_that_do_not_fire() -> None:
    near = [make_rule(f"near{i}", value=100.0) for i in range(10)]
    far = [make_rule(f"far{i}", value=1_000.0 + i) for i in range(10_000)]
    prices = [99.0, 101.0] * 50
    obs = [price_obs(T0_US + i, f"e{i}", p) for i, p in enumerate(prices)]
    small = RuleIndex(near)
    big = RuleIndex(near + far)
    warm_small = evaluate(small, SymbolMemory(), obs[:1], NOW, "BTCUSDT").memory
    warm_big = evaluate(big, SymbolMemory(), obs[:1], NOW, "BTCUSDT").memory
    cost_small = evaluate(small, warm_small, obs[1:], NOW, "BTCUSDT")
    cost_big = evaluate(big, warm_big, obs[1:], NOW, "BTCUSDT")
    assert len(cost_big.firings) == len(cost_small.firings) > 0
    assert cost_big.checked == cost_small.checked


# --- validation -------------------------------------------------------------------------------
def spec_errors(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        AlertRuleSpec.model_validate(body)
    return str(info.value)


GOOD: dict[str, Any] = {
    "name": "BTC breakout", "symbol": "BTCUSDT", "field": "last_price",
    "condition": "crosses_above", "value": 65000,
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"field": "bid"}, "field"),
        ({"condition": "sideways"}, "condition"),
        ({"condition": "enters_channel"}, "value2"),
        ({"condition": "enters_channel", "value2": 1}, "value2"),
        ({"value2": 70000}, "value2"),
        ({"channels": [{"type": "webhook", "url": "ftp://x.org/"}]}, "http(s)"),
        ({"channels": [{"type": "webhook", "url": "https://x.org/", "secret": "short"}]}, "16"),
        ({"channels": []}, "channels"),
        ({"symbol": "btc usd"}, "symbol"),
        ({"trigger": "always"}, "trigger"),
        ({"value": None}, "value"),
        ({"expires_at": "2026-12-31T00:00:00"}, "UTC offset"),
        ({"name": "nul\x00name"}, "control characters"),
        ({"channels": [{"type": "webhook", "url": "https://x.org/\x00"}]}, "control characters"),
    ],
)
def test_invalid_rules_name_the_reason(change: dict[str, Any], needle: str) -> None:
    assert needle in spec_errors(GOOD | change)


def test_flag_fields_need_no_value_and_only_become_true() -> None:
    assert AlertRuleSpec.model_validate(
        GOOD | {"field": "stale", "condition": "above", "value": None}
    )
    assert "flag field" in spec_errors(GOOD | {"field": "stale", "condition": "below"})


def test_expiry_in_the_past_is_refused() -> None:
    spec = AlertRuleSpec.model_validate(GOOD | {"expires_at": "2026-01-01T00:00:00Z"})
    assert expiry_error(spec, NOW) == "must be in the future"
    assert expiry_error(AlertRuleSpec.model_validate(GOOD), NOW) is None


def test_secrets_are_never_echoed_but_survive_a_patch() -> None:
    secret = "s" * 32
    rule = make_rule(channels=[{"type": "webhook", "url": "https://x.org/h", "secret": secret}])
    assert secret not in rule.public().model_dump_json()
    assert rule.public().channels[0].signed is True  # type: ignore[union-attr]
    merged = AlertRuleSpec.model_validate(merge_patch(rule, {"value": 5.0}))
    assert merged.webhooks()[0].secret.get_secret_value() == secret  # type: ignore[union-attr]
    assert secret.encode() in rule.mirror_json()


@pytest.mark.parametrize(
    ("url", "resolved", "denied"),
    [
        ("http://169.254.169.254/latest/meta-data", None, True),
        ("http://[fe80::1]/x", None, True),
        ("http://metadata.google.internal/computeMetadata", None, True),
        ("https://hooks.example.org/x", ["169.254.169.254"], True),
        ("https://hooks.example.org/x", ["93.184.216.34"], False),
        ("http://127.0.0.1:9000/hook", None, False),
    ],
)
def test_webhook_deny_list(url: str, resolved: list[str] | None, denied: bool) -> None:
    deny = parse_deny_list(list(DEFAULT_WEBHOOK_DENY))
    assert (denied_reason(url, deny, resolved) is not None) is denied


def test_signature_verifies_only_the_exact_body_with_the_secret() -> None:
    fired = run([make_rule()], [99, 101])[0]
    body = webhook_body(fired)
    header = sign(body, "k" * 20)
    assert verify(body, "k" * 20, header)
    assert not verify(body + b" ", "k" * 20, header)
    assert not verify(body, "x" * 20, header)


@pytest.mark.parametrize(
    ("url", "destination"),
    [
        ("http://Hooks.Example.com/a?t=1", "hooks.example.com:80"),
        ("https://hooks.example.com./a", "hooks.example.com:443"),
        ("http://127.0.0.1:8080/hook", "127.0.0.1:8080"),
        ("http://[::1]:9000/hook", "[::1]:9000"),
    ],
)
def test_delivery_slots_are_per_host_and_port(url: str, destination: str) -> None:
    job = DeliveryJob(alert_id="a", rule_id="r", url=url, body="{}", fired_us=0)
    assert job.destination == destination
