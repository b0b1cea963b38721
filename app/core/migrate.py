"""Schema migrations driven from code (CLI, demo start-up, readiness, tests)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@lru_cache
def head_revision() -> str | None:
    # The scripts on disk do not change while the process runs; /readyz asks on every probe.
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def pending_reason(engine: Engine) -> str | None:
    """None when the database is at head, else why it is not."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    if current is None:
        return f"database has no schema: run `tsunagu db upgrade` (head is {head})"
    return f"database is at {current}, head is {head}: run `tsunagu db upgrade`"
