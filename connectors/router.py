"""Connector pages: the operators' sync runs, the quarantine and identity reviews a person decides,
and the guardian's Myna Portal link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from app.core.config import get_settings
from app.core.deps import SessionDep
from app.core.errors import Forbidden
from app.roster.models import StaffRole, StaffUser
from app.sessions import service as web_sessions
from app.staff.deps import CurrentStaff, SignedIn
from app.web import TEMPLATE_DIRS
from connectors import myna, review, service
from connectors.tokens import unseal
from consent.deps import CurrentGuardian

router = APIRouter(prefix="/staff/ops", include_in_schema=False)
templates = Jinja2Templates(
    directory=[
        str(Path(__file__).parent / "templates"),
        str(Path(__file__).resolve().parents[1] / "app" / "staff" / "templates"),
        *map(str, TEMPLATE_DIRS),
    ]
)
# Operating the connectors is configuration work: it shows counts, never a child's data.
OPERATORS = {StaffRole.administrator, StaffRole.school_leader, StaffRole.case_worker}


@router.get("/sync", response_class=HTMLResponse)
def sync_runs(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """同期の記録 / Recent sync runs with their counts and errors."""
    if current.staff.role not in OPERATORS:
        raise Forbidden("この画面は運用担当者のみ利用できます。 / Operators only.")
    runs = service.recent_runs(session=session)
    return _page(
        request,
        "connectors/sync_runs.html",
        {
            "current": current,
            "runs": runs,
            "open": service.open_counts(session=session),
            "may_decide": review.may_decide(current.rule),
        },
    )


def _decider(current: SignedIn) -> StaffUser:
    if not review.may_decide(current.rule):
        raise Forbidden("この画面は守秘義務のある市の担当者のみ利用できます。 / Municipal case workers only.")
    return current.staff


def _page(request: Request, name: str, context: dict[str, object]) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/quarantine", response_class=HTMLResponse)
def quarantine_list(
    request: Request, session: SessionDep, current: CurrentStaff, done: str = ""
) -> HTMLResponse:
    """隔離されたレコード / Quarantined records: the raw record, the reason, re-process or dismiss."""
    staff = _decider(current)
    items = review.open_quarantine(session=session, staff=staff)
    return _page(request, "connectors/quarantine.html", {"current": current, "items": items, "done": done})


@router.post("/quarantine/{record_id}/reprocess")
async def quarantine_reprocess(
    request: Request, session: SessionDep, current: CurrentStaff, record_id: int
) -> RedirectResponse:
    staff = _decider(current)
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    outcome = await run_in_threadpool(review.reprocess, session=session, staff=staff, record_id=record_id)
    return RedirectResponse(f"/staff/ops/quarantine?{urlencode({'done': outcome.message})}", status_code=303)


@router.post("/quarantine/{record_id}/dismiss")
async def quarantine_dismiss(
    request: Request, session: SessionDep, current: CurrentStaff, record_id: int
) -> RedirectResponse:
    staff = _decider(current)
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    await run_in_threadpool(review.dismiss, session=session, staff=staff, record_id=record_id)
    return RedirectResponse("/staff/ops/quarantine?done=dismissed", status_code=303)


@router.get("/reviews", response_class=HTMLResponse)
def review_list(request: Request, session: SessionDep, current: CurrentStaff) -> HTMLResponse:
    """本人確認の確認待ち / Identity matches a person decides."""
    staff = _decider(current)
    items = review.open_reviews(session=session, staff=staff)
    return _page(request, "connectors/reviews.html", {"current": current, "items": items})


@router.post("/reviews/{review_id}/decide")
async def review_decide(
    request: Request,
    session: SessionDep,
    current: CurrentStaff,
    review_id: int,
    student: Annotated[str, Form()],
) -> RedirectResponse:
    """The child the record is about, or `none`: a person's decision, never a guess."""
    staff = _decider(current)
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    chosen = None if student == "none" else int(student) if student.isdigit() else -1
    await run_in_threadpool(
        review.decide, session=session, staff=staff, review_id=review_id, student_id=chosen
    )
    return RedirectResponse("/staff/ops/reviews", status_code=303)


guardian_router = APIRouter(prefix="/guardian/myna", include_in_schema=False)


def _callback_uri() -> str:
    return f"{get_settings().public_base_url}/guardian/myna/callback"


@guardian_router.get("", response_class=HTMLResponse)
def myna_page(
    request: Request, session: SessionDep, current: CurrentGuardian, linked: int = 0
) -> HTMLResponse:
    """マイナポータル連携 / Link Myna Portal for a child."""
    children = myna.linkable_children(session=session, guardian_id=current.id)
    return templates.TemplateResponse(
        request,
        "connectors/myna.html",
        {"current": current, "children": children, "categories": myna.CATEGORY_WORDING, "linked": linked},
    )


@guardian_router.post("/link")
async def myna_link(
    request: Request,
    session: SessionDep,
    current: CurrentGuardian,
    student_id: Annotated[int, Form()],
    categories: Annotated[list[str], Form()],
) -> RedirectResponse:
    """Send the guardian to the portal to agree to the chosen categories."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    url = await run_in_threadpool(
        myna.start_link,
        session=session,
        settings=get_settings(),
        guardian_id=current.id,
        student_id=student_id,
        categories=categories,
        redirect_uri=_callback_uri(),
    )
    return RedirectResponse(url, status_code=303)


@guardian_router.get("/callback")
async def myna_callback(
    session: SessionDep,
    current: CurrentGuardian,
    state: str,
    code: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    """Back from the portal: exchange the code and keep the link."""
    link = await run_in_threadpool(myna.pending_link, session=session, state=state, guardian_id=current.id)
    if error is not None or code is None or link.code_verifier is None:
        return RedirectResponse("/guardian/myna?linked=0", status_code=303)
    token = await myna.exchange_code(
        settings=get_settings(),
        code=code,
        code_verifier=unseal(link.code_verifier),
        redirect_uri=_callback_uri(),
    )
    await run_in_threadpool(myna.activate, session=session, link=link, token=token)
    return RedirectResponse("/guardian/myna?linked=1", status_code=303)
