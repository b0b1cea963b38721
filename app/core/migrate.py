"""Schema migrations driven from code (CLI, demo start-up, readiness, tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

ROOT = Path(__file__).resolve().parents[2]


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with _migrating(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    config = alembic_config()
    with _migrating(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction for the migrations, DDL included. On SQLite, foreign keys are off while they run and
    checked before the commit: batch mode changes a table by copying it, and dropping the old
    copy of a table that others refer to (an alert, which signals name) failed as soon as it
    held a row. SQLite's own procedure for such changes (lang_altertable.html); the setting
    only takes outside a transaction, so it comes first and goes back on after the commit."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # Python's sqlite3 opens a transaction only at the first row written: without
                    # this, the copy's new table stayed behind when a migration failed.
                    connection.exec_driver_sql("BEGIN")
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migrations left rows naming missing rows: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


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
