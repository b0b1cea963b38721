"""Alembic is the only source of schema: models and migrations agree, and downgrade works."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations.batch import BatchOperationsImpl
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, select

import app.models  # noqa: F401
from app.core.db import make_engine, metadata
from app.core.migrate import current_revision, downgrade, head_revision, pending_reason, upgrade
from rules.models import Alert, Signal
from tests.factories import make_student
from tests.staff.conftest import make_alert


def test_upgrade_matches_models_and_downgrade_empties(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        assert pending_reason(engine) is not None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert pending_reason(engine) is None
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
        assert diff == [], f"models and migrations disagree: {diff}"

        downgrade(engine, "base")
        assert current_revision(engine) is None
        leftover = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert leftover == set()

        upgrade(engine)  # and back up again, as an operator rolling forward would
        assert pending_reason(engine) is None
    finally:
        engine.dispose()


def test_app_code_never_creates_schema() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for package in ("app", "consent", "connectors", "rules", "notify", "mocks")
        for path in (root / package).rglob("*.py")
        if "create_all(" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_a_migration_that_copies_a_table_keeps_the_rows_that_name_it(empty_database_url: str) -> None:
    """Dropping a foreign key makes SQLite copy the table (batch mode): an alert that a signal
    names is copied, not refused, and the foreign keys are on again afterwards."""
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, "4d8b2e6f0a17")  # last_run_id still a foreign key
        with Session(engine) as session:
            make_alert(session, make_student(session))  # a run, the alert, a signal, an event
            session.commit()
        upgrade(engine)
        assert pending_reason(engine) is None
        with Session(engine) as session:
            [signal] = session.exec(select(Signal)).all()
            assert session.get_one(Alert, signal.alert_id).student_id == signal.student_id
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                names = connection.exec_driver_sql("SELECT name FROM sqlite_master").scalars().all()
            assert not [name for name in names if name.startswith("_alembic_tmp")]
    finally:
        engine.dispose()


def test_a_failed_migration_leaves_the_schema_as_it_was(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DDL is part of the migration's transaction on both databases: a migration that fails
    after changing one table (on SQLite, copying it) leaves neither the change nor the copy."""
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, "4d8b2e6f0a17")
        before = _schema(engine)
        flush = BatchOperationsImpl.flush
        changed: list[str] = []

        def fails_at_the_second_table(self: BatchOperationsImpl) -> None:
            flush(self)
            changed.append(self.table_name)
            if len(changed) == 2:
                raise RuntimeError("the disk filled up")

        monkeypatch.setattr(BatchOperationsImpl, "flush", fails_at_the_second_table)
        with pytest.raises(RuntimeError, match="disk filled"):
            upgrade(engine)
        monkeypatch.undo()
        assert changed == ["alert", "signal"]
        engine.dispose()
        assert current_revision(engine) == "4d8b2e6f0a17"
        assert _schema(engine) == before
    finally:
        engine.dispose()


def _schema(engine: sa.Engine) -> dict[str, list[str]]:
    """Each table's foreign keys, by name."""
    inspector = inspect(engine)
    return {
        table: sorted(str(key["name"]) for key in inspector.get_foreign_keys(table))
        for table in inspector.get_table_names()
    }
