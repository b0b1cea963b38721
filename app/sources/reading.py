"""Reading a child's source records by consent category, for callers the policy already allowed."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, SQLModel, col, select

from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    SchoolAidStatus,
)

# Which tables hold each category (a consent scope's value), newest first by which column.
CATEGORY_TABLES: dict[str, list[tuple[type[SQLModel], str]]] = {
    "school.attendance": [(AttendanceDay, "day")],
    "school.nurse_visits": [(NurseVisit, "visited_at")],
    "school.grades": [(GradeRecord, "school_year")],
    "school.mood": [(MoodCheckin, "day")],
    "school.learning": [(LearningActivity, "week_start"), (AssignmentSubmission, "due_at")],
    "school.fees": [(FeeStatus, "month")],
    "school.aid": [(SchoolAidStatus, "school_year")],
    "myna.household": [(HouseholdInfo, "as_of")],
    "myna.benefits": [(BenefitStatus, "as_of")],
}
# Bookkeeping that says nothing to a reader outside the municipality.
_INTERNAL = {"id", "student_id", "grant_id", "sync_run_id"}


def records_for(
    *, session: Session, student_id: int, category: str, limit: int = 500
) -> list[dict[str, Any]]:
    """The child's newest records of a category, as plain JSON-ready dicts (blank stays null)."""
    records: list[dict[str, Any]] = []
    for model, newest in CATEGORY_TABLES[category]:
        rows = session.exec(
            select(model)
            .where(model.student_id == student_id)  # type: ignore[attr-defined]
            .order_by(col(getattr(model, newest)).desc())
            .limit(limit)
        ).all()
        records += [
            {"kind": model.__tablename__} | row.model_dump(mode="json", exclude=_INTERNAL) for row in rows
        ]
    return records
