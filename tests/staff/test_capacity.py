"""A school's weekly review capacity: set by its leader or an administrator, audited, and used
by the queue at once; everyone else is refused and nothing changes."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session, select

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.roster.models import StaffRole
from app.staff.capacity import CAPACITY_CHANGED
from rules import queue
from tests.staff.conftest import HTML, Roster, csrf_from, make_staff, sign_in_directly


@pytest.mark.parametrize("role", [StaffRole.school_leader, StaffRole.administrator])
async def test_leader_or_administrator_sets_capacity_and_it_is_audited(
    client: httpx.AsyncClient, session: Session, roster: Roster, role: StaffRole
) -> None:
    staff = make_staff(session, roster, role)
    sign_in_directly(client, session, staff)
    form = await client.get("/staff/capacity", headers=HTML)
    assert form.status_code == 200 and roster.school.name in form.text
    assert (roster.other_school.name in form.text) is (role is StaffRole.administrator)
    posted = await client.post(
        "/staff/capacity",
        data={
            "csrf_token": csrf_from(form.text),
            "school_id": str(roster.school.id),
            "weekly_capacity": "25",
            "sample_percent": "30",
        },
        headers=HTML,
    )
    assert posted.status_code == 303
    assert queue.capacity_of(session=session, school_id=roster.school.id or 0) == (25, 0.3, False)
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == CAPACITY_CHANGED)).all()
    assert entry.actor_ref == str(staff.id) and entry.actor_role == role.value and entry.student_id is None
    assert entry.detail == f"school {roster.school.id}: default -> 25/30%"
    assert audit.verify(session=session).ok


@pytest.mark.parametrize(
    ("role", "school", "capacity", "percent", "status"),
    [
        (StaffRole.school_counselor, "school", "5", "20", 403),
        (StaffRole.case_worker, "school", "5", "20", 403),
        (StaffRole.school_leader, "other_school", "5", "20", 404),  # not the leader's school
        (StaffRole.school_leader, "school", "1001", "20", 400),
        (StaffRole.school_leader, "school", "5", "60", 400),
        (StaffRole.school_leader, "school", "-1", "20", 400),
    ],
)
async def test_bad_capacity_changes_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    session: Session,
    roster: Roster,
    role: StaffRole,
    school: str,
    capacity: str,
    percent: str,
    status: int,
) -> None:
    csrf = sign_in_directly(client, session, make_staff(session, roster, role))
    target = getattr(roster, school)
    response = await client.post(
        "/staff/capacity",
        data={
            "csrf_token": csrf,
            "school_id": str(target.id),
            "weekly_capacity": capacity,
            "sample_percent": percent,
        },
        headers=HTML,
    )
    assert response.status_code == status
    assert queue.capacity_of(session=session, school_id=target.id)[2] is True  # still the default
    assert session.exec(select(AuditEntry).where(AuditEntry.action == CAPACITY_CHANGED)).all() == []
    without_csrf = await client.post(
        "/staff/capacity",
        data={"school_id": str(target.id), "weekly_capacity": "5", "sample_percent": "20"},
        headers=HTML,
    )
    assert without_csrf.status_code == 403
