"""The server-side session table: a row per signed-in browser, so any session can be ended."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow


class PrincipalKind(StrEnum):
    guardian = "guardian"
    student = "student"
    staff = "staff"


class WebSession(SQLModel, table=True):
    """Only the SHA-256 of the cookie value is stored: a leaked table opens no session."""

    __tablename__ = "web_session"
    __table_args__ = (sa.Index("ix_web_session_principal", "principal_kind", "principal_id"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    principal_kind: PrincipalKind = Field(sa_type=enum_type(PrincipalKind))
    principal_id: int
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    ended_at: datetime | None = Field(default=None, sa_type=aware_datetime())
