"""The guardian's whole path in a real browser (Debian Chromium): sign in at the national-ID
stand-in, enter the invitation code, approve two toggles for a partner, see and download the
receipt, see the data-use list, withdraw, and see the partner API refuse."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from app.core.config import get_settings
from app.core.db import get_engine, make_engine, session_scope
from app.core.migrate import upgrade
from app.main import create_app
from consent import clients, invitations, receipts, signin
from consent.scopes import Purpose, Scope
from mocks.national_id.app import create_app as create_national_id
from tests.consent.people import RESIDENTS
from tests.e2e.chromium import needs_chromium
from tests.factories import make_student
from tests.live_server import live_server

pytestmark = needs_chromium
PARTNER_CALLBACK = "https://partner.example/callback"


@dataclass(frozen=True)
class Site:
    base: str
    code: str
    child_id: int
    client_id: str
    secret: str


@pytest.fixture
def site(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("TSUNAGU_MODE", "demo")
    get_settings.cache_clear()
    get_engine.cache_clear()
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        child = make_student(session, family_name="加賀", given_name="陽菜")
        assert child.id is not None
        _, code = invitations.issue(session=session, student_id=child.id)
        client, secret = clients.add_client(
            session=session,
            client_id="kodomo-shokudo",
            name="こども食堂ネットワーク",
            organisation="NPO法人こども食堂ネットワーク加賀",
            redirect_uris=[PARTNER_CALLBACK],
            scopes=list(Scope),
            purposes=list(Purpose),
        )
        ids = (code, child.id, client.client_id, secret)
    engine.dispose()
    with live_server(create_app()) as base:
        # The issuer, the sign-in callback and the stand-in all need the port just chosen.
        monkeypatch.setenv("TSUNAGU_PUBLIC_BASE_URL", base)
        get_settings.cache_clear()
        standin = create_national_id(redirect_uris=[signin.redirect_uri()], people=RESIDENTS)
        with live_server(standin) as national_id:
            monkeypatch.setenv("TSUNAGU_NATIONAL_ID_URL", national_id)
            get_settings.cache_clear()
            yield Site(base, *ids)
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


def _partner_authorization_url(site: Site) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": site.client_id,
        "redirect_uri": PARTNER_CALLBACK,
        "scope": "school.attendance school.mood purpose:early_support purpose:support_info",
        "state": "e2e",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{site.base}/oauth/authorize?{urlencode(query)}", verifier


def test_the_whole_guardian_path(site: Site, browser: Browser, tmp_path: Path) -> None:
    page: Page = browser.new_page(viewport={"width": 390, "height": 844}, accept_downloads=True)

    # 1. Sign in at the national-ID stand-in.
    page.goto(f"{site.base}/guardian/")
    page.get_by_role("link", name="マイナンバーカードでサインイン").click()
    page.get_by_role("button", name="加賀 花子").click()
    expect(page.get_by_role("heading", name="同意の管理")).to_be_visible()

    # 2. Enter the invitation code, check the child, link.
    page.get_by_role("link", name="招待コードでお子さまを登録する").click()
    page.get_by_label("招待コード").fill(invitations.display(site.code).lower())
    page.get_by_role("button", name="次へ").click()
    expect(page.get_by_text("加賀 陽菜")).to_be_visible()
    page.get_by_role("button", name="はい、登録します").click()
    expect(page.get_by_role("heading", name="加賀 陽菜 さん")).to_be_visible()

    # The home page leads to the Myna Portal link and back.
    page.get_by_role("link", name="同意の管理").click()
    page.get_by_role("link", name="マイナポータルと連携する").click()
    expect(page.get_by_role("heading", name="マイナポータルとの連携")).to_be_visible()
    expect(page.get_by_role("heading", name="加賀 陽菜")).to_be_visible()
    page.get_by_role("link", name="同意の管理").click()
    expect(page.get_by_role("heading", name="同意の管理")).to_be_visible()

    # 3. A partner asks; approve two of the toggles (one item, one purpose), all off at first.
    authorization_url, verifier = _partner_authorization_url(site)
    landed: list[str] = []

    def partner_site(route: Route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>partner</p>")

    page.route("https://partner.example/**", partner_site)
    page.goto(authorization_url)
    for box in page.get_by_role("checkbox").all():
        expect(box).not_to_be_checked()
    page.get_by_role("checkbox", name="出欠の記録").check()
    page.get_by_role("checkbox", name="困りごとの早期発見と支援").check()
    page.get_by_role("button", name="選んだ内容で同意する").click()
    page.wait_for_url("https://partner.example/**")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(landed[-1]).query).items()}
    assert answer["state"] == "e2e" and answer["iss"] == site.base

    with httpx.Client(base_url=site.base) as partner:
        tokens = partner.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": PARTNER_CALLBACK,
                "code_verifier": verifier,
            },
            auth=(site.client_id, site.secret),
        ).json()
        assert tokens["scope"] == "school.attendance purpose:early_support"
        api = f"/api/v1/children/{site.child_id}/school.attendance"
        bearer = {"authorization": f"Bearer {tokens['access_token']}"}
        assert partner.get(api, headers=bearer).status_code == 200

        # 4. See and download the receipt; it verifies against the published keys.
        page.goto(f"{site.base}/guardian/children/{site.child_id}")
        page.get_by_role("link", name="同意の控え（署名付き）").click()
        expect(page.get_by_role("heading", name="同意の控え")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name="控えをダウンロード").click()
        saved = tmp_path / "receipt.jws"
        download.value.save_as(saved)
        terms = receipts.verify(saved.read_text(), jwks=partner.get("/.well-known/jwks.json").json())
        assert terms["scopes"] == ["school.attendance"] and terms["purposes"] == ["early_support"]

        # 5. The data-use list shows the partner's read.
        page.goto(f"{site.base}/guardian/children/{site.child_id}/uses")
        expect(
            page.get_by_role("cell", name="NPO法人こども食堂ネットワーク加賀", exact=False)
        ).to_be_visible()

        # 6. Withdraw; the partner API refuses at once.
        page.goto(f"{site.base}/guardian/children/{site.child_id}")
        page.get_by_role("button", name="同意を取り消す").click()
        expect(page.get_by_text("取り消し済み")).to_be_visible()
        assert partner.get(api, headers=bearer).status_code == 401
