"""Notify tests: the app wired to a real LINE stand-in on an ephemeral port, and signed webhooks."""

from __future__ import annotations

import uuid
from http.cookies import SimpleCookie
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from sqlmodel import Session

from app.core.config import get_settings
from app.roster.models import StaffRole, StaffUser
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from mocks.line.app import sign
from tests.factories import make_municipality
from tests.line_standin import SECRET, TOKEN, StandIn, messaging, sink_server, standin, standin_server

__all__ = ["messaging", "sink_server", "standin", "standin_server"]


@pytest.fixture
def line_app(app: FastAPI, standin: StandIn, session: Session, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The app talking to the stand-in (its background work runs in the test's own transaction,
    through the root conftest's unit of work)."""
    monkeypatch.setenv("TSUNAGU_LINE_API_URL", standin.url)
    monkeypatch.setenv("TSUNAGU_LINE_ACCESS_URL", standin.url)
    monkeypatch.setenv("TSUNAGU_LINE_CHANNEL_SECRET", SECRET)
    monkeypatch.setenv("TSUNAGU_LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    get_settings.cache_clear()
    return app


async def post_events(
    client: httpx.AsyncClient, *events: dict[str, Any], secret: str = SECRET
) -> httpx.Response:
    body = orjson.dumps({"destination": "U" + "0" * 32, "events": list(events)})
    return await client.post(
        "/line/webhook",
        content=body,
        headers={"x-line-signature": sign(secret, body), "content-type": "application/json"},
    )


def sign_in_as(client: httpx.AsyncClient, session: Session, kind: PrincipalKind, principal_id: int) -> str:
    """A live guardian or student session for the client, without a sign-in round trip; its CSRF token."""
    response = Response()
    web_session = web_sessions.start(
        session=session,
        request=Request({"type": "http", "headers": [], "method": "GET", "path": "/"}),
        response=response,
        principal_kind=kind,
        principal_id=principal_id,
    )
    # start() first clears any earlier cookie, then sets the new one: the last header wins.
    cookie: SimpleCookie = SimpleCookie(response.headers.getlist("set-cookie")[-1])
    client.cookies.set(web_sessions.SESSION_COOKIE, cookie[web_sessions.SESSION_COOKIE].value)
    return web_session.csrf_token


def make_notice_staff(session: Session, role: StaffRole = StaffRole.case_worker) -> StaffUser:
    municipality = make_municipality(session)
    assert municipality.id is not None
    staff = StaffUser(
        login=f"notify-{role.value}-{uuid.uuid4().hex[:6]}",
        display_name="テスト職員",
        role=role,
        municipality_id=municipality.id,
    )
    session.add(staff)
    session.flush()
    return staff


def staff_client(client: httpx.AsyncClient, session: Session, role: StaffRole = StaffRole.case_worker) -> str:
    """Sign the client in as municipal staff of ROLE; returns the CSRF token for its forms."""
    staff = make_notice_staff(session, role)
    assert staff.id is not None
    return sign_in_as(client, session, PrincipalKind.staff, staff.id)
