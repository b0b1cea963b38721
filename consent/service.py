"""Grant lifecycle: create an immutable grant, then pause, resume, revoke; student objections.

Each change writes a ConsentEvent and an audit entry and, when use stops, runs the
`consent.policy.on_grant_stopped` callbacks, all in the caller's transaction (services flush;
the request or job commits).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.audit.models import Outcome
from app.core.errors import BadRequest, Conflict, NotFound
from app.core.types import utcnow
from app.sources import erasure
from consent import oauth, policy, receipts
from consent.models import (
    Client,
    ConsentEvent,
    ConsentGrant,
    ConsentPermission,
    FetchFrequency,
    GrantEventKind,
    GrantStatus,
    Objection,
)
from consent.scopes import Purpose, Scope

# Which status each event moves a grant to, and from which statuses it may.
_TRANSITIONS: dict[GrantEventKind, tuple[GrantStatus, frozenset[GrantStatus]]] = {
    GrantEventKind.activated: (GrantStatus.active, frozenset({GrantStatus.pending})),
    GrantEventKind.rejected: (GrantStatus.rejected, frozenset({GrantStatus.pending})),
    GrantEventKind.paused: (GrantStatus.paused, frozenset({GrantStatus.active})),
    GrantEventKind.resumed: (GrantStatus.active, frozenset({GrantStatus.paused})),
    GrantEventKind.revoked: (
        GrantStatus.revoked,
        frozenset({GrantStatus.pending, GrantStatus.active, GrantStatus.paused}),
    ),
    GrantEventKind.expired: (
        GrantStatus.expired,
        frozenset({GrantStatus.active, GrantStatus.paused}),
    ),
}
_STOPPING = {GrantEventKind.paused, GrantEventKind.revoked, GrantEventKind.expired}


def create_grant(
    *,
    session: Session,
    actor: Actor,
    guardian_id: int,
    student_id: int,
    scopes: Collection[Scope],
    purposes: Collection[Purpose],
    notice_version: str,
    notice_hash: str,
    client_id: int | None = None,
    fetch_frequency: FetchFrequency = FetchFrequency.daily,
    data_from: date | None = None,
    data_life_days: int = 365,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    student_assent: bool | None = None,
    replaces_grant_id: int | None = None,
    status: GrantStatus = GrantStatus.active,
) -> ConsentGrant:
    """Record what the guardian approved, exactly: one (scope, purpose) permission per pair."""
    if not scopes or not purposes:
        raise BadRequest("a grant needs at least one data category and one purpose")
    if status not in (GrantStatus.active, GrantStatus.pending):
        raise BadRequest("a new grant is active or pending")
    now = utcnow()
    grant = ConsentGrant(
        guardian_id=guardian_id,
        student_id=student_id,
        client_id=client_id,
        scopes=sorted(Scope(s).value for s in set(scopes)),
        purposes=sorted(Purpose(p).value for p in set(purposes)),
        fetch_frequency=fetch_frequency,
        data_from=data_from,
        data_life_days=data_life_days,
        starts_at=starts_at or now,
        expires_at=expires_at,
        status=status,
        status_changed_at=now,
        notice_version=notice_version,
        notice_hash=notice_hash,
        student_assent=student_assent,
        replaces_grant_id=replaces_grant_id,
        created_at=now,
    )
    session.add(grant)
    session.flush()
    assert grant.id is not None
    session.add_all(
        ConsentPermission(
            grant_id=grant.id, scope=Scope(scope), purpose=Purpose(purpose), student_id=student_id
        )
        for scope in grant.scopes
        for purpose in grant.purposes
    )
    _record(session, grant, GrantEventKind.created, actor, now, note=None)
    if status is GrantStatus.active:
        _record(session, grant, GrantEventKind.activated, actor, now, note=None)
    session.flush()
    receipts.issue(session=session, grant=grant)
    return grant


def get_grant(*, session: Session, grant_id: int) -> ConsentGrant:
    grant = session.get(ConsentGrant, grant_id)
    if grant is None:
        raise NotFound("同意が見つかりません / consent grant not found")
    return grant


def transition(
    *,
    session: Session,
    grant: ConsentGrant,
    kind: GrantEventKind,
    actor: Actor,
    note: str | None = None,
    at: datetime | None = None,
) -> ConsentGrant:
    """Move a grant along its lifecycle (pause, resume, revoke, …) and record why and by whom.

    `at` backdates the change to when it took effect (an expiry recorded after its moment)."""
    to_status, allowed_from = _TRANSITIONS[kind]
    if grant.status not in allowed_from:
        raise Conflict(f"この同意は {grant.status.value} です / grant is {grant.status.value}")
    now = utcnow()
    effective = at or now
    grant.status = to_status
    grant.status_changed_at = effective
    session.add(grant)
    _record(session, grant, kind, actor, effective, note=note, recorded_at=now)
    session.flush()
    assert grant.id is not None
    if kind in (GrantEventKind.revoked, GrantEventKind.expired):
        oauth.revoke_for_grant(session=session, grant_id=grant.id)
    if kind is GrantEventKind.revoked:
        # Withdrawal deletes at once what was obtained under the grant (no law here requires
        # keeping it); the deletion record stays, the data does not.
        deleted = erasure.delete_obtained_under(
            session=session, grant_id=grant.id, student_id=grant.student_id
        )
        _record(session, grant, GrantEventKind.data_deleted, actor, now, note=_summary(deleted))
    if kind in _STOPPING:
        policy.notify_stopped(
            session=session,
            stopped=policy.stopped_from_grant(
                grant, status=to_status.value, client_ref=_client_ref(session, grant)
            ),
        )
    return grant


def effective_status(grant: ConsentGrant, *, at: datetime | None = None) -> GrantStatus:
    """The grant's status, or EXPIRED once its expiry has passed (before `expire_due` records it)."""
    live = grant.status in (GrantStatus.active, GrantStatus.paused)
    if live and grant.expires_at is not None and policy.utc(grant.expires_at) <= policy.utc(at):
        return GrantStatus.expired
    return grant.status


EXPIRE_BATCH = 1_000
EXPIRY_ACTOR = Actor(kind=ActorKind.system, ref="consent.expiry", organisation="つなぐ / tsunagu")


def expire_due(*, session: Session, at: datetime | None = None, limit: int = EXPIRE_BATCH) -> int:
    """Grants past their expiry become EXPIRED, with everything a stop does: events, audit,
    tokens revoked, `on_grant_stopped` callbacks. Returns how many.

    The policy already refuses a grant past its expiry by time alone; this records the end and
    tells those who must stop, at most LIMIT grants per call. Each change is dated at the
    grant's own `expires_at`, so a poller of `policy.grants_stopped_since` sees it once. Rows
    are claimed with SKIP LOCKED, so several workers may run it at once on PostgreSQL."""
    moment = at or utcnow()
    due = session.exec(
        select(ConsentGrant)
        .where(
            col(ConsentGrant.status).in_([GrantStatus.active, GrantStatus.paused]),
            col(ConsentGrant.expires_at).is_not(None),
            col(ConsentGrant.expires_at) <= moment,
        )
        .order_by(col(ConsentGrant.expires_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for grant in due:
        assert grant.expires_at is not None
        transition(
            session=session,
            grant=grant,
            kind=GrantEventKind.expired,
            actor=EXPIRY_ACTOR,
            note="有効期限 / expiry reached",
            at=policy.utc(grant.expires_at),
        )
    return len(due)


DATA_LIFE_ACTOR = Actor(kind=ActorKind.system, ref="consent.data_life", organisation="つなぐ / tsunagu")


def delete_past_data_life(*, session: Session, at: datetime | None = None) -> dict[int, dict[str, int]]:
    """What the notice promises (取得した日から1年間保存し、その後削除します): every row older
    than the data life of the grant it was obtained under is deleted, whatever the grant's
    status, and each grant that lost rows records a `data_deleted` event saying how many.
    Returns the counts per grant and table."""
    moment = at or utcnow()
    lives = session.exec(select(ConsentGrant.data_life_days).distinct()).all()
    deleted: dict[int, dict[str, int]] = {}
    for days in lives:
        deleted |= erasure.delete_obtained_before(
            session=session,
            grants=select(col(ConsentGrant.id)).where(ConsentGrant.data_life_days == days),
            before=moment - timedelta(days=days),
        )
    for grant in session.exec(select(ConsentGrant).where(col(ConsentGrant.id).in_(deleted))).all():
        assert grant.id is not None
        _record(
            session,
            grant,
            GrantEventKind.data_deleted,
            DATA_LIFE_ACTOR,
            moment,
            note=f"保存期間の終了 / data life ended ({grant.data_life_days} days): "
            + _summary(deleted[grant.id]),
        )
    return deleted


def _summary(deleted: dict[str, int]) -> str:
    return ", ".join(f"{table}: {count}" for table, count in sorted(deleted.items())) or "（なし / none）"


def raise_objection(
    *, session: Session, actor: Actor, student_id: int, purpose: Purpose, message: str | None
) -> Objection:
    """The student objects to a purpose: every use for it stops until staff resolve it."""
    now = utcnow()
    objection = Objection(student_id=student_id, purpose=purpose, raised_at=now, message=message)
    session.add(objection)
    session.flush()
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor,
            action="consent.objected",
            outcome=Outcome.done,
            student_id=student_id,
            purpose=purpose.value,
            at=now,
        ),
    )
    grants = session.exec(
        select(ConsentGrant).where(
            ConsentGrant.student_id == student_id, ConsentGrant.status == GrantStatus.active
        )
    ).all()
    for grant in grants:
        if purpose.value in grant.purposes:
            stopped = policy.stopped_from_grant(
                grant, status="objected", client_ref=_client_ref(session, grant)
            )
            policy.notify_stopped(
                session=session,
                stopped=replace(stopped, stopped_at=now, purposes=frozenset({purpose})),
            )
    return objection


def resolve_objection(*, session: Session, actor: Actor, objection_id: int) -> Objection:
    """Staff talked with the family about a student's objection: use for its purpose may resume."""
    objection = session.get(Objection, objection_id)
    if objection is None or objection.resolved_at is not None:
        raise NotFound("その申し出は見つかりません。 / No such open objection.")
    now = utcnow()
    objection.resolved_at = now
    session.add(objection)
    session.flush()
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor,
            action="consent.objection_resolved",
            outcome=Outcome.done,
            student_id=objection.student_id,
            purpose=objection.purpose.value,
            at=now,
        ),
    )
    return objection


def _client_ref(session: Session, grant: ConsentGrant) -> str | None:
    if grant.client_id is None:
        return None
    client = session.get(Client, grant.client_id)
    return client.client_id if client else None


def _record(
    session: Session,
    grant: ConsentGrant,
    kind: GrantEventKind,
    actor: Actor,
    at: datetime,
    *,
    note: str | None,
    recorded_at: datetime | None = None,
) -> None:
    """The grant's event at AT (when it took effect), and its audit entry at RECORDED_AT (when
    written; the audit log only moves forward)."""
    assert grant.id is not None
    session.add(
        ConsentEvent(
            grant_id=grant.id,
            at=at,
            kind=kind,
            actor_kind=actor.kind,
            actor_ref=actor.ref,
            note=note,
        )
    )
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor,
            action=f"consent.{kind.value}",
            outcome=Outcome.done,
            student_id=grant.student_id,
            grant_id=grant.id,
            at=recorded_at or at,
        ),
    )
