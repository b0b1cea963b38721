"""Consent tables: registered clients, grants (immutable artefacts), their events, objections.

Only `consent/` reads or writes these tables; every other package asks `consent.policy`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.audit.actors import ActorKind
from app.core.types import aware_datetime, enum_type, utcnow
from consent.scopes import Purpose, Scope


class GrantStatus(StrEnum):
    pending = "pending"
    active = "active"
    paused = "paused"
    revoked = "revoked"
    expired = "expired"
    rejected = "rejected"


class FetchFrequency(StrEnum):
    daily = "daily"  # 毎日
    weekly = "weekly"  # 毎週
    monthly = "monthly"  # 毎月
    once = "once"  # 1回のみ


class GrantEventKind(StrEnum):
    created = "created"
    activated = "activated"
    paused = "paused"
    resumed = "resumed"
    revoked = "revoked"
    expired = "expired"
    rejected = "rejected"
    data_deleted = "data_deleted"


class Client(SQLModel, table=True):
    """A program or organisation registered by an administrator to ask families for consent."""

    __tablename__ = "oauth_client"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=128)
    organisation: str = Field(max_length=128)
    secret_hash: str | None = Field(
        default=None, max_length=255, description="argon2 hash; NULL for a public client"
    )
    redirect_uris: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    purposes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    require_par: bool = False
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class ConsentGrant(SQLModel, table=True):
    """What a guardian agreed to for one child: never edited; a change is a new grant.

    Only `status` and `status_changed_at` move, and each move is a `ConsentEvent`.
    `client_id` NULL means the recipient is the municipality itself (its staff, screening,
    connectors and notices); otherwise it is the partner client the family authorised.
    """

    __tablename__ = "consent_grant"

    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    client_id: int | None = Field(default=None, foreign_key="oauth_client.id", index=True)
    scopes: list[str] = Field(sa_type=sa.JSON)
    purposes: list[str] = Field(sa_type=sa.JSON)
    fetch_frequency: FetchFrequency = Field(sa_type=enum_type(FetchFrequency))
    data_from: date | None = Field(default=None, description="earliest day of data covered")
    data_life_days: int = Field(ge=0, description="how long data fetched under it is kept")
    starts_at: datetime = Field(sa_type=aware_datetime())
    expires_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    status: GrantStatus = Field(sa_type=enum_type(GrantStatus))
    status_changed_at: datetime = Field(sa_type=aware_datetime())
    notice_version: str = Field(max_length=32)
    notice_hash: str = Field(max_length=64, description="SHA-256 of the exact notice shown")
    student_assent: bool | None = None
    replaces_grant_id: int | None = Field(default=None, foreign_key="consent_grant.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class ConsentPermission(SQLModel, table=True):
    """One (scope, purpose) pair a grant allows: the index that set-based decisions scan."""

    __tablename__ = "consent_permission"
    __table_args__ = (
        sa.Index("ix_consent_permission_purpose_scope_student", "purpose", "scope", "student_id"),
    )

    grant_id: int = Field(foreign_key="consent_grant.id", primary_key=True)
    scope: Scope = Field(sa_type=enum_type(Scope), primary_key=True)
    purpose: Purpose = Field(sa_type=enum_type(Purpose), primary_key=True)
    student_id: int = Field(foreign_key="student.id")


class ConsentEvent(SQLModel, table=True):
    """The append-only history of a grant."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="consent_grant.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime(), index=True)
    kind: GrantEventKind = Field(sa_type=enum_type(GrantEventKind))
    actor_kind: ActorKind = Field(sa_type=enum_type(ActorKind))
    actor_ref: str = Field(max_length=128)
    note: str | None = Field(default=None, max_length=500)


class Objection(SQLModel, table=True):
    """A student's objection to one purpose: processing for it stops until staff resolve it."""

    __tablename__ = "consent_objection"

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    purpose: Purpose = Field(sa_type=enum_type(Purpose))
    raised_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    message: str | None = Field(default=None, max_length=500)
    resolved_at: datetime | None = Field(default=None, sa_type=aware_datetime())
