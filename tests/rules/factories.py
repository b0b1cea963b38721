"""Small factories for screening tests: one school, a calendar, children and their marks."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count

from sqlmodel import Session

from app.roster.models import Municipality, School, SchoolDay, SchoolKind, Sex, Student
from app.sources.models import AttendanceDay, AttendanceMark, AttendanceReason, Source

_serial = count(1)


def make_school(session: Session, *, first_day: date, last_day: date) -> School:
    """A school whose calendar has every weekday from first_day to last_day as a 授業日."""
    n = next(_serial)
    municipality = Municipality(code=f"{n:06d}"[-6:], name=f"テスト市{n}")
    session.add(municipality)
    session.flush()
    school = School(
        municipality_id=municipality.id or 0,
        code=f"S{n:05d}",
        name=f"テスト小学校{n}",
        kind=SchoolKind.elementary,
    )
    session.add(school)
    session.flush()
    day = first_day
    while day <= last_day:
        if day.weekday() < 5:
            session.add(SchoolDay(school_id=school.id or 0, day=day))
        day += timedelta(days=1)
    session.flush()
    return school


def make_student(
    session: Session,
    school: School,
    *,
    enrolled_on: date,
    grade: int = 4,
    sex: Sex = Sex.unspecified,
    transferred_in: bool = False,
    left_on: date | None = None,
) -> Student:
    n = next(_serial)
    student = Student(
        school_id=school.id or 0,
        school_student_id=f"P{n:06d}",
        family_name="山田",
        given_name=f"太郎{n}",
        family_name_kana="ヤマダ",
        given_name_kana="タロウ",
        birth_date=date(2016, 5, 1),
        sex=sex,
        grade=grade,
        enrolled_on=enrolled_on,
        transferred_in=transferred_in,
        left_on=left_on,
    )
    session.add(student)
    session.flush()
    return student


def mark(
    session: Session,
    student: Student,
    days: list[date],
    mark: AttendanceMark = AttendanceMark.absent,
    reason: AttendanceReason | None = None,
) -> None:
    for day in days:
        session.add(
            AttendanceDay(
                student_id=student.id or 0,
                day=day,
                mark=mark,
                reason=reason,
                source=Source.demo_loader,
            )
        )
    session.flush()
