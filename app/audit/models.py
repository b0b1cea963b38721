"""The audit log's tables: append-only entries in several hash chains, and each chain's head."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.audit.actors import ActorKind
from app.core.types import aware_datetime, enum_type

GENESIS_HASH = "0" * 64
CHAINS = 16
"""Independent chains, each with its own head row (created by the migrations): a transaction
appends to one of them, so concurrent transactions rarely wait for each other."""


class Outcome(StrEnum):
    allowed = "allowed"  # a use of child data the policy allowed
    refused = "refused"  # a use the policy refused
    done = "done"  # a change (consent given, revoked, alert closed …)


class AuditEntry(SQLModel, table=True):
    """One thing that happened to a child's data. Never updated, never deleted.

    An entry belongs to one `chain`; `seq` is its position there, assigned from the chain's head
    (not an autoincrement), so a gap means removal; `hash` = SHA-256(prev_hash, canonical JSON of
    the entry) links it to the entry before it in the same chain, so any change or move shows.
    `student_id` is a plain integer, not a foreign key: the record of a use outlives the roster row.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (sa.Index("ix_audit_entry_student_at", "student_id", "at"),)

    chain: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=aware_datetime())
    actor_kind: ActorKind = Field(sa_type=enum_type(ActorKind))
    actor_ref: str = Field(max_length=128)
    actor_organisation: str = Field(max_length=128)
    actor_role: str | None = Field(default=None, max_length=64)
    student_id: int | None = None
    scope: str | None = Field(
        default=None, max_length=256, description="the scopes used, space-separated (as in OAuth)"
    )
    purpose: str | None = Field(default=None, max_length=32)
    action: str = Field(max_length=64)
    outcome: Outcome = Field(sa_type=enum_type(Outcome))
    grant_id: int | None = Field(default=None, index=True)
    detail: str | None = Field(default=None, max_length=256)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)

    @property
    def scopes(self) -> list[str]:
        """The scopes one use read: a bulk use (a screening run) lists all it read of the child."""
        return self.scope.split() if self.scope else []


class AuditChainHead(SQLModel, table=True):
    """One row per chain (`id` is the chain's number): its last sequence number and hash.

    An append holds its chain's head lock until commit, so that chain never forks and its order
    is the order of commits; other chains take other transactions meanwhile.
    """

    __tablename__ = "audit_chain_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_seq: int
    last_hash: str = Field(max_length=64)
