"""Append to the audit log (one entry or many), read a child's uses, and verify the chain."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.audit.actors import Actor
from app.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry, Outcome
from app.core.types import utcnow

USE = "use"
"""The action of every read of child data; the guardian's "who used my child's data" lists these."""

_ENTRY_TABLE: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
_HEAD_TABLE: sa.Table = AuditChainHead.__table__  # type: ignore[attr-defined]
# Rows per INSERT statement in a bulk append: large enough to amortise round trips, small
# enough to stay under SQLite's bound-parameter limit (15 columns x 2,000 rows).
_INSERT_BATCH = 2_000


@dataclass(frozen=True)
class Entry:
    """What to record; the log assigns the sequence number and the hashes."""

    actor: Actor
    action: str
    outcome: Outcome
    student_id: int | None = None
    scope: str | None = None
    purpose: str | None = None
    grant_id: int | None = None
    detail: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain: `problem` is changed, removed or reordered."""

    ok: bool
    entries_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit log intact: {self.entries_checked} entries"
        return f"audit log tampered: entry {self.first_bad_seq} {self.problem}"


def _utc_text(at: datetime) -> str:
    # SQLite hands back naive datetimes: everything the log stores is UTC.
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the entry (without its seq:
    the chain, not the numbering, fixes the order, so a moved entry shows as reordered)."""
    content = {
        "at": _utc_text(row["at"]),
        "actor_kind": str(row["actor_kind"]),
        "actor_ref": row["actor_ref"],
        "actor_organisation": row["actor_organisation"],
        "actor_role": row["actor_role"],
        "student_id": row["student_id"],
        "scope": row["scope"],
        "purpose": row["purpose"],
        "action": row["action"],
        "outcome": str(row["outcome"]),
        "grant_id": row["grant_id"],
        "detail": row["detail"],
    }
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


def _row(entry: Entry, at: datetime) -> dict[str, Any]:
    return {
        "at": entry.at or at,
        "actor_kind": entry.actor.kind.value,
        "actor_ref": entry.actor.ref,
        "actor_organisation": entry.actor.organisation,
        "actor_role": entry.actor.role,
        "student_id": entry.student_id,
        "scope": entry.scope,
        "purpose": entry.purpose,
        "action": entry.action,
        "outcome": entry.outcome.value,
        "grant_id": entry.grant_id,
        "detail": entry.detail,
    }


def append(*, session: Session, entry: Entry) -> int:
    """Record one entry in the caller's transaction; returns its sequence number."""
    return append_many(session=session, entries=[entry])[0]


def append_many(*, session: Session, entries: Iterable[Entry]) -> list[int]:
    """Record entries in order, in the caller's transaction; returns their sequence numbers.

    The chain head is claimed first with an UPDATE, which takes the row lock on PostgreSQL and
    the write lock on SQLite, so concurrent writers queue instead of forking the chain.
    """
    now = utcnow()
    rows = [_row(entry, now) for entry in entries]
    if not rows:
        return []
    claimed = session.execute(
        sa.update(_HEAD_TABLE)
        .where(_HEAD_TABLE.c.id == 1)
        .values(last_seq=_HEAD_TABLE.c.last_seq + len(rows))
        .returning(_HEAD_TABLE.c.last_seq, _HEAD_TABLE.c.last_hash)
    ).one()
    first_seq = claimed.last_seq - len(rows) + 1
    prev_hash: str = claimed.last_hash
    for offset, row in enumerate(rows):
        row["seq"] = first_seq + offset
        row["prev_hash"] = prev_hash
        prev_hash = row["hash"] = _chain_hash(prev_hash, row)
    for start in range(0, len(rows), _INSERT_BATCH):
        session.execute(sa.insert(_ENTRY_TABLE), rows[start : start + _INSERT_BATCH])
    session.execute(sa.update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == 1).values(last_hash=prev_hash))
    return [row["seq"] for row in rows]


def uses_of_child(*, session: Session, student_id: int, limit: int = 500) -> Sequence[AuditEntry]:
    """Every allowed use of the child's data, newest first: the family's "who used my data"."""
    return session.exec(
        select(AuditEntry)
        .where(
            AuditEntry.student_id == student_id,
            AuditEntry.action == USE,
            AuditEntry.outcome == Outcome.allowed,
        )
        .order_by(col(AuditEntry.seq).desc())
        .limit(limit)
    ).all()


def verify(*, session: Session, batch: int = 10_000) -> Verification:
    """Walk the whole chain in order and report the first entry changed, removed or reordered."""
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    while True:
        rows = (
            session.execute(
                sa.select(_ENTRY_TABLE)
                .where(_ENTRY_TABLE.c.seq >= expected_seq)
                .order_by(_ENTRY_TABLE.c.seq)
                .limit(batch)
            )
            .mappings()
            .all()
        )
        for row in rows:
            if row["seq"] != expected_seq:
                return Verification(False, checked, expected_seq, "removed")
            if _chain_hash(row["prev_hash"], dict(row)) != row["hash"]:
                return Verification(False, checked, row["seq"], "changed")
            if row["prev_hash"] != expected_prev:
                return Verification(False, checked, row["seq"], "reordered")
            expected_seq, expected_prev, checked = expected_seq + 1, row["hash"], checked + 1
        if len(rows) < batch:
            break
    head = session.execute(sa.select(_HEAD_TABLE).where(_HEAD_TABLE.c.id == 1)).one()
    if head.last_seq != checked:
        # The head counts more entries than remain: the newest ones were cut off.
        return Verification(False, checked, checked + 1, "removed")
    if head.last_hash != expected_prev:
        return Verification(False, checked, checked, "changed")
    return Verification(True, checked)
