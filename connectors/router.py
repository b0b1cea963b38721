"""Connector pages: the operator's list of sync runs, and the guardian's Myna Portal link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from app.core.config import get_settings
from app.core.deps import SessionDep
from app.core.errors import Forbidden
from app.roster.models import StaffRole
from app.sessions import service as web_sessions
from app.staff.deps import CurrentStaff
from app.web import TEMPLATE_DIRS
from connectors import myna, service
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
    response = templates.TemplateResponse(
        request, "connectors/sync_runs.html", {"current": current, "runs": runs}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


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
