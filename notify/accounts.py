"""LINE accounts: following and blocking, notice settings, and linking to a guardian or student.

Linking is the platform's link-token + nonce flow. A signed-in person asks to link; we make a
random nonce (only its hash is kept), valid for as long as the link token (10 minutes), and
send them to LINE's dialog with it. LINE then tells the webhook `accountLink` with the nonce;
it must match one unexpired nonce, which names the person. A nonce works once: its row is
deleted when it comes back. Unlinking or blocking clears the link at once, so a LINE user id
is tied to a person only while linked.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.core.types import utcnow
from app.sessions.models import PrincipalKind
from notify import outbox
from notify.models import LineAccount, LinkNonce

LINK_LIFETIME = timedelta(minutes=10)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def by_user_id(*, session: Session, line_user_id: str) -> LineAccount | None:
    return session.exec(select(LineAccount).where(LineAccount.line_user_id == line_user_id)).first()


def follow(*, session: Session, line_user_id: str) -> LineAccount:
    """The account of a LINE user who follows us (made on first contact)."""
    account = by_user_id(session=session, line_user_id=line_user_id)
    if account is None:
        account = LineAccount(line_user_id=line_user_id)
    elif not account.following:
        account.following, account.unfollowed_at, account.followed_at = True, None, utcnow()
    session.add(account)
    session.flush()
    return account


def forget(*, session: Session, line_user_id: str) -> LineAccount | None:
    """The user blocked the account: erase their user id and link, stop what was queued for them."""
    account = by_user_id(session=session, line_user_id=line_user_id)
    if account is None:
        return None
    account.line_user_id = None
    account.following = False
    account.unfollowed_at = utcnow()
    _clear_link(account)
    session.add(account)
    session.flush()
    assert account.id is not None
    outbox.cancel_for_account(session=session, account_id=account.id, only_linked=False, reason="blocked")
    return account


def is_linked(account: LineAccount) -> bool:
    return account.guardian_id is not None or account.student_id is not None


def set_notices(*, session: Session, account: LineAccount, enabled: bool) -> None:
    account.notices_enabled = enabled
    session.add(account)
    session.flush()


def _clear_link(account: LineAccount) -> None:
    account.guardian_id = account.student_id = account.linked_at = None


def unlink(*, session: Session, account: LineAccount) -> None:
    """Forget whom the account belongs to, and what was queued because of that."""
    _clear_link(account)
    session.add(account)
    session.flush()
    assert account.id is not None
    outbox.cancel_for_account(session=session, account_id=account.id, only_linked=True, reason="unlinked")


def unlink_person(*, session: Session, principal_kind: PrincipalKind, principal_id: int) -> int:
    """Remove every LINE link of a guardian or student (from their own page); how many."""
    column = LineAccount.guardian_id if principal_kind is PrincipalKind.guardian else LineAccount.student_id
    linked = session.exec(select(LineAccount).where(column == principal_id)).all()
    for account in linked:
        unlink(session=session, account=account)
    return len(linked)


def links_of(*, session: Session, principal_kind: PrincipalKind, principal_id: int) -> list[LineAccount]:
    column = LineAccount.guardian_id if principal_kind is PrincipalKind.guardian else LineAccount.student_id
    return list(
        session.exec(select(LineAccount).where(column == principal_id).order_by(col(LineAccount.id))).all()
    )


def start_link(*, session: Session, principal_kind: PrincipalKind, principal_id: int) -> str:
    """A fresh nonce for this signed-in person, to hand to LINE's account-link dialog."""
    if principal_kind not in (PrincipalKind.guardian, PrincipalKind.student):
        raise ValueError("only guardians and students link a LINE account")
    nonce = secrets.token_urlsafe(32)
    now = utcnow()
    # Nonces nobody brought back: gone once they cannot be used any more.
    session.execute(sa.delete(LinkNonce).where(col(LinkNonce.expires_at) < now))
    session.add(
        LinkNonce(
            nonce_hash=nonce_hash(nonce),
            principal_kind=principal_kind,
            principal_id=principal_id,
            created_at=now,
            expires_at=now + LINK_LIFETIME,
        )
    )
    session.flush()
    return nonce


def complete_link(*, session: Session, account: LineAccount, nonce: str, succeeded: bool) -> bool:
    """LINE's accountLink event: link the account to the nonce's person when all is well.

    A failed result, an unknown or expired nonce links nothing; a known nonce is used up (its
    row deleted) either way, so it can never be tried again.
    """
    if not nonce:
        return False
    found = session.exec(
        select(LinkNonce).where(LinkNonce.nonce_hash == nonce_hash(nonce)).with_for_update()
    ).first()
    if found is None:
        return False
    now = utcnow()
    usable = succeeded and _aware(found.expires_at) > now
    if usable:
        _clear_link(account)
        if found.principal_kind is PrincipalKind.guardian:
            account.guardian_id = found.principal_id
        else:
            account.student_id = found.principal_id
        account.linked_at = now
        session.add(account)
    session.delete(found)
    session.flush()
    return usable
