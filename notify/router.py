"""Notify's HTTP surface: the LINE webhook and the account-link page for guardians and students."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from app.core.deps import SessionDep, SettingsDep, UnitOfWorkDep
from app.core.errors import BadRequest
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind, WebSession
from notify import accounts, webhook
from notify.web import render

router = APIRouter()
LINK_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")


class WebhookAck(BaseModel):
    received: int
    new: int


@router.post(
    "/line/webhook",
    response_model=WebhookAck,
    tags=["line"],
    responses={400: {"description": "missing or wrong x-line-signature, or not a LINE webhook body"}},
)
async def line_webhook(
    request: Request, background: BackgroundTasks, settings: SettingsDep, sessions: UnitOfWorkDep
) -> WebhookAck:
    """LINE からの Webhook / LINE platform events: checked, recorded once, handled after the answer."""
    received, fresh = await webhook.receive(
        body=await request.body(),
        signature=request.headers.get("x-line-signature"),
        settings=settings,
        sessions=sessions,
    )
    background.add_task(webhook.respond, inbox_ids=fresh, settings=settings, sessions=sessions)
    return WebhookAck(received=received, new=len(fresh))


def _signed_in(request: Request, session: SessionDep) -> WebSession | None:
    for kind in (PrincipalKind.guardian, PrincipalKind.student):
        found = web_sessions.resume(session=session, request=request, principal_kind=kind)
        if found is not None:
            return found
    return None


def _checked_token(link_token: str) -> str:
    if not LINK_TOKEN.match(link_token):
        raise BadRequest(
            "連携リンクが正しくありません。LINE からもう一度お試しください。"
            " / This link is not valid; start again from LINE."
        )
    return link_token


def _home(person: WebSession | None) -> str:
    return "/student/" if person and person.principal_kind is PrincipalKind.student else "/guardian/"


@router.get("/line/link", response_class=HTMLResponse, include_in_schema=False)
def link_page(
    request: Request, session: SessionDep, linkToken: str = "", unlinked: bool = False
) -> HTMLResponse:
    """With a token from LINE: confirm linking it to the signed-in guardian or student.
    Without: the signed-in person's LINE links, and a way to remove them."""
    token = _checked_token(linkToken) if linkToken else None
    person = _signed_in(request, session)
    here = f"/line/link?{urlencode({'linkToken': token})}" if token else "/line/link"
    return render(
        request,
        "notify/link.html",
        {
            "person": person,
            "student": person is not None and person.principal_kind is PrincipalKind.student,
            "link_token": token,
            "unlinked": unlinked,
            "guardian_sign_in": f"/guardian/sign-in?next={quote(here, safe='')}",
            "student_sign_in": f"/student/sign-in?next={quote(here, safe='')}",
            "home": _home(person),
            "links": accounts.links_of(
                session=session, principal_kind=person.principal_kind, principal_id=person.principal_id
            )
            if person
            else [],
        },
    )


@router.post("/line/link", include_in_schema=False)
async def start_link(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    link_token: Annotated[str, Form(alias="linkToken")],
) -> Response:
    """Make a nonce for the signed-in person and send them to LINE's account-link dialog."""
    person = _signed_in(request, session)
    await web_sessions.verify_form_csrf(request=request, web_session=person)
    if person is None:
        return RedirectResponse(
            f"/line/link?{urlencode({'linkToken': _checked_token(link_token)})}", status_code=303
        )
    nonce = accounts.start_link(
        session=session, principal_kind=person.principal_kind, principal_id=person.principal_id
    )
    query = urlencode({"linkToken": _checked_token(link_token), "nonce": nonce})
    return RedirectResponse(
        f"{settings.line_access_url.rstrip('/')}/dialog/bot/accountLink?{query}", status_code=303
    )


@router.post("/line/unlink", include_in_schema=False)
async def unlink_all(request: Request, session: SessionDep) -> Response:
    """Remove every LINE link of the signed-in person at once; what needed the link stops too."""
    person = _signed_in(request, session)
    await web_sessions.verify_form_csrf(request=request, web_session=person)
    if person is None:
        return RedirectResponse("/line/link", status_code=303)
    accounts.unlink_person(
        session=session, principal_kind=person.principal_kind, principal_id=person.principal_id
    )
    return RedirectResponse("/line/link?unlinked=1", status_code=303)
