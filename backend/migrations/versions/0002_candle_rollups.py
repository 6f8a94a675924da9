"""Exact candle rollups (1m, 1h) and code-point ordering of event_id.

Candles are maintained by the flusher in the same transaction that inserts the ticks, from the
rows actually inserted (so a re-written batch changes nothing). Sums are NUMERIC over each
float's shortest exact decimal (`::text::numeric`), so they are exact and independent of the
order and batching in which ticks arrive. event_id uses the "C" collation so that ties break the
same way in SQL as in Python (code-point order).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLLUPS = {"md_candles_1m": "1 minute", "md_candles_1h": "1 hour"}


def _create(table: str) -> None:
    op.create_table(
        table,
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open_eid", sa.Text(collation="C"), nullable=False),
        sa.Column("open_price", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_eid", sa.Text(collation="C"), nullable=False),
        sa.Column("close_price", sa.Double(), nullable=False),
        sa.Column("volume", sa.Numeric(), nullable=False),
        sa.Column("notional", sa.Numeric(), nullable=False),
        sa.Column("trades", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "bucket"),
    )


def upgrade() -> None:
    op.execute('ALTER TABLE md_ticks ALTER COLUMN event_id TYPE text COLLATE "C"')
    for table, width in ROLLUPS.items():
        _create(table)
        op.execute(
            f"""
            INSERT INTO {table} SELECT symbol, date_bin('{width}', ts, 'epoch') AS bucket,
              (array_agg(ts ORDER BY ts, event_id))[1],
              (array_agg(event_id ORDER BY ts, event_id))[1],
              (array_agg(price ORDER BY ts, event_id))[1], max(price), min(price),
              (array_agg(ts ORDER BY ts DESC, event_id DESC))[1],
              (array_agg(event_id ORDER BY ts DESC, event_id DESC))[1],
              (array_agg(price ORDER BY ts DESC, event_id DESC))[1],
              sum(volume::text::numeric),
              sum(price::text::numeric * volume::text::numeric),
              count(*)
            FROM md_ticks GROUP BY 1, 2
            """
        )


def downgrade() -> None:
    for table in ROLLUPS:
        op.drop_table(table)
    op.execute('ALTER TABLE md_ticks ALTER COLUMN event_id TYPE text COLLATE "default"')
