"""Write the demo world straight into tsunagu's tables: for the demo, benchmarks and tests.

Once the connectors land, tsunagu's own tables fill only through consented sync from the
stand-ins that serve this same world; this direct path stays for benchmarks and tests. Each
district is one transaction of bulk inserts (app.core.bulk), so memory stays bounded by one
district whatever the number of students.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlmodel import SQLModel

import app.models  # noqa: F401  (every table, so that a wipe also sees the tables that refer to the roster)
from app.core import bulk
from app.core.errors import ConfigurationError, Conflict
from app.core.migrate import pending_reason
from app.core.types import utcnow
from app.roster.models import (
    Guardian,
    GuardianLink,
    Homeroom,
    Municipality,
    School,
    SchoolDay,
    StaffUser,
    Student,
)
from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    Provenance,
    SchoolAidStatus,
    Source,
)
from app.world.generator import WorldSpec, generate
from app.world.rows import Label

SEEDED_TABLES: list[type[SQLModel]] = [
    Municipality,
    School,
    SchoolDay,
    Homeroom,
    Student,
    Guardian,
    GuardianLink,
    StaffUser,
    AttendanceDay,
    MoodCheckin,
    NurseVisit,
    LearningActivity,
    AssignmentSubmission,
    GradeRecord,
    FeeStatus,
    SchoolAidStatus,
    HouseholdInfo,
    BenefitStatus,
]
# Tables whose keys the world assigns; PostgreSQL's sequences must move past them after a load.
KEYED_TABLES: list[type[SQLModel]] = [
    Municipality,
    School,
    Homeroom,
    Student,
    Guardian,
    GuardianLink,
    StaffUser,
]


def is_seeded(engine: Engine) -> bool:
    """Whether the roster holds anything (a municipality or a student)."""
    with engine.connect() as connection:
        return any(
            connection.execute(sa.select(sa.literal(1)).select_from(_table(model)).limit(1)).first()
            is not None
            for model in (Municipality, Student)
        )


def load_world(
    engine: Engine,
    *,
    students: int,
    seed: int,
    force: bool,
    labels_path: Path | None = None,
    progress: bool = False,
    records: bool = True,
) -> dict[str, Any]:
    """Generate the world and write it; refuse a seeded database unless `force` (then wipe it first).

    Returns a JSON-able summary: students, rows per table, seconds. `records=False` writes the roster,
    calendars, guardians and staff only (the demo, where records come in through sync).
    """
    spec = WorldSpec(students=students, seed=seed)
    reason = pending_reason(engine)
    if reason:
        raise ConfigurationError(reason)
    if is_seeded(engine):
        if not force:
            raise Conflict(
                "the database already holds a roster: `tsunagu seed --force` wipes it and seeds again"
            )
        wipe(engine)
    started = time.perf_counter()
    fetched_at = utcnow()
    rows: Counter[str] = Counter()
    labels: list[Label] = []
    with _progress(progress, spec.students) as advance, _indexes_built_after(engine), _checked_after(engine):
        for batch in generate(spec):
            with engine.begin() as connection:
                if connection.dialect.name == "sqlite":
                    # B-tree pages of a district's inserts stay in memory instead of spilling.
                    connection.exec_driver_sql("PRAGMA cache_size = -131072")
                for part in batch.rows:
                    if not records and issubclass(part.table, Provenance):
                        # The demo: school and Myna records reach tsunagu only through a
                        # consented sync from the stand-ins, which serve this same world.
                        continue
                    extra: dict[str, object] = {}
                    if issubclass(part.table, Provenance):
                        extra = {"source": Source.demo_loader, "fetched_at": fetched_at}
                    rows[_table(part.table).name] += bulk.insert(
                        connection, part.table, {**part.columns, **extra}, missing=part.missing
                    )
            labels += batch.labels
            advance(batch.students)
    _move_sequences(engine)
    _analyze(engine)
    if labels_path is not None:
        _write_labels(labels_path, spec, labels)
    return {
        "students": spec.students,
        "seed": spec.seed,
        "school_year": spec.school_year,
        "schools": rows[_table(School).name],
        "rows": dict(sorted(rows.items())),
        "rows_total": sum(rows.values()),
        "labels": len(labels),
        "labels_path": str(labels_path) if labels_path else None,
        "seconds": round(time.perf_counter() - started, 2),
    }


def wipe(engine: Engine) -> None:
    """Empty the seeded tables and every table that refers to them (their rows name seeded people)."""
    tables = _with_dependents({_table(model) for model in SEEDED_TABLES})
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(connection.dialect.identifier_preparer.format_table(t) for t in tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table in tables:
                connection.execute(table.delete())


@contextmanager
def _indexes_built_after(engine: Engine) -> Iterator[None]:
    """Drop the seeded tables' plain (non-unique) indexes while loading and build them afterwards.

    One sorted index build costs far less than keeping every index up to date row by row (about
    a third of the load time on SQLite). The definitions come from the models, the same ones the
    migrations create, and they are rebuilt even when the load fails; a load that was killed
    outright leaves them missing until the next `tsunagu seed --force` builds them again.
    """
    indexes = [index for model in SEEDED_TABLES for index in _table(model).indexes if not index.unique]
    with engine.begin() as connection:
        for index in indexes:
            index.drop(connection, checkfirst=True)
    try:
        yield
    finally:
        with engine.begin() as connection:
            for index in indexes:
                index.create(connection, checkfirst=True)
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA cache_size = -2000")  # back to SQLite's default


@contextmanager
def _checked_after(engine: Engine) -> Iterator[None]:
    """PostgreSQL: drop the source tables' unique and foreign-key constraints while loading, add them after.

    PostgreSQL's advice for populating a database: checking a constraint once over the loaded
    table (a sorted index build, one join) is much cheaper than a check per copied row. Adding
    them back checks every row, so a load that broke one still fails, after the fact. SQLite
    cannot drop a constraint without rebuilding the table, so there the checks stay live.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    constraints = [
        constraint
        for model in SEEDED_TABLES
        if issubclass(model, Provenance)
        for constraint in _table(model).constraints
        if isinstance(constraint, sa.UniqueConstraint | sa.ForeignKeyConstraint)
    ]
    with engine.begin() as connection:
        for constraint in constraints:
            connection.execute(sa.schema.DropConstraint(constraint))
    try:
        yield
    finally:
        with engine.begin() as connection:
            for constraint in constraints:
                connection.execute(sa.schema.AddConstraint(constraint))


def _table(model: type[SQLModel]) -> sa.Table:
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


def _with_dependents(tables: set[sa.Table]) -> set[sa.Table]:
    found = set(tables)
    while True:
        more = {
            t
            for t in SQLModel.metadata.sorted_tables
            if t not in found and any(fk.column.table in found for fk in t.foreign_keys)
        }
        if not more:
            return found
        found |= more


def _analyze(engine: Engine) -> None:
    """PostgreSQL: statistics for the loaded tables now, as its advice for populating a database
    says, rather than whenever autovacuum comes by. Until then the planner took a city's
    tables for a few thousand rows and chose nested loops over them (a screening run straight
    after a seed took several times as long)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for model in SEEDED_TABLES:
            connection.execute(sa.text(f"ANALYZE {_table(model).name}"))


def _move_sequences(engine: Engine) -> None:
    """The world chose the keys of the roster tables; PostgreSQL's id sequences must continue after them."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for model in KEYED_TABLES:
            name = _table(model).name
            connection.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence(:name, 'id'), "  # noqa: S608 - our own table names
                    f"coalesce((SELECT max(id) FROM {name}), 0) + 1, false)"
                ),
                {"name": name},
            )


def _write_labels(path: Path, spec: WorldSpec, labels: list[Label]) -> None:
    """The planted ground truth, for measuring screening rules: one entry per (student, category)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "seed": spec.seed,
        "students": spec.students,
        "school_year": spec.school_year,
        "labels": [label.as_json() for label in labels],
    }
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


@contextmanager
def _progress(show: bool, total: int) -> Iterator[Any]:
    if not show:
        yield lambda _students: None
        return
    columns = (
        TextColumn("デモデータ / seeding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("students"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("seed", total=total)
        yield lambda students: bar.advance(task, students)
