"""The quarantine holds a bad record once per version: a repeat neither fills it again nor holds
the cursor back for ever, whether its entry is open or a person closed it; a withdrawal deletes
the payloads obtained under the grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.types import utcnow
from app.sources.models import AttendanceDay, Source
from connectors.models import QuarantineClosing, QuarantinedRecord, SyncCursor, SyncStatus
from consent import service as consent_service
from consent.models import ConsentEvent, ConsentGrant, GrantEventKind
from consent.scopes import Scope
from tests.connectors.conftest import Upstreams
from tests.connectors.upstream import STAMP, number, school_records

FAMILY = Actor(kind=ActorKind.guardian, ref="guardian:test", organisation="家庭")


def _entries(upstreams: Upstreams, ref: str) -> list[QuarantinedRecord]:
    with Session(upstreams.engine) as session:
        return list(
            session.exec(
                select(QuarantinedRecord)
                .where(QuarantinedRecord.record_ref == ref)
                .order_by(col(QuarantinedRecord.id))
            ).all()
        )


def _position(upstreams: Upstreams, resource: str) -> datetime:
    with Session(upstreams.engine) as session:
        cursor = session.exec(
            select(SyncCursor).where(
                SyncCursor.partition == upstreams.school, SyncCursor.resource == resource
            )
        ).one()
    assert cursor.position is not None
    return cursor.position.replace(tzinfo=cursor.position.tzinfo or UTC)


async def test_a_bad_record_is_quarantined_once_per_version_and_the_cursor_passes_it(
    upstreams: Upstreams,
) -> None:
    school_records(upstreams.school, 2, upstreams.data)
    await upstreams.sync([Source.school_affairs])
    child = number(upstreams.school, 0)
    upstreams.grant(child, [Scope.school_attendance])
    bad_ref, later_ref = f"attendance:{child}:0", f"attendance:{child}:1"
    # A code the school system should not send, changed after everything else but one record.
    bad = upstreams.data.touch("attendance", upstreams.school, bad_ref, reason="77")
    upstreams.data.touch("attendance", upstreams.school, later_ref, reason="02")

    first = await upstreams.sync([Source.school_affairs])
    assert first[0].quarantined == 1 and first[0].status is SyncStatus.succeeded
    # A first quarantine holds the cursor back: a record garbled on the way is asked for again.
    assert _position(upstreams, "attendance") < bad["updatedAt"]

    second = await upstreams.sync([Source.school_affairs])
    assert second[0].quarantined == 0
    assert len(_entries(upstreams, bad_ref)) == 1
    # The same record again: it is where it belongs, and no longer holds the cursor back.
    assert _position(upstreams, "attendance") > bad["updatedAt"]

    # A person dismisses it; a run that reads the whole history again does not bring it back.
    with Session(upstreams.engine) as session:
        [entry] = session.exec(select(QuarantinedRecord).where(QuarantinedRecord.record_ref == bad_ref)).all()
        entry.closing, entry.closed_at = QuarantineClosing.dismissed, utcnow()
        session.add(entry)
        session.commit()
    everything = await upstreams.sync([Source.school_affairs], since=STAMP - timedelta(days=1))
    assert everything[0].quarantined == 0
    assert [e.closing for e in _entries(upstreams, bad_ref)] == [QuarantineClosing.dismissed]

    # Changed upstream, still bad: a new version, quarantined once more.
    upstreams.data.touch("attendance", upstreams.school, bad_ref, reason="78")
    changed = await upstreams.sync([Source.school_affairs])
    assert changed[0].quarantined == 1
    assert len(_entries(upstreams, bad_ref)) == 2

    # Fixed upstream: stored, and its open entry is resolved.
    upstreams.data.touch("attendance", upstreams.school, bad_ref, reason="01")
    fixed = await upstreams.sync([Source.school_affairs])
    assert fixed[0].quarantined == 0
    assert upstreams.count(AttendanceDay, child) == 3
    assert [e.resolved_run_id is not None for e in _entries(upstreams, bad_ref)] == [True, True]


async def test_a_repeated_roster_entry_is_not_quarantined_again(upstreams: Upstreams) -> None:
    school_records(upstreams.school, 2, upstreams.data)
    broken = number(upstreams.school, 1)
    upstreams.data.touch_student(upstreams.school, broken, grades=["X9"])
    first = await upstreams.sync([Source.school_affairs])
    again = await upstreams.sync([Source.school_affairs], since=STAMP - timedelta(days=1))
    assert (first[0].quarantined, again[0].quarantined) == (1, 0)
    assert len(_entries(upstreams, broken)) == 1


async def test_withdrawal_deletes_the_quarantined_payloads_obtained_under_the_grant(
    upstreams: Upstreams,
) -> None:
    school_records(upstreams.school, 3, upstreams.data)
    await upstreams.sync([Source.school_affairs])
    leaving, staying = number(upstreams.school, 0), number(upstreams.school, 1)
    grant = upstreams.grant(leaving, [Scope.school_attendance])
    upstreams.grant(staying, [Scope.school_attendance])
    for child in (leaving, staying):
        upstreams.data.touch("attendance", upstreams.school, f"attendance:{child}:0", reason="77")
    roster_entry = number(upstreams.school, 2)
    upstreams.data.touch_student(upstreams.school, roster_entry, grades=["X9"])
    runs = await upstreams.sync([Source.school_affairs])
    assert runs[0].quarantined == 3
    assert _entries(upstreams, f"attendance:{leaving}:0")[0].grant_id == grant.id
    assert _entries(upstreams, roster_entry)[0].grant_id is None  # the roster needs no consent

    with Session(upstreams.engine) as session:
        stored = session.get(ConsentGrant, grant.id)
        assert stored is not None
        consent_service.transition(session=session, grant=stored, kind=GrantEventKind.revoked, actor=FAMILY)
        session.commit()
        note = session.exec(
            select(ConsentEvent.note).where(
                ConsentEvent.grant_id == grant.id, ConsentEvent.kind == GrantEventKind.data_deleted
            )
        ).one()

    assert _entries(upstreams, f"attendance:{leaving}:0") == []
    assert upstreams.count(AttendanceDay, leaving) == 0
    # The family's record of the deletion names the quarantine too.
    assert note is not None and "quarantined_record: 1" in note
    # Another family's record and the roster entry stay.
    assert len(_entries(upstreams, f"attendance:{staying}:0")) == 1
    assert len(_entries(upstreams, roster_entry)) == 1
    with upstreams.engine.connect() as connection:
        left = connection.execute(
            sa.select(sa.func.count())
            .select_from(QuarantinedRecord)
            .where(col(QuarantinedRecord.grant_id) == grant.id)
        ).scalar_one()
    assert left == 0
