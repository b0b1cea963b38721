"""Incremental screening after daily syncs gives the alerts a full run gives, on both databases,
while screening fewer children; a catalog it cannot bound makes it screen everyone."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.db import make_engine
from app.core.migrate import upgrade
from app.roster.models import SchoolDay, Student
from app.sources.models import (
    AttendanceMark,
    AttendanceReason,
    FeeStatus,
    MoodCheckin,
    NurseComplaint,
    NurseVisit,
    Weather,
)
from consent.scopes import Scope
from rules import compute, engine
from rules import incremental as incremental_search
from rules.catalog import Catalog, load_catalog
from rules.compute import Period
from rules.models import Alert, RunKind, Signal
from tests.factories import make_grant, make_student
from tests.rules.factories import (
    SRC,
    YEAR_START,
    _at,
    make_random_child,
    make_school_with_calendar,
    mark,
    school_days,
)


@pytest.fixture
def units(session: Session) -> engine.Units:
    @contextmanager
    def unit() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return unit


def _screen(
    units: engine.Units, catalog: Catalog, as_of: date, incremental: bool = False
) -> engine.RunOutcome:
    return engine.run_screening(
        units=units,
        catalog=catalog,
        as_of=as_of,
        authorize_for=engine.consent_authorizer("テスト市"),
        incremental=incremental,
    )


def _committing(database: Engine) -> engine.Units:
    """Units of work that each commit on a session of their own, as `tsunagu screen`'s do."""

    @contextmanager
    def unit() -> Iterator[Session]:
        with Session(database, expire_on_commit=False) as session:
            yield session
            session.commit()

    return unit


def _state(session: Session) -> list[tuple[object, ...]]:
    """Everything staff see of alerts: status, score, coverage, and each signal's facts."""
    session.expire_all()
    alerts = {a.id: a for a in session.exec(select(Alert))}
    return sorted(
        [("alert", a.student_id, a.category, a.status, a.score, repr(a.coverage)) for a in alerts.values()]
        + [
            (
                "signal",
                alerts[s.alert_id].student_id,
                alerts[s.alert_id].category,
                s.rule_id,
                s.weight,
                repr(s.atoms),
                repr(s.boosters),
                s.cleared_on,
            )
            for s in session.exec(select(Signal))
        ],
        key=repr,
    )


def _enrolled(child: Student, day: date) -> bool:
    return child.enrolled_on <= day and (child.left_on is None or child.left_on >= day)


def _sync_day(session: Session, children: list[Student], day: date, rng: random.Random) -> None:
    """A school day's records arriving: absences (some for family care), lateness, moods, nurse visits."""
    for child in children:
        if not _enrolled(child, day):
            continue
        roll = rng.random()
        if roll < 0.12:
            reason = rng.choice(
                [AttendanceReason.illness, AttendanceReason.other, AttendanceReason.family_care]
            )
            mark(session, child, [day], AttendanceMark.absent, reason)
            continue
        if roll < 0.2:
            mark(session, child, [day], AttendanceMark.late)
        if rng.random() < 0.7:
            weather = rng.choices(list(Weather), weights=[4, 3, 2, 2])[0]
            session.add(MoodCheckin(student_id=child.id or 0, day=day, weather=weather, source=SRC))
        if rng.random() < 0.08:
            complaint = rng.choice(list(NurseComplaint))
            session.add(
                NurseVisit(student_id=child.id or 0, visited_at=_at(day, 1), complaint=complaint, source=SRC)
            )
    session.flush()


def test_incremental_runs_day_after_day_give_the_alerts_of_a_full_run(
    session: Session, units: engine.Units
) -> None:
    catalog = load_catalog()
    school = make_school_with_calendar(session)
    rng = random.Random(20251001)
    first = date(2025, 10, 1)
    children = [make_random_child(session, school, rng, until=first) for _ in range(40)]
    for child in children[:-3]:
        make_grant(session, student=child, scopes=list(Scope))
    assert _screen(units, catalog, first).kind is RunKind.full
    fewer = []
    for index, day in enumerate(school_days(date(2025, 10, 2), date(2025, 10, 17))):
        _sync_day(session, children, day, rng)
        if index == 4:  # a family consents between two runs
            make_grant(session, student=children[-1], scopes=list(Scope))
        incremental = _screen(units, catalog, day, incremental=True)
        assert incremental.kind is RunKind.incremental
        fewer.append(incremental.children)
        if index % 2 == 0:
            continue  # two incremental runs in a row, then check against a full one
        after_incremental = _state(session)
        full = _screen(units, catalog, day)
        assert full.kind is RunKind.full
        assert (full.opened, full.updated, full.cleared) == (0, 0, 0), day
        assert _state(session) == after_incremental
        fewer[-1] = full.children - fewer[-1]
    assert any(alert.score > 0 for alert in session.exec(select(Alert)))
    assert all(count > 0 for count in fewer[1::2])  # each incremental run left someone out


def test_a_rule_that_windows_alone_can_start_makes_the_run_full(
    session: Session, units: engine.Units, tmp_path: Path
) -> None:
    (tmp_path / "non_attendance.yaml").write_text(
        """category: non_attendance
rules:
  - id: attendance_below_90_recently
    title: {ja: 出席率, en: Attendance}
    description: {ja: 直近30日間の出席率が90%未満, en: Attendance below 90 % in the last 30 days}
    scopes: [school.attendance]
    weight: 1
    atoms:
      low: attendance_rate_30d < 0.9
    when: low
""",
        encoding="utf-8",
    )
    catalog = load_catalog(tmp_path)
    school = make_school_with_calendar(session)
    child = make_random_child(session, school, random.Random(3), until=date(2025, 10, 1))
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    _screen(units, catalog, date(2025, 10, 1))
    # A rate over a rolling window can cross its line as days leave the window, with no new
    # row at all: nothing bounds who may change, so everyone is screened.
    assert _screen(units, catalog, date(2025, 10, 2), incremental=True).kind is RunKind.full


def test_alerts_whose_evidence_moves_only_with_rows_are_left_alone_on_a_day_without_rows(
    session: Session, units: engine.Units
) -> None:
    catalog = load_catalog()
    school = make_school_with_calendar(session)
    in_arrears, absent_in_september, near_the_line = (make_student(session, school=school) for _ in range(3))
    for child in (in_arrears, absent_in_september, near_the_line):
        make_grant(session, student=child, scopes=list(Scope))
    session.add_all(
        FeeStatus(
            student_id=in_arrears.id or 0, month=month, billed_yen=4500, paid_yen=0, arrears=True, source=SRC
        )
        for month in (date(2025, 8, 1), date(2025, 9, 1))
    )
    mark(session, absent_in_september, school_days(date(2025, 9, 1), date(2025, 9, 30)))
    # 98 school days to 1 October, 7 of them excused: 11 absences leave 80 of 91 days attended
    # (87.9 %, below the 88 % line); one more day present makes it 81 of 92 (88.04 %).
    year = school_days(YEAR_START, date(2025, 10, 1))
    assert len(year) == 98
    mark(session, near_the_line, year[:7], AttendanceMark.excused, AttendanceReason.suspension)
    mark(session, near_the_line, school_days(date(2025, 5, 1), date(2025, 5, 31))[:11])
    first = _screen(units, catalog, date(2025, 10, 1))
    assert first.opened == 3
    # The 2nd brings no rows: two months of arrears stay two months, and September's absences
    # keep that attendance rate far below its lines; only the rate next to its line may cross
    # it with a day present, so only that child is screened again, and the alert clears.
    incremental = _screen(units, catalog, date(2025, 10, 2), incremental=True)
    assert (incremental.kind, incremental.children) == (RunKind.incremental, 1)
    assert (incremental.opened, incremental.updated, incremental.cleared) == (0, 0, 1)
    after_incremental = _state(session)
    full = _screen(units, catalog, date(2025, 10, 2))
    assert (full.children, full.opened, full.updated, full.cleared) == (3, 0, 0, 0)
    assert _state(session) == after_incremental


def test_a_run_of_absences_counts_absences_across_excused_days_and_not_excused_days(
    session: Session, units: engine.Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Excused days neither count nor break a run of absences: a child excused all week has
    none and is not screened again, a child whose absences around an excused day make three
    is, as is a child absent three days in a row (whose run the search need not count)."""
    counted: list[set[int]] = []
    run_holds = incremental_search.Bounds.run_holds

    def watched(self: incremental_search.Bounds, atom: Any, among: Any) -> set[int]:
        counted.append(set(among))
        return run_holds(self, atom, among)

    monkeypatch.setattr(incremental_search.Bounds, "run_holds", watched)
    catalog = load_catalog()
    school = make_school_with_calendar(session)
    excused, bridged, plain = (make_student(session, school=school) for _ in range(3))
    for child in (excused, bridged, plain):
        make_grant(session, student=child, scopes=list(Scope))
    monday, tuesday, wednesday, thursday = school_days(date(2025, 9, 29), date(2025, 10, 2))
    mark(session, excused, [monday, tuesday, wednesday], AttendanceMark.excused, AttendanceReason.suspension)
    mark(session, bridged, [monday, tuesday])
    mark(session, bridged, [wednesday], AttendanceMark.excused, AttendanceReason.suspension)
    mark(session, plain, [tuesday, wednesday])
    assert _screen(units, catalog, wednesday).opened == 0
    mark(session, excused, [thursday], AttendanceMark.excused, AttendanceReason.suspension)
    mark(session, bridged, [thursday])
    mark(session, plain, [thursday])
    incremental = _screen(units, catalog, thursday, incremental=True)
    assert (incremental.kind, incremental.children, incremental.opened) == (RunKind.incremental, 2, 2)
    assert counted == [{excused.id, bridged.id}]
    opened = {alert.student_id for alert in session.exec(select(Alert))}
    assert opened == {bridged.id, plain.id}
    after_incremental = _state(session)
    full = _screen(units, catalog, thursday)
    assert (full.children, full.opened, full.updated, full.cleared) == (3, 0, 0, 0)
    assert _state(session) == after_incremental


def test_the_last_school_days_reach_back_over_a_long_break(session: Session) -> None:
    """A school's latest school days are found however long its last break (the search reads
    the last two months first): a run of absences across a break of over two months is a run."""
    after_break = make_school_with_calendar(session, last_day=date(2025, 7, 18))
    for day in (date(2025, 10, 1), date(2025, 10, 2)):
        session.add(SchoolDay(school_id=after_break.id or 0, day=day))
    usual = make_school_with_calendar(session)
    child = make_student(session, school=after_break)
    mark(session, child, [date(2025, 7, 18), date(2025, 10, 1), date(2025, 10, 2)])
    tz = ZoneInfo("Asia/Tokyo")
    bounds = incremental_search.Bounds(
        session.connection(),
        Period(as_of=date(2025, 10, 1), tz=tz),
        Period(as_of=date(2025, 10, 2), tz=tz),
        0,
        datetime.now(UTC),
    )
    latest = bounds._latest_school_days(3)
    assert latest[after_break.id or 0] == {date(2025, 7, 18), date(2025, 10, 1), date(2025, 10, 2)}
    assert latest[usual.id or 0] == set(school_days(date(2025, 9, 30), date(2025, 10, 2)))
    assert bounds._away_on_each_of_the_last_school_days(3, [child.id or 0]) == {child.id: 3}


def test_incremental_runs_on_committed_rows_give_the_alerts_of_a_full_run(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a daily sync leaves them: the rows committed, each run its own transactions. The
    search then asks the rules' bounds on a second connection (on SQLite, a file), both
    connections taking the rules still waiting; the test's usual uncommitted rows keep it on
    one."""
    engine = make_engine(empty_database_url)
    upgrade(engine)
    sides: list[bool] = []
    opened = compute.side_connection

    @contextmanager
    def watched(connection: Any) -> Iterator[Any]:
        with opened(connection) as side:
            sides.append(side is not None)
            yield side

    monkeypatch.setattr(incremental_search, "side_connection", watched)

    unit = _committing(engine)
    try:
        catalog = load_catalog()
        rng = random.Random(20251002)
        first = date(2025, 10, 1)
        with Session(engine, expire_on_commit=False) as session:
            school = make_school_with_calendar(session)
            children = [make_random_child(session, school, rng, until=first) for _ in range(30)]
            for child in children:
                make_grant(session, student=child, scopes=list(Scope))
            session.commit()
        assert _screen(unit, catalog, first).kind is RunKind.full
        for day in school_days(date(2025, 10, 2), date(2025, 10, 8)):
            with Session(engine) as session:
                _sync_day(session, children, day, rng)
                session.commit()
            assert _screen(unit, catalog, day, incremental=True).kind is RunKind.incremental
            with Session(engine) as session:
                after_incremental = _state(session)
            full = _screen(unit, catalog, day)
            assert (full.opened, full.updated, full.cleared) == (0, 0, 0), day
            with Session(engine) as session:
                assert _state(session) == after_incremental
            with Session(engine) as session:
                assert any(alert.score > 0 for alert in session.exec(select(Alert)))
    finally:
        engine.dispose()
    assert sides and all(sides)


def test_the_alerts_as_they_stand_are_read_apart_after_a_search_that_counted_a_run_of_absences(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting a run of absences in the search fills a temporary table, which gives the
    transaction an id (on SQLite, opens a write transaction) though no other connection sees
    it: the open alerts are still read on a connection of their own, beside consent and the
    features, not after them. (The search is kept on one connection, so that this one counts.)"""
    database = make_engine(empty_database_url)
    upgrade(database)

    @contextmanager
    def one_connection(connection: Any) -> Iterator[None]:
        yield None

    monkeypatch.setattr(incremental_search, "side_connection", one_connection)
    readers: list[str] = []
    read = engine.read_standing

    def watched(connection: Any, children: Any) -> engine.Standing:
        readers.append(threading.current_thread().name)
        return read(connection, children)

    monkeypatch.setattr(engine, "read_standing", watched)

    unit = _committing(database)
    try:
        catalog = load_catalog()
        monday, tuesday, wednesday, thursday = school_days(date(2025, 9, 29), date(2025, 10, 2))
        with Session(database, expire_on_commit=False) as session:
            school = make_school_with_calendar(session)
            child = make_student(session, school=school)
            make_grant(session, student=child, scopes=list(Scope))
            mark(session, child, [monday, tuesday, wednesday])
            session.commit()
        assert _screen(unit, catalog, wednesday).opened == 1
        with Session(database) as session:
            mark(session, session.get_one(Student, child.id), [thursday])
            session.commit()
        readers.clear()
        incremental = _screen(unit, catalog, thursday, incremental=True)
        assert (incremental.kind, incremental.children) == (RunKind.incremental, 1)
    finally:
        database.dispose()
    assert readers and all(name.startswith("screening-reads") for name in readers), readers
