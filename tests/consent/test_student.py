"""The student's own page: plain words about what is shared, and an objection that stops use
for that purpose at once and asks the counsellor to talk with the family."""

from __future__ import annotations

import re

import httpx
from sqlmodel import Session

from app.audit import service as audit
from consent import invitations, policy
from consent.scopes import Purpose, Scope
from tests.factories import make_grant, make_student


async def _open_page(session: Session, https: httpx.AsyncClient, student_id: int) -> str:
    _, code = invitations.issue(session=session, student_id=student_id, for_student=True)
    session.commit()
    form = await https.get("/student/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = await https.post("/student/sign-in", data={"code": code, "csrf_token": token.group(1)})
    assert signed_in.status_code == 303, signed_in.text[-800:]
    page = await https.get("/student/")
    assert page.status_code == 200
    return page.text


async def test_student_sees_plain_words_and_no_risk_words(session: Session, https: httpx.AsyncClient) -> None:
    grant = make_grant(session, scopes=[Scope.school_mood], purposes=[Purpose.early_support])
    text = await _open_page(session, https, grant.student_id)
    assert "心の天気" in text and "困っていないか早く気づいて" in text
    assert "リスク" not in text and "risk" not in text.lower()


async def test_objection_stops_that_purpose_and_is_recorded(
    session: Session, https: httpx.AsyncClient
) -> None:
    grant = make_grant(
        session, scopes=[Scope.school_attendance], purposes=[Purpose.early_support, Purpose.support_info]
    )
    text = await _open_page(session, https, grant.student_id)
    token = re.search(r'name="csrf_token" value="([^"]+)"', text.split("/student/objections")[1])
    assert token is not None
    sent = await https.post(
        "/student/objections",
        data={"purpose": "early_support", "message": "見られたくない", "csrf_token": token.group(1)},
    )
    assert sent.status_code == 303
    page = await https.get(sent.headers["location"])
    assert "スクールカウンセラーの先生" in page.text
    check = policy.check(
        session=session,
        student_id=grant.student_id,
        scope=Scope.school_attendance,
        purpose=Purpose.early_support,
    )
    assert check.reason == "objection"
    assert policy.check(
        session=session,
        student_id=grant.student_id,
        scope=Scope.school_attendance,
        purpose=Purpose.support_info,
    ).allowed
    [objection] = policy.open_objections(session=session, student_ids=[grant.student_id])
    assert (objection.purpose, objection.message) == (Purpose.early_support, "見られたくない")
    assert audit.verify(session=session).ok


async def test_guardian_codes_do_not_open_a_student_page(session: Session, https: httpx.AsyncClient) -> None:
    student = make_student(session)
    assert student.id is not None
    _, code = invitations.issue(session=session, student_id=student.id)
    session.commit()
    form = await https.get("/student/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    refused = await https.post("/student/sign-in", data={"code": code, "csrf_token": token.group(1)})
    assert refused.status_code == 400
    assert (await https.get("/student/")).status_code == 303
