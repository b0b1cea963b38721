"""A school's weekly review capacity and sampled share: read and set by its leader or an
administrator, each change audited as a configuration change (DOMAIN.md lesson 2)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.models import Outcome
from app.core.errors import BadRequest, Forbidden, NotFound
from app.roster.models import School, StaffRole, StaffUser
from app.staff.service import actor_for
from rules import queue
from rules.models import ReviewCapacity

CAPACITY_CHANGED = "config.review_capacity"
CONFIGURERS = frozenset({StaffRole.school_leader, StaffRole.administrator})
"""Who sets a school's capacity: its own leader, or an administrator of the municipality."""
MAX_CAPACITY = 1000
MAX_SAMPLE_PERCENT = 50


@dataclass(frozen=True)
class SchoolCapacity:
    school: School
    weekly_capacity: int
    sample_percent: int
    is_default: bool


def _schools(session: Session, staff: StaffUser) -> list[School]:
    if staff.role not in CONFIGURERS:
        raise Forbidden(
            "週ごとの確認件数は学校管理職か管理者が設定します。"
            " / Only a school leader or an administrator sets the weekly capacity."
        )
    if staff.role is StaffRole.school_leader:
        school = session.get(School, staff.school_id) if staff.school_id is not None else None
        return [school] if school is not None else []
    return list(
        session.exec(
            select(School).where(School.municipality_id == staff.municipality_id).order_by(col(School.code))
        )
    )


def capacities(*, session: Session, staff: StaffUser) -> list[SchoolCapacity]:
    """The schools this staff member configures, each with its current setting."""
    found = []
    for school in _schools(session, staff):
        assert school.id is not None
        capacity, share, default = queue.capacity_of(session=session, school_id=school.id)
        found.append(SchoolCapacity(school, capacity, round(share * 100), default))
    return found


def change(
    *, session: Session, staff: StaffUser, school_id: int, weekly_capacity: int, sample_percent: int
) -> ReviewCapacity:
    """Set a school's capacity and sampled share, and audit the change (before → after)."""
    if school_id not in {school.id for school in _schools(session, staff)}:
        raise NotFound("その学校は見つかりません。 / No such school.")
    if not 0 <= weekly_capacity <= MAX_CAPACITY:
        raise BadRequest(f"確認件数は0〜{MAX_CAPACITY}件です。 / Capacity must be 0–{MAX_CAPACITY}.")
    if not 0 <= sample_percent <= MAX_SAMPLE_PERCENT:
        raise BadRequest(
            f"抽出の割合は0〜{MAX_SAMPLE_PERCENT}%です。 / The sampled share is 0–{MAX_SAMPLE_PERCENT} %."
        )
    before_capacity, before_share, default = queue.capacity_of(session=session, school_id=school_id)
    setting = queue.set_capacity(
        session=session,
        school_id=school_id,
        weekly_capacity=weekly_capacity,
        medium_share=sample_percent / 100,
        staff_user_id=staff.id,
    )
    before = "default" if default else f"{before_capacity}/{round(before_share * 100)}%"
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor_for(session=session, staff=staff),
            action=CAPACITY_CHANGED,
            outcome=Outcome.done,
            detail=f"school {school_id}: {before} -> {weekly_capacity}/{sample_percent}%",
        ),
    )
    return setting
