"""The screening engine on both databases: consent first, explained alerts, idempotent re-runs,
updates in place, cleared evidence, quiet periods, trial rules, failure leaves alerts as they were,
and an incremental run that agrees with a full one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from app.core.db import make_engine
from app.core.migrate import upgrade
from app.roster.models import School, Student
from app.sources.models import (
    AttendanceMark,
    AttendanceReason,
    Benefit,
    BenefitStatus,
    HouseholdInfo,
    MoodCheckin,
    Weather,
)
from consent.scopes import Scope
from rules import engine
from rules.catalog import Catalog, load_catalog
from rules.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    Category,
    RulePromotion,
    RunKind,
    RunStatus,
    ScreeningRun,
    Signal,
)
from tests.factories import make_grant, make_student
from tests.rules.factories import SRC, make_random_child, make_school_with_calendar, mark, school_days

AS_OF = date(2025, 10, 1)


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def units(session: Session) -> engine.Units:
    @contextmanager
    def unit() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return unit


def _screen(
    units: engine.Units, catalog: Catalog, as_of: date = AS_OF, incremental: bool = False
) -> engine.RunOutcome:
    return engine.run_screening(
        units=units,
        catalog=catalog,
        as_of=as_of,
        authorize_for=engine.consent_authorizer("テスト市"),
        incremental=incremental,
    )


def _absent_since(session: Session, child: Student, first: date, last: date = AS_OF, **kw: object) -> None:
    mark(session, child, [d for d in school_days() if first <= d <= last], **kw)  # type: ignore[arg-type]


def _count(session: Session, model: type) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


@pytest.fixture
def school(session: Session) -> School:
    return make_school_with_calendar(session)


def test_alerts_explain_themselves_and_follow_consent(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    absent = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, absent, date(2025, 9, 1))  # 23 of the year's 98 school days
    make_grant(session, student=absent, scopes=[Scope.school_attendance])
    no_consent = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, no_consent, date(2025, 9, 1))
    only_benefits = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    session.add(
        BenefitStatus(
            student_id=only_benefits.id or 0,
            benefit=Benefit.public_assistance,
            as_of=date(2025, 4, 1),
            receiving=True,
            source=SRC,
        )
    )
    make_grant(session, student=only_benefits, scopes=[Scope.school_attendance, Scope.myna_benefits])

    outcome = _screen(units, catalog)

    assert outcome.status is RunStatus.succeeded and outcome.children == 2
    [alert] = session.exec(select(Alert)).all()
    assert (alert.student_id, alert.category, alert.status) == (
        absent.id,
        Category.non_attendance,
        AlertStatus.new,
    )
    signals = {s.rule_id: s for s in session.exec(select(Signal).where(Signal.alert_id == alert.id))}
    assert set(signals) == {"attendance_early_warning_ytd", "attendance_at_risk_ytd", "consecutive_absence"}
    [fact] = signals["consecutive_absence"].atoms
    assert fact["feature"] == "consecutive_absence_days" and fact["value"] == 23.0
    assert fact["threshold"] == 3.0 and fact["result"] == "true"
    fact, days = signals["attendance_at_risk_ytd"].atoms
    assert fact["value"] == pytest.approx(75 / 98) and fact["threshold"] == 0.8 and fact["result"] == "true"
    assert (days["feature"], days["value"], days["result"]) == ("absence_days_ytd", 23.0, "true")
    assert fact["window_start"] == "2025-04-01" and fact["window_end"] == "2025-10-01"
    assert alert.score == 4.0
    # The family shared attendance only: nothing about a household, benefits or mood was read,
    # and a benefit alone (the third child) fires nothing.
    events = session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert.id)).all()
    assert [e.kind for e in events] == [AlertEventKind.opened]


def test_rerun_on_unchanged_data_creates_nothing(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, child, date(2025, 9, 22))
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    before = [_count(session, m) for m in (Alert, Signal, AlertEvent)]
    second = _screen(units, catalog)
    assert [_count(session, m) for m in (Alert, Signal, AlertEvent)] == before
    assert (second.opened, second.updated, second.cleared, second.signals) == (0, 0, 0, 0)


def test_a_signal_written_before_its_digest_is_rewritten_once(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    """Signals from before the digest column have none: the next run rewrites them with it,
    with no event (nothing it says changed), and the run after finds nothing to do."""
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, child, date(2025, 9, 22))
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    digests = {s.id: s.said_digest for s in session.exec(select(Signal)).all()}
    assert digests and all(digests.values())
    events = _count(session, AlertEvent)
    session.execute(sa.update(Signal).values(said_digest=None))

    again = _screen(units, catalog)
    assert (again.opened, again.updated, again.cleared, again.signals) == (0, 1, 0, 0)
    session.expire_all()
    assert {s.id: s.said_digest for s in session.exec(select(Signal)).all()} == digests
    assert _count(session, AlertEvent) == events
    third = _screen(units, catalog)
    assert (third.opened, third.updated, third.cleared, third.signals) == (0, 0, 0, 0)


def test_new_evidence_updates_the_open_alert_and_clearing_keeps_the_status(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, child, date(2025, 9, 26))
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    [alert] = session.exec(select(Alert)).all()
    alert.status = AlertStatus.under_review  # a person took it up
    session.add(alert)
    session.flush()

    # Three more weeks away: attendance this year falls below 88 %.
    _absent_since(session, child, date(2025, 10, 2), date(2025, 10, 24))
    later = _screen(units, catalog, as_of=date(2025, 10, 24))
    assert later.updated == 1 and later.opened == 0
    [same] = session.exec(select(Alert)).all()
    session.refresh(same)
    assert same.id == alert.id and same.score == 2.0
    rules = [s.rule_id for s in session.exec(select(Signal).where(Signal.alert_id == alert.id))]
    assert len(rules) == len(set(rules))  # refreshed in place, never duplicated

    # The child is back at school for weeks: the rules stop firing, the status stays.
    cleared = _screen(units, catalog, as_of=date(2026, 2, 13))
    assert cleared.cleared == 1
    session.refresh(same)
    assert same.score == 0.0 and same.status is AlertStatus.under_review
    signals = session.exec(select(Signal).where(Signal.alert_id == alert.id)).all()
    assert all(s.cleared_on == date(2026, 2, 13) for s in signals)
    kinds = [e.kind for e in session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert.id))]
    assert kinds == [AlertEventKind.opened, AlertEventKind.evidence_changed, AlertEventKind.evidence_cleared]


def test_a_dismissed_alert_is_not_reopened_by_the_same_evidence(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, child, date(2025, 9, 22))
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    [alert] = session.exec(select(Alert)).all()
    alert.status, alert.closed_at, alert.closed_reason = (
        AlertStatus.dismissed,
        datetime.now().astimezone(),
        "家庭の事情を把握済み",
    )
    session.add(alert)
    session.flush()
    assert _screen(units, catalog).opened == 0


def test_status_facts_add_weight_only_where_shared(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    carer = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    days = [date(2025, 9, 18), date(2025, 9, 25)]
    mark(session, carer, days, AttendanceMark.absent, AttendanceReason.family_care)
    session.add(
        HouseholdInfo(student_id=carer.id or 0, as_of=date(2025, 6, 1), member_needing_care=True, source=SRC)
    )
    make_grant(session, student=carer, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    [alert] = session.exec(select(Alert).where(Alert.category == Category.young_carer)).all()
    [signal] = session.exec(select(Signal).where(Signal.alert_id == alert.id)).all()
    assert signal.weight == 2.0  # household not shared: the fact adds nothing
    assert signal.boosters[0]["shared"] is False
    assert alert.coverage == {"insufficient_data": [], "not_consented": []}

    make_grant(session, student=carer, scopes=[Scope.myna_household])
    _screen(units, catalog)
    session.refresh(signal)
    assert signal.weight == 3.0


def test_trial_rules_reach_no_one_until_promoted(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    mark(session, child, [date(2025, 9, 29), date(2025, 9, 30)])
    for day in school_days(date(2025, 9, 18), AS_OF):
        session.add(MoodCheckin(student_id=child.id or 0, day=day, weather=Weather.rain, source=SRC))
    make_grant(session, student=child, scopes=[Scope.school_attendance, Scope.school_mood])
    outcome = _screen(units, catalog)
    run = session.get_one(ScreeningRun, outcome.run_id)
    assert run.summary["rules"]["sudden_low_mood_and_absence"]["fired"] == 1
    assert session.exec(select(Alert).where(Alert.category == Category.bullying)).all() == []

    rule = catalog.rule("sudden_low_mood_and_absence")
    session.add(RulePromotion(rule_id=rule.id, rule_version=rule.version, reason="試行の結果を確認"))
    session.flush()
    _screen(units, catalog)
    assert len(session.exec(select(Alert).where(Alert.category == Category.bullying)).all()) == 1


def test_a_run_on_an_in_memory_database(catalog: Catalog) -> None:
    """An in-memory SQLite database (one connection per thread) screens too: its writes are
    made in place, not by the writing thread that PostgreSQL's runs use."""
    memory = make_engine("sqlite://")
    upgrade(memory)

    @contextmanager
    def unit() -> Iterator[Session]:
        with Session(memory, expire_on_commit=False) as session, session.begin():
            yield session

    with unit() as session:
        child = make_student(session, school=make_school_with_calendar(session), enrolled_on=date(2025, 4, 7))
        _absent_since(session, child, date(2025, 9, 22))
        make_grant(session, student=child, scopes=[Scope.school_attendance])
    outcome = engine.run_screening(
        units=unit, catalog=catalog, as_of=AS_OF, authorize_for=engine.consent_authorizer("テスト市")
    )
    assert outcome.status is RunStatus.succeeded and outcome.opened == 1
    memory.dispose()


@pytest.mark.parametrize("breaking", ["_insert_many", "_signal_row"])
def test_a_run_failing_midway_leaves_the_previous_alerts(
    session: Session,
    units: engine.Units,
    catalog: Catalog,
    school: School,
    monkeypatch: pytest.MonkeyPatch,
    breaking: str,
) -> None:
    """A write failing (made by the run's writing thread) or the comparing failing while
    writes are under way: the run is marked failed and nothing it wrote stays."""
    first = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, first, date(2025, 9, 22))
    make_grant(session, student=first, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    before = [(a.id, a.score, a.last_run_id) for a in session.exec(select(Alert))]
    second = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    _absent_since(session, second, date(2025, 9, 1), date(2025, 10, 10))
    make_grant(session, student=second, scopes=[Scope.school_attendance])

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine, breaking, broken)
    with pytest.raises(RuntimeError):
        _screen(units, catalog, as_of=date(2025, 10, 10))
    session.expire_all()
    assert [(a.id, a.score, a.last_run_id) for a in session.exec(select(Alert))] == before
    failed = session.exec(select(ScreeningRun).order_by(ScreeningRun.id.desc())).first()  # type: ignore[union-attr]
    assert failed is not None and failed.status is RunStatus.failed and "disk full" in (failed.error or "")


def test_incremental_after_a_new_school_day_matches_a_full_run(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    rng = random.Random(11)
    yesterday, day = date(2025, 10, 1), date(2025, 10, 2)
    children = [make_random_child(session, school, rng, until=yesterday) for _ in range(16)]
    for child in children:
        make_grant(session, student=child, scopes=list(Scope))
    _screen(units, catalog, as_of=yesterday)
    # The next daily sync brings the 2nd: two children absent, one picks thunder, the rest
    # have nothing to report (present, or sunny).
    mark(session, children[0], [day])
    mark(session, children[1], [day], AttendanceMark.absent, AttendanceReason.family_care)
    session.add(MoodCheckin(student_id=children[2].id or 0, day=day, weather=Weather.thunder, source=SRC))
    session.add(MoodCheckin(student_id=children[3].id or 0, day=day, weather=Weather.sunny, source=SRC))
    session.flush()
    outcome = _screen(units, catalog, as_of=day, incremental=True)
    assert outcome.kind is RunKind.incremental and outcome.children < len(children)
    incremental = _state(session)
    full = _screen(units, catalog, as_of=day)
    assert full.kind is RunKind.full
    assert (full.opened, full.updated, full.cleared) == (0, 0, 0)
    assert _state(session) == incremental


def _state(session: Session) -> list[tuple[object, ...]]:
    return sorted(
        (a.student_id, a.category, a.score, tuple(sorted(a.coverage.get("insufficient_data", []))))
        for a in session.exec(select(Alert))
    )
