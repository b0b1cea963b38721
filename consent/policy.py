"""The policy decision point: may this actor use this scope of this child for this purpose now?

Every read of child data outside `consent/` asks here first. `authorize` and `authorize_many`
record each allowed use in the audit log in the caller's transaction, so no read can happen
without appearing in the family's "who used my child's data" list. `check` decides without
recording, only for deciding what to show or what to plan; never to read data.

Whose grants count: a partner client (ActorKind.partner_client, `ref` = its OAuth client_id)
is covered only by grants the family gave to that client; every other actor (staff, screening,
connectors, notices, the guardian) acts for the municipality and is covered only by grants
given to the municipality (`ConsentGrant.client_id` NULL).

Learning which grants stopped (for connectors, notices, caches):
- in the same transaction: `on_grant_stopped(callback)` registers a function that the consent
  service calls, inside the pausing or revoking transaction, with each `StoppedGrant`;
- afterwards, by polling: `grants_stopped_since(session=…, since=…)` lists grants that were
  paused, revoked, expired or objected to in a time window; keep the `until` you passed as the
  next `since`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.audit.models import Outcome
from app.core.db import one_of, one_of_or_all
from app.core.types import utcnow
from consent.models import (
    Client,
    ConsentEvent,
    ConsentGrant,
    ConsentPermission,
    GrantEventKind,
    GrantStatus,
    Objection,
)
from consent.scopes import Purpose, Scope

__all__ = [
    "Actor",
    "ActorKind",
    "Decision",
    "Reason",
    "StoppedGrant",
    "authorize",
    "authorize_many",
    "check",
    "data_from",
    "grants_stopped_since",
    "on_grant_stopped",
    "open_objections",
    "snapshot",
    "students_with_consent_changes",
]

_grant: sa.Table = ConsentGrant.__table__  # type: ignore[attr-defined]
_permission: sa.Table = ConsentPermission.__table__  # type: ignore[attr-defined]
_client: sa.Table = Client.__table__  # type: ignore[attr-defined]
_objection: sa.Table = Objection.__table__  # type: ignore[attr-defined]
_event: sa.Table = ConsentEvent.__table__  # type: ignore[attr-defined]


class Reason(StrEnum):
    allowed = "allowed"
    no_grant = "no_grant"  # nothing from this family for this recipient
    scope_not_granted = "scope_not_granted"  # a live grant, but not for this category
    purpose_not_granted = "purpose_not_granted"  # a live grant for the category, not this purpose
    grant_pending = "grant_pending"
    grant_paused = "grant_paused"
    grant_revoked = "grant_revoked"
    grant_expired = "grant_expired"
    objection = "objection"  # the student objected to this purpose
    client_unknown = "client_unknown"  # not registered, or disabled by an administrator


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grant_id: int | None
    reason: str


@dataclass(frozen=True)
class StoppedGrant:
    """A grant that no longer allows use (or, for `objected`, no longer for `purposes`)."""

    grant_id: int
    student_id: int
    client_id: str | None
    status: str  # paused, revoked, expired or objected
    stopped_at: datetime
    scopes: frozenset[Scope]
    purposes: frozenset[Purpose]


StopCallback = Callable[[Session, StoppedGrant], None]
_stop_callbacks: list[StopCallback] = []


def on_grant_stopped(callback: StopCallback) -> StopCallback:
    """Register `callback(session, stopped)` to run inside every pause, revoke or objection.

    Usable as a decorator. A callback that raises aborts the whole change, so the family's
    revocation and everything that must stop with it land together or not at all.
    """
    if callback not in _stop_callbacks:
        _stop_callbacks.append(callback)
    return callback


def notify_stopped(*, session: Session, stopped: StoppedGrant) -> None:
    """Called by the consent service only."""
    for callback in _stop_callbacks:
        callback(session, stopped)


def utc(at: datetime | None) -> datetime:
    """AT as an aware UTC datetime (SQLite hands back naive ones); None is now."""
    if at is None:
        return utcnow()
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _live(status: GrantStatus, starts_at: datetime, expires_at: datetime | None, at: datetime) -> bool:
    return (
        status is GrantStatus.active and utc(starts_at) <= at and (expires_at is None or utc(expires_at) > at)
    )


def _in_force(rows: Sequence[_Permission], at: datetime) -> list[_Permission]:
    return [r for r in rows if _live(r.status, r.starts_at, r.expires_at, at)]


def _client_pk(session: Session, client_ref: str) -> int | None:
    return session.execute(
        sa.select(_client.c.id).where(_client.c.client_id == client_ref, _client.c.is_active)
    ).scalar_one_or_none()


def _recipient_clause(client_pk: int | None) -> sa.ColumnElement[bool]:
    if client_pk is None:
        return _grant.c.client_id.is_(None)
    return _grant.c.client_id == client_pk


def _open_objection(
    student_id: sa.ColumnElement[int] | int, purpose: Purpose | sa.ColumnElement[str]
) -> sa.Exists:
    return sa.exists().where(
        _objection.c.student_id == student_id,
        _objection.c.purpose == purpose,
        _objection.c.resolved_at.is_(None),
    )


class _Permission(NamedTuple):
    """One (scope, purpose) of one grant, with what decides whether the grant is live."""

    id: int
    status: GrantStatus
    starts_at: datetime
    expires_at: datetime | None
    scope: str
    purpose: str


_PERMISSION_COLUMNS = (
    _grant.c.student_id,
    _grant.c.id,
    _grant.c.status,
    _grant.c.starts_at,
    _grant.c.expires_at,
    _permission.c.scope,
    _permission.c.purpose,
)
_PERMISSIONS = sa.select(*_PERMISSION_COLUMNS).join(_permission, _permission.c.grant_id == _grant.c.id)
# Built once: composing the statement cost as much as running it on the hot path.
_ONE_CHILD = {
    municipal: _PERMISSIONS.where(
        _grant.c.student_id == sa.bindparam("student_id"),
        _grant.c.client_id.is_(None) if municipal else _grant.c.client_id == sa.bindparam("client_pk"),
    )
    for municipal in (True, False)
}
_OPEN_OBJECTION = sa.select(
    _open_objection(sa.bindparam("student_id"), sa.bindparam("purpose", type_=_objection.c.purpose.type))
)


def _decision(
    rows: Sequence[_Permission],
    live: Sequence[_Permission],
    *,
    scope: Scope,
    purpose: Purpose,
    at: datetime,
    objected: Callable[[], bool],
) -> Decision:
    """The decision over one child's permissions for one recipient, LIVE being those of its
    rows whose grant is in force at AT; `objected` is asked only when a live grant would allow."""
    if not rows:
        return Decision(False, None, Reason.no_grant)
    allowing = [r.id for r in live if r.scope == scope and r.purpose == purpose]
    if allowing:
        if objected():
            return Decision(False, None, Reason.objection)
        return Decision(True, max(allowing), Reason.allowed)
    covering = [r for r in rows if r.scope == scope and r.purpose == purpose]
    if covering:
        latest = max(covering, key=lambda r: r.id)
        return Decision(False, None, _why_not_live(latest.status, latest.starts_at, at))
    if any(r.scope == scope for r in live):
        return Decision(False, None, Reason.purpose_not_granted)
    if live:
        return Decision(False, None, Reason.scope_not_granted)
    latest = max(rows, key=lambda r: r.id)
    return Decision(False, None, _why_not_live(latest.status, latest.starts_at, at))


def _decide(
    session: Session,
    *,
    student_id: int,
    scope: Scope,
    purpose: Purpose,
    at: datetime,
    client_pk: int | None,
) -> Decision:
    found = session.execute(
        _ONE_CHILD[client_pk is None], {"student_id": student_id, "client_pk": client_pk}
    ).all()
    rows = [_Permission(*row[1:]) for row in found]

    def objected() -> bool:
        return bool(session.execute(_OPEN_OBJECTION, {"student_id": student_id, "purpose": purpose}).scalar())

    return _decision(rows, _in_force(rows, at), scope=scope, purpose=purpose, at=at, objected=objected)


def _why_not_live(status: GrantStatus, starts_at: datetime, at: datetime) -> Reason:
    if status is GrantStatus.active:
        return Reason.grant_pending if utc(starts_at) > at else Reason.grant_expired
    return {
        GrantStatus.pending: Reason.grant_pending,
        GrantStatus.paused: Reason.grant_paused,
        GrantStatus.revoked: Reason.grant_revoked,
        GrantStatus.expired: Reason.grant_expired,
        GrantStatus.rejected: Reason.no_grant,
    }[status]


def check(
    *,
    session: Session,
    student_id: int,
    scope: Scope,
    purpose: Purpose,
    at: datetime | None = None,
    client_id: str | None = None,
) -> Decision:
    """The decision without recording a use: for showing "not shared" or planning a fetch only.

    `client_id` names a partner client; None asks about the municipality's own use.
    """
    client_pk = None
    if client_id is not None:
        client_pk = _client_pk(session, client_id)
        if client_pk is None:
            return Decision(False, None, Reason.client_unknown)
    return _decide(
        session,
        student_id=student_id,
        scope=scope,
        purpose=purpose,
        at=utc(at),
        client_pk=client_pk,
    )


@dataclass(frozen=True)
class Snapshot:
    """The permissions of a set of children for one recipient, read once: each `decide` is then
    a lookup in memory, for set-based planning (which children to fetch, which to screen).

    A snapshot is as fresh as the moment it was read, so it lives for one unit of work (a
    request, one batch of a job) and is never kept: a revocation committed after it was read
    is seen by the next snapshot, as by the next `check`. Like `check`, it records nothing;
    reading a child's data still goes through `authorize` or `authorize_many`.
    """

    at: datetime
    permissions: dict[int, list[_Permission]]
    objections: frozenset[tuple[int, Purpose]]
    client_known: bool = True
    # Which of each child's permissions are in force at AT, worked out once per snapshot
    # rather than once per decision (27 decisions per child for every scope and purpose).
    in_force: dict[int, list[_Permission]] = field(init=False)

    def __post_init__(self) -> None:
        in_force = {student: _in_force(rows, self.at) for student, rows in self.permissions.items()}
        object.__setattr__(self, "in_force", in_force)

    def decide(self, student_id: int, scope: Scope, purpose: Purpose) -> Decision:
        if not self.client_known:
            return Decision(False, None, Reason.client_unknown)
        return _decision(
            self.permissions.get(student_id, []),
            self.in_force.get(student_id, []),
            scope=scope,
            purpose=purpose,
            at=self.at,
            objected=lambda: (student_id, purpose) in self.objections,
        )


def snapshot(
    *,
    session: Session,
    student_ids: Collection[int] | None = None,
    client_id: str | None = None,
    at: datetime | None = None,
) -> Snapshot:
    """Read the permissions of STUDENT_IDS (None: every child) for the municipality, or for the
    partner CLIENT_ID, in two queries: decide for many children without a query each."""
    moment = utc(at)
    client_pk = None
    if client_id is not None:
        client_pk = _client_pk(session, client_id)
        if client_pk is None:
            return Snapshot(moment, {}, frozenset(), client_known=False)
    permissions: dict[int, list[_Permission]] = {}
    objections: set[tuple[int, Purpose]] = set()
    open_objections_query = sa.select(_objection.c.student_id, _objection.c.purpose).where(
        _objection.c.resolved_at.is_(None)
    )
    query = _PERMISSIONS.where(_recipient_clause(client_pk))
    ids, dialect = None if student_ids is None else sorted(set(student_ids)), session.get_bind().dialect
    batches = [
        (query.where(granted_to), open_objections_query.where(objecting))
        for granted_to, objecting in zip(
            one_of_or_all(dialect, _grant.c.student_id, ids),
            one_of_or_all(dialect, _objection.c.student_id, ids),
            strict=True,
        )
    ]
    for permitted, objecting in batches:
        for row in session.execute(permitted):
            permissions.setdefault(row[0], []).append(_Permission(*row[1:]))
        objected = session.execute(objecting)
        objections.update((student, Purpose(purpose)) for student, purpose in objected)
    return Snapshot(moment, permissions, frozenset(objections))


def authorize(
    *,
    session: Session,
    actor: Actor,
    student_id: int,
    scope: Scope,
    purpose: Purpose,
    at: datetime | None = None,
) -> Decision:
    """May ACTOR use SCOPE of CHILD for PURPOSE now? The answer, allowed or not, is audited."""
    moment = utc(at)
    client_pk: int | None = None
    decision: Decision | None = None
    if actor.kind is ActorKind.partner_client:
        client_pk = _client_pk(session, actor.ref)
        if client_pk is None:
            decision = Decision(False, None, Reason.client_unknown)
    if decision is None:
        decision = _decide(
            session,
            student_id=student_id,
            scope=scope,
            purpose=purpose,
            at=moment,
            client_pk=client_pk,
        )
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor,
            action=audit.USE,
            outcome=Outcome.allowed if decision.allowed else Outcome.refused,
            student_id=student_id,
            scope=scope.value,
            purpose=purpose.value,
            grant_id=decision.grant_id,
            detail=None if decision.allowed else decision.reason,
            at=moment,
        ),
    )
    return decision


def authorize_many(
    *,
    session: Session,
    actor: Actor,
    scopes: Collection[Scope],
    purpose: Purpose,
    student_ids: Collection[int] | None = None,
    at: datetime | None = None,
) -> dict[int, dict[Scope, int]]:
    """For every child with a live grant for PURPOSE: the allowed scopes among SCOPES, each with
    the grant that allows it. Children without one are absent. Each child's use is recorded in
    the caller's transaction: one entry per child and grant, listing the scopes it allows
    (space-separated): a city-wide screening run writes one entry per child, not one per child
    and scope (nine times as many hashed entries were half of a full run's time)."""
    moment = utc(at)
    client_pk: int | None = None
    if actor.kind is ActorKind.partner_client:
        client_pk = _client_pk(session, actor.ref)
        if client_pk is None:
            return {}
    wanted = sorted({Scope(s) for s in scopes})
    if not wanted:
        return {}
    # Each child's grants by the student index, then each grant's permissions from its primary
    # key alone, the grants the outer loop of a LEFT JOIN (a grant without a wanted permission
    # comes back with none, and is passed over below). Joined the other way, SQLite, which keeps
    # no statistics, read each child's nine permissions by the (purpose, scope, student) index and
    # the grant of each (0.95 s for the 18,000 children of an incremental run at 250,000; 0.34 s
    # this way), and PostgreSQL went through all 2.25 M permissions of a city. The recipient is
    # compared here, not in the query: SQLite took `client_id IS NULL` for a selective index
    # and read every grant of the city by it.
    query = (
        sa.select(
            _grant.c.student_id,
            _grant.c.id,
            _grant.c.client_id,
            # One row per child and grant, its scopes joined as plain text (looked up below):
            # a row per scope was nine rows per child, and fetching and looping over them was
            # most of a city-wide call (450,000 rows for 50,000 children).
            sa.func.aggregate_strings(sa.type_coerce(_permission.c.scope, sa.String), " "),
        )
        .select_from(_grant)
        .outerjoin(
            _permission,
            sa.and_(
                _permission.c.grant_id == _grant.c.id,
                _permission.c.purpose == purpose,
                _permission.c.scope.in_(wanted),
            ),
        )
        .where(
            _grant.c.status == GrantStatus.active,
            _grant.c.starts_at <= moment,
            sa.or_(_grant.c.expires_at.is_(None), _grant.c.expires_at > moment),
            ~_open_objection(_grant.c.student_id, purpose),
        )
        .group_by(_grant.c.student_id, _grant.c.id, _grant.c.client_id)
    )
    ids = None if student_ids is None else sorted(set(student_ids))
    batches = [
        query.where(among) for among in one_of_or_all(session.get_bind().dialect, _grant.c.student_id, ids)
    ]
    grants_of: dict[int, list[tuple[int, str]]] = {}
    for batch in batches:
        for student_id, grant_id, client_id, joined in session.execute(batch).all():
            if joined is not None and client_id == client_pk:
                grants_of.setdefault(student_id, []).append((grant_id, joined))
    # Nearly every child's families grant the same few sets of scopes: each joined text is
    # parsed once, not once per child (per child it was a third of a 21,000-child call).
    scope_of = {scope.value: scope for scope in Scope}
    parsed: dict[str, tuple[tuple[Scope, ...], str]] = {}

    def scopes_in(joined: str) -> tuple[tuple[Scope, ...], str]:
        if joined not in parsed:
            scopes = tuple(sorted(scope_of[scope] for scope in joined.split(" ")))
            parsed[joined] = (scopes, " ".join(scopes))  # a StrEnum: joined as its value
        return parsed[joined]

    allowed: dict[int, dict[Scope, int]] = {}
    entries = []
    purpose_value = purpose.value

    def entry(student_id: int, grant_id: int, scopes: str) -> audit.Entry:
        return audit.Entry(
            actor=actor,
            action=audit.USE,
            outcome=Outcome.allowed,
            student_id=student_id,
            scope=scopes,
            purpose=purpose_value,
            grant_id=grant_id,
            at=moment,
        )

    for student_id in sorted(grants_of):
        rows = grants_of[student_id]
        if len(rows) == 1:
            [(grant_id, joined)] = rows
            scopes, text = scopes_in(joined)
            allowed[student_id] = dict.fromkeys(scopes, grant_id)
            entries.append(entry(student_id, grant_id, text))
            continue
        # Grants in ascending order, so that a scope two grants allow goes to the newer one.
        granted: dict[Scope, int] = {}
        for grant_id, joined in sorted(rows):
            granted.update(dict.fromkeys(scopes_in(joined)[0], grant_id))
        allowed[student_id] = granted
        by_grant: dict[int, list[str]] = {}
        for scope, grant_id in granted.items():
            by_grant.setdefault(grant_id, []).append(scope)
        entries += [
            entry(student_id, grant_id, " ".join(sorted(scopes)))
            for grant_id, scopes in sorted(by_grant.items())
        ]
    audit.append_many(session=session, entries=entries)
    return allowed


def data_from(*, session: Session, grant_ids: Collection[int]) -> dict[int, date]:
    """The first day of data each grant covers, for the grants that set one (no data about an
    earlier day may be fetched or kept under it); a grant absent from the answer covers all."""
    found: dict[int, date] = {}
    for among in one_of(session.get_bind().dialect, _grant.c.id, sorted(set(grant_ids))):
        rows = session.execute(
            sa.select(_grant.c.id, _grant.c.data_from).where(among, _grant.c.data_from.is_not(None))
        )
        found.update((grant_id, first) for grant_id, first in rows)
    return found


def hold_grants(*, session: Session, grant_ids: Collection[int]) -> None:
    """Keep the grants from changing until SESSION's transaction ends.

    A writer of data obtained under these grants calls this before it looks up which grants
    stopped (`grants_stopped_since`). Without it, a withdrawal could commit between the look-up
    and the write: it deletes what is stored under the grant, and the rows written after it
    would stay. With it, the withdrawal's update of the grant waits for the writer, whose rows
    it then deletes, or the writer waits for the withdrawal and sees it.

    PostgreSQL: the grants' rows FOR SHARE. SQLite: its one write lock, taken now (an UPDATE
    that matches no row takes it). Python's sqlite3 opens a transaction only at the first write,
    so the look-up read the last commit and the withdrawal could commit before the write began:
    the sync test that revokes a grant mid-run failed now and then on SQLite too."""
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        session.execute(sa.update(_grant).where(sa.false()).values(id=_grant.c.id))
        return
    if dialect.name != "postgresql":
        return
    for among in one_of(dialect, _grant.c.id, sorted(set(grant_ids))):
        session.execute(sa.select(_grant.c.id).where(among).order_by(_grant.c.id).with_for_update(read=True))


_STOPPING_EVENTS = (GrantEventKind.paused, GrantEventKind.revoked, GrantEventKind.expired)


def grants_stopped_since(
    *, session: Session, since: datetime, until: datetime | None = None
) -> list[StoppedGrant]:
    """Grants that stopped allowing use in (since, until]: paused, revoked, expired by status or
    by reaching `expires_at`, and grants whose purpose the student objected to. Oldest first.

    One statement: a sync asks this before every request and every write, and the three ways a
    grant stops were three round trips each time."""
    start, end = utc(since), utc(until)
    # The enum columns are read as plain text, so that the three parts line up in one UNION.
    events = (
        sa.select(
            _grant,
            sa.cast(_event.c.kind, sa.String).label("stopped_as"),
            _event.c.at.label("stopped_at"),
            sa.cast(sa.null(), sa.String).label("objected_purpose"),
        )
        .join(_event, _event.c.grant_id == _grant.c.id)
        .where(_event.c.kind.in_(_STOPPING_EVENTS), _event.c.at > start, _event.c.at <= end)
    )
    expiring = sa.select(
        _grant,
        sa.cast(sa.literal("expired"), sa.String),
        _grant.c.expires_at,
        sa.cast(sa.null(), sa.String),
    ).where(
        _grant.c.status == GrantStatus.active,
        _grant.c.expires_at > start,
        _grant.c.expires_at <= end,
    )
    objections = (
        sa.select(
            _grant,
            sa.cast(sa.literal("objected"), sa.String),
            _objection.c.raised_at,
            sa.cast(_objection.c.purpose, sa.String),
        )
        .join(_objection, _objection.c.student_id == _grant.c.student_id)
        .where(
            _objection.c.raised_at > start,
            _objection.c.raised_at <= end,
            _grant.c.status == GrantStatus.active,
        )
    )
    found: list[StoppedGrant] = []
    for row in session.execute(sa.union_all(events, expiring, objections)).mappings():
        purpose = None if row["objected_purpose"] is None else Purpose(row["objected_purpose"])
        if purpose is not None and purpose.value not in row["purposes"]:
            continue
        found.append(_stopped(session, row, row["stopped_as"], row["stopped_at"], purpose))
    return sorted(found, key=lambda s: (s.stopped_at, s.grant_id))


def students_with_consent_changes(
    *, session: Session, since: datetime, until: datetime | None = None
) -> set[int]:
    """Children whose consent may have changed in (since, until]: a grant given or moved, one
    starting or expiring, an objection raised or resolved. For work that redoes only what
    changed (incremental screening), so a family that just consented or stopped is not missed."""
    start, end = utc(since), utc(until)

    def within(column: sa.ColumnElement[datetime]) -> sa.ColumnElement[bool]:
        return sa.and_(column > start, column <= end)

    grants = sa.select(_grant.c.student_id).where(
        sa.or_(
            within(_grant.c.created_at),
            within(_grant.c.status_changed_at),
            within(_grant.c.starts_at),
            within(_grant.c.expires_at),
        )
    )
    objections = sa.select(_objection.c.student_id).where(
        sa.or_(within(_objection.c.raised_at), within(_objection.c.resolved_at))
    )
    return set(session.execute(sa.union(grants, objections)).scalars())


def _stopped(
    session: Session,
    row: sa.RowMapping,
    status: str,
    stopped_at: datetime,
    only_purpose: Purpose | None,
) -> StoppedGrant:
    client_ref = None
    if row["client_id"] is not None:
        client_ref = session.execute(
            sa.select(_client.c.client_id).where(_client.c.id == row["client_id"])
        ).scalar_one()
    return StoppedGrant(
        grant_id=row["id"],
        student_id=row["student_id"],
        client_id=client_ref,
        status=status,
        stopped_at=utc(stopped_at),
        scopes=frozenset(Scope(s) for s in row["scopes"]),
        purposes=frozenset([only_purpose] if only_purpose else (Purpose(p) for p in row["purposes"])),
    )


def stopped_from_grant(grant: ConsentGrant, *, status: str, client_ref: str | None) -> StoppedGrant:
    """The StoppedGrant the service hands to callbacks when it stops `grant`."""
    assert grant.id is not None
    return StoppedGrant(
        grant_id=grant.id,
        student_id=grant.student_id,
        client_id=client_ref,
        status=status,
        stopped_at=utc(grant.status_changed_at),
        scopes=frozenset(Scope(s) for s in grant.scopes),
        purposes=frozenset(Purpose(p) for p in grant.purposes),
    )


@dataclass(frozen=True)
class OpenObjection:
    """A student asked that their data stop being used for a purpose; staff talk with the family."""

    objection_id: int
    student_id: int
    purpose: Purpose
    raised_at: datetime
    message: str | None


def open_objections(*, session: Session, student_ids: Collection[int] | None = None) -> list[OpenObjection]:
    """Objections not yet resolved, oldest first: the staff's list of families to talk with."""
    query = sa.select(_objection).where(_objection.c.resolved_at.is_(None)).order_by(_objection.c.raised_at)
    if student_ids is not None:
        query = query.where(_objection.c.student_id.in_(sorted(set(student_ids))))
    return [
        OpenObjection(row.id, row.student_id, Purpose(row.purpose), utc(row.raised_at), row.message)
        for row in session.execute(query)
    ]
