"""When consent stops (pause, revocation, objection, expiry), the evidence it allowed is
withdrawn at once, with the reason in the alert's history, and no screening run brings it back
while consent is absent; when consent returns the child is screened as new."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from app.core.types import utcnow
from app.roster.models import School, Student
from app.sources.models import AttendanceMark, AttendanceReason, HouseholdInfo, MoodCheckin, Weather
from consent import service as consent_service
from consent.models import ConsentGrant, GrantEventKind
from consent.scopes import Purpose, Scope
from rules import engine
from rules.catalog import Catalog, load_catalog
from rules.models import Alert, AlertEvent, AlertEventKind, AlertStatus, Category, RunKind, Signal
from rules.withdraw import CONSENT_STOPPED, WITHDRAWN
from tests.factories import GUARDIAN_ACTOR, make_grant, make_student
from tests.rules.factories import SRC, make_school_with_calendar, mark, school_days

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


@pytest.fixture
def school(session: Session) -> School:
    return make_school_with_calendar(session)


def _screen(units: engine.Units, catalog: Catalog, incremental: bool = False) -> engine.RunOutcome:
    return engine.run_screening(
        units=units,
        catalog=catalog,
        as_of=AS_OF + timedelta(days=1) if incremental else AS_OF,
        authorize_for=engine.consent_authorizer("テスト市"),
        incremental=incremental,
    )


def _absent_child(session: Session, school: School) -> Student:
    """A child away since September: 不登校 rules fire (attendance this year below 80 %)."""
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    mark(session, child, [d for d in school_days() if date(2025, 9, 1) <= d <= AS_OF])
    return child


def _alerts(session: Session, child: Student) -> list[Alert]:
    session.expire_all()
    return list(session.exec(select(Alert).where(Alert.student_id == child.id).order_by(Alert.id)))  # type: ignore[arg-type]


def _event(session: Session, alert: Alert, kind: AlertEventKind) -> AlertEvent:
    return session.exec(
        select(AlertEvent).where(AlertEvent.alert_id == alert.id, AlertEvent.kind == kind)
    ).one()


def _caring(session: Session, child: Student, days: list[date]) -> None:
    """Days away for family care, and a household member certified for care."""
    mark(session, child, days, AttendanceMark.absent, AttendanceReason.family_care)
    home = HouseholdInfo(
        student_id=child.id or 0, as_of=date(2025, 6, 1), member_needing_care=True, source=SRC
    )
    session.add(home)


def _signals(session: Session, alert: Alert) -> list[Signal]:
    return list(session.exec(select(Signal).where(Signal.alert_id == alert.id)))


def _revoke(session: Session, grant: ConsentGrant, child: Student) -> None:
    consent_service.transition(
        session=session, grant=grant, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR
    )


def _pause(session: Session, grant: ConsentGrant, child: Student) -> None:
    consent_service.transition(session=session, grant=grant, kind=GrantEventKind.paused, actor=GUARDIAN_ACTOR)


def _object(session: Session, grant: ConsentGrant, child: Student) -> None:
    consent_service.raise_objection(
        session=session,
        actor=GUARDIAN_ACTOR,
        student_id=child.id or 0,
        purpose=Purpose.early_support,
        message=None,
    )


def _expire(session: Session, grant: ConsentGrant, child: Student) -> None:
    # Time passing: nothing calls back, the next screening run finds the grant expired.
    grant.expires_at = utcnow() - timedelta(minutes=1)
    session.add(grant)


@pytest.mark.parametrize(
    "stop", [_revoke, _pause, _object, _expire], ids=["revoke", "pause", "objection", "expiry"]
)
def test_stopped_consent_withdraws_the_alert_and_no_run_brings_it_back(
    session: Session,
    units: engine.Units,
    catalog: Catalog,
    school: School,
    stop: Callable[[Session, ConsentGrant, Student], None],
) -> None:
    child = _absent_child(session, school)
    grant = make_grant(session, student=child, scopes=[Scope.school_attendance])
    _screen(units, catalog)
    [alert] = _alerts(session, child)
    assert alert.status is AlertStatus.new and alert.score > 0

    stop(session, grant, child)
    session.flush()
    if stop is _expire:
        _screen(units, catalog)  # the run notices
    [alert] = _alerts(session, child)
    assert alert.status is AlertStatus.closed and alert.score == 0.0
    assert (alert.closed_reason or "").startswith(CONSENT_STOPPED)
    for signal in _signals(session, alert):
        assert signal.cleared_on is not None and signal.weight == 0.0
        assert {fact["value"] for fact in signal.atoms} == {None}
        assert {fact["result"] for fact in signal.atoms} == {WITHDRAWN}
    closing = _event(session, alert, AlertEventKind.status_changed)
    assert closing.to_status is AlertStatus.closed and (closing.reason or "").startswith(CONSENT_STOPPED)
    assert closing.staff_user_id is None

    # Neither a full nor an incremental run brings it back while consent is absent.
    assert _screen(units, catalog).opened == 0
    incremental = _screen(units, catalog, incremental=True)
    assert incremental.kind is RunKind.incremental and incremental.opened == 0
    assert [a.status for a in _alerts(session, child)] == [AlertStatus.closed]

    # Consent given again: the child is screened as new (no quiet period after a withdrawal).
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    if stop is _object:
        session.execute(sa.text("UPDATE consent_objection SET resolved_at = CURRENT_TIMESTAMP"))
    assert _screen(units, catalog).opened == 1
    assert [a.status for a in _alerts(session, child)] == [AlertStatus.closed, AlertStatus.new]


def test_only_what_rests_on_the_stopped_grant_is_withdrawn(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    child = _absent_child(session, school)
    days = [d for d in school_days() if date(2025, 6, 2) <= d <= date(2025, 6, 30)]
    mark(session, child, days[:3], AttendanceMark.absent, AttendanceReason.family_care)
    for day in school_days(date(2025, 9, 18), AS_OF):
        session.add(MoodCheckin(student_id=child.id or 0, day=day, weather=Weather.rain, source=SRC))
    session.add(
        HouseholdInfo(student_id=child.id or 0, as_of=date(2025, 6, 1), member_needing_care=True, source=SRC)
    )
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    mood = make_grant(session, student=child, scopes=[Scope.school_mood])
    make_grant(session, student=child, scopes=[Scope.myna_household])
    _screen(units, catalog)
    by_category = {a.category: a for a in _alerts(session, child)}
    assert set(by_category) >= {Category.non_attendance, Category.wellbeing}

    _revoke(session, mood, child)
    by_category = {a.category: a for a in _alerts(session, child)}
    assert by_category[Category.wellbeing].status is AlertStatus.closed
    assert by_category[Category.non_attendance].status is AlertStatus.new
    assert by_category[Category.non_attendance].score > 0


def test_a_run_that_withdraws_writes_on_what_the_withdrawal_left(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    """One grant of two expires: the run withdraws the alert that rested on it, then screens
    the child on the other. It must see that alert closed, not as it stood before the run."""
    child = _absent_child(session, school)
    for day in school_days(date(2025, 9, 18), AS_OF):
        session.add(MoodCheckin(student_id=child.id or 0, day=day, weather=Weather.rain, source=SRC))
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    mood = make_grant(session, student=child, scopes=[Scope.school_mood])
    _screen(units, catalog)
    wellbeing = {a.category: a for a in _alerts(session, child)}[Category.wellbeing]

    _expire(session, mood, child)
    session.flush()
    outcome = _screen(units, catalog)
    by_category = {a.category: a for a in _alerts(session, child)}
    assert by_category[Category.wellbeing].status is AlertStatus.closed
    assert by_category[Category.non_attendance].status is AlertStatus.new
    assert outcome.cleared == 0  # closed by the withdrawal, not cleared again by the run
    kinds = [
        event.kind for event in session.exec(select(AlertEvent).where(AlertEvent.alert_id == wellbeing.id))
    ]
    assert AlertEventKind.evidence_cleared not in kinds


def test_a_status_fact_no_longer_shared_stops_adding_weight(
    session: Session, units: engine.Units, catalog: Catalog, school: School
) -> None:
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    mark(
        session,
        child,
        [date(2025, 9, 18), date(2025, 9, 25)],
        AttendanceMark.absent,
        AttendanceReason.family_care,
    )
    session.add(
        HouseholdInfo(student_id=child.id or 0, as_of=date(2025, 6, 1), member_needing_care=True, source=SRC)
    )
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    household = make_grant(session, student=child, scopes=[Scope.myna_household])
    _screen(units, catalog)
    [alert] = _alerts(session, child)
    assert alert.category is Category.young_carer and alert.score == 3.0

    _revoke(session, household, child)
    [alert] = _alerts(session, child)
    assert alert.status is AlertStatus.new and alert.score == 2.0
    [signal] = _signals(session, alert)
    assert signal.weight == 2.0 and signal.cleared_on is None
    # The staff observation count beside it reads no category the family shares: it stays.
    assert [(b["feature"], b["value"], b["shared"]) for b in signal.boosters] == [
        ("household_member_needing_care", None, False),
        ("observations_family_talk_90d", 0.0, True),
    ]
    event = _event(session, alert, AlertEventKind.evidence_changed)
    assert (event.reason or "").startswith(CONSENT_STOPPED)
    # The next run agrees: the rule still fires on attendance, the household adds nothing.
    assert _screen(units, catalog).opened == 0
    [alert] = _alerts(session, child)
    assert alert.score == 2.0
