"""Grant expiry: a grant past its expiry is refused at once by time alone, then recorded as
EXPIRED with everything a stop does (event, audit, tokens revoked, stop callbacks), once."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from huey.api import PeriodicTask
from sqlmodel import Session, select

from app.core.types import utcnow
from app.roster.models import Guardian, Student
from app.worker import TASK_MODULES
from consent import policy, service, tasks
from consent.models import ConsentEvent, ConsentGrant, GrantEventKind, GrantStatus, OAuthToken
from consent.scopes import Purpose, Scope
from tests.consent.oauth_flow import sign_in_family
from tests.factories import make_client, make_grant

ATTENDANCE, EARLY = Scope.school_attendance, Purpose.early_support


def _token(session: Session, grant: ConsentGrant) -> OAuthToken:
    token = OAuthToken(
        client_id=grant.client_id or 0,
        guardian_id=grant.guardian_id,
        grant_id=grant.id or 0,
        family_id="f" * 32,
        access_jti="jti-expiry-test",
        scope="school.attendance purpose:early_support",
        access_expires_at=utcnow() + timedelta(minutes=5),
    )
    session.add(token)
    session.flush()
    return token


def test_a_grant_past_its_expiry_is_refused_then_recorded_as_expired_once(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "_stop_callbacks", [])
    stopped: list[policy.StoppedGrant] = []
    policy.on_grant_stopped(lambda _session, s: stopped.append(s))
    now = utcnow()
    expiry = now - timedelta(minutes=2)
    partner = make_client(session)
    grant = make_grant(session, client=partner, starts_at=now - timedelta(days=30), expires_at=expiry)
    decision = policy.check(
        session=session,
        student_id=grant.student_id,
        scope=ATTENDANCE,
        purpose=EARLY,
        client_id=partner.client_id,
    )
    assert decision == policy.Decision(False, None, "grant_expired")
    lasting = make_grant(session, expires_at=now + timedelta(days=1))
    token = _token(session, grant)
    # Before any job ran, the policy refuses by time alone and polling already reports it.
    assert service.effective_status(grant) is GrantStatus.expired
    window = policy.grants_stopped_since(session=session, since=now - timedelta(hours=1), until=now)
    assert [(s.grant_id, s.status) for s in window] == [(grant.id, "expired")]

    assert service.expire_due(session=session) == 1
    session.refresh(grant)
    assert grant.status is GrantStatus.expired and policy.utc(grant.status_changed_at) == policy.utc(expiry)
    [event] = session.exec(
        select(ConsentEvent).where(
            ConsentEvent.grant_id == grant.id, ConsentEvent.kind == GrantEventKind.expired
        )
    ).all()
    assert event.actor_kind == "system" and policy.utc(event.at) == policy.utc(expiry)
    assert [(s.grant_id, s.status, s.client_id) for s in stopped] == [
        (grant.id, "expired", partner.client_id)
    ]
    session.refresh(token)
    assert token.revoked_at is not None
    # Recorded once: a second run finds nothing, and a poller that already covered the expiry
    # does not hear of it again.
    assert service.expire_due(session=session) == 0
    assert policy.grants_stopped_since(session=session, since=now) == []
    earlier = policy.grants_stopped_since(session=session, since=expiry - timedelta(seconds=1))
    assert [(s.grant_id, s.status) for s in earlier] == [(grant.id, "expired")]
    session.refresh(lasting)
    assert lasting.status is GrantStatus.active


def test_a_paused_grant_expires_too(session: Session) -> None:
    now = utcnow()
    grant = make_grant(session, starts_at=now - timedelta(days=2), expires_at=now - timedelta(seconds=1))
    grant.status = GrantStatus.paused
    session.add(grant)
    session.flush()
    assert service.expire_due(session=session) == 1
    session.refresh(grant)
    assert grant.status is GrantStatus.expired


async def test_the_dashboard_shows_expired_before_and_after_the_job(
    session: Session, https: httpx.AsyncClient
) -> None:
    family = sign_in_family(session, https)
    now = utcnow()
    grant = make_grant(
        session,
        student=session.get(Student, family.student_id),
        guardian=session.get(Guardian, family.guardian_id),
        starts_at=now - timedelta(days=1),
        expires_at=now - timedelta(minutes=1),
    )
    page = await https.get(f"/guardian/children/{family.student_id}")
    assert "期限切れ" in page.text and "一時停止 / Pause" not in page.text
    receipt = await https.get(f"/guardian/grants/{grant.id}")
    assert "期限切れ" in receipt.text
    # Pausing a grant past its expiry records the expiry instead.
    acted = await https.post(
        f"/guardian/grants/{grant.id}/action", data={"action": "pause", "csrf_token": family.csrf_token}
    )
    assert acted.status_code == 303
    session.refresh(grant)
    assert grant.status is GrantStatus.expired


def test_the_worker_runs_expiry_every_minute() -> None:
    assert "consent.tasks" in TASK_MODULES
    assert isinstance(tasks.expire_due_grants.task_class(), PeriodicTask)
