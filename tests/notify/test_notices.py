"""Universal notices: composed within LINE's limits, aimed by school, grade or everyone, never by risk."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlmodel import Session, select

from app.core.config import get_settings
from app.core.types import utcnow
from notify import campaigns, demo, resources
from notify.models import Campaign, CampaignStatus, LineAccount, Notification, NotificationStatus
from tests.factories import make_guardian, make_school, make_student
from tests.line_standin import StandIn
from tests.notify.conftest import staff_client

HTML = {"accept": "text/html"}


def notice(**overrides: object) -> campaigns.CampaignIn:
    values: dict[str, object] = {
        "title": "夏休みのこども食堂",
        "body_ja": "夏休み中も、こども食堂を開いています。",
        "body_en": "Children's cafeterias stay open over the summer.",
        "contact_ja": "こども家庭センター 0000-00-0000",
        "scheduled_for": utcnow() + timedelta(minutes=5),
    }
    return campaigns.CampaignIn.model_validate(values | overrides)


def follower(session: Session, **overrides: Any) -> LineAccount:
    account = LineAccount(line_user_id="U" + uuid.uuid4().hex, **overrides)
    session.add(account)
    session.flush()
    return account


def test_every_notice_names_whom_to_ask_and_shows_chosen_resources(session: Session) -> None:
    demo.seed_demo(session=session)
    ids = [r.id for r in resources.search(session=session)[:3]]
    composed = campaigns.compose(session=session, settings=get_settings(), data=notice(resource_ids=ids))
    assert composed[0]["text"].endswith("お問い合わせ: こども家庭センター 0000-00-0000")
    bubbles = composed[1]["contents"]["contents"]
    assert len(bubbles) == 4 and "お問い合わせ" in str(bubbles[-1])


def test_text_over_lines_limit_is_refused_with_its_length(session: Session) -> None:
    with pytest.raises(campaigns.NoticeRefused) as refused:
        campaigns.compose(session=session, settings=get_settings(), data=notice(body_ja="あ" * 4990))
    assert "5,000" in refused.value.message and "5,0" in refused.value.message


def test_too_many_resources_or_unknown_ones_are_refused(session: Session) -> None:
    with pytest.raises(ValidationError):
        notice(resource_ids=list(range(1, 13)))
    with pytest.raises(campaigns.NoticeRefused):
        campaigns.compose(session=session, settings=get_settings(), data=notice(resource_ids=[999_999]))


@pytest.mark.parametrize("field", ["alert_id", "risk", "category", "screening_run_id", "student_ids"])
def test_a_notice_cannot_be_aimed_by_alert_risk_or_child(field: str) -> None:
    with pytest.raises(ValidationError):
        notice(**{field: 1})
    assert field not in Campaign.model_fields


def test_audience_everyone_school_and_grade(session: Session) -> None:
    school, other = make_school(session), make_school(session)
    fifth = make_student(session, school=school, grade=5)
    sixth = make_student(session, school=school, grade=6)
    elsewhere = make_student(session, school=other, grade=5)
    a = follower(session, guardian_id=make_guardian(session, student=fifth).id)
    b = follower(session, guardian_id=make_guardian(session, student=sixth).id)
    c = follower(session, guardian_id=make_guardian(session, student=elsewhere).id)
    d = follower(session, student_id=sixth.id)
    unlinked = follower(session)
    muted = follower(session, notices_enabled=False, guardian_id=make_guardian(session, student=fifth).id)
    gone = LineAccount(line_user_id=None, following=False)
    session.add(gone)
    session.flush()

    def who(**aim: Any) -> set[int | None]:
        campaign = Campaign(title="t", body_ja="b", contact_ja="c", scheduled_for=utcnow(), **aim)
        return set(campaigns.audience(session=session, campaign=campaign))

    assert who() == {a.id, b.id, c.id, d.id, unlinked.id}
    assert who(school_id=school.id) == {a.id, b.id, d.id}
    assert who(grade=5) == {a.id, c.id}
    assert who(school_id=school.id, grade=6) == {b.id, d.id}
    assert muted.id not in who()


def test_scheduling_writes_the_outbox_in_the_same_transaction(session: Session) -> None:
    for _ in range(3):
        follower(session)
    settings = get_settings()
    campaign = campaigns.create(session=session, settings=settings, data=notice(), staff_id=None)
    assert campaign.id is not None
    assert session.exec(select(Notification)).all() == []
    queued = campaigns.schedule(session=session, settings=settings, campaign_id=campaign.id)
    assert queued.queued == 3 and campaign.status is CampaignStatus.scheduled
    rows = session.exec(select(Notification).where(Notification.campaign_id == campaign.id)).all()
    assert {r.status for r in rows} == {NotificationStatus.queued}
    assert campaigns.cancel(session=session, campaign_id=campaign.id) == 3


async def test_staff_compose_preview_schedule_and_status(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    csrf = staff_client(client, session)
    demo.seed_demo(session=session)
    follower(session)
    form = await client.get("/staff/notices/new", headers=HTML)
    assert form.status_code == 200 and "5,000" in form.text
    resource = resources.search(session=session)[0]
    created = await client.post(
        "/staff/notices",
        data={
            "csrf_token": csrf,
            "title": "相談窓口のご案内",
            "body_ja": "困ったときは、いつでもご相談ください。",
            "contact_ja": "こども家庭センター",
            "resource_ids": [str(resource.id)],
            "scheduled_for": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        },
        headers=HTML,
    )
    assert created.status_code == 303, created.text
    page = await client.get(created.headers["location"], headers=HTML)
    assert "相談窓口のご案内" in page.text and resource.name_ja in page.text
    campaign_id = int(created.headers["location"].rsplit("/", 1)[1])
    scheduled = await client.post(
        f"/staff/notices/{campaign_id}/schedule", data={"csrf_token": csrf}, headers=HTML
    )
    assert scheduled.status_code == 303
    again = await client.post(
        f"/staff/notices/{campaign_id}/schedule", data={"csrf_token": csrf}, headers=HTML
    )
    assert again.status_code == 409
    listing = await client.get("/staff/notices", headers=HTML)
    assert "相談窓口のご案内" in listing.text


async def test_an_over_long_notice_is_refused_on_the_form(
    app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    csrf = staff_client(client, session)
    response = await client.post(
        "/staff/notices",
        data={
            "csrf_token": csrf,
            "title": "長い",
            "body_ja": "あ" * 5000,
            "contact_ja": "窓口",
            "scheduled_for": "2026-12-01T10:00",
        },
        headers=HTML,
    )
    assert response.status_code == 422 and "LINE の上限" in response.text
    assert session.exec(select(Campaign)).all() == []


async def test_staff_send_a_notice_to_the_test_phone_before_scheduling_it(
    line_app: FastAPI,
    client: httpx.AsyncClient,
    standin: StandIn,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    test_phone = standin.user("市役所 テスト端末")
    monkeypatch.setenv("TSUNAGU_NOTIFY_TEST_RECIPIENT", test_phone)
    get_settings.cache_clear()
    csrf = staff_client(client, session)
    demo.seed_demo(session=session)
    follower(session)
    campaign = campaigns.create(
        session=session,
        settings=get_settings(),
        data=notice(resource_ids=[resources.search(session=session)[0].id]),
        staff_id=None,
    )
    page = await client.get(f"/staff/notices/{campaign.id}", headers=HTML)
    assert "テスト端末に試し送り" in page.text

    sent = await client.post(f"/staff/notices/{campaign.id}/test", data={"csrf_token": csrf}, headers=HTML)

    assert sent.status_code == 303, sent.text
    shown = await client.get(sent.headers["location"], headers=HTML)
    assert "テスト端末に送りました" in shown.text
    chat = standin.control.get(f"/_control/users/{test_phone}/chat").json()
    assert [e["message"] for e in chat if e["sender"] == "bot"] == campaign.messages
    # A preview is not a send: no family got it, and the notice is still a draft.
    assert session.exec(select(Notification)).all() == []
    assert campaign.status is CampaignStatus.draft


async def test_a_test_send_needs_a_test_phone_and_a_csrf_token(
    line_app: FastAPI,
    client: httpx.AsyncClient,
    standin: StandIn,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TSUNAGU_NOTIFY_TEST_RECIPIENT", raising=False)
    get_settings.cache_clear()
    csrf = staff_client(client, session)
    campaign = campaigns.create(session=session, settings=get_settings(), data=notice(), staff_id=None)
    page = await client.get(f"/staff/notices/{campaign.id}", headers=HTML)
    assert "テスト端末に試し送り" not in page.text

    unset = await client.post(f"/staff/notices/{campaign.id}/test", data={"csrf_token": csrf}, headers=HTML)
    assert unset.status_code == 409 and "テスト端末が設定されていません" in unset.text

    monkeypatch.setenv("TSUNAGU_NOTIFY_TEST_RECIPIENT", standin.user())
    get_settings.cache_clear()
    forged = await client.post(f"/staff/notices/{campaign.id}/test", data={}, headers=HTML)
    assert forged.status_code == 403
    missing = await client.post("/staff/notices/999999/test", data={"csrf_token": csrf}, headers=HTML)
    assert missing.status_code == 404
