"""Apply the schema migrations (Alembic) to the configured database.

`python -m backend.storage.migrate` is what deploys run before starting the API.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from backend.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")


if __name__ == "__main__":
    upgrade(get_settings())
