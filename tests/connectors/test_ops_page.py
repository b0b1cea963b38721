"""The operator's sync page lists runs with their counts and errors, for operators only."""

from __future__ import annotations

import re

import httpx
from fastapi import Request, Response
from sqlmodel import Session

from app.core.types import utcnow
from app.roster.models import StaffRole, StaffUser
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.sources.models import Source
from connectors.models import SyncRun, SyncStatus
from tests.staff.conftest import Roster, make_staff, roster

__all__ = ["roster"]


def sign_in(client: httpx.AsyncClient, session: Session, staff: StaffUser) -> None:
    assert staff.id is not None
    response = Response()
    web_sessions.start(
        session=session,
        request=Request({"type": "http", "headers": [], "method": "GET", "path": "/"}),
        response=response,
        principal_kind=PrincipalKind.staff,
        principal_id=staff.id,
    )
    cookies = "; ".join(response.headers.getlist("set-cookie"))
    # start() first clears any earlier session cookie, then sets the new one: take the last.
    token = re.findall(rf"{web_sessions.SESSION_COOKIE}=([^;]*)", cookies)[-1]
    client.cookies.set(web_sessions.SESSION_COOKIE, token)


async def test_operators_see_runs_with_counts_and_errors(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    session.add(
        SyncRun(
            source=Source.school_affairs,
            partition="T-E1",
            status=SyncStatus.partial,
            started_at=utcnow(),
            finished_at=utcnow(),
            fetched=12345,
            inserted=12000,
            quarantined=7,
            errors=["attendance: school_affairs: HTTP 503"],
        )
    )
    session.flush()
    sign_in(client, session, make_staff(session, roster, StaffRole.administrator))
    page = await client.get("/staff/ops/sync", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "12,345" in page.text and "partial" in page.text
    assert "attendance: school_affairs: HTTP 503" in page.text


async def test_a_homeroom_teacher_may_not_open_it(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    sign_in(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    page = await client.get("/staff/ops/sync", headers={"accept": "text/html"})
    assert page.status_code == 403
