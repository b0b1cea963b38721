"""Alembic is the only source of schema: models and migrations agree, and downgrade works."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import app.models  # noqa: F401
from app.core.db import make_engine, metadata
from app.core.migrate import current_revision, downgrade, head_revision, pending_reason, upgrade


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
