"""The staff backtest page: the latest backtest's figures with an SVG chart per rule."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import httpx
from sqlmodel import Session

from app.roster.models import StaffRole
from consent.scopes import Scope
from rules.backtest import load_labels, run_backtest
from rules.catalog import load_catalog
from rules.models import RunKind, RunStatus, ScreeningRun
from tests.factories import make_grant, make_student
from tests.notify.conftest import staff_client
from tests.rules.factories import make_school_with_calendar, mark, school_days


async def test_backtest_page_charts_every_rule(
    client: httpx.AsyncClient, session: Session, tmp_path: Path
) -> None:
    school = make_school_with_calendar(session)
    child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
    mark(session, child, [d for d in school_days() if date(2025, 9, 22) <= d <= date(2025, 10, 1)])
    make_grant(session, student=child, scopes=[Scope.school_attendance])
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {"labels": [{"student_id": child.id, "category": "school_non_attendance", "onset": "2025-09-22"}]}
        )
    )
    catalog = load_catalog()
    result = run_backtest(
        session=session,
        catalog=catalog,
        as_of=date(2025, 10, 1),
        labels=load_labels(labels, as_of=date(2025, 10, 1)),
        allowed={child.id or 0: {Scope.school_attendance: 1}},
        timezone="Asia/Tokyo",
    )
    session.add(
        ScreeningRun(
            kind=RunKind.backtest,
            status=RunStatus.succeeded,
            as_of=date(2025, 10, 1),
            catalog_version=catalog.version,
            summary=result,
        )
    )
    session.flush()

    staff_client(client, session, StaffRole.case_worker)
    page = await client.get("/staff/screening/backtest")
    assert page.status_code == 200
    assert page.text.count("<svg") == len(catalog.rules)
    assert "chronic_absence_30d" in page.text and "100%" in page.text


async def test_a_homeroom_teacher_cannot_open_it(client: httpx.AsyncClient, session: Session) -> None:
    staff_client(client, session, StaffRole.homeroom_teacher)
    page = await client.get("/staff/screening/backtest", headers={"accept": "text/html"})
    assert page.status_code == 403
