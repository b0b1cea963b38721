"""Account linking for guardians and students: sign-in and back, the page without a token, unlinking
at once, nonces that work once and expire, and no trace of a link once it is gone."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import Session, func, select

from app.core.config import get_settings
from app.core.types import utcnow
from app.sessions.models import PrincipalKind
from consent import invitations
from consent.deps import safe_next, safe_student_next
from notify import accounts, outbox
from notify.models import LineAccount, LinkNonce, Notification, NotificationStatus
from tests.factories import make_guardian, make_student
from tests.line_standin import StandIn
from tests.notify.conftest import post_events, sign_in_as

HTML = {"accept": "text/html"}


def bot_messages(standin: StandIn, user_id: str) -> list[dict[str, Any]]:
    chat = standin.control.get(f"/_control/users/{user_id}/chat").json()
    return [e["message"] for e in chat if e["sender"] == "bot"]


def account(session: Session, user_id: str) -> LineAccount:
    found = session.exec(select(LineAccount).where(LineAccount.line_user_id == user_id)).one()
    session.refresh(found)
    return found


async def link_page_url(client: httpx.AsyncClient, standin: StandIn, user: str) -> str:
    """Tap 連携する in LINE; the sign-in-and-link address the invitation carries (path and query)."""
    await post_events(client, standin.channel.event("postback", user, postback={"data": "action=link"}))
    uri = bot_messages(standin, user)[-1]["contents"]["footer"]["contents"][0]["action"]["uri"]
    parsed = urlparse(uri)
    return f"{parsed.path}?{parsed.query}"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def nonce_of(location: str) -> str:
    return parse_qs(urlparse(location).query)["nonce"][0]


@pytest.mark.parametrize(
    ("target", "guardian", "student"),
    [
        ("/line/link?linkToken=abcdefgh", "/line/link?linkToken=abcdefgh", "/line/link?linkToken=abcdefgh"),
        ("/line/link", "/line/link", "/line/link"),
        ("/guardian/children/1", "/guardian/children/1", "/student/"),
        ("/student/", "/guardian/", "/student/"),
        ("https://evil.example/line/link", "/guardian/", "/student/"),
        ("//evil.example/line/link", "/guardian/", "/student/"),
        ("/line/linked-elsewhere", "/guardian/", "/student/"),
        (None, "/guardian/", "/student/"),
    ],
)
def test_sign_in_comes_back_to_the_link_page_and_nowhere_else(
    target: str | None, guardian: str, student: str
) -> None:
    assert safe_next(target) == guardian
    assert safe_student_next(target) == student


async def test_a_student_links_with_their_own_code(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    child = make_student(session)
    assert child.id is not None
    _, code = invitations.issue(session=session, student_id=child.id, for_student=True)
    user = standin.user("生徒")
    here = await link_page_url(client, standin, user)

    signed_out = await client.get(here, headers=HTML)
    assert signed_out.status_code == 200
    student_sign_in = f"/student/sign-in?next={quote(here, safe='')}"
    assert student_sign_in.replace("&", "&amp;") in signed_out.text

    form = await client.get(student_sign_in, headers=HTML)
    assert f'name="next" value="{here}"'.replace("&", "&amp;") in form.text
    signed_in = await client.post(
        "/student/sign-in", data={"csrf_token": csrf_of(form.text), "code": code, "next": here}, headers=HTML
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == here

    page = await client.get(here, headers=HTML)
    assert "あなたの LINE に" in page.text and "わたしのページへ" in page.text
    started = await client.post(
        "/line/link",
        data={"csrf_token": csrf_of(page.text), "linkToken": parse_qs(urlparse(here).query)["linkToken"][0]},
    )
    assert started.status_code == 303
    nonce = nonce_of(started.headers["location"])
    await post_events(
        client, standin.channel.event("accountLink", user, link={"result": "ok", "nonce": nonce})
    )
    linked = account(session, user)
    assert (linked.student_id, linked.guardian_id) == (child.id, None)
    assert session.exec(select(func.count()).select_from(LinkNonce)).one() == 0  # used up, deleted


async def test_the_page_without_a_token_lists_links_and_unlinks_at_once(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    guardian = make_guardian(session)
    assert guardian.id is not None
    signed_out = await client.get("/line/link", headers=HTML)
    assert signed_out.status_code == 200
    assert "/guardian/sign-in?next=%2Fline%2Flink" in signed_out.text
    assert "/student/sign-in?next=%2Fline%2Flink" in signed_out.text

    user = standin.user()
    await post_events(client, standin.channel.event("follow", user, follow={"isUnblocked": False}))
    nonce = accounts.start_link(
        session=session, principal_kind=PrincipalKind.guardian, principal_id=guardian.id
    )
    await post_events(
        client, standin.channel.event("accountLink", user, link={"result": "ok", "nonce": nonce})
    )
    linked = account(session, user)
    assert linked.guardian_id == guardian.id and linked.id is not None
    queued = outbox.enqueue(
        session=session,
        settings=get_settings(),
        account_ids=[linked.id],
        messages=[{"type": "text", "text": "学年のお知らせ"}],
        due=linked.followed_at + timedelta(days=1),
        needs_link=True,
    )
    assert queued.queued == 1

    csrf = sign_in_as(client, session, PrincipalKind.guardian, guardian.id)
    page = await client.get("/line/link", headers=HTML)
    assert "1 件の LINE アカウントと連携" in page.text and 'action="/line/unlink"' in page.text
    refused = await client.post("/line/unlink", data={})
    assert refused.status_code == 403 and account(session, user).guardian_id == guardian.id
    done = await client.post("/line/unlink", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/line/link?unlinked=1"
    after = await client.get(done.headers["location"], headers=HTML)
    assert "連携を解除しました" in after.text and "連携している LINE アカウントはありません" in after.text

    gone = account(session, user)
    assert (gone.guardian_id, gone.student_id, gone.linked_at) == (None, None, None)
    assert gone.following  # still a follower: universal notices still reach them, unlinked
    assert session.exec(select(Notification.status)).all() == [NotificationStatus.cancelled]
    # Nothing else remembers whose LINE this was.
    assert session.exec(select(func.count()).select_from(LinkNonce)).one() == 0


async def test_an_expired_nonce_links_nothing_and_is_gone(
    line_app: FastAPI, client: httpx.AsyncClient, standin: StandIn, session: Session
) -> None:
    guardian = make_guardian(session)
    assert guardian.id is not None
    user = standin.user()
    nonce = accounts.start_link(
        session=session, principal_kind=PrincipalKind.guardian, principal_id=guardian.id
    )
    session.execute(sa.update(LinkNonce).values(expires_at=utcnow() - timedelta(seconds=1)))
    await post_events(
        client, standin.channel.event("accountLink", user, link={"result": "ok", "nonce": nonce})
    )
    assert account(session, user).guardian_id is None
    assert bot_messages(standin, user)[0]["text"].startswith("連携できませんでした")
    assert session.exec(select(func.count()).select_from(LinkNonce)).one() == 0


async def test_expired_nonces_nobody_brought_back_are_cleared(session: Session) -> None:
    guardian = make_guardian(session)
    assert guardian.id is not None
    accounts.start_link(session=session, principal_kind=PrincipalKind.guardian, principal_id=guardian.id)
    session.execute(sa.update(LinkNonce).values(expires_at=utcnow() - timedelta(seconds=1)))
    accounts.start_link(session=session, principal_kind=PrincipalKind.guardian, principal_id=guardian.id)
    assert session.exec(select(func.count()).select_from(LinkNonce)).one() == 1
