"""Backtest: precision and recall per rule, category and group against labels; staff outcomes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlmodel import Session

from app.roster.models import Sex
from consent.scopes import Scope
from rules.backtest import load_labels, run_backtest, staff_outcomes
from rules.catalog import load_catalog
from rules.models import Alert, AlertStatus, Category, RunKind, ScreeningRun, Signal
from tests.factories import make_grant, make_student
from tests.rules.factories import make_school_with_calendar, mark, school_days

AS_OF = date(2025, 10, 1)


def test_scores_rules_categories_and_groups(session: Session, tmp_path: Path) -> None:
    school = make_school_with_calendar(session)
    absent = make_student(session, school=school, enrolled_on=date(2025, 4, 7), sex=Sex.female)
    mark(session, absent, [d for d in school_days() if date(2025, 9, 26) <= d <= AS_OF])
    flagged_wrongly = make_student(session, school=school, enrolled_on=date(2025, 4, 7), sex=Sex.male)
    mark(session, flagged_wrongly, [d for d in school_days() if date(2025, 9, 29) <= d <= AS_OF])
    quiet_carer = make_student(session, school=school, enrolled_on=date(2025, 4, 7), sex=Sex.male)
    not_yet = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    for child in (absent, flagged_wrongly, quiet_carer, not_yet):
        make_grant(session, student=child, scopes=[Scope.school_attendance])
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "labels": [
                    {"student_id": absent.id, "category": "school_non_attendance", "onset": "2025-09-26"},
                    {"student_id": quiet_carer.id, "category": "young_carer", "onset": "2025-06-01"},
                    {"student_id": not_yet.id, "category": "school_non_attendance", "onset": "2026-01-10"},
                    {"student_id": flagged_wrongly.id, "category": "healthy_control", "onset": None},
                ]
            }
        ),
        encoding="utf-8",
    )
    truth = load_labels(labels, as_of=AS_OF)
    allowed = {
        c.id or 0: {Scope.school_attendance: 1} for c in (absent, flagged_wrongly, quiet_carer, not_yet)
    }
    result = run_backtest(
        session=session,
        catalog=load_catalog(),
        as_of=AS_OF,
        labels=truth,
        allowed=allowed,
        timezone="Asia/Tokyo",
    )

    consecutive = result["rules"]["consecutive_absence"]
    assert consecutive["alerts"] == 2 and consecutive["true_positives"] == 1
    assert consecutive["precision"] == 0.5 and consecutive["recall"] == 1.0
    # Where the alerts land, by the world's own labels (the control is the false positive).
    assert consecutive["planted_labels"] == {"healthy_control": 1, "school_non_attendance": 1, "none": 0}
    # No label plants 心身の不調: its precision is unknown, not zero.
    wellbeing = result["categories"]["wellbeing"]
    assert wellbeing["measured"] is False and wellbeing["precision"] is None
    assert result["rules"]["late_early_and_missed_work"]["status"] == "trial"
    category = result["categories"]["non_attendance"]
    assert category["labelled_later"] == 1  # the onset is after the as-of day: not counted yet
    assert category["groups"]["sex"]["female"]["precision"] == 1.0
    assert category["groups"]["sex"]["male"]["precision"] == 0.0
    assert set(category["groups"]) == {"school", "grade", "sex", "transfer", "benefit"}
    assert category["groups"]["benefit"]["unknown"]["children"] == 4  # benefits not shared
    assert result["categories"]["young_carer"]["recall"] == 0.0


def test_a_dismissed_alert_is_a_false_positive(session: Session) -> None:
    school = make_school_with_calendar(session)
    run = ScreeningRun(kind=RunKind.full, as_of=AS_OF, catalog_version="t")
    session.add(run)
    session.flush()
    for status in (AlertStatus.dismissed, AlertStatus.support, AlertStatus.dismissed):
        child = make_student(session, school=school)
        alert = Alert(
            student_id=child.id or 0,
            school_id=school.id or 0,
            category=Category.non_attendance,
            status=status,
            score=2.0,
            opened_run_id=run.id or 0,
            last_run_id=run.id or 0,
            evidence_as_of=AS_OF,
        )
        session.add(alert)
        session.flush()
        session.add(
            Signal(
                alert_id=alert.id or 0,
                student_id=child.id or 0,
                rule_id="chronic_absence_30d",
                rule_version="v",
                weight=2.0,
                first_run_id=run.id or 0,
                last_run_id=run.id or 0,
                first_seen_on=AS_OF,
                last_seen_on=AS_OF,
            )
        )
    session.flush()
    outcomes = staff_outcomes(session=session)
    assert outcomes["categories"]["non_attendance"]["dismissed"] == 2
    assert outcomes["rules"]["chronic_absence_30d"]["staff_precision"] == round(1 / 3, 4)
