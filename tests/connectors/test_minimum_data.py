"""Minimum data: a category no one consented to is never asked for nor stored; nothing before a
consent's data range is asked for or stored; a revoked grant stops the fetch for that child
mid-run; a transfer student's unknown months stay unknown."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, select

from app.audit.actors import Actor, ActorKind
from app.roster.models import Student
from app.sources.models import AttendanceDay, FeeStatus, GradeRecord, MoodCheckin, NurseVisit, SchoolAidStatus
from connectors.models import SyncStatus
from consent import service as consent_service
from consent.models import ConsentGrant, GrantEventKind
from consent.scopes import Scope
from mocks.faults import Asked
from tests.connectors.conftest import Upstreams
from tests.connectors.test_faults import TABLES
from tests.connectors.upstream import PER_STUDENT, number, school_records

RESOURCES_OF: dict[Scope, tuple[str, ...]] = {
    Scope.school_attendance: ("attendance",),
    Scope.school_nurse_visits: ("nurse-visits",),
    Scope.school_grades: ("grades",),
    Scope.school_fees: ("fees",),
    Scope.school_aid: ("school-aid",),
    Scope.school_learning: ("learning-activity", "submissions"),
    Scope.school_mood: ("mood-checkins",),
}
FAMILY = Actor(kind=ActorKind.guardian, ref="guardian:test", organisation="家庭")


@pytest.mark.parametrize("off", list(RESOURCES_OF), ids=lambda s: s.value)
async def test_a_scope_switched_off_is_neither_fetched_nor_stored(upstreams: Upstreams, off: Scope) -> None:
    school_records(upstreams.school, 3, upstreams.data)
    await upstreams.sync()
    for index in range(3):
        upstreams.grant(number(upstreams.school, index), [s for s in RESOURCES_OF if s is not off])
    await upstreams.clear()
    await upstreams.sync()

    asked = await upstreams.asked(upstreams.affairs_url) + await upstreams.asked(upstreams.platform_url)
    for resource, table in TABLES.items():
        if resource in RESOURCES_OF[off]:
            assert upstreams.count(table) == 0, resource
            assert not [a for a in asked if a["resource"] == resource], resource
        else:
            assert upstreams.count(table) == 3 * PER_STUDENT[resource], resource


async def test_school_affairs_is_asked_only_about_consenting_children(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 4, upstreams.data)
    await upstreams.sync()
    consenting = number(upstreams.school, 1)
    upstreams.grant(consenting, [Scope.school_attendance, Scope.school_mood])
    await upstreams.clear()
    runs = await upstreams.sync()

    named = {s for a in await upstreams.asked(upstreams.affairs_url) if a["students"] for s in a["students"]}
    assert named == {consenting}
    # The platform pages whole schools: the other children's mood rows arrived and were dropped.
    assert runs[1].discarded == 3 * PER_STUDENT["mood-checkins"]
    assert upstreams.count(MoodCheckin) == PER_STUDENT["mood-checkins"]
    assert upstreams.count(MoodCheckin, consenting) == PER_STUDENT["mood-checkins"]


# With a data range from 2026-05-12, of tests/connectors/upstream.py's records: the days from
# then on; grades of term 1, the fees of April and May, the school year's aid and the week of
# 5/11 are about earlier days and stay out.
IN_RANGE = {
    "attendance": 2,
    "nurse-visits": 1,
    "grades": 0,
    "fees": 0,
    "school-aid": 0,
    "learning-activity": 1,
    "submissions": 2,
    "mood-checkins": 2,
}


async def test_nothing_before_the_consents_data_range_is_asked_for_or_stored(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 3, upstreams.data)
    await upstreams.sync()
    ranged, whole = number(upstreams.school, 0), number(upstreams.school, 1)
    upstreams.grant(ranged, data_from=date(2026, 5, 12))
    upstreams.grant(whole)
    await upstreams.clear()
    runs = await upstreams.sync()

    for resource, table in TABLES.items():
        assert upstreams.count(table, ranged) == IN_RANGE[resource], resource
        assert upstreams.count(table, whole) == PER_STUDENT[resource], resource
    # School affairs was asked about the ranged child only from the range's first day on.
    asked = [a for a in await upstreams.asked(upstreams.affairs_url) if a["students"]]
    assert {a["data_from"] for a in asked if ranged in a["students"]} == {"2026-05-12"}
    assert {a["data_from"] for a in asked if whole in a["students"]} == {None}
    # The platform pages whole schools: the ranged child's earlier rows arrived and were dropped
    # unstored, with the rows of the child without consent.
    earlier = sum(PER_STUDENT[r] - IN_RANGE[r] for r in ("learning-activity", "submissions", "mood-checkins"))
    unconsented = sum(PER_STUDENT[r] for r in ("learning-activity", "submissions", "mood-checkins"))
    assert runs[1].discarded == earlier + unconsented
    assert {run.status for run in runs} == {SyncStatus.succeeded}


async def test_a_grant_revoked_mid_run_stops_the_fetch_for_that_child(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 3, upstreams.data)
    await upstreams.sync()
    revoking, staying = number(upstreams.school, 0), number(upstreams.school, 1)
    grant = upstreams.grant(revoking)
    upstreams.grant(staying)
    await upstreams.clear()

    def revoke_on_grades(asked: Asked) -> None:
        if asked.resource != "grades" or asked.students is None or revoking not in asked.students:
            return
        with Session(upstreams.engine) as session:
            stored = session.get(ConsentGrant, grant.id)
            assert stored is not None
            consent_service.transition(
                session=session, grant=stored, kind=GrantEventKind.revoked, actor=FAMILY
            )
            session.commit()

    upstreams.affairs.on_request.append(revoke_on_grades)
    await upstreams.sync()

    # The withdrawal deleted what was stored under the grant (the consent service does that in
    # the same transaction); the request that saw it was fetched but never stored; after it the
    # child was never asked about again.
    for table in (AttendanceDay, NurseVisit, GradeRecord, FeeStatus, SchoolAidStatus, MoodCheckin):
        assert upstreams.count(table, revoking) == 0
        assert upstreams.count(table, staying) > 0
    later: list[dict[str, Any]] = [
        a for a in await upstreams.asked(upstreams.affairs_url) if a["resource"] in ("fees", "school-aid")
    ]
    assert later and all(revoking not in a["students"] for a in later)


async def test_blank_is_not_zero_for_a_transfer_student(upstreams: Upstreams) -> None:
    """A child who moved in mid-year keeps the move date, and what the school did not say stays NULL."""
    school_records(upstreams.school, 1, upstreams.data)
    transfer = number(upstreams.school, 0)
    upstreams.data.touch_student(
        upstreams.school,
        transfer,
        metadata={
            **upstreams.data.roster[upstreams.school][transfer]["metadata"],
            "jp.enrolledOn": "2026-05-11",
            "jp.transferredIn": True,
        },
    )
    fees = upstreams.data.records["fees"][upstreams.school][transfer]
    first, second = list(fees)
    for name in ("billedYen", "paidYen", "arrears"):  # the school system did not say
        del fees[first][name]
    upstreams.data.touch("fees", upstreams.school, second, paidYen=None, arrears=None)
    await upstreams.sync()
    upstreams.grant(transfer)
    await upstreams.sync()

    with Session(upstreams.engine) as session:
        student = session.get(Student, upstreams.student_ids()[transfer])
        assert student is not None and student.transferred_in and student.enrolled_on == date(2026, 5, 11)
        unknown = session.exec(
            select(FeeStatus.billed_yen, FeeStatus.paid_yen, FeeStatus.arrears).where(
                FeeStatus.student_id == student.id
            )
        ).all()
    assert sorted((tuple(row) for row in unknown), key=str) == [(4500, None, None), (None, None, None)]
