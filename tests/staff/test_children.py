"""A child's page: reach first (404 outside), then role categories, then consent; every use audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from app.audit.models import AuditEntry, Outcome
from app.roster.models import SchoolDay, StaffRole
from app.sources.models import (
    AttendanceDay,
    AttendanceMark,
    HouseholdInfo,
    MoodCheckin,
    NurseComplaint,
    NurseVisit,
    Source,
    Weather,
)
from app.staff import service
from app.staff.access import MATRIX, WELFARE_FACTS, Reach, matrix_markdown
from app.staff.models import StaffObservation
from consent.scopes import Scope
from rules.compute import compute_features
from tests.factories import make_grant
from tests.staff.conftest import HTML, Roster, make_staff, sign_in_directly

END = date(2026, 11, 20)


def _records(session: Session, roster: Roster) -> None:
    child = roster.child
    assert child.id is not None
    for offset in range(40):
        day = END - timedelta(days=offset)
        if day.weekday() < 5:
            session.add(SchoolDay(school_id=roster.school.id or 0, day=day))
    session.add(
        AttendanceDay(
            student_id=child.id, day=date(2026, 11, 18), mark=AttendanceMark.absent, source=Source.demo_loader
        )
    )
    session.add(
        MoodCheckin(
            student_id=child.id, day=date(2026, 11, 17), weather=Weather.rain, source=Source.demo_loader
        )
    )
    session.add(
        NurseVisit(
            student_id=child.id,
            visited_at=datetime(2026, 11, 16, 3, 0, tzinfo=UTC),
            complaint=NurseComplaint.stomachache,
            source=Source.demo_loader,
        )
    )
    session.add(
        HouseholdInfo(
            student_id=child.id,
            as_of=date(2026, 10, 1),
            household_size=3,
            single_parent=True,
            source=Source.myna_portal,
        )
    )
    session.flush()


def test_the_matrix_keeps_welfare_facts_for_confidential_roles() -> None:
    assert set(MATRIX) == set(StaffRole)
    for role, rule in MATRIX.items():
        sees_welfare = bool(rule.categories & {Scope.myna_household, Scope.myna_benefits})
        assert sees_welfare == rule.confidentiality, role
    assert not MATRIX[StaffRole.homeroom_teacher].categories & WELFARE_FACTS
    assert MATRIX[StaffRole.administrator].categories == frozenset()
    assert MATRIX[StaffRole.administrator].reach is Reach.nobody


async def test_counsellor_sees_consented_household_facts_and_the_use_is_audited(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    _records(session, roster)
    make_grant(session, student=roster.child, scopes=list(Scope))
    staff = make_staff(session, roster, StaffRole.school_counselor)
    sign_in_directly(client, session, staff)
    page = await client.get(f"/staff/children/{roster.child.id}?end={END}", headers=HTML)
    assert page.status_code == 200
    assert "<svg" in page.text and "欠席 absent" in page.text
    assert "世帯人数: 3" in page.text
    uses = session.exec(select(AuditEntry).where(AuditEntry.actor_ref == str(staff.id))).all()
    assert {scope for entry in uses for scope in entry.scopes} == {scope.value for scope in Scope}
    assert all(
        entry.actor_ref == str(staff.id)
        and entry.actor_role == "school_counselor"
        and entry.purpose == "early_support"
        and entry.outcome is Outcome.allowed
        and entry.student_id == roster.child.id
        for entry in uses
    )


async def test_homeroom_teacher_never_sees_household_facts_even_with_consent(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    _records(session, roster)
    make_grant(session, student=roster.child, scopes=list(Scope))
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    page = await client.get(f"/staff/children/{roster.child.id}?end={END}", headers=HTML)
    assert page.status_code == 200
    assert "世帯人数" not in page.text
    assert "この役割には表示されません" in page.text
    assert "欠席 absent" in page.text


async def test_without_consent_every_category_says_not_shared(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    _records(session, roster)
    make_grant(session, student=roster.child, scopes=[Scope.school_mood])
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_social_worker))
    page = await client.get(f"/staff/children/{roster.child.id}?end={END}", headers=HTML)
    assert page.status_code == 200
    assert "共有されていません" in page.text
    assert "欠席 absent" not in page.text and "世帯人数" not in page.text and "stomachache" not in page.text
    assert "雨" in page.text  # the one consented category is drawn


@pytest.mark.parametrize(
    ("role", "target"),
    [
        (StaffRole.homeroom_teacher, "classmate_elsewhere"),
        (StaffRole.school_counselor, "far_child"),
        (StaffRole.administrator, "child"),
    ],
)
async def test_a_child_outside_reach_is_not_found(
    client: httpx.AsyncClient, session: Session, roster: Roster, role: StaffRole, target: str
) -> None:
    student = getattr(roster, target)
    make_grant(session, student=student, scopes=list(Scope))
    sign_in_directly(client, session, make_staff(session, roster, role))
    page = await client.get(f"/staff/children/{student.id}", headers=HTML)
    assert page.status_code == 404
    assert student.family_name not in page.text
    assert (await client.get("/staff/children/999999999", headers=HTML)).status_code == 404


async def test_case_worker_reaches_every_school_of_the_municipality(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.case_worker))
    page = await client.get(f"/staff/children/{roster.far_child.id}", headers=HTML)
    assert page.status_code == 200
    listing = await client.get("/staff/children", params={"q": "佐藤"}, headers=HTML)
    assert "佐藤" in listing.text


async def test_search_lists_only_children_in_reach(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    listing = await client.get("/staff/children", headers=HTML)
    assert "山田" in listing.text and "髙橋" not in listing.text and "佐藤" not in listing.text


async def test_observation_recorded_escaped_audited_and_counted(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    staff = make_staff(session, roster, StaffRole.homeroom_teacher)
    csrf = sign_in_directly(client, session, staff)
    url = f"/staff/children/{roster.child.id}/observations"
    note = "給食をおかわり <script>x</script>"
    posted = await client.post(
        url, data={"csrf_token": csrf, "category": "hunger", "note": note}, headers=HTML
    )
    assert posted.status_code == 303
    page = await client.get(f"/staff/children/{roster.child.id}", headers=HTML)
    assert "給食をおかわり &lt;script&gt;" in page.text and "<script>x" not in page.text
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == service.OBSERVATION_RECORDED)).one()
    assert entry.detail == "hunger" and entry.student_id == roster.child.id
    # Screening counts it (rules.compute): the category over the window, zero for the rest.
    counted = compute_features(
        connection=session.connection(),
        as_of=datetime.now(UTC).date(),
        features=["observations_hunger_30d", "observations_injury_30d"],
        student_ids=[roster.child.id or 0],
    )
    assert counted.row(0) == {"observations_hunger_30d": 1.0, "observations_injury_30d": 0.0}


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"category": "hunger", "note": "x"}, 403),  # no CSRF token
        ({"csrf_token": "WRONG", "category": "hunger", "note": "x"}, 403),
        ({"csrf_token": "OK", "category": "hunger", "note": ""}, 422),
        ({"csrf_token": "OK", "category": "astrology", "note": "x"}, 422),
        ({"csrf_token": "OK", "category": "hunger", "note": "x" * 401}, 422),
    ],
)
async def test_bad_observation_posts_change_nothing(
    client: httpx.AsyncClient, session: Session, roster: Roster, data: dict[str, str], status: int
) -> None:
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_nurse))
    if data.get("csrf_token") == "OK":
        data = {**data, "csrf_token": csrf}
    response = await client.post(f"/staff/children/{roster.child.id}/observations", data=data, headers=HTML)
    assert response.status_code == status
    assert "<html" in response.text
    assert session.exec(select(StaffObservation)).first() is None


async def test_roles_that_do_not_observe_and_children_out_of_reach_are_refused(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_leader))
    data = {"csrf_token": csrf, "category": "hunger", "note": "x"}
    assert (
        await client.post(f"/staff/children/{roster.child.id}/observations", data=data)
    ).status_code == 403
    assert (
        await client.post(f"/staff/children/{roster.far_child.id}/observations", data=data)
    ).status_code == 404
    assert session.exec(select(StaffObservation)).first() is None


def test_readme_shows_the_matrix_of_the_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- staff-matrix:begin -->\n", 1)[1].split("<!-- staff-matrix:end -->", 1)[0]
    assert shown == matrix_markdown()
