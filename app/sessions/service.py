"""Start, resume and end browser sessions; issue and check CSRF tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import event
from sqlalchemy.orm import Session as SaSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, delete, select, update

from app.core.config import Mode, get_settings
from app.core.errors import Forbidden
from app.core.types import utcnow
from app.sessions.models import PrincipalKind, WebSession

SESSION_COOKIE = "tsunagu_session"
# Forms shown before sign-in (the sign-in form itself) use a double-submit cookie instead.
PRE_SESSION_CSRF_COOKIE = "tsunagu_csrf"
CSRF_FIELD = "csrf_token"

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# The idle clock is moved on at most once a minute, and written at commit.
TOUCH_INTERVAL = timedelta(minutes=1)
_TOUCH = "tsunagu.sessions.touch"  # (web session id, when) to write at commit, in session.info


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _set_cookie(response: Response, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=get_settings().mode is not Mode.demo,
        path="/",
    )


def start(
    *,
    session: Session,
    request: Request,
    response: Response,
    principal_kind: PrincipalKind,
    principal_id: int,
) -> WebSession:
    """Sign in: end whatever session this browser had and issue a brand-new id (no fixation)."""
    end(session=session, request=request, response=response)
    token = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_hash=_hash(token),
        principal_kind=principal_kind,
        principal_id=principal_id,
        csrf_token=secrets.token_urlsafe(32),
    )
    session.add(web_session)
    session.flush()
    _set_cookie(response, SESSION_COOKIE, token, max_age=int(ABSOLUTE_TIMEOUT.total_seconds()))
    return web_session


def resume(*, session: Session, request: Request, principal_kind: PrincipalKind) -> WebSession | None:
    """The live session of this browser for the given kind of principal, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    web_session = session.exec(select(WebSession).where(WebSession.token_hash == _hash(token))).first()
    if web_session is None or web_session.principal_kind is not principal_kind:
        return None
    now = utcnow()
    if (
        web_session.ended_at is not None
        or now - _aware(web_session.last_seen_at) > IDLE_TIMEOUT
        or now - _aware(web_session.created_at) > ABSOLUTE_TIMEOUT
    ):
        return None
    if now - _aware(web_session.last_seen_at) >= TOUCH_INTERVAL:
        session.connection()  # the unit of work whose commit writes the touch
        session.info[_TOUCH] = (web_session.id, now)
    return web_session


@event.listens_for(SaSession, "before_commit")
def _write_touch(session: SaSession) -> None:
    # Written with the request's last writes, not at its start: on SQLite a page read then
    # holds the one write lock only at its end, not while it reads and renders.
    touch = session.info.pop(_TOUCH, None)
    if touch is not None:
        session_id, at = touch
        session.execute(update(WebSession).where(col(WebSession.id) == session_id).values(last_seen_at=at))


@event.listens_for(SaSession, "after_transaction_end")
def _drop_touch(session: SaSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_TOUCH, None)


def end(*, session: Session, request: Request, response: Response) -> None:
    """Sign out this browser."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session.exec(
            update(WebSession)
            .where(col(WebSession.token_hash) == _hash(token))
            .where(col(WebSession.ended_at).is_(None))
            .values(ended_at=utcnow())
        )
    response.delete_cookie(SESSION_COOKIE, path="/")


def end_all(*, session: Session, principal_kind: PrincipalKind, principal_id: int) -> int:
    """Sign a principal out everywhere (e.g. a disabled staff account); returns how many ended."""
    result = session.exec(
        update(WebSession)
        .where(col(WebSession.principal_kind) == principal_kind)
        .where(col(WebSession.principal_id) == principal_id)
        .where(col(WebSession.ended_at).is_(None))
        .values(ended_at=utcnow())
    )
    return int(result.rowcount or 0)


def pre_session_csrf_token(*, request: Request, response: Response) -> str:
    """A CSRF token for a form shown before sign-in, mirrored in a cookie (double submit)."""
    token = request.cookies.get(PRE_SESSION_CSRF_COOKIE) or secrets.token_urlsafe(32)
    _set_cookie(response, PRE_SESSION_CSRF_COOKIE, token, max_age=3600)
    return token


def verify_csrf(*, expected: str | None, submitted: str | None) -> None:
    """Refuse a form post whose token is missing or does not match, in constant time."""
    if not expected or not submitted or not secrets.compare_digest(expected, submitted):
        raise Forbidden(
            "フォームの有効期限が切れたか、不正な送信です。ページを開き直してください。"
            " / The form expired or was not sent from this site; please reload the page."
        )


async def verify_form_csrf(*, request: Request, web_session: WebSession | None) -> None:
    """Check the CSRF field of a posted form against the session (or the pre-session cookie)."""
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    expected = (
        web_session.csrf_token if web_session is not None else request.cookies.get(PRE_SESSION_CSRF_COOKIE)
    )
    verify_csrf(expected=expected, submitted=submitted if isinstance(submitted, str) else None)


def purge_stale(*, session: Session) -> int:
    """Delete sessions that can no longer be resumed (ended, idle or past their absolute life)."""
    now = utcnow()
    result = session.exec(
        delete(WebSession).where(
            (col(WebSession.ended_at).is_not(None))
            | (col(WebSession.last_seen_at) < now - IDLE_TIMEOUT)
            | (col(WebSession.created_at) < now - ABSOLUTE_TIMEOUT)
        )
    )
    return int(result.rowcount or 0)
