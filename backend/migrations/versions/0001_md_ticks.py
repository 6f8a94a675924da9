"""md_ticks: every accepted tick, exactly once (primary key event_id).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "md_ticks",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    # History and candles read one symbol over a time range, newest first.
    op.create_index("ix_md_ticks_symbol_ts", "md_ticks", ["symbol", "ts", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_md_ticks_symbol_ts", table_name="md_ticks")
    op.drop_table("md_ticks")
