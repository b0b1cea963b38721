"""Consent tables: registered clients, grants (immutable artefacts), their events, objections.

Only `consent/` reads or writes these tables; every other package asks `consent.policy`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

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
    jwks: dict[str, Any] | None = Field(
        default=None, sa_type=sa.JSON, description="public keys for private_key_jwt; NULL: secret only"
    )
    redirect_uris: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    purposes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    require_par: bool = False
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class ClientAssertion(SQLModel, table=True):
    """A `private_key_jwt` assertion already used (RFC 7523 §3: its `jti` is single use), kept
    until it would have expired anyway."""

    __tablename__ = "oauth_client_assertion"
    __table_args__ = (sa.UniqueConstraint("client_id", "jti_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="oauth_client.id")
    jti_hash: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=aware_datetime(), index=True)


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
    # Indexed for the every-minute job that records grants past their expiry (consent.tasks).
    expires_at: datetime | None = Field(default=None, sa_type=aware_datetime(), index=True)
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


class AuthorizationRequest(SQLModel, table=True):
    """An authorization request held server-side: pushed by a client (RFC 9126), or waiting
    on the consent page for the guardian's decision. Single use; only a hash of its handle."""

    __tablename__ = "oauth_authorization_request"

    id: int | None = Field(default=None, primary_key=True)
    handle_hash: str = Field(max_length=64, unique=True)
    client_id: int = Field(foreign_key="oauth_client.id", index=True)
    params: dict[str, str] = Field(sa_type=sa.JSON)
    pushed: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    expires_at: datetime = Field(sa_type=aware_datetime())
    used_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class AuthorizationCode(SQLModel, table=True):
    """A single-use authorization code (stored hashed), bound to client, redirect URI and PKCE."""

    __tablename__ = "oauth_authorization_code"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    client_id: int = Field(foreign_key="oauth_client.id", index=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    grant_id: int = Field(foreign_key="consent_grant.id", index=True)
    redirect_uri: str = Field(max_length=512)
    scope: str = Field(max_length=1024)
    code_challenge: str | None = Field(default=None, max_length=128)
    code_challenge_method: str | None = Field(default=None, max_length=8)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    expires_at: datetime = Field(sa_type=aware_datetime())
    used_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class OAuthToken(SQLModel, table=True):
    """One issued access token (a JWT, known here by its jti) and its refresh token (hashed).

    Every refresh rotates into a new row of the same `family_id`; a replayed refresh token
    revokes the whole family.
    """

    __tablename__ = "oauth_token"

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="oauth_client.id", index=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    grant_id: int = Field(foreign_key="consent_grant.id", index=True)
    code_id: int | None = Field(default=None, foreign_key="oauth_authorization_code.id", index=True)
    family_id: str = Field(max_length=32, index=True)
    access_jti: str = Field(max_length=64, unique=True)
    refresh_hash: str | None = Field(default=None, max_length=64, unique=True)
    scope: str = Field(max_length=1024)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    access_expires_at: datetime = Field(sa_type=aware_datetime())
    refresh_expires_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    refresh_used_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    revoked_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class SigningKey(SQLModel, table=True):
    """A key that signs access tokens and consent receipts. Retired keys lose their private
    half but keep their public JWK published, so old receipts stay verifiable."""

    __tablename__ = "signing_key"

    kid: str = Field(max_length=64, primary_key=True)
    algorithm: str = Field(max_length=16)
    private_pem: str | None = Field(default=None, sa_type=sa.Text)
    public_jwk: dict[str, str] = Field(sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    retired_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class ConsentReceipt(SQLModel, table=True):
    """The signed receipt (JWS) of a grant, as handed to the family."""

    __tablename__ = "consent_receipt"

    grant_id: int = Field(foreign_key="consent_grant.id", primary_key=True)
    kid: str = Field(foreign_key="signing_key.kid")
    jws: str = Field(sa_type=sa.Text)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class InvitationCode(SQLModel, table=True):
    """A school-issued code that lets a guardian link to one child: random, hashed, single use,
    expiring; issuing a new one for the child voids the old."""

    __tablename__ = "invitation_code"

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    for_student: bool = Field(
        default=False, description="a code for the student's own page, not for linking a guardian"
    )
    code_hash: str = Field(max_length=64, unique=True)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    expires_at: datetime = Field(sa_type=aware_datetime())
    used_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    used_by_guardian_id: int | None = Field(default=None, foreign_key="guardian.id")
    voided_at: datetime | None = Field(default=None, sa_type=aware_datetime())
