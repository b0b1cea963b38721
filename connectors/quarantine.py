"""The quarantine: records that failed validation, kept whole with the reason, once per version.

- A record is quarantined once per version. The payload's SHA-256 tells a repeat (the upstream
  sends the same bad record again, as it does within every overlap window and on every run
  while the record's cursor waits for it) from a new version. A repeat, whether its entry is
  still open or a person has closed it (dismissed, re-processed), is not quarantined again and
  does not hold the cursor back: it is where it belongs already. A changed record is a new
  version and is quarantined (or stored, when valid) as any other.
- A quarantined record about a child keeps the grant it was fetched under; when the family
  withdraws that grant, app/sources/erasure.py deletes it with everything else obtained under it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from app.core.types import utcnow
from app.sources.models import Source
from connectors.models import QuarantinedRecord, SyncRun

TABLE: sa.Table = QuarantinedRecord.__table__  # type: ignore[attr-defined]
_RUN: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]


@dataclass
class Entry:
    record_ref: str | None
    payload: str
    reason: str
    grant_id: int | None = None

    @property
    def digest(self) -> str:
        return digest(self.record_ref, self.payload)


def digest(record_ref: str | None, payload: str) -> str:
    """One version of one record: the reference counts too, as two Myna links may receive the
    same bad payload (it names no one; the link does)."""
    return hashlib.sha256(f"{record_ref or ''}\n{payload}".encode()).hexdigest()


def known_digests(*, session: Session, source: Source, partition: str) -> dict[str, set[str]]:
    """The digests already quarantined for a source's partition (one school), by resource."""
    query = (
        sa.select(TABLE.c.resource, TABLE.c.payload_digest)
        .join(_RUN, _RUN.c.id == TABLE.c.sync_run_id)
        .where(TABLE.c.source == source, _RUN.c.partition == partition, TABLE.c.payload_digest.is_not(None))
        .distinct()
    )
    held: dict[str, set[str]] = {}
    for resource, value in session.execute(query):
        held.setdefault(resource, set()).add(value)
    return held


def save(*, session: Session, run_id: int, source: Source, resource: str, entries: Sequence[Entry]) -> None:
    if not entries:
        return
    now = utcnow()
    session.connection().execute(
        sa.insert(TABLE),
        [
            {
                "sync_run_id": run_id,
                "source": source,
                "resource": resource,
                "record_ref": e.record_ref,
                "payload": e.payload,
                "payload_digest": e.digest,
                "grant_id": e.grant_id,
                "reason": e.reason,
                "created_at": now,
            }
            for e in entries
        ],
    )
