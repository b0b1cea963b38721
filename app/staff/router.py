"""The staff console's pages under /staff/: thin routes over the staff services."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.deps import SessionDep
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.staff import accounts, service, timeline
from app.staff.deps import CurrentStaff, safe_next
from app.staff.models import OBSERVATION_WORDING, ObservationCategory
from app.staff.web import local_today, render
from consent.scopes import SCOPE_WORDING, Scope

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


@router.get("/children", response_class=HTMLResponse)
def children(request: Request, session: SessionDep, current: CurrentStaff, q: str = "") -> HTMLResponse:
    """児童生徒を探す / Find a child within reach (roster only: no consented data)."""
    found = service.find_children(session=session, staff=current.staff, query=q[:64])
    return render(request, "staff/children.html", {"current": current, "q": q, "children": found})


@router.get("/children/{student_id}", response_class=HTMLResponse)
def child_timeline(
    request: Request, session: SessionDep, current: CurrentStaff, student_id: int, end: date | None = None
) -> HTMLResponse:
    """こどもの経過 / One child's timeline: only what the role and the consent allow."""
    view = service.open_child(session=session, staff=current.staff, student_id=student_id)
    chart = timeline.build(session=session, view=view, end=end or local_today())
    return render(
        request,
        "staff/child.html",
        {
            "current": current,
            "view": view,
            "timeline": chart,
            "svg": timeline.render_svg(chart),
            "observation_categories": OBSERVATION_WORDING,
            "scope_wording": SCOPE_WORDING,
            "Scope": Scope,
        },
    )


@router.post("/children/{student_id}/observations")
async def add_observation(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    student_id: int,
    category: Annotated[ObservationCategory, Form()],
    note: Annotated[str, Form(min_length=1, max_length=400)],
) -> Response:
    """日常所見を記録する / Record a daily observation about a child in reach."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    service.record_observation(
        session=session, staff=current.staff, student_id=student_id, category=category, note=note
    )
    return RedirectResponse(f"/staff/children/{student_id}#observations", status_code=303)
