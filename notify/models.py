"""Notify tables: LINE accounts, the webhook inbox, link nonces, the support-resource directory.

Only `notify/` reads or writes them. A LINE user id is kept while the person follows the
account (following is how a person opts in to universal notices, and the id is needed to send
them); it is tied to a guardian or a student only while linked, and erased (set to NULL) the
moment they block the account.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
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
    accountLink event, where it must map to exactly one person. The row is deleted when the
    event arrives (used up, whatever the result) or once expired, so nothing outside
    `line_account` ever says which LINE account belonged to whom.
    """

    __tablename__ = "line_link_nonce"

    id: int | None = Field(default=None, primary_key=True)
    nonce_hash: str = Field(max_length=64, unique=True)
    principal_kind: PrincipalKind = Field(sa_type=enum_type(PrincipalKind))
    principal_id: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    expires_at: datetime = Field(sa_type=aware_datetime())


class ResourceKind(StrEnum):
    kodomo_shokudo = "kodomo_shokudo"  # こども食堂
    consultation = "consultation"  # 相談窓口
    learning_support = "learning_support"  # 学習支援
    ibasho = "ibasho"  # 居場所
    young_carer = "young_carer"  # ヤングケアラー支援
    school_aid = "school_aid"  # 就学援助の申請
    financial = "financial"  # 手当・経済的な支援
    health = "health"  # 心と体の相談
    other = "other"


class Need(StrEnum):
    """What a family or child may be looking for; a resource lists the needs it meets."""

    meals = "meals"  # 食事
    study = "study"  # 勉強
    consultation = "consultation"  # 相談したい
    place = "place"  # 居場所
    caregiving = "caregiving"  # 家族の世話
    money = "money"  # お金・手当
    health = "health"  # 心と体
    school = "school"  # 学校のこと


class SupportResource(SQLModel, table=True):
    """A local place to turn to, kept by municipal staff and shown to everyone."""

    __tablename__ = "support_resource"
    __table_args__ = (
        sa.UniqueConstraint("name_ja", "area"),
        sa.CheckConstraint("age_min <= age_max", name="age_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name_ja: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=100)
    kind: ResourceKind = Field(sa_type=enum_type(ResourceKind), index=True)
    area: str = Field(max_length=50, description="地区 or 市内全域", index=True)
    age_min: int = Field(default=0, ge=0, le=22)
    age_max: int = Field(default=18, ge=0, le=22)
    needs: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    hours_ja: str = Field(default="", max_length=200)
    hours_en: str = Field(default="", max_length=200)
    cost_ja: str = Field(default="", max_length=100)
    cost_en: str = Field(default="", max_length=100)
    contact: str = Field(default="", max_length=200, description="phone, e-mail or counter")
    url: str = Field(default="", max_length=300)
    address: str = Field(default="", max_length=200)
    accessibility: str = Field(default="", max_length=300)
    languages: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    description_ja: str = Field(default="", max_length=1000)
    description_en: str = Field(default="", max_length=1000)
    published: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class CampaignStatus(StrEnum):
    draft = "draft"  # composed, not yet scheduled: nothing queued
    scheduled = "scheduled"  # the outbox rows are written; the sender delivers them when due
    cancelled = "cancelled"


class Campaign(SQLModel, table=True):
    """A universal notice: the same words to everyone in the audience, whatever their situation.

    The audience is everyone who follows the account and wants notices, or those linked to a
    child of one school and/or grade. There is deliberately no way to aim at an alert, a
    category or a risk: no such column exists.
    """

    __tablename__ = "notice_campaign"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=100)
    body_ja: str = Field(max_length=5000)
    body_en: str = Field(default="", max_length=5000)
    contact_ja: str = Field(max_length=200, description="whom to ask: the department that answers")
    contact_en: str = Field(default="", max_length=200)
    resource_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    grade: int | None = Field(default=None, ge=1, le=9)
    scheduled_for: datetime = Field(sa_type=aware_datetime())
    status: CampaignStatus = Field(default=CampaignStatus.draft, sa_type=enum_type(CampaignStatus))
    created_by: int | None = Field(default=None, foreign_key="staff_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    scheduled_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    messages: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)


class BatchStatus(StrEnum):
    queued = "queued"
    sending = "sending"  # claimed by a sender until `lease_until`; after that anyone may retry
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"


class BatchKind(StrEnum):
    multicast = "multicast"  # up to 500 recipients, one universal notice
    push = "push"  # one recipient (personalised information)


class NotificationBatch(SQLModel, table=True):
    """One request to LINE: its retry key is fixed here, when it is queued, and reused on every try,
    so a retry after a lost answer is recognised by LINE (409) and never delivered twice."""

    __tablename__ = "notification_batch"
    __table_args__ = (sa.Index("ix_notification_batch_due", "status", "not_before"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: BatchKind = Field(sa_type=enum_type(BatchKind))
    campaign_id: int | None = Field(default=None, foreign_key="notice_campaign.id", index=True)
    retry_key: str = Field(max_length=36, unique=True)
    messages: list[dict[str, Any]] = Field(sa_type=sa.JSON)
    status: BatchStatus = Field(default=BatchStatus.queued, sa_type=enum_type(BatchStatus))
    not_before: datetime = Field(sa_type=aware_datetime(), description="due time, outside quiet hours")
    lease_until: datetime | None = Field(default=None, sa_type=aware_datetime())
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    sent_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class NotificationStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"  # the person blocked the account, unlinked, or the grant stopped
    skipped = "skipped"  # not queued at all: over the per-person frequency cap


class Notification(SQLModel, table=True):
    """The outbox: one row per recipient of a batch, written in the transaction that decides to send."""

    __tablename__ = "notification"
    __table_args__ = (
        sa.Index("ix_notification_batch_status", "batch_id", "status"),
        sa.Index("ix_notification_account_created", "line_account_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int | None = Field(default=None, foreign_key="notification_batch.id")
    campaign_id: int | None = Field(default=None, foreign_key="notice_campaign.id", index=True)
    line_account_id: int = Field(foreign_key="line_account.id")
    grant_id: int | None = Field(
        default=None, index=True, description="personalised info: the grant allowing it"
    )
    needs_link: bool = Field(default=False, description="aimed through the account's link: stops on unlink")
    topic: str | None = Field(default=None, max_length=40, description="personalised info: which template")
    status: NotificationStatus = Field(
        default=NotificationStatus.queued, sa_type=enum_type(NotificationStatus)
    )
    reason: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
