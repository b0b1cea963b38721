"""Append to the audit log (one entry or many), read a child's uses, and verify the chains."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as SaSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from app.audit.actors import Actor
from app.audit.models import CHAINS, GENESIS_HASH, AuditChainHead, AuditEntry, Outcome
from app.core import bulk
from app.core.types import utcnow

USE = "use"
"""The action of every read of child data; the guardian's "who used my child's data" lists these."""

_ENTRY_TABLE: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
_HEAD_TABLE: sa.Table = AuditChainHead.__table__  # type: ignore[attr-defined]
_PENDING = "tsunagu.audit.pending"  # the transaction's entries not yet written, in session.info


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
class Problem:
    """The first bad entry of one chain: `problem` is changed, removed or reordered."""

    chain: int
    seq: int
    problem: str

    def describe(self) -> str:
        return f"chain {self.chain} entry {self.seq} {self.problem}"


@dataclass(frozen=True)
class Verification:
    """The result of walking every chain: at most one problem per chain, the first one found."""

    ok: bool
    entries_checked: int
    chains: int
    problems: list[Problem]

    def describe(self) -> str:
        if self.ok:
            return f"audit log intact: {self.entries_checked} entries in {self.chains} chains"
        return "audit log tampered: " + "; ".join(problem.describe() for problem in self.problems)


@lru_cache(maxsize=4096)  # a transaction's entries mostly share one moment
def _utc_text(at: datetime) -> str:
    # SQLite hands back naive datetimes: everything the log stores is UTC.
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the entry (without its chain and
    seq: the links, not the numbering, fix the order, so a moved entry shows as reordered)."""
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


def append(*, session: Session, entry: Entry) -> None:
    """Record one entry in the caller's transaction (written when it commits)."""
    append_many(session=session, entries=[entry])


def append_many(*, session: Session, entries: Iterable[Entry]) -> None:
    """Record entries, in order, in the caller's transaction.

    They are held on the session and written by `flush` just before the transaction commits
    (a rollback drops them with everything else): one append per transaction, its head lock
    held only from there to the commit, not while the rest of a request reads and renders.
    """
    now = utcnow()
    session.connection()  # begins the unit of work whose commit writes them, whose end drops them
    session.info.setdefault(_PENDING, []).extend(_row(entry, now) for entry in entries)


def flush(*, session: Session) -> list[tuple[int, int]]:
    """Write the transaction's pending entries now; returns their (chain, seq), in order.

    The chain is drawn at random, so concurrent transactions mostly claim different heads.
    Claiming the head with an UPDATE takes its row lock on PostgreSQL (the write lock on
    SQLite) until commit, so two writers of one chain queue instead of forking it.
    """
    rows: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if not rows:
        return []
    chain = random.randint(1, CHAINS)  # noqa: S311 - spreading writers, not a secret
    claimed = session.execute(
        sa.update(_HEAD_TABLE)
        .where(_HEAD_TABLE.c.id == chain)
        .values(last_seq=_HEAD_TABLE.c.last_seq + len(rows))
        .returning(_HEAD_TABLE.c.last_seq, _HEAD_TABLE.c.last_hash)
    ).one()
    first_seq = claimed.last_seq - len(rows) + 1
    prev_hash: str = claimed.last_hash
    for offset, row in enumerate(rows):
        row["chain"] = chain
        row["seq"] = first_seq + offset
        row["prev_hash"] = prev_hash
        prev_hash = row["hash"] = _chain_hash(prev_hash, row)
    _insert(session, rows)
    session.execute(sa.update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == chain).values(last_hash=prev_hash))
    return [(chain, row["seq"]) for row in rows]


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY, which streams the rows in one round trip (a pipelined INSERT per row
    was the slowest part of an append), as text made column by column (app.core.bulk).
    SQLite: the driver's executemany (multi-row INSERTs through SQLAlchemy were 0.8 s of the
    18,000 entries of an incremental screening run at 250,000 children)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        bulk.execute_many(connection, bulk.insert_statement(_ENTRY_TABLE, rows[0]), _ENTRY_TABLE, rows)
        return
    columns = {column.key: [row[column.key] for row in rows] for column in _ENTRY_TABLE.c}
    bulk.copy(connection, _ENTRY_TABLE, columns, len(rows))


@event.listens_for(SaSession, "before_commit")
def _write_pending(session: SaSession) -> None:
    flush(session=session)  # type: ignore[arg-type]


@event.listens_for(SaSession, "after_transaction_end")
def _drop_pending(session: SaSession, transaction: SessionTransaction) -> None:
    # A unit of work that ended without committing (rolled back, or closed) leaves nothing
    # behind for the session's next one. A commit has written its entries already.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def uses_of_child(*, session: Session, student_id: int, limit: int = 500) -> Sequence[AuditEntry]:
    """Every allowed use of the child's data, newest first: the family's "who used my data"."""
    flush(session=session)
    return session.exec(
        select(AuditEntry)
        .where(
            AuditEntry.student_id == student_id,
            AuditEntry.action == USE,
            AuditEntry.outcome == Outcome.allowed,
        )
        .order_by(col(AuditEntry.at).desc(), col(AuditEntry.chain), col(AuditEntry.seq).desc())
        .limit(limit)
    ).all()


def verify(*, session: Session, batch: int = 10_000) -> Verification:
    """Walk every chain in order; report the first entry of each that was changed, removed or
    reordered (moved within or between chains), and entries in a chain that has no head."""
    flush(session=session)
    problems: list[Problem] = []
    checked = 0
    heads = session.execute(sa.select(_HEAD_TABLE).order_by(_HEAD_TABLE.c.id)).all()
    for head in heads:
        problem, count = _verify_chain(session, head.id, head.last_seq, head.last_hash, batch)
        checked += count
        if problem is not None:
            problems.append(problem)
    strays = session.execute(
        sa.select(_ENTRY_TABLE.c.chain, sa.func.min(_ENTRY_TABLE.c.seq))
        .where(_ENTRY_TABLE.c.chain.not_in([head.id for head in heads]))
        .group_by(_ENTRY_TABLE.c.chain)
        .order_by(_ENTRY_TABLE.c.chain)
    ).all()
    problems += [Problem(chain, seq, "reordered") for chain, seq in strays]
    return Verification(ok=not problems, entries_checked=checked, chains=len(heads), problems=problems)


def _verify_chain(
    session: Session, chain: int, last_seq: int, last_hash: str, batch: int
) -> tuple[Problem | None, int]:
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    while True:
        rows = (
            session.execute(
                sa.select(_ENTRY_TABLE)
                .where(_ENTRY_TABLE.c.chain == chain, _ENTRY_TABLE.c.seq >= expected_seq)
                .order_by(_ENTRY_TABLE.c.seq)
                .limit(batch)
            )
            .mappings()
            .all()
        )
        for row in rows:
            if row["seq"] != expected_seq:
                return Problem(chain, expected_seq, "removed"), checked
            if _chain_hash(row["prev_hash"], dict(row)) != row["hash"]:
                return Problem(chain, row["seq"], "changed"), checked
            if row["prev_hash"] != expected_prev:
                return Problem(chain, row["seq"], "reordered"), checked
            expected_seq, expected_prev, checked = expected_seq + 1, row["hash"], checked + 1
        if len(rows) < batch:
            break
    if last_seq != checked:
        # The head counts more entries than remain: the newest ones were cut off.
        return Problem(chain, checked + 1, "removed"), checked
    if last_hash != expected_prev:
        return Problem(chain, checked, "changed"), checked
    return None, checked
