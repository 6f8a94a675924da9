"""Alert rules and their history (firings and each channel's delivery).

`alert_rules.spec` is the rule's mirror JSON (webhook secrets included: the workers sign with
them), so the row and the Redis mirror cannot disagree on a field. `alert_events` is unique on
(rule_id, firing_key): a firing written twice (a redelivered evaluation, a flusher that re-writes
a claimed batch) is one row. There is no foreign key to the rules: deleting a rule keeps its
history. `alert_deliveries` holds the latest state of each channel of each firing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("spec", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("alert_rules_symbol", "alert_rules", ["symbol"])
    op.create_table(
        "alert_events",
        sa.Column("alert_id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("firing_key", sa.Text(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("rule_name", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("value2", sa.Double(), nullable=True),
        sa.Column("observed", sa.Double(), nullable=False),
        sa.Column("tick", postgresql.JSONB(), nullable=False),
        sa.Column("fired_at", _TS, nullable=False),
        sa.Column("committed_at", _TS, nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("rule_id", "firing_key", name="alert_events_rule_firing_key"),
    )
    op.execute("CREATE INDEX alert_events_symbol_fired ON alert_events (symbol, fired_at DESC)")
    op.execute("CREATE INDEX alert_events_rule_fired ON alert_events (rule_id, fired_at DESC)")
    op.execute("CREATE INDEX alert_events_fired ON alert_events (fired_at DESC)")
    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "channel"),
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
