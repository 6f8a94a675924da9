"""Alembic environment: the URL comes from the caller (backend.storage.migrate), never from env."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from backend.storage.models import SQLModel

target_metadata = SQLModel.metadata
url = context.config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
