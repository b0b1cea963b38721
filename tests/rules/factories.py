"""Screening test data: a school calendar, and children with a random but seeded mix of every
kind of source row (including unknowns, transfers and leavers)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from app.core.types import utcnow
from app.roster.models import School, SchoolDay, StaffRole, StaffUser, Student
from app.sources.models import (
    AidStatus,
    AssignmentSubmission,
    AttendanceDay,
    AttendanceMark,
    AttendanceReason,
    Benefit,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseComplaint,
    NurseVisit,
    SchoolAidStatus,
    Source,
    Weather,
)
from app.staff.models import ObservationCategory, StaffObservation
from tests.factories import make_school, make_student

YEAR_START = date(2025, 4, 7)
YEAR_END = date(2026, 3, 19)
SRC = Source.demo_loader


def make_school_with_calendar(
    session: Session, *, first_day: date = YEAR_START, last_day: date = YEAR_END
) -> School:
    """A school whose calendar has every weekday from first_day to last_day as a 授業日,
    except a summer break (21 July – 31 August)."""
    school = make_school(session)
    day = first_day
    while day <= last_day:
        summer = date(day.year, 7, 21) <= day <= date(day.year, 8, 31)
        if day.weekday() < 5 and not summer:
            session.add(SchoolDay(school_id=school.id or 0, day=day))
        day += timedelta(days=1)
    session.flush()
    return school


def school_days(first: date = YEAR_START, last: date = YEAR_END) -> list[date]:
    days = []
    day = first
    while day <= last:
        if day.weekday() < 5 and not (date(day.year, 7, 21) <= day <= date(day.year, 8, 31)):
            days.append(day)
        day += timedelta(days=1)
    return days


def mark(
    session: Session,
    student: Student,
    days: list[date],
    kind: AttendanceMark = AttendanceMark.absent,
    reason: AttendanceReason | None = None,
) -> None:
    session.add_all(
        AttendanceDay(student_id=student.id or 0, day=d, mark=kind, reason=reason, source=SRC) for d in days
    )
    session.flush()


def _at(day: date, hour: int) -> datetime:
    # 09:00 UTC is 18:00 in Tokyo; hour 16 UTC is 01:00 the next local day (a boundary case).
    return datetime.combine(day, time(hour), UTC)


def make_random_child(
    session: Session, school: School, rng: random.Random, *, until: date = YEAR_END
) -> Student:
    """A child with a random history up to UNTIL; about one in five is a transfer, one in
    twenty left."""
    days = school_days()
    kind = rng.random()
    enrolled_on = YEAR_START
    transferred = False
    if kind < 0.2:
        enrolled_on, transferred = rng.choice(days[20:150]), True
    left_on = rng.choice(days[100:]) if rng.random() < 0.05 else None
    child = make_student(
        session,
        school=school,
        enrolled_on=enrolled_on,
        transferred_in=transferred,
        left_on=left_on,
        grade=rng.randint(1, 6),
    )
    mine = [d for d in days if enrolled_on <= d <= until and (left_on is None or d <= left_on)]
    absence_rate = rng.choice([0.0, 0.02, 0.05, 0.15, 0.4])
    sid = child.id or 0
    found: list[SQLModel] = []
    for day in mine:
        roll = rng.random()
        if roll < absence_rate:
            reason = rng.choice(list(AttendanceReason)[:4])
            found.append(
                AttendanceDay(student_id=sid, day=day, mark=AttendanceMark.absent, reason=reason, source=SRC)
            )
        elif roll < absence_rate + 0.01:
            found.append(
                AttendanceDay(
                    student_id=sid,
                    day=day,
                    mark=AttendanceMark.excused,
                    reason=AttendanceReason.suspension,
                    source=SRC,
                )
            )
        elif roll < absence_rate + 0.06:
            found.append(AttendanceDay(student_id=sid, day=day, mark=AttendanceMark.late, source=SRC))
        if rng.random() < 0.02:
            found.append(AttendanceDay(student_id=sid, day=day, mark=AttendanceMark.early_leave, source=SRC))
        if rng.random() < 0.04:
            found.append(
                NurseVisit(
                    student_id=sid,
                    visited_at=_at(day, rng.choice([1, 4, 16])),
                    complaint=rng.choice(list(NurseComplaint)),
                    source=SRC,
                )
            )
        if rng.random() < 0.7:
            found.append(
                MoodCheckin(
                    student_id=sid,
                    day=day,
                    weather=rng.choices(list(Weather), weights=[5, 3, 2, 1])[0],
                    source=SRC,
                )
            )
    monday = YEAR_START - timedelta(days=YEAR_START.weekday())
    while monday + timedelta(days=6) <= until:
        if monday >= enrolled_on - timedelta(days=7) and rng.random() < 0.95:
            found.append(
                LearningActivity(
                    student_id=sid,
                    week_start=monday,
                    sign_in_days=None if rng.random() < 0.05 else rng.randint(0, 5),
                    minutes=rng.randint(0, 300),
                    source=SRC,
                )
            )
        if rng.random() < 0.8:
            due = _at(monday + timedelta(days=4), rng.choice([5, 15]))
            roll = rng.random()
            submitted = (
                None if roll < 0.15 else due + timedelta(hours=2) if roll < 0.25 else due - timedelta(hours=3)
            )
            found.append(
                AssignmentSubmission(
                    student_id=sid,
                    assignment_ref=f"A{monday.isoformat()}",
                    due_at=due,
                    submitted_at=submitted,
                    source=SRC,
                )
            )
        monday += timedelta(days=7)
    for year, term in [(2024, 3), (2025, 1), (2025, 2), (2025, 3)]:
        for subject in ("国語", "算数", "理科"):
            if rng.random() < 0.9:
                score = None if rng.random() < 0.05 else rng.randint(30, 100)
                found.append(
                    GradeRecord(
                        student_id=sid,
                        school_year=year,
                        term=term,
                        subject=subject,
                        score=score,
                        source=SRC,
                    )
                )
    month = date(2025, 4, 1)
    while month <= until.replace(day=1):
        if rng.random() < 0.9:
            arrears = None if rng.random() < 0.03 else rng.random() < 0.15
            found.append(FeeStatus(student_id=sid, month=month, arrears=arrears, source=SRC))
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    for benefit in Benefit:
        if rng.random() < 0.6:
            for as_of in (date(2025, 4, 1), date(2025, 10, 1)):
                if rng.random() < 0.7:
                    receiving = None if rng.random() < 0.1 else rng.random() < 0.3
                    found.append(
                        BenefitStatus(
                            student_id=sid,
                            benefit=benefit,
                            as_of=as_of,
                            receiving=receiving,
                            source=SRC,
                        )
                    )
    if rng.random() < 0.7:
        found.append(
            SchoolAidStatus(student_id=sid, school_year=2025, status=rng.choice(list(AidStatus)), source=SRC)
        )
    if rng.random() < 0.7:
        found.append(
            HouseholdInfo(
                student_id=sid,
                as_of=date(2025, 6, 1),
                single_parent=rng.choice([True, False, None]),
                member_needing_care=rng.choice([True, False, None]),
                source=SRC,
            )
        )
    _bulk(session, found)
    return child


def add_random_observations(
    session: Session, school: School, children: list[Student], rng: random.Random
) -> None:
    """A few 日常所見 per child on random days of the year (none for some), by one teacher."""
    teacher = StaffUser(
        login=f"observer-{school.id}",
        display_name="観察 先生",
        role=StaffRole.homeroom_teacher,
        municipality_id=school.municipality_id,
        school_id=school.id,
    )
    session.add(teacher)
    session.flush()
    days = school_days()
    rows = [
        {
            "student_id": child.id,
            "staff_user_id": teacher.id,
            "observed_on": rng.choice(days),
            "category": rng.choice(list(ObservationCategory)).value,
            "note": "気づいたこと",
            "created_at": utcnow(),
        }
        for child in children
        for _ in range(rng.choice([0, 1, 3, 8]))
    ]
    if rows:
        session.execute(sa.insert(StaffObservation.__table__), rows)  # type: ignore[attr-defined]


def _bulk(session: Session, objects: list[SQLModel]) -> None:
    """Insert the rows with one executemany per table: ORM unit-of-work per row is slow."""
    now = utcnow()
    by_table: dict[sa.Table, list[dict[str, object]]] = {}
    for obj in objects:
        table: sa.Table = obj.__table__  # type: ignore[attr-defined]
        values = obj.model_dump(exclude={"id"})
        values["fetched_at"] = now
        by_table.setdefault(table, []).append(values)
    for table, rows in by_table.items():
        session.execute(sa.insert(table), rows)
