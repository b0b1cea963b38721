"""Personalised information: only under a grant for `personalised_info`, read through consent.policy
and audited, to the consenting guardian's linked LINE only, once, stopped with the grant or link."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.core.config import get_settings
from app.core.types import utcnow
from app.roster.models import Guardian, Student
from app.sources.models import AidStatus, Benefit, BenefitStatus, SchoolAidStatus, Source
from consent import service as consent_service
from consent.models import ConsentGrant, GrantEventKind
from consent.scopes import Purpose, Scope
from notify import accounts, demo, personalised
from notify.models import BatchKind, LineAccount, Notification, NotificationBatch, NotificationStatus
from tests.factories import GUARDIAN_ACTOR, make_grant, make_guardian, make_student

TODAY = date.today()


@dataclass
class Family:
    child: Student
    guardian: Guardian
    grant: ConsentGrant
    account: LineAccount


def follower(
    session: Session, *, guardian: Guardian | None = None, student: Student | None = None
) -> LineAccount:
    account = accounts.follow(session=session, line_user_id="U" + uuid.uuid4().hex)
    account.guardian_id = guardian.id if guardian else None
    account.student_id = student.id if student else None
    account.linked_at = utcnow() if guardian or student else None
    session.add(account)
    session.flush()
    return account


def benefit(session: Session, child: Student, kind: Benefit, receiving: bool | None) -> None:
    assert child.id is not None
    session.add(
        BenefitStatus(
            student_id=child.id,
            benefit=kind,
            as_of=TODAY - timedelta(days=30),
            receiving=receiving,
            source=Source.myna_portal,
        )
    )
    session.flush()


def family(
    session: Session,
    *,
    purposes: tuple[Purpose, ...] = (Purpose.support_info, Purpose.personalised_info),
    scopes: tuple[Scope, ...] = (Scope.myna_benefits, Scope.school_aid),
    rearing: bool | None = True,
    aid: bool | None = False,
) -> Family:
    child = make_student(session)
    guardian = make_guardian(session, student=child)
    grant = make_grant(session, student=child, guardian=guardian, scopes=scopes, purposes=purposes)
    benefit(session, child, Benefit.child_rearing_allowance, rearing)
    if aid is not None:
        benefit(session, child, Benefit.school_attendance_aid, aid)
    return Family(child, guardian, grant, follower(session, guardian=guardian))


def told(session: Session) -> list[Notification]:
    return list(session.exec(select(Notification).where(Notification.topic == personalised.SCHOOL_AID_TOPIC)))


def uses(session: Session, child: Student) -> list[AuditEntry]:
    audit.flush(session=session)  # entries are written at commit; the test never commits
    return list(
        session.exec(
            select(AuditEntry).where(
                AuditEntry.student_id == child.id, AuditEntry.purpose == Purpose.personalised_info.value
            )
        )
    )


@pytest.mark.parametrize(
    ("rearing", "via_portal", "school_record", "expected"),
    [
        (True, False, None, True),  # 児童扶養手当 but not 就学援助: the guidance
        (True, None, [AidStatus.not_applied], True),
        (True, True, None, False),  # already receives the aid
        (True, False, [AidStatus.applied], False),  # applied this year
        (True, None, [AidStatus.denied], False),  # decided this year: not pressed again
        (True, None, None, False),  # nothing known about the aid: unknown is not "no"
        (False, False, None, False),
        (None, False, None, False),
    ],
)
def test_who_needs_the_school_aid_guidance(
    rearing: bool | None, via_portal: bool | None, school_record: list[AidStatus] | None, expected: bool
) -> None:
    rows = [
        BenefitStatus(
            student_id=1,
            benefit=Benefit.child_rearing_allowance,
            as_of=TODAY,
            receiving=rearing,
            source=Source.myna_portal,
        )
    ]
    if via_portal is not None:
        rows.append(
            BenefitStatus(
                student_id=1,
                benefit=Benefit.school_attendance_aid,
                as_of=TODAY,
                receiving=via_portal,
                source=Source.myna_portal,
            )
        )
    year = personalised.school_year(TODAY)
    aid = (
        [
            SchoolAidStatus(student_id=1, school_year=year, status=s, source=Source.school_affairs)
            for s in school_record
        ]
        if school_record is not None
        else None
    )
    assert personalised.needs_school_aid_guidance(rows, aid, TODAY) is expected


def test_a_family_that_asked_gets_the_school_aid_guidance_once(session: Session) -> None:
    demo.seed_demo(session=session)
    settings = get_settings()
    asked = family(session)
    result = personalised.plan(session=session, settings=settings)
    assert (result.children_read, result.families_told, result.queued) == (1, 1, 1)
    [row] = told(session)
    assert (row.line_account_id, row.grant_id, row.needs_link, row.status) == (
        asked.account.id,
        asked.grant.id,
        True,
        NotificationStatus.queued,
    )
    batch = session.get(NotificationBatch, row.batch_id)
    assert batch is not None and batch.kind is BatchKind.push
    [message] = batch.messages
    assert message["altText"].startswith("就学援助のご案内")
    contact = message["contents"]["body"]["contents"][-1]["contents"][0]["text"]
    assert "教育委員会 学校教育課" in contact  # the department that answers, not the sender
    # The read went through consent.policy and is in the audit log, for each scope read.
    assert {(scope, u.outcome.value) for u in uses(session, asked.child) for scope in u.scopes} == {
        ("myna.benefits", "allowed"),
        ("school.aid", "allowed"),
    }
    # Asked again the next day: nothing new.
    again = personalised.plan(session=session, settings=settings)
    assert again.queued == 0 and len(told(session)) == 1


def test_without_the_purpose_nothing_is_read_or_sent(session: Session) -> None:
    universal_only = family(session, purposes=(Purpose.support_info, Purpose.early_support))
    result = personalised.plan(session=session, settings=get_settings())
    assert result.queued == 0 and told(session) == []
    assert uses(session, universal_only.child) == []


def test_only_families_the_records_fit_and_only_with_a_linked_line(session: Session) -> None:
    receives_aid = family(session, aid=True)
    unknown = family(session, aid=None, scopes=(Scope.myna_benefits,))
    unlinked = family(session)
    accounts.unlink(session=session, account=unlinked.account)
    result = personalised.plan(session=session, settings=get_settings())
    assert result.queued == 0 and told(session) == []
    # Only children whose guardian can be reached were read at all.
    assert uses(session, unlinked.child) == []
    assert uses(session, receives_aid.child) != [] and uses(session, unknown.child) != []


def test_the_child_and_the_other_guardian_are_never_told(session: Session) -> None:
    asked = family(session)
    other_parent = make_guardian(session, student=asked.child)
    others = [follower(session, guardian=other_parent), follower(session, student=asked.child)]
    personalised.plan(session=session, settings=get_settings())
    assert [n.line_account_id for n in told(session)] == [asked.account.id]
    assert all(n.line_account_id not in {o.id for o in others} for n in told(session))


@pytest.mark.parametrize("stop", ["revoke", "pause", "objection", "unlink", "block"])
def test_a_stopped_grant_an_unlink_or_a_block_cancels_it_at_once(session: Session, stop: str) -> None:
    asked = family(session)
    personalised.plan(session=session, settings=get_settings())
    if stop in ("revoke", "pause"):
        kind = GrantEventKind.revoked if stop == "revoke" else GrantEventKind.paused
        consent_service.transition(session=session, grant=asked.grant, kind=kind, actor=GUARDIAN_ACTOR)
    elif stop == "objection":
        assert asked.child.id is not None
        consent_service.raise_objection(
            session=session,
            actor=GUARDIAN_ACTOR,
            student_id=asked.child.id,
            purpose=Purpose.personalised_info,
            message=None,
        )
    elif stop == "unlink":
        accounts.unlink(session=session, account=asked.account)
    else:
        assert asked.account.line_user_id is not None
        accounts.forget(session=session, line_user_id=asked.account.line_user_id)
    [row] = told(session)
    session.refresh(row)
    assert row.status is NotificationStatus.cancelled
    # And nothing is queued again while it stays stopped.
    personalised.plan(session=session, settings=get_settings())
    assert [n.status for n in told(session)] == [NotificationStatus.cancelled]
    assert all(
        n.status is not NotificationStatus.queued
        for n in session.exec(select(Notification).where(col(Notification.grant_id) == asked.grant.id))
    )
