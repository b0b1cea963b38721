"""The outbox: notifications queued in the business transaction, claimed and settled by senders.

- Queuing writes one `NotificationBatch` per request LINE will get (≤ 500 recipients for a
  multicast, one for a push) with its retry key fixed there, and one `Notification` per
  recipient. Recipients over the frequency cap get a `skipped` row instead, so staff see why.
- Quiet hours move the due time out of the night (default 21:00–07:00 in the municipality's
  time zone); the sender also refuses to send during them.
- A sender claims due batches with one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
  (SQLite, which has one writer at a time, runs the same statement without the lock clause),
  commits the claim, sends, then settles. A sent batch is recorded once, on the batch row: its
  notifications were sent with it (`delivery_status`), and a notification's own row changes
  only when it ends apart from its batch (skipped, cancelled) or with a batch that failed or
  emptied. Marking 500 rows per request cost more than sending it, and held the sender well
  below LINE's rate limit. A sender that dies mid-request leaves its batch
  `sending` with a lease; when the lease ends another sender claims it and sends again with
  the same retry key, which LINE answers 409 if the first try got through: never twice, never lost.
- Blocking the account, unlinking or a stopped grant cancel the person's queued rows at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from app.core.config import Settings
from app.core.types import utcnow
from consent import policy
from consent.scopes import Purpose
from notify.line import Outcome, Result
from notify.models import (
    BatchKind,
    BatchStatus,
    LineAccount,
    Notification,
    NotificationBatch,
    NotificationStatus,
)

MULTICAST_LIMIT = 500
MAX_ATTEMPTS = 8
CAP_WINDOW = timedelta(days=7)

_batch: sa.Table = NotificationBatch.__table__  # type: ignore[attr-defined]
_note: sa.Table = Notification.__table__  # type: ignore[attr-defined]
_account: sa.Table = LineAccount.__table__  # type: ignore[attr-defined]


@policy.on_grant_stopped
def _grant_stopped(session: Session, stopped: policy.StoppedGrant) -> None:
    """Personalised information waiting under a grant that stopped is cancelled in the same
    transaction as the pause, revocation or objection."""
    if Purpose.personalised_info in stopped.purposes:
        cancel_for_grant(session=session, grant_id=stopped.grant_id, reason=f"grant {stopped.status}")


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def in_quiet_hours(moment: datetime, settings: Settings) -> bool:
    hour = aware(moment).astimezone(ZoneInfo(settings.timezone)).hour
    start, end = settings.notify_quiet_start_hour, settings.notify_quiet_end_hour
    if start == end:
        return False
    return hour >= start or hour < end if start > end else start <= hour < end


def outside_quiet_hours(moment: datetime, settings: Settings) -> datetime:
    """MOMENT, or the end of the quiet hours it falls in."""
    if not in_quiet_hours(moment, settings):
        return aware(moment)
    local = aware(moment).astimezone(ZoneInfo(settings.timezone))
    end = local.replace(hour=settings.notify_quiet_end_hour, minute=0, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


@dataclass(frozen=True)
class Queued:
    queued: int
    skipped: int
    batches: int


def _over_cap(session: Session, account_ids: Sequence[int], due: datetime, cap: int) -> set[int]:
    """Accounts that already have `cap` notices due within a week either side of DUE."""
    over: set[int] = set()
    for start in range(0, len(account_ids), 5000):
        chunk = account_ids[start : start + 5000]
        rows = session.execute(
            sa.select(_note.c.line_account_id)
            .join(_batch, _batch.c.id == _note.c.batch_id)
            .where(
                _note.c.line_account_id.in_(chunk),
                _note.c.status.in_([NotificationStatus.queued, NotificationStatus.sent]),
                _batch.c.not_before > due - CAP_WINDOW,
                _batch.c.not_before < due + CAP_WINDOW,
            )
            .group_by(_note.c.line_account_id)
            .having(sa.func.count() >= cap)
        )
        over.update(row[0] for row in rows)
    return over


def enqueue(
    *,
    session: Session,
    settings: Settings,
    account_ids: Sequence[int],
    messages: list[dict[str, Any]],
    due: datetime,
    kind: BatchKind = BatchKind.multicast,
    campaign_id: int | None = None,
    grant_id: int | None = None,
    needs_link: bool = False,
    topic: str | None = None,
) -> Queued:
    """Queue MESSAGES for the accounts (in the caller's transaction; flushes, never commits)."""
    due = outside_quiet_hours(due, settings)
    now = utcnow()
    distinct = sorted(set(account_ids))
    over = _over_cap(session, distinct, due, settings.notify_max_per_week)
    wanted = [a for a in distinct if a not in over]
    rows: list[dict[str, Any]] = [
        {
            "batch_id": None,
            "campaign_id": campaign_id,
            "line_account_id": account_id,
            "grant_id": grant_id,
            "needs_link": needs_link,
            "topic": topic,
            "status": NotificationStatus.skipped,
            "reason": "frequency cap",
            "created_at": now,
        }
        for account_id in sorted(over)
    ]
    size = MULTICAST_LIMIT if kind is BatchKind.multicast else 1
    batches = 0
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        batch_id = session.execute(
            sa.insert(_batch)
            .values(
                kind=kind,
                campaign_id=campaign_id,
                retry_key=str(uuid.uuid4()),
                messages=messages,
                status=BatchStatus.queued,
                not_before=due,
                attempts=0,
                created_at=now,
            )
            .returning(_batch.c.id)
        ).scalar_one()
        batches += 1
        rows.extend(
            {
                "batch_id": batch_id,
                "campaign_id": campaign_id,
                "line_account_id": account_id,
                "grant_id": grant_id,
                "needs_link": needs_link,
                "topic": topic,
                "status": NotificationStatus.queued,
                "reason": None,
                "created_at": now,
            }
            for account_id in chunk
        )
    if rows:
        session.execute(sa.insert(_note), rows)
    session.flush()
    return Queued(queued=len(wanted), skipped=len(over), batches=batches)


def delivery_status() -> sa.ColumnElement[Any]:
    """A notification's status, its batch's sending included (select from `_with_batch()`)."""
    return sa.case(
        (
            sa.and_(_note.c.status == NotificationStatus.queued, _batch.c.status == BatchStatus.sent),
            sa.literal(NotificationStatus.sent.value),
        ),
        else_=_note.c.status,
    )


def _with_batch() -> sa.Join:
    # Skipped rows have no batch: an outer join keeps them.
    return _note.outerjoin(_batch, _batch.c.id == _note.c.batch_id)


def _cancel(session: Session, condition: sa.ColumnElement[bool], reason: str) -> int:
    already_sent = sa.exists().where(_batch.c.id == _note.c.batch_id, _batch.c.status == BatchStatus.sent)
    result = session.execute(
        sa.update(_note)
        .where(condition, _note.c.status == NotificationStatus.queued, ~already_sent)
        .values(status=NotificationStatus.cancelled, reason=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def cancel_for_account(*, session: Session, account_id: int, only_linked: bool, reason: str) -> int:
    """The person blocked the account (everything stops) or unlinked it (what needed the link)."""
    condition = _note.c.line_account_id == account_id
    if only_linked:
        condition = sa.and_(condition, _note.c.needs_link)
    return _cancel(session, condition, reason)


def cancel_for_grant(*, session: Session, grant_id: int, reason: str) -> int:
    return _cancel(session, _note.c.grant_id == grant_id, reason)


def cancel_for_campaign(*, session: Session, campaign_id: int) -> int:
    return _cancel(session, _note.c.campaign_id == campaign_id, "campaign cancelled")


# --- sending -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    batch_id: int
    kind: BatchKind
    retry_key: str
    messages: list[dict[str, Any]]
    user_ids: list[str]
    attempts: int


def claim(*, session: Session, limit: int, lease: timedelta, now: datetime | None = None) -> list[Claimed]:
    """Take up to LIMIT due batches (queued, or sending with an ended lease) for this sender."""
    now = now or utcnow()
    due = (
        sa.select(_batch.c.id)
        .where(
            sa.or_(
                sa.and_(_batch.c.status == BatchStatus.queued, _batch.c.not_before <= now),
                sa.and_(_batch.c.status == BatchStatus.sending, _batch.c.lease_until < now),
            )
        )
        .order_by(_batch.c.not_before, _batch.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed_ids = list(
        session.execute(
            sa.update(_batch)
            .where(_batch.c.id.in_(due.scalar_subquery()))
            .values(status=BatchStatus.sending, lease_until=now + lease, attempts=_batch.c.attempts + 1)
            .returning(_batch.c.id)
        ).scalars()
    )
    if not claimed_ids:
        return []
    batches = session.execute(sa.select(_batch).where(_batch.c.id.in_(claimed_ids))).mappings().all()
    recipients: dict[int, list[str]] = {batch_id: [] for batch_id in claimed_ids}
    for batch_id, user_id in session.execute(
        sa.select(_note.c.batch_id, _account.c.line_user_id)
        .join(_account, _account.c.id == _note.c.line_account_id)
        .where(
            _note.c.batch_id.in_(claimed_ids),
            _note.c.status == NotificationStatus.queued,
            _account.c.line_user_id.is_not(None),
            _account.c.following,
        )
        .order_by(_note.c.id)
    ):
        recipients[batch_id].append(user_id)
    return [
        Claimed(
            batch_id=b["id"],
            kind=BatchKind(b["kind"]),
            retry_key=b["retry_key"],
            messages=b["messages"],
            user_ids=recipients[b["id"]],
            attempts=b["attempts"],
        )
        # RETURNING gives no order on PostgreSQL: oldest due first, as they were chosen.
        for b in sorted(batches, key=lambda b: (aware(b["not_before"]), b["id"]))
    ]


def _finish(
    session: Session,
    batch_id: int,
    batch_status: BatchStatus,
    note_status: NotificationStatus,
    *,
    now: datetime,
    error: str | None = None,
) -> None:
    session.execute(
        sa.update(_batch)
        .where(_batch.c.id == batch_id)
        .values(
            status=batch_status,
            lease_until=None,
            sent_at=now if batch_status is BatchStatus.sent else None,
            last_error=error,
        )
    )
    if note_status is NotificationStatus.sent:
        return  # recorded on the batch: see `delivery_status`
    session.execute(
        sa.update(_note)
        .where(_note.c.batch_id == batch_id, _note.c.status == NotificationStatus.queued)
        .values(status=note_status, reason=(error or batch_status.value)[:100])
    )


def release(
    *, session: Session, batch_id: int, not_before: datetime, error: str | None, count_attempt: bool = True
) -> None:
    """Give a claimed batch back to the queue, due again at NOT_BEFORE."""
    values: dict[str, Any] = {
        "status": BatchStatus.queued,
        "lease_until": None,
        "not_before": not_before,
        "last_error": error,
    }
    if not count_attempt:
        values["attempts"] = _batch.c.attempts - 1
    session.execute(sa.update(_batch).where(_batch.c.id == batch_id).values(**values))


def settle(*, session: Session, claimed: Claimed, result: Result, now: datetime | None = None) -> None:
    """Record what LINE answered. 409 (this retry key was accepted before) counts as sent."""
    now = now or utcnow()
    if result.outcome in (Outcome.sent, Outcome.already_sent):
        _finish(session, claimed.batch_id, BatchStatus.sent, NotificationStatus.sent, now=now)
    elif result.outcome is Outcome.refused:
        _finish(
            session,
            claimed.batch_id,
            BatchStatus.failed,
            NotificationStatus.failed,
            now=now,
            error=f"LINE {result.status}: {result.detail or ''}"[:300],
        )
    elif result.outcome is Outcome.retry and claimed.attempts >= MAX_ATTEMPTS:
        _finish(
            session,
            claimed.batch_id,
            BatchStatus.failed,
            NotificationStatus.failed,
            now=now,
            error=f"gave up after {claimed.attempts} tries",
        )
    elif result.outcome is Outcome.retry:
        backoff = timedelta(seconds=min(300, 2**claimed.attempts))
        release(
            session=session,
            batch_id=claimed.batch_id,
            not_before=now + backoff,
            error=f"LINE {result.status or 'timeout'}",
        )
    else:  # rate limited or out of quota: not the batch's fault, so the try is not counted
        release(
            session=session,
            batch_id=claimed.batch_id,
            not_before=now,
            error=result.outcome.value,
            count_attempt=False,
        )


def settle_empty(*, session: Session, claimed: Claimed, now: datetime | None = None) -> None:
    """Everyone in the batch blocked, unlinked or was cancelled before it went out."""
    _finish(
        session,
        claimed.batch_id,
        BatchStatus.cancelled,
        NotificationStatus.cancelled,
        now=now or utcnow(),
        error="no recipients left",
    )


def next_lease_end(*, session: Session) -> datetime | None:
    """When the earliest claim held by some sender (alive or dead) ends, if any is held."""
    moment = session.execute(
        sa.select(sa.func.min(_batch.c.lease_until)).where(_batch.c.status == BatchStatus.sending)
    ).scalar_one_or_none()
    return aware(moment) if moment is not None else None


def pending_recipients(*, session: Session) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(_note.join(_batch, _batch.c.id == _note.c.batch_id))
            .where(
                _note.c.status == NotificationStatus.queued,
                _batch.c.status.in_([BatchStatus.queued, BatchStatus.sending]),
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class Counts:
    queued: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.sent + self.failed + self.cancelled + self.skipped


def counts_by_campaign(*, session: Session) -> dict[int | None, Counts]:
    """Per campaign (None: personalised information), how many notifications are in each state."""
    status = delivery_status()
    table: dict[int | None, dict[str, int]] = {}
    for campaign_id, state, number in session.execute(
        sa.select(_note.c.campaign_id, status, sa.func.count())
        .select_from(_with_batch())
        .group_by(_note.c.campaign_id, status)
    ):
        table.setdefault(campaign_id, {})[str(NotificationStatus(state))] = number
    return {k: Counts(**v) for k, v in table.items()}
