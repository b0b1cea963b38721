"""The staff console in a real browser (Debian Chromium): the workflow end to end, and reach."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.core.config import get_settings
from app.core.db import get_engine, make_engine, session_scope
from app.core.migrate import upgrade
from app.main import create_app
from app.roster.models import SchoolDay, StaffRole
from app.sources.models import AttendanceDay, AttendanceMark, Source
from consent.scopes import Scope
from tests.e2e.chromium import needs_chromium
from tests.factories import make_grant
from tests.live_server import live_server
from tests.staff.conftest import PASSWORD, build_roster, make_alert, make_staff

pytestmark = needs_chromium


@dataclass(frozen=True)
class Site:
    base: str
    alert_id: int
    child_id: int
    other_homeroom_child_id: int
    ssw_login: str
    teacher_login: str


@pytest.fixture
def site(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("TSUNAGU_MODE", "demo")
    get_settings.cache_clear()
    get_engine.cache_clear()
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        roster = build_roster(session)
        make_grant(session, student=roster.child, scopes=list(Scope))
        day = date.today() - timedelta(days=2)
        session.add(SchoolDay(school_id=roster.school.id or 0, day=day))
        session.add(
            AttendanceDay(
                student_id=roster.child.id or 0,
                day=day,
                mark=AttendanceMark.absent,
                source=Source.demo_loader,
            )
        )
        alert = make_alert(session, roster.child, score=4)
        ssw = make_staff(session, roster, StaffRole.school_social_worker)
        teacher = make_staff(session, roster, StaffRole.homeroom_teacher)
        ids = (
            alert.id or 0,
            roster.child.id or 0,
            roster.classmate_elsewhere.id or 0,
            ssw.login,
            teacher.login,
        )
    engine.dispose()
    with live_server(create_app()) as base:
        yield Site(base, *ids)
    get_engine().dispose()  # the server's own engine: close its pooled connections
    get_settings.cache_clear()
    get_engine.cache_clear()


def _sign_in(page: Page, site: Site, login: str) -> None:
    page.goto(f"{site.base}/staff/sign-in")
    page.get_by_label("ログインID").fill(login)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    expect(page.get_by_role("heading", name="職員コンソール")).to_be_visible()


def test_alert_from_queue_to_support_then_timeline_and_sign_out(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone first
    _sign_in(page, site, site.ssw_login)
    page.get_by_role("link", name="アラートの一覧").click()
    page.get_by_role("link", name="山田 花子").click()
    expect(page.get_by_text("直近30日間の欠席が1割以上")).to_be_visible()
    expect(page.get_by_role("cell", name="0.25")).to_be_visible()

    page.get_by_role("button", name="「確認中」にする").click()
    page.get_by_label("参加者").fill("校長、担任、SSW")
    page.get_by_role("button", name="「ケース会議」にする").click()
    expect(page.locator(".badge").first).to_have_text("ケース会議")
    page.get_by_label("会議の結果").fill("SSWが家庭訪問し、こども食堂を紹介する")
    page.get_by_role("button", name="結果を記録する").click()
    page.get_by_label("担当（職員以外）").fill("SSW 田中")
    page.get_by_label("内容", exact=False).last.fill("家庭訪問")
    page.get_by_label("期限").fill((date.today() + timedelta(days=7)).isoformat())
    page.get_by_role("button", name="支援を登録する").click()
    page.get_by_role("button", name="「支援中」にする").click()
    expect(page.locator(".badge").first).to_have_text("支援中")
    expect(page.get_by_text("家庭訪問").first).to_be_visible()

    page.get_by_role("link", name="山田 花子").click()
    expect(page.locator("svg[role=img]")).to_be_visible()
    expect(page.get_by_role("cell", name="欠席 absent").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

    page.get_by_role("button", name="サインアウト").click()
    expect(page.get_by_role("heading", name="職員サインイン")).to_be_visible()
    page.goto(f"{site.base}/staff/alerts/{site.alert_id}")
    expect(page.get_by_role("heading", name="職員サインイン")).to_be_visible()


def test_homeroom_teacher_cannot_open_another_homerooms_child(site: Site, browser: Browser) -> None:
    page = browser.new_page()
    _sign_in(page, site, site.teacher_login)
    own = page.goto(f"{site.base}/staff/children/{site.child_id}")
    assert own is not None and own.status == 200
    other = page.goto(f"{site.base}/staff/children/{site.other_homeroom_child_id}")
    assert other is not None and other.status == 404
    expect(page.get_by_role("heading", name="ページが見つかりません")).to_be_visible()
    expect(page.get_by_text("髙橋")).to_have_count(0)
