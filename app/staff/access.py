"""The roles × reach × data-categories matrix, written once: every staff page and test reads it.

Seed 003: データ閲覧できる人は守秘義務のある専門家に限る — household and benefit facts from Myna
Portal are shown only to roles bound by professional confidentiality (SC, SSW, municipal case
workers), never to a homeroom teacher. The administrator configures the system and sees no
child data at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session, col, select

from app.core.errors import NotFound
from app.roster.models import Homeroom, School, StaffRole, StaffUser, Student
from consent.scopes import Scope, Wording


class Reach(StrEnum):
    """Which children a role may look at, at most (the consent still decides each category)."""

    homeroom = "homeroom"  # the staff member's own homeroom
    school = "school"  # every child of the staff member's school
    municipality = "municipality"  # every child of the municipality's schools
    nobody = "nobody"  # configuration only


SCHOOL_RECORDS = frozenset(
    {
        Scope.school_attendance,
        Scope.school_nurse_visits,
        Scope.school_grades,
        Scope.school_mood,
        Scope.school_learning,
        Scope.school_fees,
    }
)
WELFARE_FACTS = frozenset({Scope.school_aid, Scope.myna_household, Scope.myna_benefits})
ALL_CATEGORIES = SCHOOL_RECORDS | WELFARE_FACTS


@dataclass(frozen=True)
class RoleRule:
    wording: Wording
    reach: Reach
    categories: frozenset[Scope]
    """The data categories of a child in reach that the role may see, when the family consented."""
    may_decide: bool
    """May hold a case meeting, close or dismiss an alert (a decision about a child)."""
    may_observe: bool
    """May record a 日常所見 (daily observation)."""
    confidentiality: bool
    """Bound by professional confidentiality (守秘義務): may see household and benefit facts."""


MATRIX: dict[StaffRole, RoleRule] = {
    StaffRole.homeroom_teacher: RoleRule(
        Wording("担任", "Homeroom teacher"),
        Reach.homeroom,
        SCHOOL_RECORDS,
        may_decide=False,
        may_observe=True,
        confidentiality=False,
    ),
    StaffRole.school_nurse: RoleRule(
        Wording("養護教諭", "School nurse"),
        Reach.school,
        frozenset({Scope.school_attendance, Scope.school_nurse_visits, Scope.school_mood}),
        may_decide=False,
        may_observe=True,
        confidentiality=False,
    ),
    StaffRole.school_leader: RoleRule(
        Wording("学校管理職", "School leader"),
        Reach.school,
        SCHOOL_RECORDS | {Scope.school_aid},
        may_decide=True,
        may_observe=False,
        confidentiality=False,
    ),
    StaffRole.school_counselor: RoleRule(
        Wording("スクールカウンセラー", "School counsellor (SC)"),
        Reach.school,
        ALL_CATEGORIES,
        may_decide=True,
        may_observe=True,
        confidentiality=True,
    ),
    StaffRole.school_social_worker: RoleRule(
        Wording("スクールソーシャルワーカー", "School social worker (SSW)"),
        Reach.school,
        ALL_CATEGORIES,
        may_decide=True,
        may_observe=True,
        confidentiality=True,
    ),
    StaffRole.case_worker: RoleRule(
        Wording("こども家庭センター", "Municipal case worker"),
        Reach.municipality,
        ALL_CATEGORIES,
        may_decide=True,
        may_observe=False,
        confidentiality=True,
    ),
    StaffRole.administrator: RoleRule(
        Wording("管理者", "Administrator"),
        Reach.nobody,
        frozenset(),
        may_decide=False,
        may_observe=False,
        confidentiality=False,
    ),
}


def rule_for(staff: StaffUser) -> RoleRule:
    return MATRIX[staff.role]


def in_reach(*, session: Session, staff: StaffUser, student: Student) -> bool:
    """Whether the child is within the staff member's reach (homeroom, school or municipality)."""
    reach = MATRIX[staff.role].reach
    if reach is Reach.homeroom:
        return staff.homeroom_id is not None and student.homeroom_id == staff.homeroom_id
    if reach is Reach.school:
        return staff.school_id is not None and student.school_id == staff.school_id
    if reach is Reach.municipality:
        school = session.get(School, student.school_id)
        return school is not None and school.municipality_id == staff.municipality_id
    return False


def child_in_reach(*, session: Session, staff: StaffUser, student_id: int) -> Student:
    """The child, or NotFound: a child outside reach is indistinguishable from no child (no 403),
    so ids cannot be probed."""
    return child_and_homeroom_in_reach(session=session, staff=staff, student_id=student_id)[0]


def child_and_homeroom_in_reach(
    *, session: Session, staff: StaffUser, student_id: int
) -> tuple[Student, Homeroom | None]:
    """The child and their homeroom, or NotFound as `child_in_reach`. One query: the child's
    school comes with them, where `in_reach` finds it for a municipality-wide reach."""
    found = session.exec(
        select(Student, Homeroom, School)
        .join(School, col(School.id) == Student.school_id)
        .outerjoin(Homeroom, col(Homeroom.id) == Student.homeroom_id)
        .where(Student.id == student_id)
    ).first()
    if found is None or not in_reach(session=session, staff=staff, student=found[0]):
        raise NotFound("お探しの児童生徒は見つかりません。 / No such child.")
    return found[0], found[1]


def matrix_markdown() -> str:
    """The matrix as the README shows it; a test keeps the README equal to this."""
    reach_words = {
        Reach.homeroom: "担任する学級 own homeroom",
        Reach.school: "所属校 own school",
        Reach.municipality: "市内全校 municipality",
        Reach.nobody: "なし（設定のみ） none",
    }
    categories = sorted(ALL_CATEGORIES, key=list(Scope).index)
    head = "| 役割 role | 範囲 reach | " + " | ".join(f"`{scope.value}`" for scope in categories)
    head += " | 判断 decide | 所見 observe |"
    lines = [head, "|" + "---|" * (len(categories) + 4)]
    for rule in MATRIX.values():
        marks = " | ".join("✓" if scope in rule.categories else "—" for scope in categories)
        decide = "✓" if rule.may_decide else "—"
        observe = "✓" if rule.may_observe else "—"
        role = f"{rule.wording.ja} {rule.wording.en}"
        lines.append(f"| {role} | {reach_words[rule.reach]} | {marks} | {decide} | {observe} |")
    return "\n".join(lines) + "\n"
