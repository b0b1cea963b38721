"""Consent pages of the staff console: invitation letters by homeroom within reach, and
students' open objections, which staff who may decide resolve (use for the purpose resumes)."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.types import utcnow
from app.roster.models import GuardianLink, StaffRole
from consent import policy
from consent import service as consent_service
from consent.models import InvitationCode, Objection
from consent.scopes import Purpose, Scope
from tests.factories import make_grant, make_guardian
from tests.staff.conftest import Roster, build_roster, make_staff, sign_in_directly

STUDENT = Actor(kind=ActorKind.student, ref="student", organisation="本人")


@pytest.fixture
def roster(session: Session) -> Roster:
    return build_roster(session)


def _codes(session: Session, student_id: int | None) -> list[InvitationCode]:
    return list(
        session.exec(
            select(InvitationCode).where(
                InvitationCode.student_id == student_id, col(InvitationCode.voided_at).is_(None)
            )
        ).all()
    )


async def test_a_homeroom_teacher_prints_letters_for_their_own_homeroom_only(
    session: Session, client: httpx.AsyncClient, roster: Roster
) -> None:
    teacher = make_staff(session, roster, StaffRole.homeroom_teacher)
    csrf = sign_in_directly(client, session, teacher)
    page = await client.get("/staff/consent/invitations")
    assert page.status_code == 200
    assert "5年1組" in page.text and roster.school.name in page.text
    assert f'value="{roster.other_homeroom.id}"' not in page.text
    assert "/staff/consent/invitations" in (await client.get("/staff/")).text  # in the menu

    form = {"homeroom_id": str(roster.homeroom.id), "days": "14", "csrf_token": csrf}
    first = await client.post("/staff/consent/invitations", data=form)
    assert first.status_code == 200 and first.headers["content-type"] == "application/pdf"
    assert "attachment" in first.headers["content-disposition"]
    assert first.content.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b", first.content)) == 1
    [code] = _codes(session, roster.child.id)
    # Printing again voids the first letter's code.
    await client.post("/staff/consent/invitations", data=form)
    [again] = _codes(session, roster.child.id)
    assert again.id != code.id

    assert (
        await client.post("/staff/consent/invitations", data=form | {"csrf_token": ""})
    ).status_code == 403
    elsewhere = form | {"homeroom_id": str(roster.other_homeroom.id)}
    assert (await client.post("/staff/consent/invitations", data=elsewhere)).status_code == 404
    assert _codes(session, roster.classmate_elsewhere.id) == []


async def test_a_school_leader_sees_every_homeroom_of_the_school_with_linked_counts(
    session: Session, client: httpx.AsyncClient, roster: Roster
) -> None:
    guardian = make_guardian(session)
    session.add(
        GuardianLink(guardian_id=guardian.id or 0, student_id=roster.child.id or 0, verified_at=utcnow())
    )
    session.flush()
    leader = make_staff(session, roster, StaffRole.school_leader)
    sign_in_directly(client, session, leader)
    page = await client.get("/staff/consent/invitations")
    assert f'value="{roster.homeroom.id}"' in page.text and f'value="{roster.other_homeroom.id}"' in page.text
    assert f'value="{roster.far_homeroom.id}"' not in page.text
    first_row = page.text[page.text.index("5年1組") :]
    assert re.search(r"<td>1</td><td>1</td>", first_row)  # one enrolled, one linked


async def test_staff_without_letters_or_decisions_are_refused(
    session: Session, client: httpx.AsyncClient, roster: Roster
) -> None:
    nurse = make_staff(session, roster, StaffRole.school_nurse)
    sign_in_directly(client, session, nurse)
    assert (await client.get("/staff/consent/invitations")).status_code == 403
    assert (await client.get("/staff/consent/objections")).status_code == 403


async def test_the_counsellor_sees_objections_in_reach_and_resolving_resumes_use(
    session: Session, client: httpx.AsyncClient, roster: Roster
) -> None:
    grant = make_grant(
        session, student=roster.child, scopes=[Scope.school_mood], purposes=[Purpose.early_support]
    )
    for student in (roster.child, roster.far_child):
        consent_service.raise_objection(
            session=session,
            actor=STUDENT,
            student_id=student.id or 0,
            purpose=Purpose.early_support,
            message="先生に知られたくない",
        )

    def mood_decision() -> policy.Decision:
        return policy.check(
            session=session,
            student_id=grant.student_id,
            scope=Scope.school_mood,
            purpose=Purpose.early_support,
        )

    assert mood_decision().reason == "objection"

    counsellor = make_staff(session, roster, StaffRole.school_counselor)
    csrf = sign_in_directly(client, session, counsellor)
    page = await client.get("/staff/consent/objections")
    assert page.status_code == 200
    assert "山田 花子" in page.text and "先生に知られたくない" in page.text
    assert "佐藤 次郎" not in page.text  # another school's child is out of reach
    assert "/staff/consent/objections" in (await client.get("/staff/")).text
    [mine] = session.exec(select(Objection).where(Objection.student_id == roster.child.id)).all()
    [far] = session.exec(select(Objection).where(Objection.student_id == roster.far_child.id)).all()

    assert (
        await client.post(f"/staff/consent/objections/{far.id}/resolve", data={"csrf_token": csrf})
    ).status_code == 404
    assert (await client.post(f"/staff/consent/objections/{mine.id}/resolve", data={})).status_code == 403
    done = await client.post(f"/staff/consent/objections/{mine.id}/resolve", data={"csrf_token": csrf})
    assert done.status_code == 303
    session.refresh(mine)
    assert mine.resolved_at is not None
    assert mood_decision().allowed
    assert "山田 花子" not in (await client.get("/staff/consent/objections")).text


async def test_a_homeroom_teacher_does_not_handle_objections(
    session: Session, client: httpx.AsyncClient, roster: Roster
) -> None:
    teacher = make_staff(session, roster, StaffRole.homeroom_teacher)
    sign_in_directly(client, session, teacher)
    assert (await client.get("/staff/consent/objections")).status_code == 403
    assert "/staff/consent/objections" not in (await client.get("/staff/")).text
