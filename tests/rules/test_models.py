"""Screening tables: one open alert per child and category, on both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from rules.models import Alert, AlertStatus, Category, RunKind, ScreeningRun
from tests.factories import make_student
from tests.rules.factories import make_school_with_calendar


def test_one_open_alert_per_child_and_category(session: Session) -> None:
    school = make_school_with_calendar(session)
    child = make_student(session, school=school)
    run = ScreeningRun(kind=RunKind.full, as_of=date(2026, 4, 30), catalog_version="x")
    session.add(run)
    session.flush()

    def alert(status: AlertStatus) -> Alert:
        return Alert(
            student_id=child.id or 0,
            school_id=school.id or 0,
            category=Category.non_attendance,
            status=status,
            score=1.0,
            opened_run_id=run.id or 0,
            last_run_id=run.id or 0,
            evidence_as_of=run.as_of,
        )

    # Closed and dismissed alerts are history: a new one may open beside them.
    session.add_all([alert(AlertStatus.closed), alert(AlertStatus.dismissed)])
    session.add(alert(AlertStatus.new))
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(alert(AlertStatus.under_review))
        session.flush()
