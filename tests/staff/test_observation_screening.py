"""Staff observations (日常所見) as a screening feature: counted beside the data for children
whose families granted early support, never for others, and explained on the alert page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import httpx
from sqlmodel import Session, select

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.roster.models import SchoolDay, StaffRole, Student
from app.sources.models import MoodCheckin, Source, Weather
from app.staff import service
from app.staff.models import ObservationCategory
from consent.scopes import Scope
from rules import engine
from rules.catalog import load_catalog
from rules.models import Alert, Category, RunKind, Signal
from tests.factories import make_grant
from tests.staff.conftest import HTML, Roster, make_staff, make_student_in, sign_in_directly

AS_OF = date(2026, 11, 20)  # a Friday
NEXT_DAY = AS_OF + timedelta(days=1)
RULE = "low_mood_and_nurse_for_feelings"


def _calendar(session: Session, roster: Roster) -> None:
    for offset in range(120):
        day = AS_OF - timedelta(days=offset)
        if day.weekday() < 5:
            session.add(SchoolDay(school_id=roster.school.id or 0, day=day))


def _two_thunder_days(session: Session, child: Student) -> None:
    """One of the rule's data atoms (thunder on two days in 14); alone it fires nothing."""
    for day in (AS_OF - timedelta(days=1), AS_OF - timedelta(days=2)):
        session.add(
            MoodCheckin(student_id=child.id or 0, day=day, weather=Weather.thunder, source=Source.demo_loader)
        )


def _screen(session: Session, as_of: date, incremental: bool = False) -> engine.RunOutcome:
    @contextmanager
    def unit() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return engine.run_screening(
        units=unit,
        catalog=load_catalog(),
        as_of=as_of,
        authorize_for=engine.consent_authorizer("つなぐ市"),
        incremental=incremental,
    )


async def test_an_observation_counts_beside_the_data_for_consented_children_only(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    _calendar(session, roster)
    consented = roster.child
    not_consented = make_student_in(session, roster.homeroom, "S-0003", "鈴木", "三郎")
    for child in (consented, not_consented):
        _two_thunder_days(session, child)
    make_grant(
        session,
        student=consented,
        scopes=[Scope.school_attendance, Scope.school_mood, Scope.school_nurse_visits],
    )
    session.flush()

    first = _screen(session, AS_OF)
    assert first.children == 1  # the family without a grant is not screened at all
    assert session.exec(select(Alert)).all() == []  # thunder days alone: one of two

    teacher = make_staff(session, roster, StaffRole.homeroom_teacher)
    for child in (consented, not_consented):
        service.record_observation(
            session=session,
            staff=teacher,
            student_id=child.id or 0,
            category=ObservationCategory.demeanour,
            note="朝から表情が暗い",
            observed_on=AS_OF,
        )
    session.flush()

    second = _screen(session, NEXT_DAY, incremental=True)
    assert second.kind is RunKind.incremental  # a new observation makes the child a target
    assert second.children == 1
    [alert] = session.exec(select(Alert)).all()
    assert (alert.student_id, alert.category) == (consented.id, Category.wellbeing)
    [signal] = session.exec(select(Signal).where(Signal.alert_id == alert.id)).all()
    assert signal.rule_id == RULE
    facts = {fact["name"]: fact for fact in signal.atoms}
    assert {name: fact["result"] for name, fact in facts.items()} == {
        "thunder_days": "true",
        "nurse_for_feelings": "false",
        "late_often": "false",
        "staff_noticed": "true",
    }
    assert facts["staff_noticed"] == {
        "name": "staff_noticed",
        "feature": "observations_demeanour_30d",
        "op": ">=",
        "threshold": 1.0,
        "value": 1.0,
        "result": "true",
        "window": "30d",
        "window_start": "2026-10-23",
        "window_end": "2026-11-21",
    }
    # Screening never read anything of the child whose family gave no grant.
    uses = session.exec(
        select(AuditEntry).where(AuditEntry.student_id == not_consented.id, AuditEntry.action == audit.USE)
    ).all()
    assert uses == []

    for role in (StaffRole.school_counselor, StaffRole.homeroom_teacher):
        staff = teacher if role is StaffRole.homeroom_teacher else make_staff(session, roster, role)
        sign_in_directly(client, session, staff)
        page = await client.get(f"/staff/alerts/{alert.id}", headers=HTML)
        assert page.status_code == 200
        # The observation is one explained fact beside the data: what, value, threshold, dates.
        assert "職員が記録した「表情・様子の変化」の日常所見の数" in page.text
        assert "2026-10-23〜2026-11-21" in page.text
        assert "心の天気で「かみなり」を選んだ日数" in page.text
        assert "朝から表情が暗い" not in page.text  # the note itself is not evidence


async def test_observations_alone_fire_no_rule(session: Session, roster: Roster) -> None:
    _calendar(session, roster)
    grants = [Scope.school_attendance, Scope.school_mood, Scope.school_nurse_visits]
    only_noticed = roster.child
    make_grant(session, student=only_noticed, scopes=grants)
    teacher = make_staff(session, roster, StaffRole.homeroom_teacher)
    for category in ObservationCategory:  # every kind of observation, no data at all
        service.record_observation(
            session=session,
            staff=teacher,
            student_id=only_noticed.id or 0,
            category=category,
            note="気になる",
            observed_on=AS_OF,
        )
    session.flush()
    outcome = _screen(session, AS_OF)
    assert outcome.children == 1
    assert session.exec(select(Alert)).all() == []
