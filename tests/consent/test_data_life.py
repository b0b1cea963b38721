"""Data life: what the notice promises (取得した日から1年間保存し、その後削除します) is kept.
Rows older than the data life of the grant they were obtained under are deleted, whatever the
grant's status; each family's history records its own deletion, once."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from huey.api import PeriodicTask
from sqlmodel import Session, col, select

from app.core.types import utcnow
from app.sources.models import AttendanceDay, AttendanceMark, MoodCheckin, Source, Weather
from connectors.models import QuarantinedRecord
from consent import service, tasks
from consent.models import ConsentEvent, ConsentGrant, GrantEventKind
from tests.factories import make_grant


def _day(age_days: int) -> date:
    """A distinct school day per row (the day itself plays no part in the data life)."""
    return date(2024, 1, 1) + timedelta(days=age_days)


def _attendance(session: Session, grant: ConsentGrant | None, student_id: int, age_days: int) -> None:
    session.add(
        AttendanceDay(
            source=Source.school_affairs,
            grant_id=grant.id if grant else None,
            fetched_at=utcnow() - timedelta(days=age_days),
            student_id=student_id,
            day=_day(age_days),
            mark=AttendanceMark.absent,
        )
    )


def _mood(session: Session, grant: ConsentGrant, age_days: int) -> None:
    session.add(
        MoodCheckin(
            source=Source.school_platform,
            grant_id=grant.id,
            fetched_at=utcnow() - timedelta(days=age_days),
            student_id=grant.student_id,
            day=_day(age_days),
            weather=Weather.cloudy,
        )
    )


def _quarantined(session: Session, grant: ConsentGrant, created_at: datetime) -> None:
    session.add(
        QuarantinedRecord(
            sync_run_id=1,
            source=Source.school_platform,
            resource="mood-checkins",
            payload='{"weather": "??"}',
            grant_id=grant.id,
            reason="unknown code",
            created_at=created_at,
        )
    )


def _deletions(session: Session, grant: ConsentGrant) -> list[ConsentEvent]:
    return list(
        session.exec(
            select(ConsentEvent).where(
                ConsentEvent.grant_id == grant.id, ConsentEvent.kind == GrantEventKind.data_deleted
            )
        ).all()
    )


def test_rows_past_their_grants_data_life_go_and_each_family_sees_its_deletion_once(
    session: Session,
) -> None:
    year = make_grant(session)  # 365 days, as the notice says
    month = make_grant(session, data_life_days=30)
    ended = make_grant(  # an expired grant's data ages out on the same clock
        session, starts_at=utcnow() - timedelta(days=600), expires_at=utcnow() - timedelta(days=200)
    )
    for age in (400, 366, 200, 10):
        _attendance(session, year, year.student_id, age)
    for age in (40, 20):
        _attendance(session, month, month.student_id, age)
        _mood(session, month, age)
    _attendance(session, ended, ended.student_id, 500)
    _attendance(session, None, year.student_id, 900)  # obtained under no grant: not this job's
    _quarantined(session, month, utcnow() - timedelta(days=31))
    _quarantined(session, month, utcnow() - timedelta(days=29))
    session.flush()

    deleted = service.delete_past_data_life(session=session)

    assert deleted == {
        year.id: {"attendance_day": 2},
        month.id: {"attendance_day": 1, "mood_checkin": 1, "quarantined_record": 1},
        ended.id: {"attendance_day": 1},
    }
    kept = sorted((row.grant_id or 0, row.day) for row in session.exec(select(AttendanceDay)).all())
    assert kept == sorted(
        [(0, _day(900)), (year.id or 0, _day(200)), (year.id or 0, _day(10)), (month.id or 0, _day(20))]
    )
    assert len(session.exec(select(MoodCheckin)).all()) == 1
    assert len(session.exec(select(QuarantinedRecord)).all()) == 1
    (event,) = _deletions(session, month)
    assert event.note is not None and "30" in event.note and "mood_checkin: 1" in event.note
    assert len(_deletions(session, year)) == len(_deletions(session, ended)) == 1

    assert service.delete_past_data_life(session=session) == {}
    assert len(_deletions(session, year)) == 1


def test_the_data_life_job_runs_daily() -> None:
    assert isinstance(tasks.delete_past_data_life.task_class(), PeriodicTask)


def test_nothing_within_its_data_life_is_touched(session: Session) -> None:
    grant = make_grant(session)
    _attendance(session, grant, grant.student_id, 364)
    session.flush()
    assert service.delete_past_data_life(session=session) == {}
    assert session.exec(select(col(AttendanceDay.id))).all() != []
    assert _deletions(session, grant) == []
