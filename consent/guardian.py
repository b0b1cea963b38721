"""The guardian's pages under /guardian/: sign-in through the national-ID login, sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.core.config import Mode, get_settings
from app.core.deps import SessionDep
from app.core.errors import NotFound, Unauthorized
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from consent import dashboard, invitations, keys, policy, service, signin
from consent.deps import CurrentGuardian, WriteSession, safe_next
from consent.models import ConsentGrant, ConsentReceipt
from consent.receipts import verify as verify_receipt
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


Throttle = Annotated[invitations.InvitationThrottle, Depends(invitations.invitation_throttle)]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/link", response_class=HTMLResponse)
def link_form(request: Request, current: CurrentGuardian, code: str | None = None) -> HTMLResponse:
    """招待コードの入力 / Enter the school's invitation code (a QR code fills it in)."""
    return render(
        request, "consent/link.html", {"csrf_token": current.csrf_token, "code": code, "error": None}
    )


@router.post("/link", response_class=HTMLResponse)
def link_check(
    request: Request,
    session: WriteSession,
    current: CurrentGuardian,
    throttle: Throttle,
    code: Annotated[str, Form(max_length=64)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> HTMLResponse:
    """Show whose code it is (name and birth date) before anything is linked."""
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=csrf_token)
    try:
        student = invitations.preview(
            session=session, throttle=throttle, guardian_id=current.id, address=_address(request), typed=code
        )
    except (invitations.InvitationRefused, invitations.TooManyAttempts) as refused:
        context = {"csrf_token": current.csrf_token, "code": code, "error": refused.message}
        return render(request, "consent/link.html", context, status_code=refused.status_code)
    return render(
        request,
        "consent/link_confirm.html",
        {"csrf_token": current.csrf_token, "code": code, "student": student},
    )


@router.post("/link/confirm")
def link_confirm(
    request: Request,
    session: WriteSession,
    current: CurrentGuardian,
    throttle: Throttle,
    code: Annotated[str, Form(max_length=64)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Use the code up and link the child to this guardian."""
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=csrf_token)
    try:
        student = invitations.redeem(
            session=session, throttle=throttle, guardian_id=current.id, address=_address(request), typed=code
        )
    except (invitations.InvitationRefused, invitations.TooManyAttempts) as refused:
        context = {"csrf_token": current.csrf_token, "code": code, "error": refused.message}
        return render(request, "consent/link.html", context, status_code=refused.status_code)
    return RedirectResponse(f"/guardian/children/{student.id}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, current: CurrentGuardian) -> HTMLResponse:
    """同意の管理 / The guardian's dashboard: their children."""
    children = dashboard.children(session=session, guardian_id=current.id)
    return render(request, "consent/dashboard.html", {"children": children, "csrf_token": current.csrf_token})


@router.get("/children/{student_id}", response_class=HTMLResponse)
def child_page(
    request: Request, session: SessionDep, current: CurrentGuardian, student_id: int
) -> HTMLResponse:
    """One child: every grant with its receipt, status and deletion records; pause, resume, revoke."""
    child = dashboard.child_of(session=session, guardian_id=current.id, student_id=student_id)
    views = dashboard.grants(session=session, student_id=student_id)
    objections = policy.open_objections(session=session, student_ids=[student_id])
    context = {"child": child, "grants": views, "objections": objections, "csrf_token": current.csrf_token}
    return render(request, "consent/child.html", context)


@router.get("/children/{student_id}/consent", response_class=HTMLResponse)
def city_consent_page(
    request: Request, session: SessionDep, current: CurrentGuardian, student_id: int
) -> HTMLResponse:
    """The city's own consent page: each item and purpose its own toggle, all off."""
    child = dashboard.child_of(session=session, guardian_id=current.id, student_id=student_id)
    context = {
        "child": child,
        "notice": dashboard.city_notice(),
        "csrf_token": current.csrf_token,
        "error": None,
    }
    return render(request, "consent/consent_city.html", context)


@router.post("/children/{student_id}/consent")
async def city_consent(
    request: Request, session: WriteSession, current: CurrentGuardian, student_id: int
) -> Response:
    """Record exactly what was ticked as a new grant, with its signed receipt."""
    form = await request.form()
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=str(form.get("csrf_token", "")))
    if form.get("decision") != "allow":
        return RedirectResponse(f"/guardian/children/{student_id}", status_code=303)
    grant = await run_in_threadpool(
        dashboard.give_city_consent,
        session=session,
        guardian_id=current.id,
        student_id=student_id,
        scopes=[str(v) for v in form.getlist("scope")],
        purposes=[str(v) for v in form.getlist("purpose")],
    )
    return RedirectResponse(f"/guardian/grants/{grant.id}", status_code=303)


def _receipt(
    session: SessionDep, current: CurrentGuardian, grant_id: int
) -> tuple[ConsentGrant, ConsentReceipt]:
    grant = dashboard.grant_of(session=session, guardian_id=current.id, grant_id=grant_id)
    receipt = session.get(ConsentReceipt, grant_id)
    if receipt is None:
        raise NotFound("控えがありません / no receipt")
    return grant, receipt


@router.get("/grants/{grant_id}", response_class=HTMLResponse)
def receipt_page(
    request: Request, session: SessionDep, current: CurrentGuardian, grant_id: int
) -> HTMLResponse:
    """The signed receipt of one grant, readable and downloadable."""
    grant, receipt = _receipt(session, current, grant_id)
    terms = verify_receipt(receipt.jws, jwks=keys.jwks(session=session))
    context = {"grant": grant, "status": service.effective_status(grant), "receipt": receipt, "terms": terms}
    return render(request, "consent/receipt.html", context)


@router.get("/grants/{grant_id}/receipt.jws")
def receipt_file(session: SessionDep, current: CurrentGuardian, grant_id: int) -> Response:
    """The receipt as a file: verify it with `tsunagu receipt verify FILE`."""
    _grant, receipt = _receipt(session, current, grant_id)
    return Response(
        receipt.jws,
        media_type="application/jose",
        headers={
            "Content-Disposition": f'attachment; filename="tsunagu-consent-{grant_id}.jws"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/grants/{grant_id}/action")
def grant_action(
    session: WriteSession,
    current: CurrentGuardian,
    grant_id: int,
    action: Annotated[str, Form(max_length=16)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Pause, resume or withdraw a grant; withdrawal deletes what was obtained under it."""
    web_sessions.verify_csrf(expected=current.csrf_token, submitted=csrf_token)
    grant = dashboard.act(session=session, guardian_id=current.id, grant_id=grant_id, action=action)
    return RedirectResponse(f"/guardian/children/{grant.student_id}", status_code=303)


@router.get("/children/{student_id}/uses", response_class=HTMLResponse)
def uses_page(
    request: Request, session: SessionDep, current: CurrentGuardian, student_id: int
) -> HTMLResponse:
    """Who used the child's data: when, which organisation and role, which item, for what."""
    child = dashboard.child_of(session=session, guardian_id=current.id, student_id=student_id)
    uses = dashboard.uses(session=session, student_id=student_id)
    return render(request, "consent/uses.html", {"child": child, "uses": uses})
