"""The ledger: the backlog formula and the shaping of the one gauges read."""

from __future__ import annotations

import re

from backend.bus import ledger, lua
from backend.bus.ledger import Gauges, backlog_ticks, shape_gauges


def answers(**overrides: object) -> list[object]:
    values: dict[str, object] = {
        "stats": {}, "depth": 0, "b_depth": 0, "dead": 0, "b_dead": 0, "outbox": 0,
        "workers": 0, "feeders": {}, "evaluate": 0, "deliver": 0, "deliver_retry": 0,
        "history": 0,
    }  # fmt: skip
    values.update(overrides)
    return list(values.values())


def test_backlog_is_accepted_minus_calc_minus_dead_plus_outbox():
    counters = {
        ledger.INGEST_ACCEPTED: 1000, ledger.CALC_TICKS: 600, ledger.CALC_DEAD_TICKS: 100,
        ledger.OUTBOX_TICKS: 250,
    }  # fmt: skip
    assert backlog_ticks(counters) == 1000 - 600 - 100 + 250
    assert backlog_ticks({}) == 0


def test_backlog_parts_never_go_negative():
    """A counter that ran ahead (a namespace older than the counter) never makes it negative."""
    assert backlog_ticks({ledger.INGEST_ACCEPTED: 10, ledger.CALC_TICKS: 15}) == 0
    assert backlog_ticks({ledger.OUTBOX_TICKS: -3, ledger.INGEST_ACCEPTED: 5}) == 5


def test_gauges_count_the_dead_letters_of_both_queues():
    gauges = shape_gauges(answers(dead=2, b_dead=3), outbox_pending=0)
    assert (gauges.dead_letters_calc, gauges.dead_letters_calc_b) == (2, 3)
    assert gauges.dead_letters == 5


def test_gauges_are_shaped_from_the_raw_answers_in_order():
    stats = {b"ingest_accepted": b"30", b"calc_ticks": b"20", b"outbox_ticks": b"5", b"x": b"?"}
    feeders = {b"f": b"{}"}
    gauges = shape_gauges(
        answers(stats=stats, depth=4, b_depth=1, outbox=2, workers=3, feeders=feeders),
        outbox_pending=1,
    )
    assert gauges == Gauges(
        counters={"ingest_accepted": 30.0, "calc_ticks": 20.0, "outbox_ticks": 5.0},
        queue_depth=4,
        calc_b_depth=1,
        dead_letters_calc=0,
        dead_letters_calc_b=0,
        outbox_entries=2,
        outbox_pending=1,
        workers=3,
        feeder_statuses=feeders,
    )
    assert gauges.backlog_ticks == 15


def test_gauges_carry_the_alert_queues():
    gauges = shape_gauges(answers(evaluate=2, deliver=3, deliver_retry=4, history=5), 0)
    assert gauges.alert_evaluations_waiting == 2
    assert gauges.alert_deliveries_waiting == 7
    assert gauges.alert_history_entries == 5
    assert gauges.alert_deliveries_parked == 0


def test_parked_deliveries_are_parked_minus_unparked():
    stats = {b"alerts_delivery_parked": b"9", b"alerts_delivery_unparked": b"4"}
    assert shape_gauges(answers(stats=stats), 0).alert_deliveries_parked == 5


def test_an_empty_outbox_has_nothing_pending():
    assert shape_gauges(answers(outbox=0), outbox_pending=7).outbox_pending == 0


def test_the_scripts_name_only_ledger_counters():
    """The Lua scripts add to the ledger by field name: every name they use is a ledger constant,
    so renaming a counter in the ledger without the scripts fails here."""
    counters = {v for k, v in vars(ledger).items() if k.isupper() and isinstance(v, str)}
    for name in ("ingest", "outbox_ack", "dead_letter_requeue"):
        used = set(re.findall(r"'([a-z][a-z_]+)'", lua.source(name)))
        assert used, name
        assert used <= counters, (name, used - counters)
