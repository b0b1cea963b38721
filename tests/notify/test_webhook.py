"""The webhook: signed on the raw body, each event once, handled after the answer, menu replies."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import orjson
from fastapi import FastAPI
from sqlmodel import Session, func, select

from app.sessions.models import PrincipalKind
from mocks.line.app import sign
from notify import demo
from notify.models import LineAccount, LineWebhookEvent
from tests.factories import make_guardian
from tests.line_standin import SECRET, StandIn
from tests.notify.conftest import post_events, sign_in_as


def bot_messages(standin: StandIn, user_id: str) -> list[dict[str, Any]]:
    chat = standin.control.get(f"/_control/users/{user_id}/chat").json()
    return [e["message"] for e in chat if e["sender"] == "bot"]


def inbox_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(LineWebhookEvent)).one()


def account(session: Session, user_id: str) -> LineAccount | None:
    return session.exec(select(LineAccount).where(LineAccount.line_user_id == user_id)).first()


async def test_follow_records_the_account_and_answers_with_welcome_and_menu(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    response = await post_events(client, standin.channel.event("follow", user, follow={"isUnblocked": False}))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "new": 1}
    found = account(session, user)
    assert found is not None and found.following and found.notices_enabled
    sent = bot_messages(standin, user)
    assert [m["type"] for m in sent] == ["text", "flex"]
    assert "お問い合わせ" in sent[0]["text"]
    labels = [b["action"]["label"] for b in sent[1]["contents"]["footer"]["contents"]]
    assert labels[:2] == ["相談先を探す / Find support", "お知らせの設定 / Notices"]


async def test_a_bad_or_missing_signature_is_400_and_nothing_is_kept(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    event = standin.channel.event("follow", user, follow={"isUnblocked": False})
    forged = await post_events(client, event, secret="not-the-channel-secret")
    assert forged.status_code == 400
    assert forged.json() == {"error": "bad_request", "detail": "invalid signature"}
    body = orjson.dumps({"events": [event]})
    unsigned = await client.post("/line/webhook", content=body)
    assert unsigned.status_code == 400
    assert inbox_count(session) == 0 and account(session, user) is None
    assert bot_messages(standin, user) == []


async def test_malformed_bodies_are_400(
    line_app: FastAPI, client: httpx.AsyncClient, session: Session
) -> None:
    for body in (b"{not json", b"[]", b'{"events": 5}', b'{"events": [{"type": "follow"}]}', b"\xff\xfe"):
        response = await client.post(
            "/line/webhook", content=body, headers={"x-line-signature": sign(SECRET, body)}
        )
        assert response.status_code == 400, body
    assert inbox_count(session) == 0


async def test_a_replayed_event_is_handled_once(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    event = standin.channel.event("message", user, message={"id": "1", "type": "text", "text": "こんにちは"})
    assert (await post_events(client, event)).json() == {"received": 1, "new": 1}
    redelivered = {**event, "deliveryContext": {"isRedelivery": True}}
    assert (await post_events(client, redelivered)).json() == {"received": 1, "new": 0}
    assert len(bot_messages(standin, user)) == 2  # one automatic answer: a text and the menu
    row = session.exec(select(LineWebhookEvent)).one()
    assert row.handled_at is not None and row.payload is None  # what the person typed is not kept


async def test_unknown_event_types_are_acknowledged_and_ignored(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    event = standin.channel.event("somethingNew", user, reply=False)
    assert (await post_events(client, event)).status_code == 200
    assert session.exec(select(LineWebhookEvent.outcome)).one() == "ignored"
    assert account(session, user) is None


async def test_an_empty_verification_webhook_is_ok(line_app: FastAPI, client: httpx.AsyncClient) -> None:
    assert (await post_events(client)).json() == {"received": 0, "new": 0}


async def test_unfollow_erases_the_user_id_and_the_link(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    guardian = make_guardian(session)
    await post_events(client, standin.channel.event("follow", user, follow={"isUnblocked": False}))
    found = account(session, user)
    assert found is not None
    found.guardian_id = guardian.id
    session.add(found)
    session.flush()
    await post_events(client, standin.channel.event("unfollow", user, reply=False))
    session.refresh(found)
    assert (found.line_user_id, found.following, found.guardian_id) == (None, False, None)


async def test_notice_settings_postbacks_switch_notices(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    await post_events(client, standin.channel.event("postback", user, postback={"data": "action=settings"}))
    await post_events(
        client, standin.channel.event("postback", user, postback={"data": "action=notices&on=0"})
    )
    found = account(session, user)
    assert found is not None and not found.notices_enabled
    assert "お知らせを止めました" in bot_messages(standin, user)[-1]["text"]
    await post_events(
        client, standin.channel.event("postback", user, postback={"data": "action=notices&on=1"})
    )
    session.refresh(found)
    assert found.notices_enabled


async def test_linking_end_to_end_with_a_nonce_that_works_once(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    guardian = make_guardian(session)
    assert guardian.id is not None
    await post_events(client, standin.channel.event("postback", user, postback={"data": "action=link"}))
    invitation = bot_messages(standin, user)[-1]
    link_url = invitation["contents"]["footer"]["contents"][0]["action"]["uri"]
    path = urlparse(link_url)
    assert path.path == "/line/link"

    signed_out = await client.get(f"{path.path}?{path.query}")
    assert signed_out.status_code == 200 and "/guardian/sign-in?next=" in signed_out.text

    csrf = sign_in_as(client, session, PrincipalKind.guardian, guardian.id)
    page = await client.get(f"{path.path}?{path.query}")
    assert 'name="csrf_token"' in page.text
    link_token = parse_qs(path.query)["linkToken"][0]
    refused = await client.post("/line/link", data={"linkToken": link_token})
    assert refused.status_code == 403
    started = await client.post("/line/link", data={"linkToken": link_token, "csrf_token": csrf})
    assert started.status_code == 303
    dialog = urlparse(started.headers["location"])
    assert dialog.path == "/dialog/bot/accountLink"
    nonce = parse_qs(dialog.query)["nonce"][0]
    assert len(nonce) >= 32

    ok = standin.channel.event("accountLink", user, link={"result": "ok", "nonce": nonce})
    await post_events(client, ok)
    found = account(session, user)
    assert found is not None and found.guardian_id == guardian.id
    assert bot_messages(standin, user)[-2]["text"].startswith("連携しました")

    # The same nonce again (a forged or replayed event with a new id) links nothing.
    other = standin.user("別の人")
    await post_events(
        client, standin.channel.event("accountLink", other, link={"result": "ok", "nonce": nonce})
    )
    stranger = account(session, other)
    assert stranger is not None and stranger.guardian_id is None
    assert bot_messages(standin, other)[0]["text"].startswith("連携できませんでした")


async def test_an_unknown_nonce_or_failed_result_links_nothing(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    for link in (
        {"result": "ok", "nonce": "made-up-nonce-0123456789"},
        {"result": "failed", "nonce": "x" * 20},
        {"result": "ok"},
    ):
        await post_events(client, standin.channel.event("accountLink", user, link=link))
    found = account(session, user)
    assert found is not None and found.guardian_id is None


async def test_a_link_token_from_elsewhere_is_refused(line_app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/line/link", params={"linkToken": "<script>"}, headers={"accept": "text/html"}
    )
    assert response.status_code == 400
    assert "<script>" not in response.text


async def test_unlink_from_the_menu_asks_first(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    user = standin.user()
    guardian = make_guardian(session)
    await post_events(client, standin.channel.event("follow", user, follow={"isUnblocked": False}))
    found = account(session, user)
    assert found is not None
    found.guardian_id = guardian.id
    session.add(found)
    session.flush()
    await post_events(client, standin.channel.event("postback", user, postback={"data": "action=unlink"}))
    session.refresh(found)
    assert found.guardian_id == guardian.id
    await post_events(
        client, standin.channel.event("postback", user, postback={"data": "action=unlink&confirm=1"})
    )
    session.refresh(found)
    assert found.guardian_id is None
    assert re.match("連携を解除しました", bot_messages(standin, user)[-2]["text"])


async def test_find_support_answers_with_a_carousel_of_the_directory(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    demo.seed_demo(session=session)
    user = standin.user()
    await post_events(client, standin.channel.event("postback", user, postback={"data": "action=find"}))
    carousel = bot_messages(standin, user)[-1]
    bubbles = carousel["contents"]["contents"]
    assert len(bubbles) == len(demo.DEMO_RESOURCES) + 1
    assert bubbles[0]["body"]["contents"][0]["text"] == "こども家庭センター 相談窓口"
    assert bubbles[0]["footer"]["contents"][0]["action"]["uri"].startswith("http://127.0.0.1:8000/support/")
    page = standin.control.get(f"/phone/{user}").text
    assert "ヤングケアラー相談・交流会" in page
