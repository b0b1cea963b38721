"""Consent pages of the staff console: invitation letters by homeroom, and students' open
objections (policy.open_objections) with the counsellor's resolution.

Who may do what follows the roles and reach of `app.staff.access`: letters are printed by a
homeroom teacher for their homeroom and by a school leader for their school; objections are
seen and resolved by the roles that may decide about a child (school leader, SC, SSW, case
worker), for the children within their reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.models import Outcome
from app.core.deps import SessionDep
from app.core.errors import Forbidden, NotFound
from app.roster.models import GuardianLink, Homeroom, School, StaffRole, StaffUser, Student
from app.sessions import service as web_sessions
from app.staff import access
from app.staff.deps import CurrentStaff
from app.staff.service import actor_for
from app.web import TEMPLATE_DIRS
from consent import invitations, policy, service
from consent.scopes import PURPOSE_WORDING
from consent.web import jst

router = APIRouter(prefix="/staff/consent", include_in_schema=False)
templates = Jinja2Templates(
    directory=[
        str(Path(__file__).parent / "templates"),
        str(Path(access.__file__).parent / "templates"),
        *map(str, TEMPLATE_DIRS),
    ]
)
templates.env.globals["PURPOSE_WORDING"] = {p.value: w for p, w in PURPOSE_WORDING.items()}
templates.env.globals["ROLES"] = access.MATRIX
templates.env.filters["jst"] = jst
LETTER_ROLES = frozenset({StaffRole.homeroom_teacher, StaffRole.school_leader})
_NO_HOMEROOM = "その学級は見つかりません。 / No such homeroom."


@dataclass(frozen=True)
class HomeroomLetters:
    school: School
    homeroom: Homeroom
    enrolled: int
    linked: int  # children with at least one guardian linked by code


@dataclass(frozen=True)
class ObjectionView:
    objection: policy.OpenObjection
    student: Student
    homeroom: str | None


def letter_homerooms(*, session: Session, staff: StaffUser) -> list[HomeroomLetters]:
    """The homerooms whose letters this staff member may print, with how many are linked."""
    if staff.role not in LETTER_ROLES:
        raise Forbidden("招待状は担任と学校管理職が印刷します。 / Homeroom teachers and school leaders only.")
    query = select(Homeroom, School).join(School, col(School.id) == Homeroom.school_id)
    if access.rule_for(staff).reach is access.Reach.homeroom:
        query = query.where(Homeroom.id == staff.homeroom_id)
    else:
        latest = (
            select(sa.func.max(Homeroom.school_year))
            .where(Homeroom.school_id == staff.school_id)
            .scalar_subquery()
        )
        query = query.where(Homeroom.school_id == staff.school_id, Homeroom.school_year == latest)
    rows = session.exec(query.order_by(col(Homeroom.grade), col(Homeroom.name))).all()
    ids = [h.id for h, _ in rows]
    enrolled = dict(
        session.exec(
            select(Student.homeroom_id, sa.func.count())
            .where(col(Student.homeroom_id).in_(ids), col(Student.left_on).is_(None))
            .group_by(col(Student.homeroom_id))
        ).all()
    )
    linked_students = (
        select(GuardianLink.student_id).where(col(GuardianLink.verified_at).is_not(None)).distinct()
    )
    linked = dict(
        session.exec(
            select(Student.homeroom_id, sa.func.count())
            .where(
                col(Student.homeroom_id).in_(ids),
                col(Student.left_on).is_(None),
                col(Student.id).in_(linked_students),
            )
            .group_by(col(Student.homeroom_id))
        ).all()
    )
    return [HomeroomLetters(s, h, enrolled.get(h.id, 0), linked.get(h.id, 0)) for h, s in rows]


def print_letters(
    *, session: Session, staff: StaffUser, homeroom_id: int, valid_days: int
) -> tuple[str, bytes]:
    """New codes for one homeroom in reach as one PDF (the old unused codes stop working)."""
    chosen = next(
        (h for h in letter_homerooms(session=session, staff=staff) if h.homeroom.id == homeroom_id), None
    )
    if chosen is None:
        raise NotFound(_NO_HOMEROOM)
    # The PDF stack (fpdf2, fonts, Pillow) is heavy to import and only needed here.
    from consent.letters import render_letters

    letters = invitations.issue_for_homeroom(
        session=session, school=chosen.school, homeroom=chosen.homeroom, valid_days=valid_days
    )
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor_for(session=session, staff=staff),
            action="consent.invitations_issued",
            outcome=Outcome.done,
            detail=f"homeroom:{homeroom_id} letters:{len(letters)} days:{valid_days}",
        ),
    )
    return f"invitations-{chosen.school.code}-{homeroom_id}.pdf", render_letters(letters)


def _may_handle_objections(staff: StaffUser) -> None:
    if not access.rule_for(staff).may_decide:
        raise Forbidden(
            "申し出は、スクールカウンセラー・SSW・学校管理職・こども家庭センターが対応します。"
            " / Only staff who may decide about a child handle objections."
        )


def objections_in_reach(*, session: Session, staff: StaffUser) -> list[ObjectionView]:
    """Students' open objections, oldest first, for the children within this staff member's reach."""
    _may_handle_objections(staff)
    open_ones = policy.open_objections(session=session)
    students = {
        s.id: s
        for s in session.exec(
            select(Student).where(col(Student.id).in_({o.student_id for o in open_ones}))
        ).all()
    }
    homerooms = {
        h.id: h.name
        for h in session.exec(
            select(Homeroom).where(col(Homeroom.id).in_({s.homeroom_id for s in students.values()}))
        ).all()
    }
    return [
        ObjectionView(o, student, homerooms.get(student.homeroom_id))
        for o in open_ones
        if (student := students.get(o.student_id)) is not None
        and access.in_reach(session=session, staff=staff, student=student)
    ]


def resolve_objection(*, session: Session, staff: StaffUser, objection_id: int) -> None:
    _may_handle_objections(staff)
    found = next(
        (
            v
            for v in objections_in_reach(session=session, staff=staff)
            if v.objection.objection_id == objection_id
        ),
        None,
    )
    if found is None:
        raise NotFound("その申し出は見つかりません。 / No such open objection.")
    service.resolve_objection(
        session=session, actor=actor_for(session=session, staff=staff), objection_id=objection_id
    )


def _render(request: Request, name: str, context: dict[str, object]) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/invitations", response_class=HTMLResponse)
def invitations_page(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """招待状の印刷 / Print a homeroom's invitation letters."""
    homerooms = letter_homerooms(session=session, staff=current.staff)
    context = {"current": current, "homerooms": homerooms, "default_days": invitations.DEFAULT_VALID_DAYS}
    return _render(request, "consent/staff_invitations.html", context)


@router.post("/invitations")
def invitations_pdf(
    session: SessionDep,
    current: CurrentStaff,
    homeroom_id: Annotated[int, Form()],
    days: Annotated[int, Form(ge=1, le=90)] = invitations.DEFAULT_VALID_DAYS,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """New codes for the homeroom as one A4 PDF to print."""
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=csrf_token)
    filename, pdf = print_letters(
        session=session, staff=current.staff, homeroom_id=homeroom_id, valid_days=days
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/objections", response_class=HTMLResponse)
def objections_page(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """生徒からの申し出 / Students' open objections: talk with the family, then resolve."""
    views = objections_in_reach(session=session, staff=current.staff)
    return _render(request, "consent/staff_objections.html", {"current": current, "objections": views})


@router.post("/objections/{objection_id}/resolve")
def objection_resolve(
    session: SessionDep,
    current: CurrentStaff,
    objection_id: int,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Record that staff talked with the family: use for that purpose may resume."""
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=csrf_token)
    resolve_objection(session=session, staff=current.staff, objection_id=objection_id)
    return RedirectResponse("/staff/consent/objections", status_code=303)
