"""FastAPI dependencies of the staff console: the signed-in staff member, or a way to sign in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from app.core.deps import SessionDep
from app.core.errors import Unauthorized
from app.core.handlers import error_response, wants_html
from app.core.types import utcnow
from app.roster.models import Municipality, School, StaffUser
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind, WebSession
from app.staff.access import RoleRule, rule_for


class SignInRequired(Unauthorized):
    """No live staff session: a person is sent to the sign-in page, a program gets a 401."""


@dataclass(frozen=True)
class SignedIn:
    staff: StaffUser
    rule: RoleRule
    web_session: WebSession
    school: School | None
    municipality: Municipality | None
    """Held for the request: the session's identity map keeps only what is referenced, and
    `service.actor_for` finds them there rather than asking the database again."""

    @property
    def csrf_token(self) -> str:
        return self.web_session.csrf_token


def signed_in_staff(request: Request, session: SessionDep) -> SignedIn:
    web_session = web_sessions.resume(session=session, request=request, principal_kind=PrincipalKind.staff)
    if web_session is None:
        raise SignInRequired("サインインしてください。 / Please sign in.")
    # The staff member with their school and municipality in one query: every child-data page
    # names them in the audit log (`service.actor_for`), which then finds both in the session.
    found = session.exec(
        select(StaffUser, School, Municipality)
        .outerjoin(School, col(School.id) == StaffUser.school_id)
        .outerjoin(Municipality, col(Municipality.id) == StaffUser.municipality_id)
        .where(StaffUser.id == web_session.principal_id)
    ).first()
    staff, school, municipality = found if found is not None else (None, None, None)
    if staff is None or not staff.is_active:
        # A disabled account's sessions were ended when it was disabled; this closes the gap
        # for a session resumed in the same instant.
        web_session.ended_at = utcnow()
        session.add(web_session)
        raise SignInRequired("このアカウントは利用できません。 / This account is disabled.")
    return SignedIn(
        staff=staff, rule=rule_for(staff), web_session=web_session, school=school, municipality=municipality
    )


CurrentStaff = Annotated[SignedIn, Depends(signed_in_staff)]


def safe_next(target: str | None) -> str:
    """Only a path inside the console: a crafted ?next= cannot send anyone off-site."""
    if target and target.startswith("/staff/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/staff/"


def install(app: FastAPI) -> None:
    """Send a person without a live session to the sign-in page, back to where they were after."""

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if not wants_html(request):
            return error_response(request, 401, exc.code, exc.message)
        target = request.url.path if request.method == "GET" else "/staff/"
        return RedirectResponse(f"/staff/sign-in?next={quote(safe_next(target))}", status_code=303)
