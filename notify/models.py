"""Notify tables: LINE accounts that follow the municipality, the webhook inbox, link nonces.

Only `notify/` reads or writes them. A LINE user id is kept while the person follows the
account (it is needed to send them notices); it is tied to a guardian or a student only while
linked, and erased (set to NULL) the moment they block the account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow
from app.sessions.models import PrincipalKind


class LineAccount(SQLModel, table=True):
    """One LINE user who follows (or followed) the official account."""

    __tablename__ = "line_account"
    __table_args__ = (
        sa.CheckConstraint("guardian_id IS NULL OR student_id IS NULL", name="linked_to_one_person"),
    )

    id: int | None = Field(default=None, primary_key=True)
    line_user_id: str | None = Field(
        default=None, max_length=33, unique=True, description="NULL once the user blocked the account"
    )
    following: bool = True
    notices_enabled: bool = Field(default=True, description="お知らせの設定: universal notices wanted")
    followed_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    unfollowed_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    guardian_id: int | None = Field(default=None, foreign_key="guardian.id", index=True)
    student_id: int | None = Field(default=None, foreign_key="student.id", index=True)
    linked_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class LineWebhookEvent(SQLModel, table=True):
    """The webhook inbox: every event once (by webhookEventId), kept until handled.

    The payload (which may hold what a person typed) is erased once the event is handled;
    the id stays so a redelivery is recognised.
    """

    __tablename__ = "line_webhook_event"

    id: int | None = Field(default=None, primary_key=True)
    webhook_event_id: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=32)
    redelivery: bool = False
    received_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime(), index=True)
    payload: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    handled_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    outcome: str | None = Field(default=None, max_length=64)


class LinkNonce(SQLModel, table=True):
    """A nonce handed to the LINE account-link dialog for a signed-in person; used once.

    Only its SHA-256 is stored: the nonce itself travels through LINE and comes back in the
    accountLink event, where it must map to exactly one person.
    """

    __tablename__ = "line_link_nonce"

    id: int | None = Field(default=None, primary_key=True)
    nonce_hash: str = Field(max_length=64, unique=True)
    principal_kind: PrincipalKind = Field(sa_type=enum_type(PrincipalKind))
    principal_id: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    expires_at: datetime = Field(sa_type=aware_datetime())
    used_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    line_account_id: int | None = Field(default=None, foreign_key="line_account.id")
