"""consent.policy: the one door to child data, and the audit record every use leaves."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.core.types import utcnow
from app.roster.models import Student
from consent import dashboard, policy
from consent import service as consent_service
from consent.models import GrantEventKind, GrantStatus
from consent.scopes import SCOPE_WORDING, Purpose, Scope
from tests.factories import GUARDIAN_ACTOR, make_client, make_grant, make_student

STAFF = Actor(kind=ActorKind.staff, ref="staff:t.tanaka", organisation="第一中学校", role="担任")
SCREENING = Actor(kind=ActorKind.screening, ref="screening-run:1", organisation="加賀市")
ATTENDANCE, MOOD, GRADES = Scope.school_attendance, Scope.school_mood, Scope.school_grades
EARLY, INFO = Purpose.early_support, Purpose.support_info


def _authorize(
    session: Session, student_id: int, scope: Scope, purpose: Purpose = EARLY, actor: Actor = STAFF
) -> policy.Decision:
    return policy.authorize(session=session, actor=actor, student_id=student_id, scope=scope, purpose=purpose)


def test_allowed_use_names_the_grant_and_appears_in_the_familys_list(session: Session) -> None:
    grant = make_grant(session, scopes=[ATTENDANCE, MOOD], purposes=[EARLY])
    decision = _authorize(session, grant.student_id, MOOD)
    assert decision == policy.Decision(True, grant.id, "allowed")
    [use] = audit.uses_of_child(session=session, student_id=grant.student_id)
    assert (use.actor_kind, use.actor_organisation, use.actor_role) == (
        "staff",
        "第一中学校",
        "担任",
    )
    assert (use.scope, use.purpose, use.grant_id) == ("school.mood", "early_support", grant.id)


def test_check_decides_without_recording(session: Session) -> None:
    grant = make_grant(session)
    assert policy.check(session=session, student_id=grant.student_id, scope=ATTENDANCE, purpose=EARLY).allowed
    assert audit.uses_of_child(session=session, student_id=grant.student_id) == []


@pytest.mark.parametrize(
    ("scope", "purpose", "reason"),
    [
        (GRADES, EARLY, "scope_not_granted"),
        (ATTENDANCE, INFO, "purpose_not_granted"),
    ],
)
def test_grant_covers_exactly_what_was_approved(
    session: Session, scope: Scope, purpose: Purpose, reason: str
) -> None:
    grant = make_grant(session, scopes=[ATTENDANCE], purposes=[EARLY])
    assert _authorize(session, grant.student_id, scope, purpose) == policy.Decision(False, None, reason)
    # A refusal is audited but is not a use of the child's data.
    assert audit.uses_of_child(session=session, student_id=grant.student_id) == []


def test_child_without_grant_is_refused(session: Session) -> None:
    student = make_student(session)
    assert student.id is not None
    assert _authorize(session, student.id, ATTENDANCE).reason == "no_grant"


def test_pause_resume_and_revoke_take_effect_at_once(session: Session) -> None:
    grant = make_grant(session)
    consent_service.transition(session=session, grant=grant, kind=GrantEventKind.paused, actor=GUARDIAN_ACTOR)
    assert _authorize(session, grant.student_id, ATTENDANCE).reason == "grant_paused"
    consent_service.transition(
        session=session, grant=grant, kind=GrantEventKind.resumed, actor=GUARDIAN_ACTOR
    )
    assert _authorize(session, grant.student_id, ATTENDANCE).allowed
    consent_service.transition(
        session=session, grant=grant, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR
    )
    assert _authorize(session, grant.student_id, ATTENDANCE).reason == "grant_revoked"
    assert (
        policy.authorize_many(
            session=session,
            actor=SCREENING,
            scopes=[ATTENDANCE],
            purpose=EARLY,
            student_ids=[grant.student_id],
        )
        == {}
    )


def test_expiry_and_start_are_honoured(session: Session) -> None:
    now = utcnow()
    expired = make_grant(session, starts_at=now - timedelta(days=10), expires_at=now - timedelta(days=1))
    future = make_grant(session, starts_at=now + timedelta(days=1))
    assert _authorize(session, expired.student_id, ATTENDANCE).reason == "grant_expired"
    assert _authorize(session, future.student_id, ATTENDANCE).reason == "grant_pending"
    later = now + timedelta(days=2)
    assert policy.authorize(
        session=session,
        actor=STAFF,
        student_id=future.student_id,
        scope=ATTENDANCE,
        purpose=EARLY,
        at=later,
    ).allowed


def test_partner_grants_and_municipal_grants_do_not_cover_each_other(session: Session) -> None:
    client = make_client(session)
    partner = Actor(kind=ActorKind.partner_client, ref=client.client_id, organisation=client.organisation)
    municipal = make_grant(session)
    partner_grant = make_grant(session, client=client)
    assert not _authorize(session, municipal.student_id, ATTENDANCE, actor=partner).allowed
    assert not _authorize(session, partner_grant.student_id, ATTENDANCE, actor=STAFF).allowed
    assert (
        _authorize(session, partner_grant.student_id, ATTENDANCE, actor=partner).grant_id == partner_grant.id
    )
    # Asked for many children at once, each sees only its own grants, also for a child with both.
    child = session.get(Student, municipal.student_id)
    both = make_grant(session, student=child)
    partner_too = make_grant(session, student=child, client=client)
    children = [municipal.student_id, partner_grant.student_id]
    for actor, expected in (
        (partner, {municipal.student_id: partner_too.id, partner_grant.student_id: partner_grant.id}),
        (SCREENING, {municipal.student_id: both.id}),
    ):
        allowed = policy.authorize_many(
            session=session, actor=actor, scopes=[ATTENDANCE], purpose=EARLY, student_ids=children
        )
        assert {child: scopes[ATTENDANCE] for child, scopes in allowed.items()} == expected
    client.is_active = False
    session.add(client)
    session.flush()
    assert _authorize(session, partner_grant.student_id, ATTENDANCE, actor=partner).reason == "client_unknown"


def test_student_objection_stops_use_for_that_purpose_only(session: Session) -> None:
    grant = make_grant(session, purposes=[EARLY, INFO])
    consent_service.raise_objection(
        session=session,
        actor=GUARDIAN_ACTOR,
        student_id=grant.student_id,
        purpose=EARLY,
        message=None,
    )
    assert _authorize(session, grant.student_id, ATTENDANCE, EARLY).reason == "objection"
    assert _authorize(session, grant.student_id, ATTENDANCE, INFO).allowed
    assert (
        policy.authorize_many(
            session=session,
            actor=SCREENING,
            scopes=[ATTENDANCE],
            purpose=EARLY,
            student_ids=[grant.student_id],
        )
        == {}
    )


def test_authorize_many_returns_allowed_scopes_and_records_each_use(session: Session) -> None:
    both = make_grant(session, scopes=[ATTENDANCE, MOOD])
    only_mood = make_grant(session, scopes=[MOOD, GRADES])
    other_purpose = make_grant(session, purposes=[INFO])
    nobody = make_student(session)
    ids = [both.student_id, only_mood.student_id, other_purpose.student_id, nobody.id or 0]
    allowed = policy.authorize_many(
        session=session, actor=SCREENING, scopes=[ATTENDANCE, MOOD], purpose=EARLY, student_ids=ids
    )
    assert allowed == {
        both.student_id: {ATTENDANCE: both.id, MOOD: both.id},
        only_mood.student_id: {MOOD: only_mood.id},
    }
    # One entry per child and grant, listing what it read: the guardian's list shows both.
    [use] = audit.uses_of_child(session=session, student_id=both.student_id)
    assert (use.scopes, use.actor_kind, use.grant_id) == (
        ["school.attendance", "school.mood"],
        "screening",
        both.id,
    )
    assert [view.category for view in dashboard.uses(session=session, student_id=both.student_id)] == [
        f"{SCOPE_WORDING[ATTENDANCE].ja}、{SCOPE_WORDING[MOOD].ja}"
    ]
    assert audit.uses_of_child(session=session, student_id=other_purpose.student_id) == []


def test_authorize_many_without_ids_covers_every_consenting_child(session: Session) -> None:
    grants = [make_grant(session) for _ in range(3)]
    allowed = policy.authorize_many(session=session, actor=SCREENING, scopes=[ATTENDANCE], purpose=EARLY)
    assert {g.student_id for g in grants} <= set(allowed)


def test_stopped_grants_reach_callbacks_in_the_transaction_and_by_polling(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "_stop_callbacks", [])
    seen: list[policy.StoppedGrant] = []
    policy.on_grant_stopped(lambda _session, stopped: seen.append(stopped))
    since = utcnow()
    grant = make_grant(session, scopes=[ATTENDANCE, MOOD])
    consent_service.transition(
        session=session, grant=grant, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR
    )
    assert [(s.grant_id, s.status) for s in seen] == [(grant.id, "revoked")]
    assert seen[0].scopes == {ATTENDANCE, MOOD}
    polled = policy.grants_stopped_since(session=session, since=since)
    assert [(s.grant_id, s.status) for s in polled] == [(grant.id, "revoked")]
    assert policy.grants_stopped_since(session=session, since=utcnow()) == []


def test_a_failing_stop_callback_refuses_the_revocation(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "_stop_callbacks", [])

    def broken(_session: Session, _stopped: policy.StoppedGrant) -> None:
        raise RuntimeError("pending messages could not be cancelled")

    policy.on_grant_stopped(broken)
    grant = make_grant(session)
    with pytest.raises(RuntimeError), session.begin_nested():
        consent_service.transition(
            session=session, grant=grant, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR
        )
    session.refresh(grant)
    assert grant.status is GrantStatus.active


def test_grants_expiring_by_time_are_reported_as_stopped(session: Session) -> None:
    now = utcnow()
    grant = make_grant(session, expires_at=now + timedelta(hours=1))
    stopped = policy.grants_stopped_since(session=session, since=now, until=now + timedelta(hours=2))
    assert [(s.grant_id, s.status) for s in stopped] == [(grant.id, "expired")]


PRODUCT_PACKAGES = ("app", "connectors", "rules", "notify", "mocks")
# A table name on its own, not inside another word (Authlib's get_consent_grant is no table).
TABLE_NAME = re.compile(
    r"(?<![A-Za-z_])(consent_grant|consent_permission|consent_event|consent_objection)(?![A-Za-z_])"
)


def test_no_module_outside_consent_touches_the_grant_tables() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in PRODUCT_PACKAGES:
        for path in (root / package).rglob("*.py"):
            relative = str(path.relative_to(root))
            if relative == "app/models.py":  # registers every table for Alembic
                continue
            text = path.read_text(encoding="utf-8")
            if "consent.models" in text or "consent.service" in text or TABLE_NAME.search(text):
                offenders.append(relative)
    assert offenders == []


def test_a_snapshot_decides_as_check_does_and_the_next_one_sees_a_revocation(session: Session) -> None:
    partner = make_client(session)
    allowed = make_grant(session, scopes=[ATTENDANCE, MOOD], purposes=[EARLY])
    paused = make_grant(session, scopes=[ATTENDANCE], purposes=[EARLY])
    consent_service.transition(
        session=session, grant=paused, kind=GrantEventKind.paused, actor=GUARDIAN_ACTOR
    )
    objected = make_grant(session, scopes=[MOOD], purposes=[EARLY, INFO])
    consent_service.raise_objection(
        session=session, actor=STAFF, student_id=objected.student_id, purpose=EARLY, message=None
    )
    shared = make_grant(session, client=partner, scopes=[ATTENDANCE], purposes=[INFO])
    children = [g.student_id for g in (allowed, paused, objected, shared)]
    questions = [
        (child, scope, purpose)
        for child in children
        for scope in (ATTENDANCE, MOOD, GRADES)
        for purpose in (EARLY, INFO)
    ]
    for client_id in (None, partner.client_id, "unknown-client"):
        snap = policy.snapshot(session=session, student_ids=children, client_id=client_id)
        for child, scope, purpose in questions:
            expected = policy.check(
                session=session, student_id=child, scope=scope, purpose=purpose, client_id=client_id
            )
            assert snap.decide(child, scope, purpose) == expected, (client_id, child, scope, purpose)
    before = policy.snapshot(session=session)
    assert before.decide(allowed.student_id, MOOD, EARLY).allowed
    consent_service.transition(
        session=session, grant=allowed, kind=GrantEventKind.revoked, actor=GUARDIAN_ACTOR
    )
    assert policy.snapshot(session=session).decide(allowed.student_id, MOOD, EARLY).reason == "grant_revoked"
    assert (
        audit.uses_of_child(session=session, student_id=allowed.student_id) == []
    )  # a snapshot records nothing
