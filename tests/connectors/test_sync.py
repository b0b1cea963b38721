"""Sync end to end against the real stand-ins over loopback: consented data only, idempotent."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.core.db import get_engine
from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    FeeStatus,
    GradeRecord,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    SchoolAidStatus,
)
from connectors.models import SyncCursor, SyncStatus
from consent.scopes import Scope
from tests.connectors.conftest import Upstreams
from tests.connectors.upstream import PER_STUDENT, number, school_records

TABLES = {
    "attendance": AttendanceDay,
    "nurse-visits": NurseVisit,
    "grades": GradeRecord,
    "fees": FeeStatus,
    "school-aid": SchoolAidStatus,
    "learning-activity": LearningActivity,
    "submissions": AssignmentSubmission,
    "mood-checkins": MoodCheckin,
}


async def test_first_sync_stores_the_roster_for_all_and_records_only_for_consent(
    upstreams: Upstreams,
) -> None:
    school_records(upstreams.school, 3, upstreams.data)
    first = await upstreams.sync()
    assert [r.status for r in first] == [SyncStatus.succeeded, SyncStatus.succeeded]
    assert len(upstreams.student_ids()) == 3  # the roster: every child, consent or not
    assert all(upstreams.count(table) == 0 for table in TABLES.values())

    everything, attendance_only = number(upstreams.school, 0), number(upstreams.school, 1)
    upstreams.grant(everything)
    upstreams.grant(attendance_only, [Scope.school_attendance])
    await upstreams.sync()

    for resource, table in TABLES.items():
        assert upstreams.count(table, everything) == PER_STUDENT[resource], resource
        expected = PER_STUDENT[resource] if resource == "attendance" else 0
        assert upstreams.count(table, attendance_only) == expected, resource
        assert upstreams.count(table, number(upstreams.school, 2)) == 0, resource


async def test_a_rerun_writes_nothing_and_asks_only_for_the_overlap(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 4, upstreams.data)
    await upstreams.sync()
    for index in range(4):
        upstreams.grant(number(upstreams.school, index))
    first = await upstreams.sync()
    assert sum(r.inserted for r in first) == 4 * sum(PER_STUDENT.values())

    again = await upstreams.sync()
    assert [r.status for r in again] == [SyncStatus.succeeded] * 2
    assert sum(r.inserted + r.updated + r.deleted for r in again) == 0
    assert sum(r.fetched for r in again) == sum(r.unchanged for r in again)
    with Session(upstreams.engine) as session:
        cursors = session.exec(select(SyncCursor).where(SyncCursor.partition == upstreams.school)).all()
    assert {c.resource for c in cursors} == {"students", *TABLES}
    assert all(c.position is not None for c in cursors)


async def test_a_change_upstream_is_an_update_and_a_tombstone_a_delete(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 2, upstreams.data)
    await upstreams.sync()
    child = number(upstreams.school, 0)
    upstreams.grant(child)
    await upstreams.sync()

    upstreams.data.touch("grades", upstreams.school, f"grades:{child}:0", score=55)
    upstreams.data.touch("attendance", upstreams.school, f"attendance:{child}:1", status="tobedeleted")
    runs = await upstreams.sync()
    assert sum(r.updated for r in runs) == 1
    assert sum(r.deleted for r in runs) == 1
    assert upstreams.count(AttendanceDay, child) == PER_STUDENT["attendance"] - 1
    with Session(upstreams.engine) as session:
        scores = set(session.exec(select(GradeRecord.score).where(GradeRecord.subject == "国語")))
    assert 55 in scores


def test_the_sync_command_fills_the_database_for_consented_children(
    upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    school_records(upstreams.school, 2, upstreams.data)
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", upstreams.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("TSUNAGU_SCHOOL_AFFAIRS_URL", upstreams.affairs_url)
    monkeypatch.setenv("TSUNAGU_SCHOOL_PLATFORM_URL", upstreams.platform_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        roster = CliRunner().invoke(cli, ["sync", "--school", upstreams.school, "--source", "school_affairs"])
        assert roster.exit_code == 0, roster.output
        upstreams.grant(number(upstreams.school, 1), [Scope.school_mood])
        result = CliRunner().invoke(cli, ["sync", "--school", upstreams.school])
    finally:
        get_engine().dispose()  # the command's own engine: close its pooled connections
        get_settings.cache_clear()
        get_engine.cache_clear()
    assert result.exit_code == 0, result.output
    assert "3/3" in result.output  # both schools' runs and Myna Portal's, on the progress bar
    assert upstreams.count(MoodCheckin) == PER_STUDENT["mood-checkins"]
    assert upstreams.count(AttendanceDay) == 0
