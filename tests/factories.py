"""Small typed factories for tests of every domain: a school, a student, a guardian, a grant.

Each makes just enough valid rows and flushes; pass keyword overrides for what a test cares
about. Other domains add their own factories here.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from datetime import date, datetime

from sqlmodel import Session, select

from app.audit.actors import Actor, ActorKind
from app.core.types import utcnow
from app.roster.models import (
    Guardian,
    GuardianLink,
    Municipality,
    School,
    SchoolKind,
    Student,
)
from consent import service as consent_service
from consent.models import Client, ConsentGrant, GrantStatus
from consent.scopes import Purpose, Scope

_serial = itertools.count(1)

GUARDIAN_ACTOR = Actor(kind=ActorKind.guardian, ref="guardian:factory", organisation="家庭")


def make_municipality(session: Session) -> Municipality:
    existing = session.exec(select(Municipality).where(Municipality.code == "172065")).first()
    if existing:
        return existing
    municipality = Municipality(code="172065", name="加賀市")
    session.add(municipality)
    session.flush()
    return municipality


def make_school(session: Session, **overrides: object) -> School:
    municipality = make_municipality(session)
    n = next(_serial)
    values: dict[str, object] = {
        "municipality_id": municipality.id,
        "code": f"T{n:06d}",
        "name": f"つなぐ第{n}中学校",
        "kind": SchoolKind.junior_high,
    }
    school = School.model_validate(values | overrides)
    session.add(school)
    session.flush()
    return school


def make_student(session: Session, *, school: School | None = None, **overrides: object) -> Student:
    school = school or make_school(session)
    n = next(_serial)
    values: dict[str, object] = {
        "school_id": school.id,
        "school_student_id": f"S{n:07d}",
        "family_name": "加賀",
        "given_name": f"太郎{n}",
        "family_name_kana": "カガ",
        "given_name_kana": "タロウ",
        "birth_date": date(2012, 5, 1),
        "grade": 7,
        "enrolled_on": date(2025, 4, 1),
    }
    student = Student.model_validate(values | overrides)
    session.add(student)
    session.flush()
    return student


def make_guardian(session: Session, *, student: Student | None = None, **overrides: object) -> Guardian:
    """A guardian; with `student`, also their verified link to that child."""
    n = next(_serial)
    values: dict[str, object] = {
        "subject": f"national-id-{n}",
        "family_name": "加賀",
        "given_name": f"花子{n}",
        "family_name_kana": "カガ",
        "given_name_kana": "ハナコ",
    }
    guardian = Guardian.model_validate(values | overrides)
    session.add(guardian)
    session.flush()
    if student is not None:
        assert guardian.id is not None and student.id is not None
        session.add(GuardianLink(guardian_id=guardian.id, student_id=student.id, verified_at=utcnow()))
        session.flush()
    return guardian


def make_client(session: Session, **overrides: object) -> Client:
    n = next(_serial)
    values: dict[str, object] = {
        "client_id": f"partner-{n}",
        "name": f"連携先{n}",
        "organisation": f"連携団体{n}",
        "redirect_uris": [f"https://partner{n}.example/callback"],
        "scopes": [s.value for s in Scope],
        "purposes": [p.value for p in Purpose],
    }
    client = Client.model_validate(values | overrides)
    session.add(client)
    session.flush()
    return client


def make_grant(
    session: Session,
    *,
    student: Student | None = None,
    guardian: Guardian | None = None,
    scopes: Collection[Scope] = (Scope.school_attendance,),
    purposes: Collection[Purpose] = (Purpose.early_support,),
    client: Client | None = None,
    status: GrantStatus = GrantStatus.active,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    data_life_days: int = 365,
    data_from: date | None = None,
) -> ConsentGrant:
    """A grant through the real consent service (events and audit included); ACTIVE by default.

    Without `client` the recipient is the municipality itself (staff, screening, connectors,
    notices); with it, that partner client.
    """
    student = student or make_student(session)
    guardian = guardian or make_guardian(session, student=student)
    assert guardian.id is not None and student.id is not None
    return consent_service.create_grant(
        session=session,
        actor=GUARDIAN_ACTOR,
        guardian_id=guardian.id,
        student_id=student.id,
        client_id=client.id if client else None,
        scopes=scopes,
        purposes=purposes,
        notice_version="test",
        notice_hash="0" * 64,
        starts_at=starts_at,
        expires_at=expires_at,
        data_life_days=data_life_days,
        data_from=data_from,
        status=status,
    )
