"""Deleting source data by the grant it was obtained under (consent withdrawn, data life over).

That includes records the sync quarantined under the grant (kept whole for a person to look
at): a payload about the child is data obtained under the grant like any stored row.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

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
from connectors.models import QuarantinedRecord

SOURCE_TABLES: list[sa.Table] = [
    model.__table__  # type: ignore[union-attr]
    for model in (
        AttendanceDay,
        NurseVisit,
        GradeRecord,
        LearningActivity,
        AssignmentSubmission,
        MoodCheckin,
        FeeStatus,
        SchoolAidStatus,
        HouseholdInfo,
        BenefitStatus,
    )
]
# Not a source table (rules never read it), but its payloads were obtained under a grant too.
QUARANTINE: sa.Table = QuarantinedRecord.__table__  # type: ignore[attr-defined]


def delete_obtained_under(*, session: Session, grant_id: int, student_id: int) -> dict[str, int]:
    """Delete every row fetched under the grant, which is STUDENT_ID's; returns how many per
    table (only non-zero).

    One DELETE per table, in the caller's transaction: the child's rows by the index of each
    table's natural key (it starts with the child), those of the grant among them. Quarantined
    payloads (whose child may be unknown) are found by their grant_id index.
    """
    deleted: dict[str, int] = {}
    for table in (*SOURCE_TABLES, QUARANTINE):
        whose = table.c.grant_id == grant_id
        if table is not QUARANTINE:
            whose = sa.and_(table.c.student_id == student_id, whose)
        result = session.execute(sa.delete(table).where(whose))
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            deleted[table.name] = count
    return deleted


def delete_obtained_before(
    *, session: Session, grants: sa.Select[Any], before: datetime
) -> dict[int, dict[str, int]]:
    """Delete the rows obtained before BEFORE under any of GRANTS (a select of grant ids);
    returns how many per grant and table (only non-zero).

    One DELETE per table, in the caller's transaction; RETURNING says whose rows went, so each
    family's history can record its own deletion."""
    deleted: dict[int, dict[str, int]] = {}
    for table in (*SOURCE_TABLES, QUARANTINE):
        obtained = table.c.created_at if table is QUARANTINE else table.c.fetched_at
        gone = session.execute(
            sa.delete(table)
            .where(table.c.grant_id.in_(grants.scalar_subquery()), obtained < before)
            .returning(table.c.grant_id)
        ).scalars()
        for grant_id, count in Counter(gone).items():
            deleted.setdefault(grant_id, {})[table.name] = count
    return deleted
