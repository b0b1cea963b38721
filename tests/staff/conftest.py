"""A small roster for the staff console's tests: one municipality, two schools, three homerooms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from http.cookies import SimpleCookie

import httpx
import pytest
from fastapi import Request, Response
from sqlmodel import Session

from app.roster.models import Homeroom, Municipality, School, SchoolKind, StaffRole, StaffUser, Student
from app.sessions import service as web_sessions
from app.sessions.models import PrincipalKind
from app.staff import accounts
from app.staff.access import MATRIX
from rules.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    Category,
    RunKind,
    RunStatus,
    ScreeningRun,
    Signal,
)

PASSWORD = "correct horse battery"


@dataclass
class Roster:
    municipality: Municipality
    school: School
    other_school: School
    homeroom: Homeroom
    other_homeroom: Homeroom
    far_homeroom: Homeroom
    child: Student
    """In `homeroom` of `school`."""
    classmate_elsewhere: Student
    """In `other_homeroom` of the same school."""
    far_child: Student
    """In `other_school`."""


def make_student_in(session: Session, homeroom: Homeroom, ref: str, family: str, given: str) -> Student:
    student = Student(
        school_id=homeroom.school_id,
        homeroom_id=homeroom.id,
        school_student_id=ref,
        family_name=family,
        given_name=given,
        family_name_kana="テスト",
        given_name_kana="テスト",
        birth_date=date(2014, 5, 1),
        grade=homeroom.grade,
        enrolled_on=date(2021, 4, 1),
    )
    session.add(student)
    session.flush()
    return student


def make_child_of_another_city(session: Session) -> Student:
    """A child of another municipality: out of reach even for a case worker."""
    municipality = Municipality(code="999993", name="よその市")
    session.add(municipality)
    session.flush()
    school = School(
        municipality_id=municipality.id or 0, code="T-X1", name="よその小学校", kind=SchoolKind.elementary
    )
    session.add(school)
    session.flush()
    room = Homeroom(school_id=school.id or 0, school_year=2026, grade=5, name="5年1組")
    session.add(room)
    session.flush()
    return make_student_in(session, room, "X-1", "鈴木", "三郎")


def build_roster(session: Session) -> Roster:
    """The roster, in any session (the tests' rolled-back one, or a live server's database)."""
    municipality = Municipality(code="999991", name="つなぐ市")
    session.add(municipality)
    session.flush()
    assert municipality.id is not None
    school = School(
        municipality_id=municipality.id, code="T-E1", name="つなぐ第一小学校", kind=SchoolKind.elementary
    )
    other = School(
        municipality_id=municipality.id, code="T-E2", name="つなぐ第二小学校", kind=SchoolKind.elementary
    )
    session.add_all([school, other])
    session.flush()
    assert school.id is not None and other.id is not None
    homerooms = [
        Homeroom(school_id=school.id, school_year=2026, grade=5, name="5年1組"),
        Homeroom(school_id=school.id, school_year=2026, grade=5, name="5年2組"),
        Homeroom(school_id=other.id, school_year=2026, grade=5, name="5年1組"),
    ]
    session.add_all(homerooms)
    session.flush()
    return Roster(
        municipality=municipality,
        school=school,
        other_school=other,
        homeroom=homerooms[0],
        other_homeroom=homerooms[1],
        far_homeroom=homerooms[2],
        child=make_student_in(session, homerooms[0], "S-0001", "山田", "花子"),
        classmate_elsewhere=make_student_in(session, homerooms[1], "S-0002", "髙橋", "一郎"),
        far_child=make_student_in(session, homerooms[2], "S-9001", "佐藤", "次郎"),
    )


@pytest.fixture
def roster(session: Session) -> Roster:
    return build_roster(session)


def make_staff(session: Session, roster: Roster, role: StaffRole, login: str | None = None) -> StaffUser:
    """A staff member of `role` placed where the role reaches `roster.child`."""
    rule = MATRIX[role]
    return accounts.add(
        session=session,
        login=login or f"t-{role.value}",
        display_name=f"テスト {rule.wording.ja}",
        role=role,
        password=PASSWORD,
        municipality_id=roster.municipality.id,
        school_id=roster.school.id if rule.reach.value == "school" else None,
        homeroom_id=roster.homeroom.id if rule.reach.value == "homeroom" else None,
    )


def sign_in_directly(client: httpx.AsyncClient, session: Session, staff: StaffUser) -> str:
    """Give the client a live staff session without the password round trip; returns its CSRF token."""
    assert staff.id is not None
    response = Response()
    web_session = web_sessions.start(
        session=session,
        request=Request({"type": "http", "headers": [], "method": "GET", "path": "/"}),
        response=response,
        principal_kind=PrincipalKind.staff,
        principal_id=staff.id,
    )
    # Committed as a real sign-in would be: a request that fails later rolls back only itself.
    session.commit()
    # start() first clears any old cookie, then sets the new one: the last header wins.
    cookie: SimpleCookie = SimpleCookie(response.headers.getlist("set-cookie")[-1])
    client.cookies.set(web_sessions.SESSION_COOKIE, cookie[web_sessions.SESSION_COOKIE].value)
    return web_session.csrf_token


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture(autouse=True)
def fresh_throttle() -> Iterator[None]:
    """Failed sign-ins counted by one test must not lock out another."""
    accounts.sign_in_throttle().storage.reset()
    yield
    accounts.sign_in_throttle().storage.reset()


HTML = {"accept": "text/html"}


def make_alert(
    session: Session,
    student: Student,
    *,
    category: Category = Category.non_attendance,
    score: float = 3.0,
    status: AlertStatus = AlertStatus.new,
    feature: str = "absence_rate_30d",
    value: float = 0.25,
) -> Alert:
    """An alert as screening leaves it: a run, the alert, one signal with its facts, an 'opened' event."""
    run = ScreeningRun(
        kind=RunKind.full, status=RunStatus.succeeded, as_of=date(2026, 11, 20), catalog_version="t"
    )
    session.add(run)
    session.flush()
    assert run.id is not None and student.id is not None
    alert = Alert(
        student_id=student.id,
        school_id=student.school_id,
        category=category,
        status=status,
        score=score,
        opened_run_id=run.id,
        last_run_id=run.id,
        evidence_as_of=date(2026, 11, 20),
        coverage={"insufficient_data": ["absence_30_days_this_year"], "not_consented": []},
    )
    session.add(alert)
    session.flush()
    assert alert.id is not None
    session.add(
        Signal(
            alert_id=alert.id,
            student_id=student.id,
            rule_id="chronic_absence_30d",
            rule_version="1",
            weight=score,
            atoms=[
                {
                    "name": "absent_often",
                    "feature": feature,
                    "op": ">=",
                    "threshold": 0.1,
                    "value": value,
                    "result": True,
                    "window_start": "2026-10-22",
                    "window_end": "2026-11-20",
                }
            ],
            first_run_id=run.id,
            last_run_id=run.id,
            first_seen_on=date(2026, 11, 20),
            last_seen_on=date(2026, 11, 20),
        )
    )
    session.add(AlertEvent(alert_id=alert.id, kind=AlertEventKind.opened, to_status=status, run_id=run.id))
    session.flush()
    return alert
