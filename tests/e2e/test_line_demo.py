"""The LINE demo in a real browser (Debian Chromium), through the phone simulator: a person follows
the official account, links it to a guardian (national-ID sign-in at its stand-in), staff schedule
a universal notice with a carousel of resources, the sender delivers it, and the person taps
through from the carousel to the directory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import select

from app.core.config import get_settings
from app.core.db import get_engine, make_engine, session_scope
from app.core.migrate import upgrade
from app.main import create_app
from app.roster.models import StaffRole
from app.staff import accounts as staff_accounts
from consent import signin
from mocks.line.app import create_app as create_line
from mocks.line.state import Config
from mocks.national_id.app import create_app as create_national_id
from notify import demo, sender
from notify.models import LineAccount
from tests.consent.people import RESIDENTS
from tests.e2e.chromium import needs_chromium
from tests.factories import make_municipality
from tests.live_server import live_server

pytestmark = needs_chromium
SECRET = "e2e-line-secret"
TOKEN = "e2e-line-token"
STAFF_LOGIN = "notice-writer"
STAFF_PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Site:
    base: str
    line: str


@pytest.fixture
def site(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    for name, value in {
        "TSUNAGU_DATABASE_URL": empty_database_url,
        "TSUNAGU_MODE": "demo",
        "TSUNAGU_LINE_CHANNEL_SECRET": SECRET,
        "TSUNAGU_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        # No quiet hours, whatever the time the test runs at.
        "TSUNAGU_NOTIFY_QUIET_START_HOUR": "0",
        "TSUNAGU_NOTIFY_QUIET_END_HOUR": "0",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_engine.cache_clear()
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        municipality = make_municipality(session)
        demo.seed_demo(session=session)
        staff_accounts.add(
            session=session,
            login=STAFF_LOGIN,
            display_name="こども家庭センター 職員",
            role=StaffRole.case_worker,
            password=STAFF_PASSWORD,
            municipality_id=municipality.id,
        )
    engine.dispose()
    line_app = create_line(
        Config(channel_secret=SECRET, access_token=TOKEN, webhook_url="http://127.0.0.1:9/", demo_users=())
    )
    with live_server(line_app) as line, live_server(create_app()) as base:
        # Each side learns the other's port only now: the app reads its settings per request.
        monkeypatch.setenv("TSUNAGU_PUBLIC_BASE_URL", base)
        monkeypatch.setenv("TSUNAGU_LINE_API_URL", line)
        monkeypatch.setenv("TSUNAGU_LINE_ACCESS_URL", line)
        get_settings.cache_clear()
        httpx.patch(
            f"{line}/_control/config", json={"webhook_url": f"{base}/line/webhook"}
        ).raise_for_status()
        national_id_app = create_national_id(redirect_uris=[signin.redirect_uri()], people=RESIDENTS)
        with live_server(national_id_app) as national_id:
            monkeypatch.setenv("TSUNAGU_NATIONAL_ID_URL", national_id)
            get_settings.cache_clear()
            yield Site(base, line)
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


def send_due_notices() -> sender.Report:
    """What the worker does every minute (`tsunagu notify send`), in a thread of its own: the
    browser's driver owns this thread's event loop."""
    reports: list[sender.Report] = []

    def run() -> None:
        reports.append(asyncio.run(sender.drain(sessions=session_scope, settings=get_settings())))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    return reports[0]


def schedule_notice(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/staff/sign-in")
    page.get_by_label("ログインID").fill(STAFF_LOGIN)
    page.get_by_label("パスワード").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.goto(f"{site.base}/staff/notices/new")
    page.get_by_label("題名").fill("冬休みの相談先")
    page.get_by_label("本文（日本語）").fill("冬休みも、困ったときに相談できる場所があります。")
    page.get_by_label("みんなの食堂 なかよし").check()
    page.get_by_label("ユースの居場所 ふらっと").check()
    now = datetime.now(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%dT%H:%M")
    page.locator("input[name=scheduled_for]").fill(now)
    page.get_by_role("button", name="プレビューへ").click()
    expect(page.get_by_role("heading", name="冬休みの相談先")).to_be_visible()
    page.get_by_role("button", name="この内容で予約する").click()
    expect(page.get_by_text("待ち 1・送信済 0")).to_be_visible()


def test_follow_link_receive_a_notice_and_open_the_directory(site: Site, browser: Browser) -> None:
    phone: Page = browser.new_page(viewport={"width": 390, "height": 844})

    # 1. A person appears in the simulator and follows the official account.
    phone.goto(f"{site.line}/")
    phone.get_by_label("新しい利用者").fill("山田 さくら")
    phone.get_by_role("button", name="作成").click()
    phone.get_by_role("button", name="友だち追加").click()
    expect(phone.get_by_text("公式アカウントです")).to_be_visible()

    # 2. They tap 連携する, sign in as a guardian, and confirm in LINE's dialog.
    phone.get_by_role("button", name="連携する / Link").last.click()
    phone.get_by_role("link", name="サインインして連携").last.click()
    expect(phone.get_by_role("heading", name="LINE アカウントの連携")).to_be_visible()
    phone.get_by_role("link", name="保護者の方：マイナンバーカードでサインイン").click()
    phone.get_by_role("link", name="マイナンバーカードでサインイン").click()
    phone.get_by_role("button", name="加賀 花子").click()
    expect(phone.get_by_role("button", name="LINE と連携する")).to_be_visible()
    phone.get_by_role("button", name="LINE と連携する").click()
    phone.get_by_role("button", name="連携する / Link").click()
    expect(phone.get_by_text("連携しました")).to_be_visible()
    with session_scope() as session:
        linked = session.exec(select(LineAccount)).one()
        assert linked.guardian_id is not None and linked.following

    # 3. Staff schedule a universal notice with two resources; the sender delivers it.
    staff = browser.new_page()
    schedule_notice(staff, site)
    report = send_due_notices()
    assert (report.recipients_sent, report.stopped) == (1, None)

    # 4. The notice and its carousel are in the chat; the last bubble opens the directory.
    phone.reload()
    expect(phone.get_by_text("【お知らせ】冬休みの相談先")).to_be_visible()
    carousel = phone.get_by_role("group", name="地域の相談先 / Local support").last
    expect(carousel.get_by_text("みんなの食堂 なかよし")).to_be_visible()
    expect(carousel.get_by_text("ユースの居場所 ふらっと")).to_be_visible()
    carousel.get_by_role("link", name="相談先の一覧 / Directory").click()
    expect(phone.get_by_role("heading", name="地域の相談先を探す")).to_be_visible()
    assert phone.url.startswith(f"{site.base}/support/")
    expect(phone.get_by_text("こども家庭センター 相談窓口")).to_be_visible()
