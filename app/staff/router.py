"""The staff console's pages under /staff/: thin routes over the staff services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.deps import SessionDep
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.staff import accounts
from app.staff.deps import CurrentStaff, safe_next
from app.staff.web import render

router = APIRouter(prefix="/staff", include_in_schema=False)


def _sign_in_page(
    request: Request, *, next_path: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    # The form's CSRF token rides in a cookie (double submit): made first, copied onto the page.
    cookie_carrier = Response()
    token = web_sessions.pre_session_csrf_token(request=request, response=cookie_carrier)
    response = render(
        request,
        "staff/sign_in.html",
        {"next": next_path, "error": error, "demo_accounts": accounts.demo_accounts(), "csrf_token": token},
        status_code=status_code,
    )
    for cookie in cookie_carrier.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", cookie)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str | None = None) -> HTMLResponse:
    """サインイン / The staff sign-in form."""
    return _sign_in_page(request, next_path=safe_next(next))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    session: SessionDep,
    throttle: Annotated[accounts.SignInThrottle, Depends(accounts.sign_in_throttle)],
    login: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=512)] = "/staff/",
) -> Response:
    """Check the password, then start a brand-new staff session."""
    await web_sessions.verify_form_csrf(request=request, web_session=None)
    address = request.client.host if request.client else "unknown"
    try:
        staff = accounts.authenticate(
            session=session, login=login, password=password, address=address, throttle=throttle
        )
    except (accounts.WrongCredentials, accounts.TooManyAttempts) as refusal:
        return _sign_in_page(
            request, next_path=safe_next(next), error=refusal.message, status_code=refusal.status_code
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    assert staff.id is not None
    web_sessions.start(
        session=session,
        request=request,
        response=response,
        principal_kind=PrincipalKind.staff,
        principal_id=staff.id,
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, current: CurrentStaff) -> Response:
    """Sign this browser out."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    response = RedirectResponse("/staff/sign-in", status_code=303)
    web_sessions.end(session=session, request=request, response=response)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, current: CurrentStaff) -> HTMLResponse:
    """The console's front page: who is signed in, and what they can do here."""
    return render(request, "staff/home.html", {"current": current})
