"""The access matrix, generated from the route table (OWASP API1/API5).

Every /staff/ route that takes a child, an alert or one of its records must have a row in
ROUTES; a route without one fails `test_every_child_data_route_is_in_the_matrix`, so a new
route cannot escape. Each row is then tried for every role × (child in reach with consent,
in reach without consent, out of reach) and the answer must be exactly the expected one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlmodel import Session
from starlette.routing import BaseRoute

from app.main import create_app
from app.roster.models import (
    SchoolDay,
    StaffRole,
    StaffUser,
    Student,
)
from app.sources.models import AttendanceDay, AttendanceMark, Source
from app.staff.access import MATRIX, RoleRule
from app.staff.models import CaseMeeting, SupportAction
from app.staff.web import local_today
from consent.models import Objection
from consent.scopes import Purpose, Scope
from rules.models import Alert, AlertStatus, Category
from tests.factories import make_grant
from tests.staff.conftest import HTML, Roster, make_alert, make_child_of_another_city, sign_in_directly

CHILD_PARAMS = {"student_id", "alert_id", "meeting_id", "action_id", "objection_id"}
# The support-resource directory (notify) lives under /staff/ but holds no child data.
NOT_CHILD_DATA = (
    "/staff/resources",  # the directory
    "/staff/notices",  # universal notices: never aimed at a child, an alert or a risk
    "/staff/ops",  # sync runs; quarantine and reviews: role × page in tests/connectors/test_ops_page.py
    "/staff/screening/backtest",  # rule figures per group (counts only, no child named)
    "/staff/capacity",  # a school's weekly review capacity (configuration)
    "/staff/sign-ins",  # staff sign-in events (administrators)
    # Invitation letters by homeroom: roster names and codes, no consented data; who may print
    # which homeroom is tested in tests/consent/test_staff_pages.py.
    "/staff/consent/invitations",
)


class Situation(StrEnum):
    consented = "in reach, consented"
    unconsented = "in reach, no consent"
    out_of_reach = "out of reach"


@dataclass
class Target:
    student: Student
    alert_new: Alert
    alert_meeting: Alert
    meeting: CaseMeeting
    action: SupportAction
    objection: Objection


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    form: Callable[[Target], dict[str, str]] | None = None
    may: Callable[[RoleRule], bool] = lambda rule: True
    """Whether a role that reaches the child may take this step at all (else 403)."""
    reads_data: bool = False
    """A page that shows consented data: with consent the marker is there, without it is not."""
    role_first: bool = False
    """A role that may not take this step is refused (403) before the id is looked at: the
    answer says nothing about the child."""


def _url(path: str, target: Target) -> str:
    return path.format(
        student_id=target.student.id,
        # Planning steps need an alert in ケース会議; moving one needs a new alert.
        alert_id=target.alert_meeting.id
        if "/meetings/" in path or "/actions" in path
        else target.alert_new.id,
        meeting_id=target.meeting.id,
        action_id=target.action.id,
        objection_id=target.objection.id,
    )


ROUTES: list[Route] = [
    Route("GET", "/staff/children/{student_id}", reads_data=True),
    Route(
        "POST",
        "/staff/children/{student_id}/observations",
        form=lambda t: {"category": "demeanour", "note": "元気がない"},
        may=lambda rule: rule.may_observe,
    ),
    Route("GET", "/staff/alerts/{alert_id}", reads_data=True),
    Route("GET", "/staff/alerts/{alert_id}/agenda", reads_data=True),
    Route(
        "POST", "/staff/alerts/{alert_id}/status", form=lambda t: {"expected": "new", "to": "under_review"}
    ),
    Route("POST", "/staff/alerts/{alert_id}/assign", form=lambda t: {"assignee": ""}),
    Route("POST", "/staff/alerts/{alert_id}/notes", form=lambda t: {"body": "電話した"}),
    Route(
        "POST",
        "/staff/alerts/{alert_id}/meetings/{meeting_id}/outcome",
        form=lambda t: {"outcome": "SSWが面談"},
        may=lambda rule: rule.may_decide,
    ),
    Route(
        "POST",
        "/staff/alerts/{alert_id}/actions",
        form=lambda t: {
            "what": "面談",
            "due_on": str(local_today() + timedelta(days=3)),
            "owner_text": "SSW",
        },
        may=lambda rule: rule.may_decide,
    ),
    Route(
        "POST",
        "/staff/alerts/{alert_id}/actions/{action_id}/done",
        form=lambda t: {},
        may=lambda rule: rule.may_decide,
    ),
    Route(
        "POST",
        "/staff/consent/objections/{objection_id}/resolve",
        form=lambda t: {},
        may=lambda rule: rule.may_decide,
        role_first=True,
    ),
]
LISTS = ["/staff/alerts", "/staff/alerts/overdue", "/staff/children", "/staff/consent/objections"]
"""Routes that list children: a child out of reach never appears in them."""
LIST_ROLES: dict[str, Callable[[RoleRule], bool]] = {
    "/staff/consent/objections": lambda rule: rule.may_decide
}
"""Lists only some roles may open at all; the others get 403."""


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute of the app, also inside included routers (FastAPI ≥ 0.165 keeps an
    included router as one entry whose `original_router` holds its routes, prefix included)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


def _child_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in _api_routes(app.routes):
        if route.path.startswith("/staff/") and not route.path.startswith(NOT_CHILD_DATA):
            params = set(re.findall(r"{(\w+)}", route.path))
            if params & CHILD_PARAMS:
                found |= {(method, route.path) for method in route.methods or ()}
            elif params:
                pytest.fail(f"{route.path} takes an id this matrix does not know: add it to CHILD_PARAMS")
    return found


def test_every_child_data_route_is_in_the_matrix() -> None:
    assert _child_routes(create_app()) == {(route.method, route.path) for route in ROUTES}


def test_every_list_route_exists() -> None:
    paths = {route.path for route in _api_routes(create_app().routes)}
    assert set(LISTS) <= paths
    staff_lists = {
        p
        for p in paths
        if p.startswith("/staff/") and not p.startswith(NOT_CHILD_DATA) and not re.findall(r"{(\w+)}", p)
    }
    assert staff_lists - set(LISTS) <= {"/staff/", "/staff/sign-in", "/staff/sign-out"}


def _staff(session: Session, roster: Roster, role: StaffRole) -> StaffUser:
    """A staff member placed so that `roster.child` is in reach (no password: signed in directly)."""
    rule = MATRIX[role]
    staff = StaffUser(
        login=f"m-{role.value}",
        display_name=f"matrix {role.value}",
        role=role,
        municipality_id=roster.municipality.id or 0,
        school_id=roster.school.id if rule.reach.value in ("school", "homeroom") else None,
        homeroom_id=roster.homeroom.id if rule.reach.value == "homeroom" else None,
    )
    session.add(staff)
    session.flush()
    return staff


def _target(
    session: Session, roster: Roster, role: StaffRole, situation: Situation, staff: StaffUser
) -> Target:
    if situation is Situation.out_of_reach:
        student = {
            StaffRole.homeroom_teacher: roster.classmate_elsewhere,
            StaffRole.case_worker: make_child_of_another_city(session),
        }.get(role, roster.far_child)
    else:
        student = roster.child
    if situation is not Situation.unconsented:
        make_grant(session, student=student, scopes=list(Scope))
    day = date(2026, 11, 18)
    session.add(SchoolDay(school_id=student.school_id, day=day))
    session.add(
        AttendanceDay(
            student_id=student.id or 0, day=day, mark=AttendanceMark.absent, source=Source.demo_loader
        )
    )
    alert_new = make_alert(session, student)
    alert_meeting = make_alert(session, student, category=Category.wellbeing, status=AlertStatus.case_meeting)
    meeting = CaseMeeting(
        alert_id=alert_meeting.id or 0,
        student_id=student.id or 0,
        held_on=date(2026, 11, 1),
        participants="校長",
        recorded_by_id=staff.id or 0,
    )
    action = SupportAction(
        alert_id=alert_meeting.id or 0,
        student_id=student.id or 0,
        owner_text="民生委員",
        what="見守り",
        due_on=date(2026, 1, 5),
        created_by_id=staff.id or 0,
    )
    # An open objection to a purpose staff do not read for, so the reads above stay consented.
    objection = Objection(student_id=student.id or 0, purpose=Purpose.personalised_info, message="いやです")
    session.add_all([meeting, action, objection])
    session.flush()
    return Target(student, alert_new, alert_meeting, meeting, action, objection)


def _expected(route: Route, rule: RoleRule, situation: Situation) -> int:
    if route.role_first and not route.may(rule):
        return 403
    if situation is Situation.out_of_reach or rule.reach.value == "nobody":
        return 404
    if route.method == "GET":
        return 200
    return 303 if route.may(rule) else 403


MARKERS = ("0.25", "欠席 absent")
"""Text only consented data produces: the fact's value on alert pages, the absence on the timeline."""


@pytest.mark.parametrize("situation", list(Situation), ids=lambda s: s.name)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("role", list(StaffRole), ids=lambda r: r.value)
async def test_matrix(
    client: httpx.AsyncClient,
    session: Session,
    roster: Roster,
    role: StaffRole,
    route: Route,
    situation: Situation,
) -> None:
    staff = _staff(session, roster, role)
    target = _target(session, roster, role, situation, staff)
    csrf = sign_in_directly(client, session, staff)
    url = _url(route.path, target)
    if route.method == "GET":
        response = await client.get(url, headers=HTML)
    else:
        assert route.form is not None
        response = await client.post(url, data={"csrf_token": csrf, **route.form(target)}, headers=HTML)
    rule = MATRIX[role]
    expected = _expected(route, rule, situation)
    assert response.status_code == expected, response.text[-600:]
    if expected == 404:
        assert target.student.given_name not in response.text
    if route.reads_data and expected == 200:
        shows_data = any(marker in response.text for marker in MARKERS)
        assert shows_data is (situation is Situation.consented)
        if situation is Situation.unconsented:
            assert "共有されていません" in response.text


@pytest.mark.parametrize("situation", [Situation.consented, Situation.out_of_reach], ids=lambda s: s.name)
@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("role", list(StaffRole), ids=lambda r: r.value)
async def test_lists_never_show_a_child_out_of_reach(
    client: httpx.AsyncClient,
    session: Session,
    roster: Roster,
    role: StaffRole,
    path: str,
    situation: Situation,
) -> None:
    staff = _staff(session, roster, role)
    target = _target(session, roster, role, situation, staff)
    sign_in_directly(client, session, staff)
    response = await client.get(path, headers=HTML)
    may_open = LIST_ROLES.get(path)
    if may_open is not None and not may_open(MATRIX[role]):
        assert response.status_code == 403 and target.student.given_name not in response.text
        return
    assert response.status_code == 200
    listed = f"{target.student.family_name} {target.student.given_name}" in response.text
    assert listed is (situation is Situation.consented and MATRIX[role].reach.value != "nobody")
