"""Set-based features agree with the plain per-child reference, value for value, on both
databases; unknown stays unknown."""

from __future__ import annotations

import math
import random
from datetime import date
from typing import Any

import numpy as np
import pytest
from sqlmodel import Session

from app.core.db import make_engine
from app.core.migrate import upgrade
from app.sources.models import AttendanceMark
from consent.scopes import Scope
from rules import compute
from rules.compute import compute_features
from rules.features import FEATURES, Family
from rules.reference import child_features
from tests.factories import make_student
from tests.rules.factories import (
    add_random_observations,
    make_random_child,
    make_school_with_calendar,
    mark,
    school_days,
)

AS_OF_DAYS = [
    date(2025, 4, 10),  # first week of the year: most windows reach into the spring break
    date(2025, 6, 13),
    date(2025, 8, 10),  # summer break: no school day in the 7- and 14-day windows
    date(2025, 10, 1),
    date(2026, 1, 20),
    date(2026, 3, 19),
]


@pytest.fixture
def children(session: Session) -> list[int]:
    rng = random.Random(7)
    school = make_school_with_calendar(session)
    made = [make_random_child(session, school, rng) for _ in range(14)]
    add_random_observations(session, school, made, random.Random(11))
    return [child.id or 0 for child in made]


def test_every_feature_matches_the_reference(session: Session, children: list[int]) -> None:
    for as_of in AS_OF_DAYS:
        _check(session, children, as_of)


def test_features_read_over_two_connections_match_the_reference(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the caller's transaction has written nothing, the family queries are shared out over
    a second connection (`rules.compute.side_connection`; on SQLite, a file): the same values,
    for the whole city and for a consent-scoped few, the attendance query asked in two parts by
    child. The rows are committed, as a sync commits them: the test's usual uncommitted rows
    would keep the queries on one connection."""
    engine = make_engine(empty_database_url)
    upgrade(engine)
    connections: list[int] = []
    asked: list[compute._Query] = []
    spread, read = compute._compute, compute._family

    def counted(pairs: list[tuple[Any, Any]], *args: Any) -> Any:
        connections.append(len(pairs))
        return spread(pairs, *args)

    def recorded(connection: Any, children: Any, period: Any, query: compute._Query) -> Any:
        asked.append(query)
        return read(connection, children, period, query)

    monkeypatch.setattr(compute, "_compute", counted)
    monkeypatch.setattr(compute, "_family", recorded)
    try:
        with Session(engine) as session:
            rng = random.Random(7)
            school = make_school_with_calendar(session)
            made = [make_random_child(session, school, rng) for _ in range(14)]
            add_random_observations(session, school, made, random.Random(11))
            children = [child.id or 0 for child in made]
            session.commit()
        for as_of in (AS_OF_DAYS[1], AS_OF_DAYS[4]):
            with Session(engine) as session:
                _check(session, children, as_of)
            with Session(engine) as session:
                _check(session, children, as_of, everyone=True)
    finally:
        engine.dispose()
    assert set(connections) == {2}
    attendance = [query for query in asked if query.family is Family.attendance]
    assert attendance and all(query.first is not None for query in attendance)
    assert len(attendance) == 2 * len(connections)


def _check(session: Session, children: list[int], as_of: date, *, everyone: bool = False) -> None:
    """Every feature of the CHILDREN (or of EVERYONE enrolled, who must be among them) as the
    reference has it."""
    table = compute_features(
        connection=session.connection(),
        as_of=as_of,
        features=list(FEATURES),
        student_ids=None if everyone else children,
    )
    assert len(table.student_ids) > 0
    for index, student_id in enumerate(table.student_ids):
        expected = child_features(
            session=session,
            student_id=int(student_id),
            as_of=as_of,
            names=list(FEATURES),
            timezone="Asia/Tokyo",
        )
        assert expected is not None
        got = table.row(index)
        mismatched = {
            name: (got[name], expected[name]) for name in FEATURES if not _same(got[name], expected[name])
        }
        assert mismatched == {}, f"child {student_id} on {as_of}"
    screened = set(table.student_ids.tolist())
    for student_id in set(children) - screened:  # left or not yet enrolled: not screened
        assert (
            child_features(
                session=session, student_id=student_id, as_of=as_of, names=[], timezone="Asia/Tokyo"
            )
            is None
        )


def test_each_attendance_feature_asked_alone_reads_what_it_needs(
    session: Session, children: list[int]
) -> None:
    """The attendance query counts only the marks the wanted features read: each feature asked
    alone has the values it has beside every other."""
    as_of = AS_OF_DAYS[4]
    together = compute_features(
        connection=session.connection(), as_of=as_of, features=list(FEATURES), student_ids=children
    )
    for name in [n for n, feature in FEATURES.items() if feature.family is Family.attendance]:
        alone = compute_features(
            connection=session.connection(), as_of=as_of, features=[name], student_ids=children
        )
        assert list(alone.values) == [name]
        assert np.array_equal(alone.values[name], together.values[name], equal_nan=True), name


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


def test_blank_is_not_zero_for_a_transfer_student(session: Session) -> None:
    school = make_school_with_calendar(session)
    settled = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    newcomer = make_student(session, school=school, enrolled_on=date(2025, 9, 16), transferred_in=True)
    mark(session, newcomer, [date(2025, 9, 16), date(2025, 9, 17), date(2025, 9, 18)])
    table = compute_features(
        connection=session.connection(),
        as_of=date(2025, 9, 18),
        features=["absence_days_7d", "absence_days_30d", "absence_rate_30d", "consecutive_absence_days"],
        student_ids=[settled.id or 0, newcomer.id or 0],
    )
    assert table.row(0) == {
        "absence_days_7d": 0.0,
        "absence_days_30d": 0.0,
        "absence_rate_30d": 0.0,
        "consecutive_absence_days": 0.0,
    }
    # Enrolled for three days: the 30-day window and the run of absences reach back into the
    # months the school knows nothing about.
    assert table.row(1) == {
        "absence_days_7d": None,
        "absence_days_30d": None,
        "absence_rate_30d": None,
        "consecutive_absence_days": None,
    }


def test_each_child_has_their_own_run_of_absences(session: Session) -> None:
    """Classmates away on the same day have runs of their own: one child's long absence or
    excused days do not lengthen another's run, and a day present ends a run."""
    school = make_school_with_calendar(session)
    days = school_days(date(2025, 9, 1), date(2025, 10, 10))  # the run ends on Friday 10 October
    long_away, back_once, excused_between, present_today = (
        make_student(session, school=school, enrolled_on=date(2025, 4, 7)) for _ in range(4)
    )
    mark(session, long_away, days[-12:])
    mark(session, back_once, days[-12:-3] + days[-2:])  # present on days[-3]
    mark(session, excused_between, [days[-5], days[-4], days[-1]])
    mark(session, excused_between, [days[-3], days[-2]], AttendanceMark.excused)
    mark(session, present_today, days[-12:-1])
    children = [long_away, back_once, excused_between, present_today]
    table = compute_features(
        connection=session.connection(),
        as_of=days[-1],
        features=["consecutive_absence_days"],
        student_ids=[child.id or 0 for child in children],
    )
    runs = [table.row(index)["consecutive_absence_days"] for index in range(len(children))]
    assert runs == [12.0, 2.0, 3.0, 0.0]


def test_a_feature_is_read_only_for_children_granted_its_scope(session: Session) -> None:
    # Both children were absent; only one family granted attendance for this purpose. The other's
    # marks (held, say, under another purpose's grant) are not read: unknown, not zero, not three.
    school = make_school_with_calendar(session)
    granted = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    withheld = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    days = [date(2025, 9, 16), date(2025, 9, 17), date(2025, 9, 18)]
    mark(session, granted, days)
    mark(session, withheld, days)
    both = [granted.id or 0, withheld.id or 0]
    everyone = compute_features(
        connection=session.connection(),
        as_of=days[-1],
        features=["absence_days_7d", "nurse_visits_30d"],
        student_ids=both,
    )
    scoped = compute_features(
        connection=session.connection(),
        as_of=days[-1],
        features=["absence_days_7d", "nurse_visits_30d"],
        student_ids=both,
        granted={Scope.school_attendance: [granted.id or 0], Scope.school_nurse_visits: both},
    )
    assert everyone.row(0) == everyone.row(1) == {"absence_days_7d": 3.0, "nurse_visits_30d": 0.0}
    assert scoped.row(0) == {"absence_days_7d": 3.0, "nurse_visits_30d": 0.0}
    assert scoped.row(1) == {"absence_days_7d": None, "nurse_visits_30d": 0.0}
