"""Column helpers shared by every domain's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa


def enum_type(enum: type[StrEnum]) -> sa.Enum:
    """Store an enum as VARCHAR: portable across SQLite and PostgreSQL, and a new member needs
    no ALTER TYPE migration on PostgreSQL."""
    return sa.Enum(
        enum,
        native_enum=False,
        length=max(len(m.value) for m in enum),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware_datetime() -> Any:
    return sa.DateTime(timezone=True)
