"""No LINE payload the product can produce carries an alert, a category, a risk word or screening data.

The test builds a family the screening has flagged in every category, with benefits on record,
a grant for personalised information and a linked LINE account; then it makes the product say
everything it can say over LINE: every webhook answer (follow, typing, every menu button,
linking and unlinking, a failed link), universal notices to everyone, a school and a grade with
a carousel of every resource, and personalised information. Every payload that reached the LINE
stand-in or waits in the outbox is scanned (DOMAIN.md lessons 9 and 12).

The public directory's own listings (a resource's name, kind, hours, contact) are the same for
every reader and may name a kind of support (ヤングケアラー支援 is one); they are taken out
before scanning, so the scan judges only what the product writes around them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlmodel import Session, select

from app.core.config import get_settings
from app.sessions.models import PrincipalKind
from app.sources.models import Benefit
from consent.scopes import Purpose, Scope
from notify import accounts, campaigns, demo, personalised, resources
from notify.models import Campaign, NotificationBatch
from rules.catalog import load_catalog
from rules.models import CATEGORY_WORDING, Category
from tests.factories import make_grant, make_guardian, make_student
from tests.line_standin import StandIn
from tests.notify.conftest import post_events
from tests.notify.test_personalised import benefit
from tests.staff.conftest import make_alert

RISK_WORDS = [
    "リスク",
    "risk",
    "アラート",
    "alert",
    "要支援",
    "要注意",
    "要保護",
    "スコア",
    "score",
    "判定",
    "疑い",
    "虐待",
    "ネグレクト",
    "neglect",
    "不登校",
    "いじめ",
    "bullying",
    "貧困",
    "困窮",
    "hardship",
    "スクリーニング",
    "screening",
    "warning",
    "心の天気",
    "欠席",
    "absence",
    "保健室",
    "成績",
    "給食費の未納",
    "未納",
    "生活保護",
    "住民税非課税",
    "児童扶養手当",
    "ひとり親",
    "single parent",
]


def forbidden_words(child_names: list[str]) -> list[str]:
    words = list(RISK_WORDS) + child_names
    for category in Category:
        words += [category.value, CATEGORY_WORDING[category].ja, CATEGORY_WORDING[category].en]
    for rule in load_catalog().rules:
        words += [rule.id, rule.title.ja, rule.title.en]
    return words


def strings(payload: Any) -> list[str]:
    if isinstance(payload, str):
        return [payload]
    if isinstance(payload, dict):
        return [s for value in payload.values() for s in strings(value)]
    if isinstance(payload, list):
        return [s for value in payload for s in strings(value)]
    return []


def without_directory_listings(text: str, listings: list[str]) -> str:
    for listing in listings:
        text = text.replace(listing, "")
    return text


async def test_no_payload_reveals_a_judgment_or_screening_data(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    settings = get_settings()
    demo.seed_demo(session=session)
    child = make_student(session, given_name="陽向", family_name="北條")
    guardian = make_guardian(session, student=child, given_name="真澄", family_name="北條")
    for category in Category:
        make_alert(session, child, category=category, score=9.0)
    make_grant(
        session,
        student=child,
        guardian=guardian,
        scopes=list(Scope),
        purposes=list(Purpose),
    )
    benefit(session, child, Benefit.child_rearing_allowance, True)
    benefit(session, child, Benefit.public_assistance, True)
    benefit(session, child, Benefit.school_attendance_aid, False)
    assert guardian.id is not None and child.id is not None

    # The guardian's LINE: follow, type, every button, link through the nonce flow, unlink, link again.
    parent_line, child_line = standin.user("保護者"), standin.user("生徒")
    events: list[tuple[str, dict[str, Any]]] = [
        ("follow", {"follow": {"isUnblocked": False}}),
        ("message", {"message": {"id": "1", "type": "text", "text": "相談したいです"}}),
    ]
    for data in (
        "action=menu",
        "action=find",
        "action=settings",
        "action=notices&on=0",
        "action=notices&on=1",
        "action=link",
        "unknown=1",
    ):
        events.append(("postback", {"postback": {"data": data}}))
    for kind, fields in events:
        await post_events(client, standin.channel.event(kind, parent_line, **fields))
    for line_user, kind, principal in (
        (parent_line, PrincipalKind.guardian, guardian.id),
        (child_line, PrincipalKind.student, child.id),
    ):
        nonce = accounts.start_link(session=session, principal_kind=kind, principal_id=principal)
        await post_events(
            client, standin.channel.event("accountLink", line_user, link={"result": "ok", "nonce": nonce})
        )
    await post_events(client, standin.channel.event("accountLink", parent_line, link={"result": "failed"}))
    for data in ("action=menu", "action=find", "action=unlink", "action=unlink&confirm=1"):
        await post_events(client, standin.channel.event("postback", child_line, postback={"data": data}))

    # Personalised information; universal notices with every resource to everyone, a school, a grade.
    assert personalised.plan(session=session, settings=settings).queued == 1
    listed = resources.search(session=session)
    for audience in ({}, {"school_id": child.school_id}, {"grade": child.grade}):
        notice = campaigns.CampaignIn(
            title="地域の相談先のご案内",
            body_ja="困ったときは、いつでもご相談ください。",
            body_en="Ask us any time.",
            contact_ja="こども家庭センター",
            contact_en="Children and Families Center",
            resource_ids=[r.id for r in listed if r.id is not None][:11],
            scheduled_for=datetime.now(UTC) + timedelta(hours=1),
            **audience,
        )
        campaign = campaigns.create(session=session, settings=settings, data=notice, staff_id=None)
        assert campaign.id is not None
        campaigns.schedule(session=session, settings=settings, campaign_id=campaign.id)

    payloads: list[Any] = []
    for user in (parent_line, child_line):
        chat = standin.control.get(f"/_control/users/{user}/chat").json()
        payloads += [entry["message"] for entry in chat if entry["sender"] == "bot"]
    payloads += [m for batch in session.exec(select(NotificationBatch)) for m in batch.messages]
    payloads += [m for campaign in session.exec(select(Campaign)) for m in campaign.messages]
    kinds = {m.get("type") for m in payloads if isinstance(m, dict)}
    assert kinds == {"text", "flex"} and len(payloads) > 30

    listings = sorted(
        {
            text
            for r in listed
            for text in (
                r.name_ja,
                r.name_en,
                r.hours_ja,
                r.contact,
                resources.KIND_WORDING[r.kind].ja,
            )
            if text
        },
        key=len,
        reverse=True,
    )
    words = forbidden_words([child.given_name, guardian.given_name, child.school_student_id])
    found = []
    for payload in payloads:
        for text in strings(payload):
            scanned = without_directory_listings(text, listings).lower()
            found += [(word, text) for word in words if word.lower() in scanned]
    assert found == [], orjson.dumps(found[:5], option=orjson.OPT_INDENT_2).decode()
    # The scan is not vacuous: the same words are caught when they do appear.
    planted = without_directory_listings("ヤングケアラーとして見守っています", listings)
    assert any(word in planted for word in words)
