"""The operator pages: sync runs with counts and errors (operators), the quarantine and identity
reviews a person decides (municipal case workers: they hold children's records)."""

from __future__ import annotations

import re
from datetime import date

import httpx
import orjson
import pytest
from fastapi import Request, Response
from sqlmodel import Session, select

from app.core.types import utcnow
from app.roster.models import StaffRole, StaffUser, Student
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.sources.models import AttendanceDay, Source
from app.staff.access import MATRIX
from connectors import review
from connectors.models import (
    IdentityReview,
    MynaLink,
    QuarantineClosing,
    QuarantinedRecord,
    ReviewReason,
    ReviewStatus,
    SyncRun,
    SyncStatus,
)
from consent.scopes import Scope
from tests.factories import make_grant, make_guardian
from tests.staff.conftest import HTML, Roster, make_staff, roster, sign_in_directly

__all__ = ["roster"]


def sign_in(client: httpx.AsyncClient, session: Session, staff: StaffUser) -> None:
    assert staff.id is not None
    response = Response()
    web_sessions.start(
        session=session,
        request=Request({"type": "http", "headers": [], "method": "GET", "path": "/"}),
        response=response,
        principal_kind=PrincipalKind.staff,
        principal_id=staff.id,
    )
    cookies = "; ".join(response.headers.getlist("set-cookie"))
    # start() first clears any earlier session cookie, then sets the new one: take the last.
    token = re.findall(rf"{web_sessions.SESSION_COOKIE}=([^;]*)", cookies)[-1]
    client.cookies.set(web_sessions.SESSION_COOKIE, token)


async def test_operators_see_runs_with_counts_and_errors(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    session.add(
        SyncRun(
            source=Source.school_affairs,
            partition="T-E1",
            status=SyncStatus.partial,
            started_at=utcnow(),
            finished_at=utcnow(),
            fetched=12345,
            inserted=12000,
            quarantined=7,
            errors=["attendance: school_affairs: HTTP 503"],
        )
    )
    session.flush()
    sign_in(client, session, make_staff(session, roster, StaffRole.administrator))
    page = await client.get("/staff/ops/sync", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "12,345" in page.text and "partial" in page.text
    assert "attendance: school_affairs: HTTP 503" in page.text


async def test_a_homeroom_teacher_may_not_open_it(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    sign_in(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    page = await client.get("/staff/ops/sync", headers={"accept": "text/html"})
    assert page.status_code == 403


@pytest.mark.parametrize("role", list(StaffRole), ids=lambda r: r.value)
async def test_each_role_reaches_exactly_the_pages_the_matrix_allows(
    client: httpx.AsyncClient, session: Session, roster: Roster, role: StaffRole
) -> None:
    sign_in_directly(client, session, make_staff(session, roster, role))
    operators = {StaffRole.administrator, StaffRole.school_leader, StaffRole.case_worker}
    deciders = {r for r, rule in MATRIX.items() if review.may_decide(rule)}
    assert deciders == {StaffRole.case_worker}
    home = await client.get("/staff/", headers=HTML)
    assert ('href="/staff/ops/sync"' in home.text) is (role in operators)
    for path, allowed in (
        ("/staff/ops/sync", operators),
        ("/staff/ops/quarantine", deciders),
        ("/staff/ops/reviews", deciders),
    ):
        page = await client.get(path, headers=HTML)
        assert page.status_code == (200 if role in allowed else 403), path


def _quarantine(session: Session, roster: Roster, child: Student, reason: str) -> QuarantinedRecord:
    run = SyncRun(source=Source.school_affairs, partition=roster.school.code, status=SyncStatus.partial)
    session.add(run)
    session.flush()
    payload = {
        "id": f"att:{child.school_student_id}:2026-11-18:absent",
        "student": child.school_student_id,
        "status": "active",
        "updatedAt": "2026-11-18T08:00:00+00:00",
        "date": "2026-11-18",
        "mark": "absent",
        "reason": "01",
    }
    record = QuarantinedRecord(
        sync_run_id=run.id or 0,
        source=Source.school_affairs,
        resource="attendance",
        record_ref=payload["id"],
        payload=orjson.dumps(payload).decode(),
        reason=reason,
    )
    session.add(record)
    session.flush()
    return record


async def test_a_case_worker_reprocesses_a_consented_record_and_dismisses_another(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    make_grant(session, student=roster.child, scopes=[Scope.school_attendance])
    stored = _quarantine(session, roster, roster.child, "reason: Input should be '01', '02' (drift)")
    withheld = _quarantine(session, roster, roster.classmate_elsewhere, "mark: Field required")
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.case_worker))

    page = await client.get("/staff/ops/quarantine", headers=HTML)
    assert page.status_code == 200
    assert "Field required" in page.text and "(drift)" in page.text
    assert roster.child.school_student_id in page.text  # the consented child's raw record
    assert roster.classmate_elsewhere.school_student_id not in page.text  # no consent: withheld
    assert f"/staff/ops/quarantine/{withheld.id}/reprocess" not in page.text

    without_csrf = await client.post(f"/staff/ops/quarantine/{stored.id}/reprocess", headers=HTML)
    assert without_csrf.status_code in (400, 403)
    done = await client.post(
        f"/staff/ops/quarantine/{stored.id}/reprocess", data={"csrf_token": csrf}, headers=HTML
    )
    assert done.status_code == 303
    rows = session.exec(select(AttendanceDay).where(AttendanceDay.student_id == roster.child.id)).all()
    assert [(r.day, r.mark.value, r.reason and r.reason.value) for r in rows] == [
        (date(2026, 11, 18), "absent", "illness")
    ]
    dismissed = await client.post(
        f"/staff/ops/quarantine/{withheld.id}/dismiss", data={"csrf_token": csrf}, headers=HTML
    )
    assert dismissed.status_code == 303
    for record, closing in ((stored, QuarantineClosing.reprocessed), (withheld, QuarantineClosing.dismissed)):
        session.refresh(record)
        assert record.closing is closing and record.closed_at is not None
    again = await client.post(
        f"/staff/ops/quarantine/{stored.id}/dismiss", data={"csrf_token": csrf}, headers=HTML
    )
    assert again.status_code == 404  # closed: no longer open
    assert "Nothing waits" in (await client.get("/staff/ops/quarantine", headers=HTML)).text


async def test_a_case_worker_decides_an_identity_review_and_never_a_stranger(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    guardian = make_guardian(session, student=roster.child)
    make_grant(session, student=roster.child, guardian=guardian, scopes=[Scope.myna_household])
    link = MynaLink(guardian_id=guardian.id or 0, student_id=roster.child.id or 0, categories=["household"])
    session.add(link)
    session.flush()
    pending = IdentityReview(
        source=Source.myna_portal,
        record_ref=f"link:{link.id}",
        family_name="山田",
        given_name="はなこ",
        birth_date=date(2014, 5, 1),
        reason=ReviewReason.no_match,
    )
    session.add(pending)
    session.flush()
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.case_worker))

    page = await client.get("/staff/ops/reviews", headers=HTML)
    assert "はなこ" in page.text and f'value="{roster.child.id}"' in page.text
    stranger = await client.post(
        f"/staff/ops/reviews/{pending.id}/decide",
        data={"csrf_token": csrf, "student": str(roster.far_child.id)},
        headers=HTML,
    )
    assert stranger.status_code == 409  # not one of the linking guardian's children
    decided = await client.post(
        f"/staff/ops/reviews/{pending.id}/decide",
        data={"csrf_token": csrf, "student": str(roster.child.id)},
        headers=HTML,
    )
    assert decided.status_code == 303
    session.refresh(pending)
    assert pending.status is ReviewStatus.resolved and pending.resolved_student_id == roster.child.id
    assert pending.decided_by is not None
