"""The fault matrix: for each knob, a sync through it and then a clean one.

Afterwards nothing is lost, nothing is duplicated, every bad record sits in quarantine with
its reason (and is resolved once a valid version is stored), and the second run completes
what the first could not.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    FeeStatus,
    GradeRecord,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    SchoolAidStatus,
    Source,
)
from connectors.models import QuarantinedRecord, SyncCursor, SyncStatus
from tests.connectors.conftest import Upstreams
from tests.connectors.upstream import PER_STUDENT, number, school_records

TABLES: dict[str, Any] = {
    "attendance": AttendanceDay,
    "nurse-visits": NurseVisit,
    "grades": GradeRecord,
    "fees": FeeStatus,
    "school-aid": SchoolAidStatus,
    "learning-activity": LearningActivity,
    "submissions": AssignmentSubmission,
    "mood-checkins": MoodCheckin,
}
CONSENTED = 3
STUDENTS = 5

# Paging and drift knobs are aimed at one resource per stand-in, so they bite on records
# (the roster is paged first and would otherwise take them).
PAGING = {"affairs": {"only_resource": "attendance"}, "platform": {"only_resource": "mood-checkins"}}
KNOBS: dict[str, dict[str, Any]] = {
    "latency": {"latency_ms": 30},
    "hang": {"hang_requests": 1, "hang_seconds": 2.5},
    "rate_limited": {"rate_limit_requests": 2, "retry_after_seconds": 1},
    "server_errors": {"server_error_requests": 3},
    "down": {"server_error_requests": 500},
    "truncated_json": {"truncate_requests": 2},
    "token_expiry": {"expire_token_requests": 2},
    "duplicates_across_pages": {"duplicate_across_pages": True},
    "record_moves_while_paging": {"move_during_paging": 1},
    "unknown_field": {"drift": "unknown_field"},
    "missing_field": {"drift": "missing_field"},
    "unknown_code": {"drift": "unknown_code"},
}
QUARANTINING = {"missing_field", "unknown_code"}


def _expected_rows(upstreams: Upstreams) -> None:
    for resource, table in TABLES.items():
        for index in range(STUDENTS):
            expected = PER_STUDENT[resource] if index < CONSENTED else 0
            child = number(upstreams.school, index)
            assert upstreams.count(table, child) == expected, (resource, child)


@pytest.mark.parametrize("knob", list(KNOBS))
async def test_a_sync_through_a_fault_then_a_clean_one_loses_and_duplicates_nothing(
    upstreams: Upstreams, knob: str
) -> None:
    if knob == "hang":
        upstreams.timeout = 1.0  # shorter than the hang, so the request is given up on and retried
    school_records(upstreams.school, STUDENTS, upstreams.data)
    await upstreams.sync([Source.school_affairs])  # the roster first, to have children to consent for
    for index in range(CONSENTED):
        upstreams.grant(number(upstreams.school, index))

    await upstreams.faults(upstreams.affairs_url, **KNOBS[knob], **PAGING["affairs"])
    await upstreams.faults(upstreams.platform_url, **KNOBS[knob], **PAGING["platform"])
    faulty = await upstreams.sync()
    await upstreams.clear()
    clean = await upstreams.sync()

    assert [r.status for r in clean] == [SyncStatus.succeeded, SyncStatus.succeeded], [
        r.errors for r in clean
    ]
    _expected_rows(upstreams)  # nothing lost, nothing duplicated
    with Session(upstreams.engine) as session:
        quarantined = session.exec(
            select(QuarantinedRecord).where(col(QuarantinedRecord.sync_run_id).in_([r.id for r in faulty]))
        ).all()
        cursors = session.exec(select(SyncCursor).where(SyncCursor.partition == upstreams.school)).all()
    assert sum(r.quarantined for r in faulty) == len(quarantined)
    if knob in QUARANTINING:
        assert {q.resource for q in quarantined} == {"attendance", "mood-checkins"}
        assert all(q.reason and q.payload.startswith("{") for q in quarantined)
        # The clean run stored a valid version of every one of them.
        assert all(q.resolved_run_id in {r.id for r in clean} for q in quarantined)
    else:
        assert quarantined == []
    if knob == "unknown_field":
        assert any("schema drift" in e for r in faulty for e in r.errors)
    if knob == "down":
        assert {r.status for r in faulty} == {SyncStatus.failed}
        assert all(r.errors for r in faulty)
    if knob in {"hang", "rate_limited", "server_errors", "truncated_json"}:
        assert sum(r.retries for r in faulty) > 0
    if knob == "duplicates_across_pages":
        assert sum(r.duplicates for r in faulty) > 0
    assert {c.resource for c in cursors} == {"students", *TABLES}


async def test_a_paging_skip_keeps_the_cursor_and_the_next_run_completes(upstreams: Upstreams) -> None:
    """A record that moves while an offset client pages makes it skip one: that run must say so
    and leave its cursor, or the skipped record would be lost for good."""
    school_records(upstreams.school, STUDENTS, upstreams.data)
    await upstreams.sync([Source.school_affairs])
    for index in range(CONSENTED):
        upstreams.grant(number(upstreams.school, index))
    await upstreams.faults(upstreams.affairs_url, move_during_paging=1, only_resource="attendance")
    faulty = await upstreams.sync([Source.school_affairs])
    assert faulty[0].status is SyncStatus.partial
    assert any("paging returned" in e for e in faulty[0].errors)
    with Session(upstreams.engine) as session:
        cursor = session.exec(
            select(SyncCursor).where(
                SyncCursor.partition == upstreams.school, SyncCursor.resource == "attendance"
            )
        ).first()
    assert cursor is None  # never moved: the first fetch was incomplete
    assert upstreams.count(AttendanceDay) == CONSENTED * PER_STUDENT["attendance"] - 1

    await upstreams.sync([Source.school_affairs])
    assert upstreams.count(AttendanceDay) == CONSENTED * PER_STUDENT["attendance"]


async def test_a_malformed_roster_entry_is_quarantined_and_arrives_when_fixed(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 2, upstreams.data)
    broken = number(upstreams.school, 1)
    birth = upstreams.data.roster[upstreams.school][broken].pop("birthDate")
    runs = await upstreams.sync([Source.school_affairs])
    assert runs[0].quarantined == 1
    assert set(upstreams.student_ids()) == {number(upstreams.school, 0)}

    upstreams.data.touch_student(upstreams.school, broken, birthDate=birth)
    await upstreams.sync([Source.school_affairs])
    assert set(upstreams.student_ids()) == {number(upstreams.school, 0), broken}
    with upstreams.engine.connect() as connection:
        open_ = connection.execute(
            sa.select(sa.func.count())
            .select_from(QuarantinedRecord)
            .where(
                col(QuarantinedRecord.record_ref) == broken, col(QuarantinedRecord.resolved_run_id).is_(None)
            )
        ).scalar_one()
    assert open_ == 0
