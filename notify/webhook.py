"""The LINE webhook: check the signature, keep each event once, answer, then handle events.

Receiving and handling are split so LINE gets its 200 at once: `receive` verifies the
signature with line-bot-sdk's parser and records new events in the inbox (a redelivered
webhookEventId is recognised and skipped); `handle` then runs each event in its own
transaction and says what to answer over LINE, which the router sends after the response.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson
import sqlalchemy as sa
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.webhook import WebhookParser
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.deps import UnitOfWork
from app.core.errors import BadRequest, UpstreamError
from app.core.types import utcnow
from app.roster.models import Municipality
from notify import accounts, messages, resources
from notify.line import Line, Outcome
from notify.messages import Contact, Message
from notify.models import LineAccount, LineWebhookEvent

log = logging.getLogger("tsunagu.notify.webhook")

# LINE's webhook bodies are small; anything near this size is not from LINE.
MAX_BODY = 1_000_000
# How long a handled event's id is remembered; LINE redelivers within a few hours at most.
INBOX_RETENTION = timedelta(days=7)


@dataclass
class Answer:
    """What to say back: a reply, and optionally a link token to issue first (its URL is added)."""

    reply_token: str
    messages: list[Message] = field(default_factory=list)
    link_for_user: str | None = None


def contact(settings: Settings) -> Contact:
    return Contact(ja=settings.notify_contact_ja, en=settings.notify_contact_en)


def parse(*, body: bytes, signature: str | None, channel_secret: str) -> list[dict[str, Any]]:
    """The events of a webhook body whose signature is right; BadRequest for anything else."""
    if not signature:
        raise BadRequest("x-line-signature header missing")
    try:
        text = body.decode("utf-8")
        # The SDK checks the signature over the raw text first, then reads the events; a body
        # it cannot read is refused as a whole, so nothing of it is processed.
        WebhookParser(channel_secret).parse(text, signature)
        document = orjson.loads(text)
    except InvalidSignatureError as exc:
        raise BadRequest("invalid signature") from exc
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BadRequest("malformed webhook body") from exc
    events = document.get("events")
    if not isinstance(events, list):
        raise BadRequest("malformed webhook body")
    return events


def record(*, session: Session, events: list[dict[str, Any]]) -> list[int]:
    """Put each event into the inbox unless its webhookEventId is there already; the new rows' ids."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    fresh: list[int] = []
    now = utcnow()
    for event in events:
        statement = (
            insert(LineWebhookEvent)
            .values(
                webhook_event_id=str(event["webhookEventId"])[:64],
                kind=str(event.get("type"))[:32],
                redelivery=bool(event.get("deliveryContext", {}).get("isRedelivery")),
                received_at=now,
                payload=event,
            )
            .on_conflict_do_nothing(index_elements=["webhook_event_id"])
            .returning(col(LineWebhookEvent.id))
        )
        inserted = session.execute(statement).scalar_one_or_none()
        if inserted is not None:
            fresh.append(inserted)
    session.execute(
        sa.delete(LineWebhookEvent).where(
            col(LineWebhookEvent.handled_at).is_not(None),
            col(LineWebhookEvent.received_at) < now - INBOX_RETENTION,
        )
    )
    return fresh


def handle(*, session: Session, settings: Settings, inbox_id: int) -> Answer | None:
    """Act on one recorded event (once, even if two workers try) and say what to answer."""
    row = session.exec(
        select(LineWebhookEvent).where(LineWebhookEvent.id == inbox_id).with_for_update()
    ).first()
    if row is None or row.handled_at is not None or row.payload is None:
        return None
    event = row.payload
    source = event.get("source") or {}
    user_id = source.get("userId") if source.get("type") == "user" else None
    answer: Answer | None = None
    outcome = "ignored"
    if user_id:
        outcome, answer = _dispatch(session=session, settings=settings, event=event, user_id=user_id)
    row.handled_at, row.payload, row.outcome = utcnow(), None, outcome
    session.add(row)
    session.flush()
    return answer


def _dispatch(
    *, session: Session, settings: Settings, event: dict[str, Any], user_id: str
) -> tuple[str, Answer | None]:
    kind = event.get("type")
    reply_token = event.get("replyToken")
    who = contact(settings)
    if kind == "unfollow":
        accounts.forget(session=session, line_user_id=user_id)
        return "unfollowed", None
    if kind not in ("follow", "message", "postback", "accountLink") or not reply_token:
        return "ignored", None
    account = accounts.follow(session=session, line_user_id=user_id)
    answer = Answer(reply_token=reply_token)
    linked = accounts.is_linked(account)
    if kind == "follow":
        answer.messages = messages.welcome(contact=who, municipality=_municipality_name(session))
        if linked:
            answer.messages[-1] = messages.menu(linked=True, contact=who)
        return "followed", answer
    if kind == "message":
        answer.messages = messages.automatic_answer(linked=linked, contact=who)
        return "answered", answer
    if kind == "accountLink":
        link = event.get("link") or {}
        ok = accounts.complete_link(
            session=session,
            account=account,
            nonce=str(link.get("nonce", "")),
            succeeded=link.get("result") == "ok",
        )
        answer.messages = messages.link_result(ok=ok, contact=who)
        return "linked" if ok else "link_failed", answer
    data = str((event.get("postback") or {}).get("data", ""))
    return _postback(session=session, settings=settings, account=account, data=data, answer=answer)


def _postback(
    *, session: Session, settings: Settings, account: LineAccount, data: str, answer: Answer
) -> tuple[str, Answer]:
    who = contact(settings)
    fields = {k: v[0] for k, v in parse_qs(data[:300]).items()}
    action = fields.get("action")
    linked = accounts.is_linked(account)
    if action == "find":
        answer.messages = [resources.carousel(session=session, settings=settings)]
        return "find", answer
    if action == "settings":
        answer.messages = [messages.notice_settings(enabled=account.notices_enabled, contact=who)]
        return "settings", answer
    if action == "notices" and fields.get("on") in ("0", "1"):
        enabled = fields["on"] == "1"
        accounts.set_notices(session=session, account=account, enabled=enabled)
        answer.messages = messages.notices_changed(enabled=enabled, contact=who)
        return "notices_on" if enabled else "notices_off", answer
    if action == "link" and not linked:
        answer.link_for_user = account.line_user_id
        return "link_offered", answer
    if action == "unlink" and linked:
        if fields.get("confirm") == "1":
            accounts.unlink(session=session, account=account)
            answer.messages = messages.unlinked(contact=who)
            return "unlinked", answer
        answer.messages = [messages.confirm_unlink(contact=who)]
        return "unlink_asked", answer
    answer.messages = [messages.menu(linked=linked, contact=who)]
    return "menu", answer


def _municipality_name(session: Session) -> str:
    name = session.exec(select(Municipality.name).order_by(col(Municipality.id))).first()
    return name or "市"


async def receive(
    *, body: bytes, signature: str | None, settings: Settings, sessions: UnitOfWork
) -> tuple[int, list[int]]:
    """Check and record a webhook delivery, committed before LINE gets its answer.

    Returns how many events it held and the inbox ids of those not seen before.
    """
    if len(body) > MAX_BODY:
        raise BadRequest("webhook body too large")
    events = parse(
        body=body, signature=signature, channel_secret=settings.line_channel_secret.get_secret_value()
    )

    def _record() -> list[int]:
        with sessions() as session:
            return record(session=session, events=events)

    return len(events), await run_in_threadpool(_record)


async def respond(*, inbox_ids: list[int], settings: Settings, sessions: UnitOfWork) -> None:
    """Handle recorded events one by one (each its own transaction), then answer over LINE."""

    def _handle(inbox_id: int) -> Answer | None:
        with sessions() as session:
            return handle(session=session, settings=settings, inbox_id=inbox_id)

    async with Line(settings) as line:
        for inbox_id in inbox_ids:
            try:
                answer = await run_in_threadpool(_handle, inbox_id)
            except Exception:
                # The event stays in the inbox unhandled; the log names it, not its content.
                log.exception("webhook event not handled", extra={"fields": {"inbox_id": inbox_id}})
                continue
            if answer is not None:
                await _answer(line=line, answer=answer, settings=settings)


async def _answer(*, line: Line, answer: Answer, settings: Settings) -> None:
    who = contact(settings)
    if answer.link_for_user is not None:
        try:
            token = await line.issue_link_token(user_id=answer.link_for_user)
            link = messages.link_url(settings.public_base_url, token)
            answer.messages = [messages.link_invitation(link_url=link, contact=who)]
        except UpstreamError:
            answer.messages = [
                messages.text(
                    "ただいま連携の準備ができません。時間をおいてお試しください。\n"
                    "Linking is not available right now; please try again later."
                )
            ]
    result = await line.reply(reply_token=answer.reply_token, messages=answer.messages)
    if result.outcome is not Outcome.sent:
        log.warning(
            "LINE reply not sent",
            extra={"fields": {"status": result.status, "outcome": result.outcome.value}},
        )
