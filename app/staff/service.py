"""Staff services over child data: every read passes reach (roles matrix) and consent, and is audited."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm.util import AliasedClass
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.audit.models import Outcome
from app.core.errors import Forbidden
from app.core.types import utcnow
from app.roster.models import Homeroom, Municipality, School, StaffUser, Student
from app.staff.access import MATRIX, Reach, child_and_homeroom_in_reach, child_in_reach
from app.staff.models import ObservationCategory, StaffObservation
from consent import policy
from consent.scopes import Purpose, Scope

PURPOSE = Purpose.early_support
"""Staff read child data for one purpose only: early notice and support."""


def actor_for(*, session: Session, staff: StaffUser) -> Actor:
    """The audit log's name for this staff member: their id, role and organisation."""
    if staff.school_id is not None:
        school = session.get(School, staff.school_id)
        organisation = school.name if school else f"school {staff.school_id}"
    else:
        municipality = session.get(Municipality, staff.municipality_id)
        organisation = municipality.name if municipality else f"municipality {staff.municipality_id}"
    return Actor(kind=ActorKind.staff, ref=str(staff.id), organisation=organisation, role=staff.role.value)


def reach_clause(
    staff: StaffUser, student: type[Student] | AliasedClass[Student] = Student
) -> sa.ColumnElement[bool]:
    """The same reach as `access.in_reach`, as a condition on `student` (or an alias of it) for
    lists and queues."""
    reach = MATRIX[staff.role].reach
    if reach is Reach.homeroom and staff.homeroom_id is not None:
        return col(student.homeroom_id) == staff.homeroom_id
    if reach is Reach.school and staff.school_id is not None:
        return col(student.school_id) == staff.school_id
    if reach is Reach.municipality:
        return col(student.school_id).in_(
            select(School.id).where(School.municipality_id == staff.municipality_id)
        )
    return sa.false()


@dataclass(frozen=True)
class ChildView:
    """What this staff member may see of one child right now."""

    student: Student
    homeroom: Homeroom | None
    shared: dict[Scope, int]
    """Categories the role may see and the family consented to, each with its grant."""
    role_categories: frozenset[Scope]

    def sees(self, scope: Scope) -> bool:
        return scope in self.shared

    def withheld(self, scope: Scope) -> str | None:
        """None when shown; otherwise why not, in the words a page shows."""
        if scope not in self.role_categories:
            return "この役割には表示されません / Not shown to your role"
        if scope not in self.shared:
            return "共有されていません / Not shared"
        return None


def open_child(
    *, session: Session, staff: StaffUser, student_id: int, categories: Collection[Scope] | None = None
) -> ChildView:
    """Open a child for a staff member: NotFound outside reach; then the consent decides each
    category the role may see, and every allowed use is written to the audit log."""
    student, homeroom = child_and_homeroom_in_reach(session=session, staff=staff, student_id=student_id)
    rule = MATRIX[staff.role]
    wanted = rule.categories if categories is None else rule.categories & frozenset(categories)
    shared: dict[Scope, int] = {}
    if wanted:
        allowed = policy.authorize_many(
            session=session,
            actor=actor_for(session=session, staff=staff),
            scopes=wanted,
            purpose=PURPOSE,
            student_ids=[student_id],
        )
        shared = allowed.get(student_id, {})
    return ChildView(student=student, homeroom=homeroom, shared=shared, role_categories=rule.categories)


def find_children(*, session: Session, staff: StaffUser, query: str, limit: int = 50) -> Sequence[Student]:
    """Children in reach whose name, kana or school id contains the query (roster data only)."""
    text = query.strip()
    statement = select(Student).where(reach_clause(staff))
    if text:
        pattern = f"%{text}%"
        statement = statement.where(
            sa.or_(
                col(Student.family_name).like(pattern),
                col(Student.given_name).like(pattern),
                col(Student.family_name_kana).like(pattern),
                col(Student.given_name_kana).like(pattern),
                col(Student.school_student_id) == text,
            )
        )
    return session.exec(
        statement.order_by(col(Student.grade), col(Student.family_name_kana), col(Student.id)).limit(limit)
    ).all()


def homerooms_in_reach(*, session: Session, staff: StaffUser) -> Sequence[Homeroom]:
    """Homerooms whose children the staff member may reach (for the queue's filter). A
    municipality-wide reach spans thousands of homerooms: no list for it (the filter by
    ?homeroom= still works)."""
    reach = MATRIX[staff.role].reach
    if reach not in (Reach.homeroom, Reach.school):
        return []
    in_reach = select(Student.homeroom_id).where(reach_clause(staff), col(Student.homeroom_id).is_not(None))
    statement = select(Homeroom).where(col(Homeroom.id).in_(in_reach))
    if reach is Reach.school:
        # The school's own homerooms first: PostgreSQL otherwise guesses a homeroom per child
        # and reads every homeroom of the city to match a school's few.
        statement = statement.where(Homeroom.school_id == staff.school_id)
    return session.exec(statement.order_by(col(Homeroom.grade), col(Homeroom.name))).all()


def schools_in_reach(*, session: Session, staff: StaffUser) -> Sequence[sa.Row[tuple[int | None, str]]]:
    """For a municipality-wide reach: the schools whose weekly queue the staff member may open,
    as (id, name) rows: a city has hundreds, listed on every queue page."""
    if MATRIX[staff.role].reach is not Reach.municipality:
        return []
    return session.execute(
        sa.select(col(School.id), col(School.name))
        .where(col(School.municipality_id) == staff.municipality_id)
        .order_by(col(School.code))
    ).all()


OBSERVATION_RECORDED = "observation.recorded"


def record_observation(
    *,
    session: Session,
    staff: StaffUser,
    student_id: int,
    category: ObservationCategory,
    note: str,
    observed_on: date | None = None,
) -> StaffObservation:
    """Record a 日常所見 about a child in reach, audited in the same transaction."""
    child_in_reach(session=session, staff=staff, student_id=student_id)
    if not MATRIX[staff.role].may_observe:
        raise Forbidden("この役割では所見を記録できません。 / Your role does not record observations.")
    today = utcnow().date()
    observation = StaffObservation(
        student_id=student_id,
        staff_user_id=staff.id or 0,
        observed_on=min(observed_on or today, today),
        category=category,
        note=note.strip(),
    )
    session.add(observation)
    session.flush()
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor_for(session=session, staff=staff),
            action=OBSERVATION_RECORDED,
            outcome=Outcome.done,
            student_id=student_id,
            purpose=PURPOSE.value,
            detail=category.value,
        ),
    )
    return observation


def observations_of_child(*, session: Session, student_id: int, since: date) -> Sequence[StaffObservation]:
    return session.exec(
        select(StaffObservation)
        .where(StaffObservation.student_id == student_id, col(StaffObservation.observed_on) >= since)
        .order_by(col(StaffObservation.observed_on), col(StaffObservation.id))
    ).all()
