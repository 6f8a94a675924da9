"""md_imports: the chunks of history files already imported.

`python -m tasks.import` writes each chunk of a file's rows and its row here in ONE transaction,
so a re-run (after a crash, or of the same file) knows exactly which chunks are in md_ticks and
skips them; `--force` writes them again, which inserts nothing (ON CONFLICT (event_id)).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "md_imports",
        sa.Column("file_sha256", sa.Text(), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("bad_rows", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column(
            "committed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("file_sha256", "chunk_no"),
    )


def downgrade() -> None:
    op.drop_table("md_imports")
