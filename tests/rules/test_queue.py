"""The weekly queue: capacity from the top, a sampled band below the line, nothing hidden."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import Session

from rules.models import Alert, AlertStatus, Category, RunKind, ScreeningRun
from rules.queue import DEFAULT_CAPACITY, set_capacity, weekly_queue
from tests.factories import make_school, make_student


def _alerts(session: Session, school_id: int, scores: list[float]) -> list[Alert]:
    run = ScreeningRun(kind=RunKind.full, as_of=date(2025, 10, 1), catalog_version="test")
    session.add(run)
    session.flush()
    alerts = []
    for score in scores:
        child = make_student(session, school_id=school_id)
        alert = Alert(
            student_id=child.id or 0,
            school_id=school_id,
            category=Category.non_attendance,
            score=score,
            opened_run_id=run.id or 0,
            last_run_id=run.id or 0,
            evidence_as_of=run.as_of,
        )
        session.add(alert)
        alerts.append(alert)
    session.flush()
    return alerts


def test_capacity_top_sample_and_more(session: Session) -> None:
    school = make_school(session)
    sid = school.id or 0
    alerts = _alerts(session, sid, [float(s) for s in range(1, 13)])  # scores 1..12
    alerts[0].status = AlertStatus.under_review  # already with people: not in the new queue
    _alerts(session, sid, [0.0])  # evidence cleared: not in the queue either
    session.flush()
    set_capacity(session=session, school_id=sid, weekly_capacity=5, medium_share=0.4)

    queue = weekly_queue(session=session, school_id=sid, today=date(2025, 10, 1))
    assert [a.score for a in queue.top] == [12.0, 11.0, 10.0]
    assert len(queue.sampled) == 2 and all(a.score < 10.0 for a in queue.sampled)
    assert queue.total == 11  # every new alert with evidence is in exactly one list
    assert {a.id for a in queue.top + queue.sampled + queue.more} == {a.id for a in alerts[1:]}
    assert [a.score for a in queue.more] == sorted((a.score for a in queue.more), reverse=True)

    same_week = weekly_queue(session=session, school_id=sid, today=date(2025, 10, 3))
    assert [a.id for a in same_week.sampled] == [a.id for a in queue.sampled]
    weeks = {
        tuple(
            a.id
            for a in weekly_queue(
                session=session, school_id=sid, today=date(2025, 10, 1) + timedelta(days=d)
            ).sampled
        )
        for d in range(0, 63, 7)
    }
    assert len(weeks) > 1  # a new draw each week


def test_a_school_without_a_setting_gets_a_small_default(session: Session) -> None:
    school = make_school(session)
    _alerts(session, school.id or 0, [1.0] * 30)
    queue = weekly_queue(session=session, school_id=school.id or 0, today=date(2025, 10, 1))
    assert queue.capacity_is_default and len(queue.top) + len(queue.sampled) == DEFAULT_CAPACITY
    assert len(queue.more) == 30 - DEFAULT_CAPACITY
    with pytest.raises(ValidationError):
        set_capacity(session=session, school_id=school.id or 0, weekly_capacity=5, medium_share=0.9)
