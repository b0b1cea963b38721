"""The triage workflow end to end, and every bad step refused with a clear page and no change."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.roster.models import StaffRole
from app.staff import workflow
from app.staff.models import CaseMeeting, SupportAction
from app.staff.web import local_today
from consent.scopes import Scope
from notify.models import ResourceKind, SupportResource
from rules.models import Alert, AlertEvent, AlertEventKind, AlertStatus, Category, ReviewCapacity
from tests.factories import make_grant
from tests.staff.conftest import (
    HTML,
    Roster,
    make_alert,
    make_child_of_another_city,
    make_staff,
    make_student_in,
    sign_in_directly,
)


async def _post(client: httpx.AsyncClient, url: str, csrf: str, **data: str) -> httpx.Response:
    return await client.post(url, data={"csrf_token": csrf, **data}, headers=HTML)


def _status(session: Session, alert: Alert) -> AlertStatus:
    session.refresh(alert)
    return alert.status


async def test_new_to_closed_through_meeting_and_support(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    make_grant(session, student=roster.child, scopes=list(Scope))
    alert = make_alert(session, roster.child)
    staff = make_staff(session, roster, StaffRole.school_social_worker)
    csrf = sign_in_directly(client, session, staff)
    base = f"/staff/alerts/{alert.id}"

    page = await client.get(base, headers=HTML)
    assert page.status_code == 200
    assert "直近30日間の欠席が1割以上" in page.text and "0.25" in page.text and "2026-10-22" in page.text
    assert "データ不足" in page.text

    assert (await _post(client, f"{base}/status", csrf, expected="new", to="under_review")).status_code == 303
    meeting = {
        "expected": "under_review",
        "to": "case_meeting",
        "meeting_on": "2026-11-25",
        "participants": "校長、担任、SSW",
    }
    assert (await _post(client, f"{base}/status", csrf, **meeting)).status_code == 303
    held = session.exec(select(CaseMeeting).where(CaseMeeting.alert_id == alert.id)).one()
    # support needs the meeting's outcome and a planned action first
    early = await _post(client, f"{base}/status", csrf, expected="case_meeting", to="support")
    assert early.status_code == 400 and "会議の結果" in early.text
    await _post(client, f"{base}/meetings/{held.id}/outcome", csrf, outcome="SSWが家庭訪問、こども食堂を紹介")
    no_action = await _post(client, f"{base}/status", csrf, expected="case_meeting", to="support")
    assert no_action.status_code == 400 and "支援" in no_action.text
    due = (local_today() + timedelta(days=7)).isoformat()
    planned = await _post(client, f"{base}/actions", csrf, what="家庭訪問", due_on=due, owner=str(staff.id))
    assert planned.status_code == 303
    assert (
        await _post(client, f"{base}/status", csrf, expected="case_meeting", to="support")
    ).status_code == 303
    assert (
        await _post(client, f"{base}/status", csrf, expected="support", to="monitoring")
    ).status_code == 303
    no_reason = await _post(client, f"{base}/status", csrf, expected="monitoring", to="closed")
    assert no_reason.status_code == 400 and "理由" in no_reason.text
    done = await _post(
        client, f"{base}/status", csrf, expected="monitoring", to="closed", reason="登校が安定した"
    )
    assert done.status_code == 303
    assert _status(session, alert) is AlertStatus.closed and alert.closed_reason == "登校が安定した"

    steps = session.exec(
        select(AlertEvent.to_status)
        .where(AlertEvent.alert_id == alert.id, AlertEvent.kind == AlertEventKind.status_changed)
        .order_by(col(AlertEvent.id))
    ).all()
    assert steps == ["under_review", "case_meeting", "support", "monitoring", "closed"]
    changes = session.exec(select(AuditEntry.detail).where(AuditEntry.action == "alert.status_changed")).all()
    assert "monitoring->closed" in changes
    assert audit.verify(session=session).ok  # every view and change above is on intact chains
    timeline = await client.get(f"/staff/children/{roster.child.id}", headers=HTML)
    assert "支援を計画: 家庭訪問" in timeline.text and "不登校: 終結" in timeline.text
    agenda = await client.get(f"{base}/agenda", headers=HTML)
    assert agenda.status_code == 200 and "家庭訪問" in agenda.text and "SSWが家庭訪問" in agenda.text


@pytest.mark.parametrize(
    ("status", "data", "code", "words"),
    [
        (AlertStatus.new, {"expected": "new", "to": "support"}, 400, "段階を飛ばせません"),
        (AlertStatus.new, {"expected": "new", "to": "closed", "reason": "x"}, 400, "段階を飛ばせません"),
        (AlertStatus.new, {"expected": "new", "to": "dismissed"}, 400, "理由が必要"),
        (AlertStatus.under_review, {"expected": "new", "to": "under_review"}, 409, "変わっています"),
        (AlertStatus.under_review, {"expected": "under_review", "to": "case_meeting"}, 400, "参加者"),
        (AlertStatus.closed, {"expected": "closed", "to": "new"}, 400, "段階を飛ばせません"),
        (AlertStatus.new, {"expected": "new", "to": "sideways"}, 422, ""),
    ],
)
async def test_invalid_steps_change_nothing(
    client: httpx.AsyncClient,
    session: Session,
    roster: Roster,
    status: AlertStatus,
    data: dict[str, str],
    code: int,
    words: str,
) -> None:
    alert = make_alert(session, roster.child, status=status)
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_leader))
    events = len(session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert.id)).all())
    response = await _post(client, f"/staff/alerts/{alert.id}/status", csrf, **data)
    assert response.status_code == code
    assert "<html" in response.text and words in response.text
    assert _status(session, alert) is status
    assert len(session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert.id)).all()) == events


async def test_dismissal_keeps_its_reason_for_the_backtest(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    alert = make_alert(session, roster.child)
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_counselor))
    response = await _post(
        client,
        f"/staff/alerts/{alert.id}/status",
        csrf,
        expected="new",
        to="dismissed",
        reason="長期の入院と確認済み",
    )
    assert response.status_code == 303
    assert _status(session, alert) is AlertStatus.dismissed
    event = session.exec(select(AlertEvent).where(AlertEvent.to_status == AlertStatus.dismissed)).one()
    assert event.reason == "長期の入院と確認済み"


async def test_homeroom_teacher_reviews_but_does_not_decide(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    alert = make_alert(session, roster.child)
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    url = f"/staff/alerts/{alert.id}/status"
    assert (await _post(client, url, csrf, expected="new", to="under_review")).status_code == 303
    refused = await _post(client, url, csrf, expected="under_review", to="dismissed", reason="x")
    assert refused.status_code == 403
    assert _status(session, alert) is AlertStatus.under_review


async def test_missing_csrf_and_forged_session_change_nothing(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    alert = make_alert(session, roster.child)
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_leader))
    url = f"/staff/alerts/{alert.id}/status"
    assert (
        await client.post(url, data={"expected": "new", "to": "under_review"}, headers=HTML)
    ).status_code == 403
    client.cookies.clear()
    client.cookies.set("tsunagu_session", "forged")
    forged = await client.post(
        url, data={"expected": "new", "to": "under_review", "csrf_token": "x"}, headers=HTML
    )
    assert forged.status_code == 303 and forged.headers["location"].startswith("/staff/sign-in")
    assert _status(session, alert) is AlertStatus.new


async def test_queue_ranks_filters_and_draws_the_capacity_line(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    for student in (roster.child, roster.classmate_elsewhere, roster.far_child):
        make_grant(session, student=student, scopes=list(Scope))
    high = make_alert(session, roster.child, score=5)
    low = make_alert(session, roster.classmate_elsewhere, score=1, category=Category.wellbeing)
    far = make_alert(session, roster.far_child, score=9)
    session.add(ReviewCapacity(school_id=roster.school.id or 0, weekly_capacity=1))
    session.flush()
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_leader))
    page = await client.get("/staff/alerts", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert f'/staff/alerts/{far.id}"' not in text  # another school's child
    assert (
        text.index(f'/staff/alerts/{high.id}"')
        < text.index("今週の確認件数を超えています")
        < text.index(f'/staff/alerts/{low.id}"')
    )
    filtered = await client.get("/staff/alerts", params={"category": "wellbeing"}, headers=HTML)
    assert f'/staff/alerts/{low.id}"' in filtered.text and f'/staff/alerts/{high.id}"' not in filtered.text
    by_room = await client.get("/staff/alerts", params={"homeroom": roster.homeroom.id}, headers=HTML)
    assert f'/staff/alerts/{high.id}"' in by_room.text and f'/staff/alerts/{low.id}"' not in by_room.text


async def test_queue_is_the_weekly_review_with_a_sample_and_a_more_list(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    children = [roster.child, roster.classmate_elsewhere]
    children += [
        make_student_in(
            session, roster.homeroom if n % 2 else roster.other_homeroom, f"Q-{n}", "順位", f"子{n}"
        )
        for n in range(6)
    ]
    alerts = []
    for rank, student in enumerate(children):
        make_grant(session, student=student, scopes=list(Scope))
        alerts.append(make_alert(session, student, score=10 - rank))
    in_progress = make_alert(session, roster.far_child, score=9, status=AlertStatus.under_review)
    session.add(ReviewCapacity(school_id=roster.school.id or 0, weekly_capacity=5, medium_share=0.4))
    session.flush()
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_leader))
    text = (await client.get("/staff/alerts", headers=HTML)).text
    line = text.index("今週の確認件数を超えています")
    above = [a for a in alerts if text.index(f'/staff/alerts/{a.id}"') < line]
    below = [a for a in alerts if text.index(f'/staff/alerts/{a.id}"') > line]
    assert len(above) == 5 and len(below) == 3  # every new alert is listed: none hidden
    assert above[:3] == alerts[:3]  # capacity 5 minus a sample of 2, from the top
    assert text.count("抽出 <span") == 2 and all(a in alerts[3:] for a in above[3:])
    assert f'/staff/alerts/{in_progress.id}"' not in text  # another school's alert

    client.cookies.clear()
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    own_class = (await client.get("/staff/alerts", headers=HTML)).text
    for alert, student in zip(alerts, children, strict=True):
        assert (f'/staff/alerts/{alert.id}"' in own_class) == (student.homeroom_id == roster.homeroom.id)

    client.cookies.clear()
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.case_worker))
    city = (await client.get("/staff/alerts", headers=HTML)).text
    assert "今週の確認件数を超えています" not in city and f'/staff/alerts/{in_progress.id}"' in city
    one_school = await client.get("/staff/alerts", params={"school": roster.school.id}, headers=HTML)
    assert "今週の確認件数を超えています" in one_school.text
    assert all(f'/staff/alerts/{a.id}"' in one_school.text for a in alerts)


async def test_city_wide_queue_ranks_every_school_and_bounds_its_count(
    client: httpx.AsyncClient, session: Session, roster: Roster, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = make_alert(session, make_child_of_another_city(session), score=9.5)
    ranked = [
        make_alert(session, roster.child, score=9),
        make_alert(session, roster.far_child, score=7, status=AlertStatus.under_review),
        make_alert(session, roster.classmate_elsewhere, score=5),
    ]
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.case_worker))
    city = (await client.get("/staff/alerts", headers=HTML)).text
    positions = [city.index(f'/staff/alerts/{alert.id}"') for alert in ranked]
    assert positions == sorted(positions)  # highest score first, across the city's schools
    assert f'/staff/alerts/{outside.id}"' not in city  # another municipality's child
    assert "3件中 1/1ページ" in city

    monkeypatch.setattr(workflow, "COUNT_BOUND", 2)
    monkeypatch.setattr(workflow, "PAGE_SIZE", 1)
    bounded = (await client.get("/staff/alerts", headers=HTML)).text
    assert "2件以上" in bounded and "1/2ページ" in bounded
    last = (await client.get("/staff/alerts", params={"page": 9}, headers=HTML)).text
    assert "2/2ページ" in last and f'/staff/alerts/{ranked[1].id}"' in last


async def test_queue_hides_detail_without_consent(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    make_alert(session, roster.child, category=Category.young_carer)
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_leader))
    page = await client.get("/staff/alerts", headers=HTML)
    assert "共有されていません" in page.text and "<td>ヤングケアラー</td>" not in page.text


async def test_reasons_from_household_facts_are_withheld_from_a_teacher(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    make_grant(session, student=roster.child, scopes=list(Scope))
    alert = make_alert(session, roster.child, feature="absence_rate_30d")
    signal_alert = make_alert(
        session, roster.child, category=Category.economic_hardship, feature="single_parent_household", value=1
    )
    sign_in_directly(client, session, make_staff(session, roster, StaffRole.homeroom_teacher))
    assert "0.25" in (await client.get(f"/staff/alerts/{alert.id}", headers=HTML)).text
    page = await client.get(f"/staff/alerts/{signal_alert.id}", headers=HTML)
    assert page.status_code == 200
    assert "この役割には表示されません" in page.text


async def test_assignment_notes_overdue_and_history(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    alert = make_alert(session, roster.child, status=AlertStatus.support)
    leader = make_staff(session, roster, StaffRole.school_leader)
    teacher = make_staff(session, roster, StaffRole.homeroom_teacher)
    far = make_staff(session, roster, StaffRole.school_nurse, login="t-far-nurse")
    far.school_id = roster.other_school.id
    session.add(far)
    csrf = sign_in_directly(client, session, leader)
    base = f"/staff/alerts/{alert.id}"
    assert (await _post(client, f"{base}/assign", csrf, assignee=str(teacher.id))).status_code == 303
    assert (await _post(client, f"{base}/assign", csrf, assignee=str(far.id))).status_code == 400
    assert (await _post(client, f"{base}/assign", csrf, assignee="abc")).status_code == 400
    session.refresh(alert)
    assert alert.assignee_id == teacher.id
    assert (await _post(client, f"{base}/notes", csrf, body="保護者と電話で話した")).status_code == 303
    past = await _post(client, f"{base}/actions", csrf, what="x", due_on="2020-01-01", owner_text="民生委員")
    assert past.status_code == 400
    session.add(
        SupportAction(
            alert_id=alert.id or 0,
            student_id=alert.student_id,
            owner_text="民生委員",
            what="見守り訪問",
            due_on=date(2026, 1, 5),
            created_by_id=leader.id or 0,
        )
    )
    session.flush()
    overdue = await client.get("/staff/alerts/overdue", headers=HTML)
    assert "見守り訪問" in overdue.text and "2026-01-05" in overdue.text
    page = await client.get(base, headers=HTML)
    assert "保護者と電話で話した" in page.text and "担当者を設定" in page.text and "期限超過" in page.text


async def test_alert_of_a_child_outside_reach_is_not_found(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    alert = make_alert(session, roster.far_child)
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_social_worker))
    assert (await client.get(f"/staff/alerts/{alert.id}", headers=HTML)).status_code == 404
    moved = await _post(client, f"/staff/alerts/{alert.id}/status", csrf, expected="new", to="under_review")
    assert moved.status_code == 404
    assert _status(session, alert) is AlertStatus.new


async def test_support_action_links_a_published_resource_only(
    client: httpx.AsyncClient, session: Session, roster: Roster
) -> None:
    alert = make_alert(session, roster.child, status=AlertStatus.case_meeting)
    cafeteria = SupportResource(name_ja="つなぐこども食堂", kind=ResourceKind.kodomo_shokudo, area="中央")
    hidden = SupportResource(
        name_ja="非公開の窓口", kind=ResourceKind.consultation, area="中央", published=False
    )
    session.add_all([cafeteria, hidden])
    session.flush()
    csrf = sign_in_directly(client, session, make_staff(session, roster, StaffRole.school_social_worker))
    base = f"/staff/alerts/{alert.id}"
    due = (local_today() + timedelta(days=3)).isoformat()
    for resource, code in ((hidden.id, 404), (999_999, 404), (cafeteria.id, 303)):
        answer = await _post(
            client,
            f"{base}/actions",
            csrf,
            what="食堂を紹介",
            due_on=due,
            owner_text="SSW",
            resource=str(resource),
        )
        assert answer.status_code == code
    linked = session.exec(select(SupportAction).where(SupportAction.alert_id == alert.id)).one()
    assert linked.resource_id == cafeteria.id
    page = await client.get(base, headers=HTML)
    assert "つなぐこども食堂（中央）" in page.text
