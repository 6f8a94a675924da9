"""Alert rules and their history in PostgreSQL.

Rules: the API's reads and writes (async). A rule is stored as its mirror JSON (`spec`, secrets
included) next to the columns that change without a client's PATCH (`version`, `enabled`,
`updated_at`: a `once` rule disables itself); on read the columns win.

History: written by the flusher (sync) from the records the workers queue in Redis, in batches
that may be written more than once (a flusher that died after COMMIT but before XACK, a claimed
batch), so every statement is idempotent: a firing is inserted once (its `alert_id` and its
`(rule_id, firing_key)` are both unique) and a delivery's state never moves backwards.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from backend.core.alerts.firing import Firing, FiringTick
from backend.core.alerts.history import AlertDelivery, AlertEvent
from backend.core.alerts.records import DeliveryRecord, FiredRecord
from backend.core.alerts.rules import AlertRule
from backend.core.ticks import datetime_to_us, us_to_iso

FINAL_STATUSES = ("delivered", "failed", "dead")

_RULE_COLUMNS = "spec, version, enabled, created_at, updated_at"


def iso(value: datetime) -> str:
    """A stored timestamp as the API writes them everywhere else (UTC, `Z`)."""
    return us_to_iso(datetime_to_us(value))


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _rule(row: Sequence[Any]) -> AlertRule:
    spec, version, enabled, created_at, updated_at = row
    return AlertRule.model_validate(
        spec
        | {
            "version": version,
            "enabled": enabled,
            "created_at": created_at,
            "updated_at": updated_at,
        }
    )


def _spec(rule: AlertRule) -> Jsonb:
    return Jsonb(orjson.loads(rule.mirror_json()))


# --- rules (the API) ------------------------------------------------------------------------------
async def create_rule(conn: psycopg.AsyncConnection[Any], rule: AlertRule) -> None:
    await conn.execute(
        f"INSERT INTO alert_rules (id, symbol, {_RULE_COLUMNS}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            rule.id, rule.symbol, _spec(rule), rule.version, rule.enabled, rule.created_at,
            rule.updated_at,
        ),
    )  # fmt: skip


async def get_rule(
    conn: psycopg.AsyncConnection[Any], rule_id: str, *, for_update: bool = False
) -> AlertRule | None:
    """The rule, or None; `for_update` locks its row until the caller's transaction ends (a
    PATCH reads, merges and writes under it, so two PATCHes cannot both build on version N)."""
    sql = f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE id = %s"
    cur = await conn.execute(sql + (" FOR UPDATE" if for_update else ""), (rule_id,))
    row = await cur.fetchone()
    return _rule(row) if row else None


async def list_rules(
    conn: psycopg.AsyncConnection[Any], symbol: str | None = None
) -> list[AlertRule]:
    """Every rule (of `symbol`, when given), newest first."""
    where, params = ("WHERE symbol = %s", (symbol,)) if symbol is not None else ("", ())
    cur = await conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM alert_rules {where} ORDER BY created_at DESC, id DESC",
        params,
    )
    return [_rule(row) for row in await cur.fetchall()]


async def update_rule(conn: psycopg.AsyncConnection[Any], rule: AlertRule) -> bool:
    """Store `rule` (already at its new version) over the row it replaces (version - 1)."""
    cur = await conn.execute(
        "UPDATE alert_rules SET symbol = %s, spec = %s, version = %s, enabled = %s, "
        "updated_at = %s WHERE id = %s AND version = %s",
        (
            rule.symbol, _spec(rule), rule.version, rule.enabled, rule.updated_at, rule.id,
            rule.version - 1,
        ),
    )  # fmt: skip
    return cur.rowcount == 1


async def delete_rule(conn: psycopg.AsyncConnection[Any], rule_id: str) -> bool:
    cur = await conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,))
    return cur.rowcount == 1


# --- history (the flusher) ------------------------------------------------------------------------
_INSERT_EVENT = (
    "INSERT INTO alert_events (alert_id, rule_id, firing_key, rule_version, rule_name, symbol, "
    "field, condition, value, value2, observed, tick, fired_at, committed_at, test) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
# A `once` rule is done once its firing is written; the version guard keeps a re-written old
# record from disabling a rule the user has since changed (enabled again).
_DISABLE = (
    "UPDATE alert_rules SET enabled = false, version = version + 1, updated_at = %(now)s, "
    "spec = spec || jsonb_build_object('enabled', false, 'version', version + 1) "
    "WHERE id = %(id)s AND enabled AND version <= %(version)s"
)
# The rule as this firing left it, for the mirror: also when the batch is re-written after a
# commit whose mirror write was lost (the UPDATE then changes nothing).
_DISABLED = (
    f"SELECT {_RULE_COLUMNS} FROM alert_rules "
    "WHERE id = %(id)s AND NOT enabled AND version = %(version)s + 1"
)
_CHANNEL_PENDING = (
    "INSERT INTO alert_deliveries (alert_id, channel, status, attempts, updated_at) "
    "VALUES (%s, %s, 'pending', 0, %s) ON CONFLICT DO NOTHING"
)
_FINAL = "('delivered', 'failed', 'dead')"
# Never backwards: a final status stays; otherwise the record with at least as many attempts
# (or a final one) wins, and attempts only grow.
_UPSERT_DELIVERY = (
    "INSERT INTO alert_deliveries AS d (alert_id, channel, status, attempts, last_error, "
    "latency_ms, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (alert_id, channel) DO UPDATE SET status = EXCLUDED.status, "
    "attempts = GREATEST(d.attempts, EXCLUDED.attempts), "
    "last_error = COALESCE(EXCLUDED.last_error, d.last_error), "
    "latency_ms = COALESCE(EXCLUDED.latency_ms, d.latency_ms), updated_at = EXCLUDED.updated_at "
    f"WHERE d.status NOT IN {_FINAL} "
    f"AND (EXCLUDED.status IN {_FINAL} OR EXCLUDED.attempts >= d.attempts)"
)


def _event_row(record: FiredRecord) -> tuple[Any, ...]:
    f = record.firing
    return (
        f.alert_id, f.rule_id, f.firing_key, f.rule_version, f.rule_name, f.symbol, f.field,
        f.condition, f.value, f.value2, f.observed, Jsonb(f.tick.model_dump(mode="json")),
        parse_iso(f.fired_at), parse_iso(record.committed_at), f.test,
    )  # fmt: skip


def write_history(
    conn: psycopg.Connection[Any], records: Sequence[FiredRecord | DeliveryRecord]
) -> list[AlertRule]:
    """Write a batch of history records in ONE transaction, idempotently, in their order.

    Returns the rules this batch disabled (trigger `once`, at their new version), for the
    caller to put into the Redis mirror after the commit.
    """
    disabled: list[AlertRule] = []
    with conn.transaction(), conn.cursor() as cur:
        for record in records:
            if isinstance(record, FiredRecord):
                cur.execute(_INSERT_EVENT, _event_row(record))
                committed = parse_iso(record.committed_at)
                cur.executemany(
                    _CHANNEL_PENDING,
                    [(record.firing.alert_id, c, committed) for c in record.channels],
                )
                if record.disable_rule:
                    which = {
                        "id": record.firing.rule_id,
                        "version": record.firing.rule_version,
                        "now": committed,
                    }
                    cur.execute(_DISABLE, which)
                    cur.execute(_DISABLED, which)
                    row = cur.fetchone()
                    if row is not None:
                        disabled.append(_rule(row))
            else:
                cur.execute(
                    _UPSERT_DELIVERY,
                    (
                        record.alert_id, record.channel, record.status, record.attempts,
                        record.last_error, record.latency_ms, parse_iso(record.at),
                    ),
                )  # fmt: skip
    return disabled


# --- history (the API) ----------------------------------------------------------------------------
_EVENT_COLUMNS = (
    "alert_id::text, rule_id, firing_key, rule_version, rule_name, symbol, field, condition, "
    "value, value2, observed, tick, fired_at, committed_at, test"
)


async def list_events(
    conn: psycopg.AsyncConnection[Any],
    *,
    rule_id: str | None = None,
    symbol: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AlertEvent]:
    """Firings, newest (event time) first, each with its deliveries."""
    where: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("rule_id", "=", rule_id), ("symbol", "=", symbol), ("fired_at", ">=", since),
    ):  # fmt: skip
        if value is not None:
            where.append(f"{column} {op} %s")
            params.append(value)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    cur = await conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM alert_events {clause} "
        "ORDER BY fired_at DESC, committed_at DESC, alert_id LIMIT %s",
        [*params, limit],
    )
    rows = await cur.fetchall()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    cur = await conn.execute(
        "SELECT alert_id::text, channel, status, attempts, last_error, latency_ms, updated_at "
        "FROM alert_deliveries WHERE alert_id = ANY(%s::uuid[]) ORDER BY channel",
        (ids,),
    )
    deliveries: dict[str, list[AlertDelivery]] = defaultdict(list)
    for row in await cur.fetchall():
        alert_id, channel, status, attempts, last_error, latency_ms, updated_at = row
        deliveries[alert_id].append(
            AlertDelivery(
                channel=channel, status=status, attempts=attempts, last_error=last_error,
                latency_ms=latency_ms, updated_at=iso(updated_at),
            )
        )  # fmt: skip
    return [_event(row, deliveries[row[0]]) for row in rows]


def _event(row: Sequence[Any], deliveries: list[AlertDelivery]) -> AlertEvent:
    (
        alert_id, rule_id, firing_key, rule_version, rule_name, symbol, field, condition, value,
        value2, observed, tick, fired_at, committed_at, test,
    ) = row  # fmt: skip
    firing = Firing(
        alert_id=alert_id, rule_id=rule_id, rule_version=rule_version, rule_name=rule_name,
        symbol=symbol, field=field, condition=condition, value=value, value2=value2,
        observed=observed, tick=FiringTick.model_validate(tick), firing_key=firing_key,
        fired_at=iso(fired_at), test=test,
    )  # fmt: skip
    return AlertEvent.model_validate(
        firing.model_dump() | {"committed_at": iso(committed_at), "deliveries": deliveries}
    )
