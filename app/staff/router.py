"""The staff console's pages under /staff/: thin routes over the staff services."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.deps import SessionDep
from app.core.errors import BadRequest
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.staff import accounts, capacity, service, timeline, workflow
from app.staff.deps import CurrentStaff, SignedIn, safe_next
from app.staff.models import (
    OBSERVATION_WORDING,
    SIGN_IN_EVENT_WORDING,
    ObservationCategory,
    SignInEventKind,
)
from app.staff.web import local_today, render
from consent.scopes import SCOPE_WORDING, Scope
from rules.models import ALERT_STATUS_WORDING, CATEGORY_WORDING, OPEN_STATUSES, AlertStatus, Category

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
    accounts.record_event(
        session=session,
        kind=SignInEventKind.signed_out,
        staff=current.staff,
        address=request.client.host if request.client else None,
    )
    return response


@router.get("/sign-ins", response_class=HTMLResponse)
def sign_in_events(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """サインインの記録 / Staff sign-ins, failures, lockouts and sign-outs (administrators)."""
    events = accounts.sign_in_events(session=session, staff=current.staff)
    return render(
        request, "staff/sign_ins.html", {"current": current, "events": events, "kinds": SIGN_IN_EVENT_WORDING}
    )


@router.get("/capacity", response_class=HTMLResponse)
def capacity_form(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """週ごとの確認件数 / A school's weekly review capacity and sampled share."""
    return render(
        request,
        "staff/capacity.html",
        {
            "current": current,
            "schools": capacity.capacities(session=session, staff=current.staff),
            "max_capacity": capacity.MAX_CAPACITY,
            "max_sample": capacity.MAX_SAMPLE_PERCENT,
        },
    )


@router.post("/capacity")
async def capacity_change(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    school_id: Annotated[int, Form()],
    weekly_capacity: Annotated[int, Form()],
    sample_percent: Annotated[int, Form()],
) -> Response:
    """確認件数を変える / Change a school's capacity (audited as a configuration change)."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    capacity.change(
        session=session,
        staff=current.staff,
        school_id=school_id,
        weekly_capacity=weekly_capacity,
        sample_percent=sample_percent,
    )
    return RedirectResponse("/staff/capacity", status_code=303)


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


def _optional_id(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit():
        raise BadRequest("番号が正しくありません。 / Not a valid id.")
    return int(text)


@router.get("/alerts", response_class=HTMLResponse)
def alert_queue(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    category: Category | None = None,
    homeroom: int | None = None,
    assignee: int | None = None,
    school: int | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """アラートの一覧 / The alert queue: a school's weekly review (capacity line, a sample from
    below it, the rest under 'more'), then the other open alerts."""
    found = workflow.queue(
        session=session,
        staff=current.staff,
        today=local_today(),
        statuses=status or sorted(OPEN_STATUSES),
        category=category,
        homeroom_id=homeroom,
        assignee_id=assignee,
        school_id=school,
        page=page,
    )
    filters = {
        "status": status or [],
        "category": category,
        "homeroom": homeroom,
        "assignee": assignee,
        "school": school,
    }
    return render(
        request,
        "staff/alerts.html",
        {
            "current": current,
            "queue": found,
            "filters": filters,
            "page_query": _page_query(filters),
            "homerooms": service.homerooms_in_reach(session=session, staff=current.staff),
            "schools": service.schools_in_reach(session=session, staff=current.staff),
            "statuses": ALERT_STATUS_WORDING,
            "categories": CATEGORY_WORDING,
        },
    )


def _page_query(filters: dict[str, Any]) -> str:
    """The filters as a query string, so the page links keep them."""
    pairs = [("status", status.value) for status in filters["status"]]
    pairs += [(name, str(value)) for name, value in filters.items() if name != "status" and value is not None]
    return urlencode(pairs)


@router.get("/alerts/overdue", response_class=HTMLResponse)
def overdue_list(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """期限超過 / Support actions and case meetings past their date."""
    items = workflow.overdue(session=session, staff=current.staff, today=local_today())
    return render(request, "staff/overdue.html", {"current": current, "items": items})


def _alert_page(
    request: Request, session: SessionDep, current: SignedIn, alert_id: int, name: str
) -> HTMLResponse:
    alert, view = workflow.open_alert(session=session, staff=current.staff, alert_id=alert_id)
    return render(
        request,
        name,
        {
            "current": current,
            "alert": alert,
            "view": view,
            "reasons": workflow.reasons(session=session, alert=alert, view=view),
            "history": workflow.history(session=session, alert=alert),
            "meetings": workflow.meetings(session=session, alert=alert),
            "actions": workflow.actions(session=session, alert=alert),
            "colleagues": workflow.colleagues(session=session, staff=current.staff, alert=alert),
            "resource_names": workflow.resource_names(session=session),
            "next_statuses": workflow.NEXT[alert.status],
            "needs_reason": workflow.NEEDS_REASON,
            "decisions": workflow.DECISIONS,
            "action_statuses": workflow.ACTION_STATUSES,
            "statuses": ALERT_STATUS_WORDING,
            "categories": CATEGORY_WORDING,
            "today": local_today(),
        },
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_detail(request: Request, session: SessionDep, current: CurrentStaff, alert_id: int) -> HTMLResponse:
    """アラートの詳細 / Why the alert fired, what was done, and the next steps."""
    return _alert_page(request, session, current, alert_id, "staff/alert.html")


@router.get("/alerts/{alert_id}/agenda", response_class=HTMLResponse)
def meeting_agenda(
    request: Request, session: SessionDep, current: CurrentStaff, alert_id: int
) -> HTMLResponse:
    """ケース会議の資料 / A printable case-meeting agenda."""
    return _alert_page(request, session, current, alert_id, "staff/agenda.html")


def _back(alert_id: int, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/staff/alerts/{alert_id}{anchor}", status_code=303)


@router.post("/alerts/{alert_id}/status")
async def alert_status(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    alert_id: int,
    expected: Annotated[AlertStatus, Form()],
    to: Annotated[AlertStatus, Form()],
    reason: Annotated[str, Form(max_length=200)] = "",
    meeting_on: Annotated[date | None, Form()] = None,
    participants: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """状態を進める / Move the alert one step."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    workflow.change_status(
        session=session,
        staff=current.staff,
        alert_id=alert_id,
        expected=expected,
        to=to,
        reason=reason,
        meeting_on=meeting_on,
        participants=participants,
    )
    return _back(alert_id)


@router.post("/alerts/{alert_id}/assign")
async def alert_assign(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    alert_id: int,
    assignee: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """担当者を決める / Assign the alert."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    workflow.assign(
        session=session, staff=current.staff, alert_id=alert_id, assignee_id=_optional_id(assignee)
    )
    return _back(alert_id)


@router.post("/alerts/{alert_id}/notes")
async def alert_note(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    alert_id: int,
    body: Annotated[str, Form(min_length=1, max_length=1000)],
) -> Response:
    """メモを残す / Add a note."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    workflow.add_note(session=session, staff=current.staff, alert_id=alert_id, body=body)
    return _back(alert_id, "#history")


@router.post("/alerts/{alert_id}/meetings/{meeting_id}/outcome")
async def meeting_outcome(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    alert_id: int,
    meeting_id: int,
    outcome: Annotated[str, Form(min_length=1, max_length=1000)],
) -> Response:
    """ケース会議の結果 / Record what the case meeting decided."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    workflow.record_meeting_outcome(
        session=session, staff=current.staff, alert_id=alert_id, meeting_id=meeting_id, outcome=outcome
    )
    return _back(alert_id, "#meetings")


@router.post("/alerts/{alert_id}/actions")
async def support_action(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    alert_id: int,
    what: Annotated[str, Form(min_length=1, max_length=300)],
    due_on: Annotated[date, Form()],
    owner: Annotated[str, Form(max_length=12)] = "",
    owner_text: Annotated[str, Form(max_length=64)] = "",
    resource: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """支援を登録する / Plan a support action: who, what, by when."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    workflow.add_support_action(
        session=session,
        staff=current.staff,
        alert_id=alert_id,
        what=what,
        due_on=due_on,
        owner_id=_optional_id(owner),
        owner_text=owner_text,
        resource_id=_optional_id(resource),
        today=local_today(),
    )
    return _back(alert_id, "#actions")


@router.post("/alerts/{alert_id}/actions/{action_id}/done")
async def support_action_done(
    request: Request, session: SessionDep, current: CurrentStaff, alert_id: int, action_id: int
) -> Response:
    """支援を完了にする / Mark a support action done."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    workflow.complete_action(session=session, staff=current.staff, alert_id=alert_id, action_id=action_id)
    return _back(alert_id, "#actions")
