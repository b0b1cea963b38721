"""The guardian's pages under /guardian/: sign-in through the national-ID login, sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.core.config import Mode, get_settings
from app.core.deps import SessionDep
from app.core.errors import Unauthorized
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from consent import signin
from consent.deps import CurrentGuardian, safe_next
from consent.web import error_page, render

router = APIRouter(prefix="/guardian", include_in_schema=False)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    """サインイン / How a guardian signs in."""
    demo = get_settings().mode is Mode.demo
    return render(request, "consent/sign_in.html", {"next": safe_next(next), "demo": demo})


@router.get("/sign-in/start")
async def sign_in_start(next: str | None = None) -> Response:
    """Send the browser to the national-ID login, remembering the flow in a short cookie."""
    url, flow = await signin.start(next_path=safe_next(next))
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        signin.FLOW_COOKIE,
        flow.to_cookie(),
        max_age=signin.FLOW_TTL_SECONDS,
        httponly=True,
        samesite="lax",
        secure=get_settings().mode is not Mode.demo,
        path="/guardian/sign-in",
    )
    return response


@router.get("/sign-in/callback")
async def sign_in_callback(
    request: Request,
    session: SessionDep,
    code: str | None = None,
    state: str | None = None,
    iss: str | None = None,
) -> Response:
    """Back from the national-ID login: verify, then start a brand-new guardian session."""
    flow = signin.Flow.from_cookie(request.cookies.get(signin.FLOW_COOKIE))
    try:
        identity = await signin.finish(flow=flow, code=code, state=state, iss=iss)
    except Unauthorized as refused:
        return error_page(request, 401, refused.message)
    assert flow is not None
    guardian = await run_in_threadpool(signin.guardian_for, session=session, identity=identity)
    assert guardian.id is not None
    response = RedirectResponse(safe_next(flow.next_path), status_code=303)
    response.delete_cookie(signin.FLOW_COOKIE, path="/guardian/sign-in")
    web_sessions.start(
        session=session,
        request=request,
        response=response,
        principal_kind=PrincipalKind.guardian,
        principal_id=guardian.id,
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, current: CurrentGuardian) -> Response:
    """Sign this browser out."""
    await web_sessions.verify_form_csrf(request=request, web_session=current.web_session)
    response = RedirectResponse("/guardian/sign-in", status_code=303)
    web_sessions.end(session=session, request=request, response=response)
    return response
