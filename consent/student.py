"""The student's own page (junior-high age): what is shared and why, in plain words, and a
way to object, which stops use for that purpose and asks the school counsellor to talk with
the family. Students open it with a one-time code from school."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select

from app.audit.actors import Actor, ActorKind
from app.core.deps import SessionDep
from app.roster.models import Student
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind, WebSession
from consent import invitations, policy, service
from consent.deps import StudentSignInRequired, WriteSession, safe_student_next
from consent.models import Client, ConsentGrant, GrantStatus
from consent.scopes import Purpose
from consent.web import render, templates

router = APIRouter(prefix="/student", include_in_schema=False)

TALKS_WITH_FAMILY = "スクールカウンセラーの先生"
KID_SCOPES = {
    "school.attendance": "出席・欠席",
    "school.nurse_visits": "保健室に行った記録",
    "school.grades": "成績",
    "school.mood": "心の天気",
    "school.learning": "タブレットの学習の記録",
    "school.fees": "給食費",
    "school.aid": "就学援助",
    "myna.household": "家族の情報",
    "myna.benefits": "手当などの情報",
}
KID_PURPOSES = {
    "early_support": "先生や市の人が、あなたが困っていないか早く気づいて、手伝うため",
    "support_info": "地域の支えのお知らせを、おうちに届けるため",
    "personalised_info": "おうちに合った支えの制度を、おうちの人に案内するため",
}
templates.env.globals |= {
    "KID_SCOPES": KID_SCOPES,
    "KID_PURPOSES": KID_PURPOSES,
    "TALKS_WITH_FAMILY": TALKS_WITH_FAMILY,
}


@dataclass(frozen=True)
class SignedInStudent:
    student: Student
    web_session: WebSession


def signed_in_student(request: Request, session: SessionDep) -> SignedInStudent:
    web_session = web_sessions.resume(session=session, request=request, principal_kind=PrincipalKind.student)
    student = session.get(Student, web_session.principal_id) if web_session else None
    if web_session is None or student is None:
        raise StudentSignInRequired("コードを入れてください / please enter your code")
    return SignedInStudent(student, web_session)


CurrentStudent = Annotated[SignedInStudent, Depends(signed_in_student)]


@dataclass(frozen=True)
class Shared:
    recipient: str
    scopes: list[str]
    purposes: list[str]


def shared_with(*, session: Session, student_id: int) -> list[Shared]:
    grants = session.exec(
        select(ConsentGrant).where(
            ConsentGrant.student_id == student_id, ConsentGrant.status == GrantStatus.active
        )
    ).all()
    items = []
    for grant in grants:
        client = session.get(Client, grant.client_id) if grant.client_id else None
        items.append(
            Shared(
                client.organisation if client else "加賀市・学校", list(grant.scopes), list(grant.purposes)
            )
        )
    return items


def _sign_in_page(
    request: Request, *, next_path: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    carrier = Response()
    token = web_sessions.pre_session_csrf_token(request=request, response=carrier)
    page = render(
        request,
        "consent/student_sign_in.html",
        {"csrf_token": token, "error": error, "next": next_path},
        status_code=status_code,
    )
    for cookie in carrier.headers.getlist("set-cookie"):
        page.headers.append("set-cookie", cookie)
    return page


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str | None = None) -> HTMLResponse:
    """生徒用コードの入力 / A student opens their page with a code from school."""
    return _sign_in_page(request, next_path=safe_student_next(next))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    session: WriteSession,
    throttle: Annotated[invitations.InvitationThrottle, Depends(invitations.invitation_throttle)],
) -> Response:
    """Use the code up and start a student session with a brand-new id."""
    await web_sessions.verify_form_csrf(request=request, web_session=None)
    form = await request.form()
    next_path = safe_student_next(str(form.get("next", "")))
    address = request.client.host if request.client else "unknown"
    try:
        student = invitations.sign_in_student(
            session=session,
            throttle=throttle,
            address=address,
            typed=str(form.get("code", "")),
        )
    except (invitations.InvitationRefused, invitations.TooManyAttempts) as refused:
        return _sign_in_page(
            request, next_path=next_path, error=refused.message, status_code=refused.status_code
        )
    response = RedirectResponse(next_path, status_code=303)
    assert student.id is not None
    web_sessions.start(
        session=session,
        request=request,
        response=response,
        principal_kind=PrincipalKind.student,
        principal_id=student.id,
    )
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, current: CurrentStudent, sent: int = 0) -> HTMLResponse:
    """What is shared about me and why; how to ask for it to stop."""
    assert current.student.id is not None
    shared = shared_with(session=session, student_id=current.student.id)
    purposes = sorted({p for item in shared for p in item.purposes})
    objected = {
        o.purpose.value for o in policy.open_objections(session=session, student_ids=[current.student.id])
    }
    context = {
        "student": current.student,
        "shared": shared,
        "purposes": purposes,
        "objected": objected,
        "sent": bool(sent),
        "csrf_token": current.web_session.csrf_token,
    }
    return render(request, "consent/student.html", context)


@router.post("/objections")
def object_to_purpose(
    session: WriteSession,
    current: CurrentStudent,
    purpose: Annotated[Purpose, Form()],
    message: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """The student objects: use for that purpose stops now; the counsellor talks with the family."""
    web_sessions.verify_csrf(expected=current.web_session.csrf_token, submitted=csrf_token)
    assert current.student.id is not None
    actor = Actor(
        kind=ActorKind.student, ref=f"student:{current.student.id}", organisation="本人 / the student"
    )
    service.raise_objection(
        session=session, actor=actor, student_id=current.student.id, purpose=purpose, message=message or None
    )
    return RedirectResponse("/student/?sent=1", status_code=303)
