"""Sync bookkeeping: runs (which are also the work queue), cursors, quarantine, identity reviews."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow
from app.sources.models import Source


class SyncStatus(StrEnum):
    queued = "queued"  # waiting for a worker to claim it
    running = "running"
    succeeded = "succeeded"  # everything asked for was stored or quarantined
    partial = "partial"  # some resources could not be completed; their cursors did not move
    failed = "failed"  # nothing could be completed (e.g. the upstream was down)


class SyncRun(SQLModel, table=True):
    """One sync of one source for one school. Queued rows are the work queue: a worker claims a
    run with `FOR UPDATE SKIP LOCKED` (PostgreSQL), so several workers never do the same run.

    Counts are per record as the upstream sent it: `fetched` = inserted + updated + unchanged +
    deleted + quarantined + discarded (+ duplicates the upstream repeated across pages).
    `errors` holds operator-facing messages only: never a name or any other personal data.
    """

    __tablename__ = "sync_run"
    __table_args__ = (sa.Index("ix_sync_run_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: Source = Field(sa_type=enum_type(Source))
    partition: str = Field(max_length=32, description="the school code the run covers")
    status: SyncStatus = Field(sa_type=enum_type(SyncStatus), default=SyncStatus.queued)
    since: datetime | None = Field(
        default=None, sa_type=aware_datetime(), description="operator override of the cursors"
    )
    requested_by: str = Field(max_length=64, default="schedule")
    claimed_by: str | None = Field(default=None, max_length=64)
    queued_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    started_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    finished_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    requests: int = 0
    retries: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    discarded: int = Field(default=0, description="rows of children without consent, dropped unseen")
    duplicates: int = Field(default=0, description="records the upstream sent more than once")
    errors: list[str] = Field(default_factory=list, sa_type=sa.JSON)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        # SQLite hands back naive datetimes for aware columns; both were written in UTC.
        started, finished = (
            t if t.tzinfo else t.replace(tzinfo=UTC) for t in (self.started_at, self.finished_at)
        )
        return (finished - started).total_seconds()


class SyncCursor(SQLModel, table=True):
    """How far a resource of a source has been stored for one school.

    `position` is the upstream's modification time up to which every record is durably stored
    (the next run asks from `position` minus an overlap window). `grant_watermark` is the
    highest grant id whose children were fully fetched: a child whose allowing grant is newer
    has never been fetched under it, so it gets its whole history, not an increment.
    """

    __tablename__ = "sync_cursor"
    __table_args__ = (sa.UniqueConstraint("source", "resource", "partition"),)

    id: int | None = Field(default=None, primary_key=True)
    source: Source = Field(sa_type=enum_type(Source))
    resource: str = Field(max_length=32)
    partition: str = Field(max_length=32)
    position: datetime | None = Field(default=None, sa_type=aware_datetime())
    grant_watermark: int = 0
    sync_run_id: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class QuarantineClosing(StrEnum):
    reprocessed = "reprocessed"  # a person had it validated again and it passed
    dismissed = "dismissed"  # a person decided it is not to be kept


class QuarantinedRecord(SQLModel, table=True):
    """A record that failed validation, kept whole with the reason, never silently dropped.

    `resolved_run_id` is set when a later run stores a valid version of the same record; a
    person closes one on the operator page: re-processed (valid under today's rules, and stored
    if consent still allows) or dismissed. Open = neither.

    A record is quarantined once per version: a later run that receives the same payload again
    (same `payload_digest`), open or closed, neither quarantines it again nor holds its cursor
    back for it. `grant_id` is the grant the record was fetched under (None for the roster, which
    needs none): the family's withdrawal deletes the record with the rest of what that grant
    obtained.
    """

    __tablename__ = "quarantined_record"
    __table_args__ = (sa.Index("ix_quarantined_record_ref", "source", "resource", "record_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    sync_run_id: int = Field(index=True)
    source: Source = Field(sa_type=enum_type(Source))
    resource: str = Field(max_length=32)
    record_ref: str | None = Field(default=None, max_length=128, description="the upstream's record id")
    payload: str = Field(sa_type=sa.Text, description="the record exactly as received")
    payload_digest: str | None = Field(default=None, max_length=64, description="SHA-256 of the payload")
    grant_id: int | None = Field(default=None, index=True)
    reason: str = Field(max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    resolved_run_id: int | None = None
    closing: QuarantineClosing | None = Field(default=None, sa_type=enum_type(QuarantineClosing))
    closed_by: int | None = Field(default=None, foreign_key="staff_user.id")
    closed_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class ReviewReason(StrEnum):
    ambiguous = "ambiguous"  # more than one child fits
    no_match = "no_match"  # no child fits


class ReviewStatus(StrEnum):
    open = "open"
    resolved = "resolved"  # a person chose the child
    dismissed = "dismissed"  # a person decided the record is about none of our children


class IdentityReview(SQLModel, table=True):
    """A record about a person that could only be matched by name and failed or was ambiguous.

    A person decides; the connector never guesses (DOMAIN.md lesson 4).
    """

    __tablename__ = "identity_review"

    id: int | None = Field(default=None, primary_key=True)
    sync_run_id: int | None = Field(default=None, index=True)
    source: Source = Field(sa_type=enum_type(Source))
    record_ref: str | None = Field(default=None, max_length=128)
    family_name: str = Field(max_length=64)
    given_name: str = Field(max_length=64)
    family_name_kana: str | None = Field(default=None, max_length=64)
    given_name_kana: str | None = Field(default=None, max_length=64)
    birth_date: date | None = None
    reason: ReviewReason = Field(sa_type=enum_type(ReviewReason))
    candidate_student_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    status: ReviewStatus = Field(sa_type=enum_type(ReviewStatus), default=ReviewStatus.open)
    resolved_student_id: int | None = None
    decided_by: int | None = Field(default=None, foreign_key="staff_user.id")
    decided_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


def counts_of(run: SyncRun) -> dict[str, Any]:
    """The figures of a run, for the CLI and the operator page."""
    return {
        name: getattr(run, name)
        for name in (
            "fetched",
            "inserted",
            "updated",
            "unchanged",
            "deleted",
            "quarantined",
            "discarded",
            "duplicates",
            "requests",
            "retries",
        )
    }


class MynaLinkStatus(StrEnum):
    pending = "pending"  # sent to the portal, not back yet
    active = "active"
    revoked = "revoked"


class MynaLink(SQLModel, table=True):
    """A guardian's authorization for tsunagu to fetch chosen Myna Portal categories for a child.

    Tokens and the PKCE verifier are stored encrypted (connectors.tokens); the OAuth `state` only
    as a hash. Which categories are fetched is still decided by consent at each sync.
    """

    __tablename__ = "myna_link"

    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    categories: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    status: MynaLinkStatus = Field(sa_type=enum_type(MynaLinkStatus), default=MynaLinkStatus.pending)
    state_hash: str | None = Field(default=None, max_length=64, index=True)
    code_verifier: str | None = Field(default=None, sa_type=sa.Text)
    access_token: str | None = Field(default=None, sa_type=sa.Text)
    refresh_token: str | None = Field(default=None, sa_type=sa.Text)
    expires_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    linked_at: datetime | None = Field(default=None, sa_type=aware_datetime())
