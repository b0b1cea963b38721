"""The direct loader on each database: counts, calendar arithmetic in SQL, labels, refusal, wipe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.db import make_engine, metadata
from app.core.errors import ConfigurationError, Conflict
from app.core.migrate import upgrade
from app.roster.models import Student
from app.world.generator import WorldSpec, generate
from app.world.loader import is_seeded, load_world
from consent.models import InvitationCode
from tests.databases import fresh_database

STUDENTS = 240


@pytest.fixture(scope="module")
def seeded(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, dict[str, Any], Path]]:
    directory = tmp_path_factory.mktemp("world")
    with fresh_database(backend, directory) as url:
        engine = make_engine(url)
        upgrade(engine)
        assert not is_seeded(engine)
        labels = directory / "labels.json"
        summary = load_world(engine, students=STUDENTS, seed=7, force=False, labels_path=labels)
        yield engine, summary, labels
        engine.dispose()


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar()


def test_summary_counts_what_the_tables_hold(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    engine, summary, _ = seeded
    assert is_seeded(engine)
    assert summary["students"] == STUDENTS
    expected: dict[str, int] = {}
    for batch in generate(WorldSpec(students=STUDENTS, seed=7)):
        for rows in batch.rows:
            name = rows.table.__table__.name  # type: ignore[attr-defined]
            expected[name] = expected.get(name, 0) + len(rows)
    assert summary["rows"] == expected
    for table, count in expected.items():
        assert scalar(engine, f"SELECT count(*) FROM {table}") == count, table  # noqa: S608
    assert summary["rows_total"] == sum(expected.values())


def test_required_days_in_sql_match_the_school_record(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    """出席しなければならない日数 = 授業日数 − 出席停止・忌引等, from the calendar and the marks."""
    engine, _, _ = seeded
    query = sa.text(
        """
        SELECT s.id,
               (SELECT count(*) FROM school_day d WHERE d.school_id = s.school_id
                  AND d.day >= s.enrolled_on AND (s.left_on IS NULL OR d.day <= s.left_on)) AS school_days,
               (SELECT count(*) FROM attendance_day a
                 WHERE a.student_id = s.id AND a.mark = 'excused') AS excused,
               (SELECT count(*) FROM attendance_day a
                 WHERE a.student_id = s.id AND a.mark = 'absent') AS absent
        FROM student s
        """
    )
    with engine.connect() as connection:
        in_sql = {row.id: (row.school_days, row.excused, row.absent) for row in connection.execute(query)}
    checked = 0
    for batch in generate(WorldSpec(students=STUDENTS, seed=7)):
        for record in batch.attendance:
            for i, key in enumerate(record.student_id.tolist()):
                school_days, excused, absent = in_sql[key]
                assert school_days == record.school_days[i]
                assert school_days - excused == record.required_days[i]
                assert school_days - excused - absent == record.attended_days[i]
                checked += 1
    assert checked == STUDENTS


def test_transfer_students_have_no_rows_before_enrolment(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    engine, _, _ = seeded
    assert scalar(engine, "SELECT count(*) FROM student WHERE transferred_in") > 0
    for table, column in (("attendance_day", "day"), ("mood_checkin", "day"), ("household_info", "as_of")):
        early = scalar(
            engine,
            f"SELECT count(*) FROM {table} t JOIN student s ON s.id = t.student_id "  # noqa: S608
            f"WHERE s.transferred_in AND t.{column} < s.enrolled_on",
        )
        assert early == 0, table


def test_labels_file_points_at_real_students(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    engine, summary, path = seeded
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["seed"] == 7 and document["students"] == STUDENTS
    assert len(document["labels"]) == summary["labels"] > 0
    with Session(engine) as session:
        for label in document["labels"]:
            student = session.get(Student, label["student_id"])
            assert student is not None
            assert student.school_student_id == label["school_student_id"]


def test_values_read_back_as_written(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    """Dates, instants, enums and NULLs written in bulk read back through the ORM as the world made them."""
    engine, _, _ = seeded
    batches = list(generate(WorldSpec(students=STUDENTS, seed=7)))
    from app.sources.models import FeeStatus, NurseVisit

    def key(values: dict[str, Any], when_column: str) -> tuple[Any, ...]:
        when = values[when_column]
        return (values["student_id"], when.replace(tzinfo=None) if hasattr(when, "hour") else when)

    for model, when_column in ((NurseVisit, "visited_at"), (FeeStatus, "month")):
        made = [r for b in batches for rows in b.rows if rows.table is model for r in rows.records()]
        with Session(engine) as session:
            stored = session.exec(select(model)).all()
        assert len(stored) == len(made)
        by_key = {key(r, when_column): r for r in made}
        for row in stored:
            values = row.model_dump()
            original = by_key[key(values, when_column)]
            for name, value in original.items():
                if hasattr(value, "hour"):
                    assert values[name].replace(tzinfo=None) == value.replace(tzinfo=None), name
                else:
                    assert values[name] == value, name


def test_the_schema_is_whole_after_a_load(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    """The loader builds indexes (and on PostgreSQL constraints) after the rows: all must be back."""
    engine, _, _ = seeded
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_a_seeded_database_is_refused_without_force(seeded: tuple[Engine, dict[str, Any], Path]) -> None:
    engine, _, _ = seeded
    with pytest.raises(Conflict, match="--force"):
        load_world(engine, students=10, seed=1, force=False)


def test_force_wipes_and_seeds_again_and_new_rows_get_fresh_ids(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        first = load_world(engine, students=30, seed=2, force=False)
        with Session(engine) as session:  # another domain's row that names a seeded child
            session.add(InvitationCode(student_id=1, code_hash="x", expires_at=datetime.now(UTC)))
            session.commit()
        second = load_world(engine, students=30, seed=2, force=True)
        assert first["rows"] == second["rows"]
        assert scalar(engine, "SELECT count(*) FROM student") == 30
        assert scalar(engine, "SELECT count(*) FROM invitation_code") == 0
        with Session(engine) as session:
            existing = session.exec(select(Student)).first()
            assert existing is not None
            newcomer = Student.model_validate(
                existing.model_dump(exclude={"id"}) | {"school_student_id": "new-1"}
            )
            session.add(newcomer)
            session.commit()
            assert newcomer.id == 31  # the id sequence continues after the world's keys
    finally:
        engine.dispose()


def test_an_unmigrated_database_is_a_clear_error(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        with pytest.raises(ConfigurationError, match="tsunagu db upgrade"):
            load_world(engine, students=10, seed=1, force=False)
    finally:
        engine.dispose()
