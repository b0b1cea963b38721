"""FastAPI dependencies of the guardian's pages: the signed-in guardian, or a way to sign in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import text
from sqlmodel import Session

from app.core.deps import SessionDep
from app.core.errors import Unauthorized
from app.core.handlers import error_response
from app.roster.models import Guardian
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind, WebSession


class GuardianSignInRequired(Unauthorized):
    """No live guardian session: the browser is sent to sign in and brought back after."""


class StudentSignInRequired(Unauthorized):
    """No live student session: the browser is sent to enter the student code."""


@dataclass(frozen=True)
class SignedInGuardian:
    guardian: Guardian
    web_session: WebSession

    @property
    def id(self) -> int:
        assert self.guardian.id is not None
        return self.guardian.id

    @property
    def csrf_token(self) -> str:
        return self.web_session.csrf_token


def optional_guardian(request: Request, session: SessionDep) -> SignedInGuardian | None:
    web_session = web_sessions.resume(session=session, request=request, principal_kind=PrincipalKind.guardian)
    if web_session is None:
        return None
    guardian = session.get(Guardian, web_session.principal_id)
    return SignedInGuardian(guardian, web_session) if guardian else None


def signed_in_guardian(
    current: Annotated[SignedInGuardian | None, Depends(optional_guardian)],
) -> SignedInGuardian:
    if current is None:
        raise GuardianSignInRequired("サインインしてください。 / Please sign in.")
    return current


MaybeGuardian = Annotated[SignedInGuardian | None, Depends(optional_guardian)]
CurrentGuardian = Annotated[SignedInGuardian, Depends(signed_in_guardian)]


# notify's LINE account-link page sends a person to sign in (guardian or student) and back.
LINE_LINK_PAGE = "/line/link"


def _returnable(target: str | None, prefixes: tuple[str, ...]) -> bool:
    return bool(
        target
        and (
            target.startswith(prefixes) or target == LINE_LINK_PAGE or target.startswith(LINE_LINK_PAGE + "?")
        )
        and not target.startswith("//")
        and "\\" not in target
    )


def safe_next(target: str | None) -> str:
    """Only a path on this site under /guardian/, /oauth/ or the LINE link page: ?next= cannot
    send anyone off-site."""
    return target if target and _returnable(target, ("/guardian/", "/oauth/authorize")) else "/guardian/"


def safe_student_next(target: str | None) -> str:
    """Where a student goes after entering their code: their page, or back to the LINE link page."""
    return target if target and _returnable(target, ("/student/",)) else "/student/"


def sign_in_url(next_path: str) -> str:
    return f"/guardian/sign-in?next={quote(safe_next(next_path), safe='')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(GuardianSignInRequired)
    async def _sign_in(request: Request, exc: GuardianSignInRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return error_response(request, 401, exc.code, exc.message)
        # A GET comes back to the same page with its query (the QR code's invitation code).
        query = f"?{request.url.query}" if request.url.query else ""
        target = f"{request.url.path}{query}" if request.method == "GET" else "/guardian/"
        return RedirectResponse(sign_in_url(target), status_code=303)

    @app.exception_handler(StudentSignInRequired)
    async def _student_sign_in(request: Request, exc: StudentSignInRequired) -> Response:
        return RedirectResponse("/student/sign-in", status_code=303)


# A write that changes nothing: SQLite takes its write lock for it all the same.
_TAKE_WRITE_LOCK = text("UPDATE signing_key SET kid = kid WHERE 0")


def writing_session(session: SessionDep) -> Session:
    """The request's session, for a handler that reads and then writes.

    On SQLite a transaction that has read and then writes fails at once with "database is
    locked" when another connection committed in between (WAL snapshot rule; the busy timeout
    does not apply). Taking the write lock with the first statement makes such requests queue
    instead. PostgreSQL needs nothing: row locks (FOR UPDATE) order the writers.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        session.execute(_TAKE_WRITE_LOCK)
    return session


WriteSession = Annotated[Session, Depends(writing_session)]
