"""Grant lifecycle: create an immutable grant, then pause, resume, revoke; student objections.

Each change writes a ConsentEvent and an audit entry and, when use stops, runs the
`consent.policy.on_grant_stopped` callbacks, all in the caller's transaction (services flush;
the request or job commits).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import date, datetime

from sqlmodel import Session, select

from app.audit import service as audit
from app.audit.actors import Actor
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
) -> ConsentGrant:
    """Move a grant along its lifecycle (pause, resume, revoke, …) and record why and by whom."""
    to_status, allowed_from = _TRANSITIONS[kind]
    if grant.status not in allowed_from:
        raise Conflict(f"この同意は {grant.status.value} です / grant is {grant.status.value}")
    now = utcnow()
    grant.status = to_status
    grant.status_changed_at = now
    session.add(grant)
    _record(session, grant, kind, actor, now, note=note)
    session.flush()
    assert grant.id is not None
    if kind is GrantEventKind.revoked:
        oauth.revoke_for_grant(session=session, grant_id=grant.id)
        # Withdrawal deletes at once what was obtained under the grant (no law here requires
        # keeping it); the deletion record stays, the data does not.
        deleted = erasure.delete_obtained_under(session=session, grant_id=grant.id)
        summary = ", ".join(f"{table}: {count}" for table, count in sorted(deleted.items()))
        _record(session, grant, GrantEventKind.data_deleted, actor, now, note=summary or "（なし / none）")
    if kind in _STOPPING:
        policy.notify_stopped(
            session=session,
            stopped=policy.stopped_from_grant(
                grant, status=to_status.value, client_ref=_client_ref(session, grant)
            ),
        )
    return grant


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
) -> None:
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
            at=at,
        ),
    )
