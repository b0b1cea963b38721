"""The guardian's Myna Portal link through tsunagu's pages: choose categories, agree at the
portal, come back; only for a verified child of the signed-in guardian, with CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Request, Response
from sqlmodel import Session, select

from app.core.config import get_settings
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from connectors.models import MynaLink, MynaLinkStatus
from mocks import myna_portal
from mocks.myna_portal import MynaRecords, Resident
from mocks.server import serving
from tests.factories import make_guardian, make_student


@pytest.fixture
def portal_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    data = MynaRecords()
    data.add(Resident("card-1", "テスト 花子", {"household": {"asOf": date(2026, 6, 1), "members": []}}))
    with serving(myna_portal.create_app(data)) as url:
        monkeypatch.setenv("TSUNAGU_MYNA_PORTAL_URL", url)
        monkeypatch.setenv("TSUNAGU_PUBLIC_BASE_URL", "http://testserver")
        get_settings.cache_clear()
        yield url
    get_settings.cache_clear()


def sign_in(client: httpx.AsyncClient, session: Session, guardian_id: int) -> str:
    response = Response()
    web_session = web_sessions.start(
        session=session,
        request=Request({"type": "http", "headers": [], "method": "GET", "path": "/"}),
        response=response,
        principal_kind=PrincipalKind.guardian,
        principal_id=guardian_id,
    )
    cookies = "; ".join(response.headers.getlist("set-cookie"))
    token = re.findall(rf"{web_sessions.SESSION_COOKIE}=([^;]*)", cookies)[-1]
    client.cookies.set(web_sessions.SESSION_COOKIE, token)
    session.commit()  # kept when a refused request rolls its own work back
    return web_session.csrf_token


async def test_a_guardian_links_chosen_categories_for_their_child(
    portal_url: str, client: httpx.AsyncClient, session: Session
) -> None:
    child = make_student(session, given_name="一郎")
    guardian = make_guardian(session, student=child)
    assert guardian.id is not None
    csrf = sign_in(client, session, guardian.id)

    page = await client.get("/guardian/myna", headers={"accept": "text/html"})
    assert page.status_code == 200 and "一郎" in page.text
    sent = await client.post(
        "/guardian/myna/link",
        data={
            "csrf_token": csrf,
            "student_id": str(child.id),
            "categories": ["household", "child_allowance"],
        },
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith(f"{portal_url}/oauth/authorize")
    query = {k: v[0] for k, v in parse_qs(urlsplit(sent.headers["location"]).query).items()}
    assert query["scope"] == "household child_allowance" and query["code_challenge_method"] == "S256"

    async with httpx.AsyncClient() as browser:  # the guardian at the portal, with the test card
        agreed = await browser.post(
            f"{portal_url}/oauth/authorize",
            data={
                **{k: query[k] for k in ("client_id", "redirect_uri", "state", "code_challenge")},
                "resident": "card-1",
                "decision": "allow",
                "categories": ["household"],
            },
        )
    back = urlsplit(agreed.headers["location"])
    assert back.path == "/guardian/myna/callback"
    done = await client.get(f"{back.path}?{back.query}")
    assert done.status_code == 303 and done.headers["location"] == "/guardian/myna?linked=1"
    link = session.exec(select(MynaLink).where(MynaLink.student_id == child.id)).one()
    assert link.status is MynaLinkStatus.active and link.categories == ["household"]
    assert link.access_token is not None and "." not in link.access_token[:6]  # sealed, not the raw token

    replay = await client.get(f"{back.path}?{back.query}")
    assert replay.status_code == 400  # a state works once


async def test_no_link_for_a_child_that_is_not_yours_or_without_csrf(
    portal_url: str, client: httpx.AsyncClient, session: Session
) -> None:
    mine = make_student(session)
    someone_elses = make_student(session)
    guardian = make_guardian(session, student=mine)
    assert guardian.id is not None
    csrf = sign_in(client, session, guardian.id)
    refused = await client.post(
        "/guardian/myna/link",
        data={"csrf_token": csrf, "student_id": str(someone_elses.id), "categories": ["household"]},
    )
    assert refused.status_code == 403
    forged = await client.post(
        "/guardian/myna/link",
        data={"csrf_token": "wrong", "student_id": str(mine.id), "categories": ["household"]},
    )
    assert forged.status_code == 403
    assert session.exec(select(MynaLink).where(MynaLink.guardian_id == guardian.id)).all() == []
