"""Guardian sign-in through the national-ID stand-in: OIDC code + PKCE, then a fresh session."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session, select

from app.core.config import get_settings
from app.roster.models import Guardian
from app.sessions.models import WebSession
from app.world.generator import WorldSpec
from consent import signin
from mocks.national_id.app import create_app as create_national_id
from mocks.world_data import demo_national_id_people
from tests.live_server import live_server


async def _through_login(
    https: httpx.AsyncClient, national_id: str, sub: str = "jp-nid-0001"
) -> httpx.Response:
    """What the browser does: start, pick a resident at the stand-in, come back."""
    started = await https.get("/guardian/sign-in/start", params={"next": "/guardian/"})
    assert started.status_code == 303
    authorize_url = started.headers["location"]
    assert authorize_url.startswith(f"{national_id}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorize_url)
        assert page.status_code == 200 and "加賀 花子" in page.text
        picked = await browser.post(f"{national_id}/authorize", data=query | {"sub": sub})
    assert picked.status_code == 302
    back = urlsplit(picked.headers["location"])
    assert back.path == "/guardian/sign-in/callback"
    return await https.get(f"/guardian/sign-in/callback?{back.query}")


async def test_sign_in_creates_the_guardian_and_a_fresh_http_only_session(
    session: Session, https: httpx.AsyncClient, national_id: str
) -> None:
    https.cookies.set("tsunagu_session", "a-fixated-session-id")
    done = await _through_login(https, national_id)
    https.cookies.delete("tsunagu_session", domain="")
    assert done.status_code == 303 and done.headers["location"] == "/guardian/"
    # The old cookie is cleared first, then the brand-new session is set.
    cookie = [c for c in done.headers.get_list("set-cookie") if c.startswith("tsunagu_session=")][-1]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert not cookie.startswith("tsunagu_session=a-fixated-session-id")
    guardian = session.exec(select(Guardian).where(Guardian.subject == "jp-nid-0001")).one()
    assert (guardian.family_name, guardian.given_name) == ("加賀", "花子")
    assert session.exec(select(WebSession).where(WebSession.principal_id == guardian.id)).first()
    # The second sign-in finds the same guardian.
    await _through_login(https, national_id)
    assert len(session.exec(select(Guardian).where(Guardian.subject == "jp-nid-0001")).all()) == 1


async def test_callback_with_a_forged_state_is_refused(
    session: Session, https: httpx.AsyncClient, national_id: str
) -> None:
    await https.get("/guardian/sign-in/start")
    response = await https.get("/guardian/sign-in/callback", params={"code": "x", "state": "forged"})
    assert response.status_code == 401 and "tsunagu_session" not in response.headers.get("set-cookie", "")


async def test_a_replayed_callback_is_refused(
    session: Session, https: httpx.AsyncClient, national_id: str
) -> None:
    started = await https.get("/guardian/sign-in/start")
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
    async with httpx.AsyncClient() as browser:
        picked = await browser.post(f"{national_id}/authorize", data=query | {"sub": "jp-nid-0002"})
    callback = f"/guardian/sign-in/callback?{urlsplit(picked.headers['location']).query}"
    first = await https.get(callback)
    assert first.status_code == 303
    await https.get("/guardian/sign-in/start")  # a new flow cookie; the old code is spent anyway
    again = await https.get(callback)
    assert again.status_code == 401


async def test_sign_out_needs_the_csrf_token(
    session: Session, https: httpx.AsyncClient, national_id: str
) -> None:
    await _through_login(https, national_id)
    refused = await https.post("/guardian/sign-out", data={})
    assert refused.status_code == 403
    guardian = session.exec(select(Guardian).where(Guardian.subject == "jp-nid-0001")).one()
    web_session = session.exec(select(WebSession).where(WebSession.principal_id == guardian.id)).one()
    signed_out = await https.post("/guardian/sign-out", data={"csrf_token": web_session.csrf_token})
    assert signed_out.status_code == 303
    session.refresh(web_session)
    assert web_session.ended_at is not None


@pytest.fixture
def demo_world_national_id(
    session: Session, settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[Guardian]]]:
    """A seeded demo world's guardians in tsunagu, and the stand-in as `tsunagu run` starts it
    (no people passed: it lists the same world, made from the same spec, not from our database)."""
    monkeypatch.setenv("TSUNAGU_DEMO_STUDENTS", "30")
    monkeypatch.setenv("TSUNAGU_DEMO_SEED", "5")
    demo_national_id_people.cache_clear()
    (district,) = WorldSpec(students=30, seed=5).districts
    (guardian_rows,) = [rows for rows in district.roster_rows() if rows.table is Guardian]
    seeded = [Guardian(**record) for record in guardian_rows.records()]
    session.add_all(seeded)
    session.flush()
    with live_server(create_national_id(redirect_uris=[signin.redirect_uri()])) as url:
        monkeypatch.setenv("TSUNAGU_NATIONAL_ID_URL", url)
        get_settings.cache_clear()
        yield url, seeded
    get_settings.cache_clear()
    demo_national_id_people.cache_clear()


async def test_the_demo_login_offers_the_seeded_guardians_and_finds_them(
    session: Session, https: httpx.AsyncClient, demo_world_national_id: tuple[str, list[Guardian]]
) -> None:
    url, seeded = demo_world_national_id
    chosen = seeded[3]
    assert chosen.subject is not None
    name = f"{chosen.family_name} {chosen.given_name}"
    started = await https.get("/guardian/sign-in/start")
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
    async with httpx.AsyncClient() as browser:
        first_page = await browser.get(started.headers["location"])
        assert f"{seeded[0].family_name} {seeded[0].given_name}" in first_page.text
        searched = await browser.get(f"{url}/authorize", params=query | {"q": chosen.given_name_kana})
        assert name in searched.text and chosen.subject in searched.text
        picked = await browser.post(f"{url}/authorize", data=query | {"sub": chosen.subject})
    done = await https.get(f"/guardian/sign-in/callback?{urlsplit(picked.headers['location']).query}")
    assert done.status_code == 303
    # The seeded guardian signed in; nobody new was created for them.
    assert len(session.exec(select(Guardian).where(Guardian.subject == chosen.subject)).all()) == 1
    assert session.exec(select(WebSession).where(WebSession.principal_id == chosen.id)).first()
