"""Browser sessions: a fresh id at sign-in, idle and absolute timeouts, sign-out everywhere, CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from sqlmodel import Session, select

from app.core.deps import SessionDep
from app.core.errors import Unauthorized
from app.core.types import utcnow
from app.sessions import service
from app.sessions.models import PrincipalKind, WebSession


def _current(request: Request, session: SessionDep) -> WebSession:
    web_session = service.resume(session=session, request=request, principal_kind=PrincipalKind.guardian)
    if web_session is None:
        raise Unauthorized("サインインしてください。")
    return web_session


Current = Annotated[WebSession, Depends(_current)]


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    @app.post("/t/sign-in/{principal_id}")
    def sign_in(
        principal_id: int, request: Request, response: Response, session: SessionDep
    ) -> dict[str, str]:
        web_session = service.start(
            session=session,
            request=request,
            response=response,
            principal_kind=PrincipalKind.guardian,
            principal_id=principal_id,
        )
        return {"csrf": web_session.csrf_token}

    @app.get("/t/me")
    def me(current: Current) -> dict[str, int]:
        return {"id": current.principal_id}

    @app.post("/t/form")
    async def form(request: Request, current: Current) -> dict[str, str]:
        await service.verify_form_csrf(request=request, web_session=current)
        return {"ok": "yes"}

    @app.post("/t/sign-out")
    def sign_out(request: Request, response: Response, session: SessionDep) -> dict[str, str]:
        service.end(session=session, request=request, response=response)
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_sign_in_sets_httponly_lax_cookie_and_rotates_id(http: httpx.AsyncClient) -> None:
    first = await http.post("/t/sign-in/7")
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    old = http.cookies[service.SESSION_COOKIE]
    await http.post("/t/sign-in/7")
    assert http.cookies[service.SESSION_COOKIE] != old
    # the old id no longer opens anything
    new = http.cookies[service.SESSION_COOKIE]
    http.cookies.set(service.SESSION_COOKIE, old)
    assert (await http.get("/t/me")).status_code == 401
    http.cookies.set(service.SESSION_COOKIE, new)
    assert (await http.get("/t/me")).json() == {"id": 7}


async def test_idle_and_absolute_timeouts(http: httpx.AsyncClient, session: Session) -> None:
    await http.post("/t/sign-in/8")
    web_session = session.exec(select(WebSession).where(WebSession.principal_id == 8)).one()
    web_session.last_seen_at = utcnow() - service.IDLE_TIMEOUT - timedelta(seconds=1)
    session.add(web_session)
    session.flush()
    assert (await http.get("/t/me")).status_code == 401

    await http.post("/t/sign-in/8")
    latest = session.exec(
        select(WebSession).where(WebSession.principal_id == 8, WebSession.ended_at.is_(None))  # type: ignore[union-attr]
    ).one()
    latest.created_at = utcnow() - service.ABSOLUTE_TIMEOUT - timedelta(seconds=1)
    session.add(latest)
    session.flush()
    assert (await http.get("/t/me")).status_code == 401


async def test_sign_out_and_end_all(http: httpx.AsyncClient, session: Session) -> None:
    await http.post("/t/sign-in/9")
    await http.post("/t/sign-out")
    assert (await http.get("/t/me")).status_code == 401

    await http.post("/t/sign-in/9")
    assert (await http.get("/t/me")).status_code == 200
    ended = service.end_all(session=session, principal_kind=PrincipalKind.guardian, principal_id=9)
    assert ended == 1
    assert (await http.get("/t/me")).status_code == 401


async def test_csrf_missing_or_wrong_is_refused(http: httpx.AsyncClient) -> None:
    csrf = (await http.post("/t/sign-in/10")).json()["csrf"]
    missing = await http.post("/t/form", data={})
    assert missing.status_code == 403
    assert missing.json()["error"] == "forbidden"
    wrong = await http.post("/t/form", data={"csrf_token": csrf[:-1] + "x"})
    assert wrong.status_code == 403
    ok = await http.post("/t/form", data={"csrf_token": csrf})
    assert ok.json() == {"ok": "yes"}


async def test_the_idle_clock_moves_at_commit_at_most_once_a_minute(
    http: httpx.AsyncClient, session: Session
) -> None:
    await http.post("/t/sign-in/9")
    web_session = session.exec(select(WebSession).where(WebSession.principal_id == 9)).one()
    idle = utcnow() - timedelta(minutes=20)
    web_session.last_seen_at = idle
    session.add(web_session)
    session.commit()
    assert (await http.get("/t/me")).status_code == 200
    session.refresh(web_session)
    moved = web_session.last_seen_at
    assert service._aware(moved) > idle + timedelta(minutes=19)  # written by the request's commit
    assert (await http.get("/t/me")).status_code == 200
    session.refresh(web_session)
    assert web_session.last_seen_at == moved  # within the minute: no write at all
