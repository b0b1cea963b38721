"""Personalised information: a support scheme a family may not use yet, told only to families who
asked for it (purpose `personalised_info`), from fixed templates.

The scheme today is 就学援助: a household that receives 児童扶養手当 while its child has no
就学援助 gets the application guidance. Reading those facts is a use of the child's data for
`personalised_info`, so it goes through `consent.policy.authorize_many` first (each child and
scope is audited) and only for children whose consenting guardian has a linked LINE account
that wants notices: nobody else's data is read. Unknown is not "no" (DOMAIN.md lesson 3): a
family is told only when the records say the allowance is received and the aid is not.

The message goes to the LINE accounts of the guardian who gave the grant (never to the child,
nor to another guardian), queued in the same transaction as the decision, tied to the grant
(a pause, revocation or objection cancels it) and to the link (unlinking cancels it). Each
account hears about a scheme at most once a year.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.config import Settings
from app.core.types import utcnow
from app.roster.models import GuardianLink
from app.sources.models import AidStatus, Benefit, BenefitStatus, SchoolAidStatus
from consent import policy
from consent import service as consent_service
from consent.scopes import Purpose, Scope
from notify import messages, outbox
from notify.models import (
    BatchKind,
    LineAccount,
    Notification,
    NotificationStatus,
    ResourceKind,
    SupportResource,
)

ACTOR = Actor(kind=ActorKind.notify, ref="personalised-info", organisation="市 / the municipality")
SCHOOL_AID_TOPIC = "school_aid_guidance"
REPEAT_AFTER = timedelta(days=365)

SCHOOL_AID_GUIDANCE = messages.Guidance(
    title_ja="就学援助のご案内",
    title_en="School attendance aid",
    lines=(
        "小学生・中学生の学用品や給食、修学旅行などの費用を市が援助する制度です。"
        "年度の途中でも申請できます。申請書は学校と市役所にあります。",
        "The city helps with school supplies, lunches and trips for primary and junior-high "
        "students. You can apply at any time of year; forms are at every school and at city hall.",
    ),
)


@dataclass(frozen=True)
class Planned:
    children_read: int  # children whose records were read (each use audited)
    families_told: int
    queued: int
    skipped: int  # over the frequency cap


def _reachable_accounts() -> sa.ColumnElement[bool]:
    return sa.and_(
        col(LineAccount.following),
        col(LineAccount.notices_enabled),
        col(LineAccount.line_user_id).is_not(None),
        col(LineAccount.guardian_id).is_not(None),
    )


def _candidates(session: Session) -> list[int]:
    """Children with a guardian whose LINE is linked and wants notices: the only ones worth asking about."""
    linked_guardians = select(LineAccount.guardian_id).where(_reachable_accounts())
    return list(
        session.exec(
            select(GuardianLink.student_id)
            .where(col(GuardianLink.guardian_id).in_(linked_guardians))
            .distinct()
        ).all()
    )


def _latest(rows: Iterable[BenefitStatus], benefit: Benefit) -> bool | None:
    found = [r for r in rows if r.benefit is benefit]
    return max(found, key=lambda r: r.as_of).receiving if found else None


def school_year(day: date) -> int:
    return day.year if day.month >= 4 else day.year - 1


def needs_school_aid_guidance(
    benefits: list[BenefitStatus], aid: list[SchoolAidStatus] | None, today: date
) -> bool:
    """児童扶養手当 received, and 就学援助 known to be neither received nor applied for this year.

    `aid` is None when the family did not allow the school's 就学援助 record for this purpose.
    """
    if _latest(benefits, Benefit.child_rearing_allowance) is not True:
        return False
    via_portal = _latest(benefits, Benefit.school_attendance_aid)
    this_year = [a.status for a in aid or [] if a.school_year == school_year(today)]
    if via_portal is True or any(s is not AidStatus.not_applied for s in this_year):
        return False
    return via_portal is False or AidStatus.not_applied in this_year


def _already_told(session: Session, account_ids: list[int], topic: str, now: datetime) -> set[int]:
    rows = session.exec(
        select(Notification.line_account_id).where(
            col(Notification.line_account_id).in_(account_ids),
            Notification.topic == topic,
            col(Notification.status).in_([NotificationStatus.queued, NotificationStatus.sent]),
            Notification.created_at > now - REPEAT_AFTER,
        )
    ).all()
    return set(rows)


def _school_aid_message(session: Session, settings: Settings) -> messages.Message:
    """The guidance, naming the department that answers questions about 就学援助 (from the directory)."""
    resource = session.exec(
        select(SupportResource)
        .where(SupportResource.kind == ResourceKind.school_aid, col(SupportResource.published))
        .order_by(col(SupportResource.id))
    ).first()
    base = settings.public_base_url.rstrip("/")
    if resource is None:
        contact = messages.Contact(ja=settings.notify_contact_ja, en=settings.notify_contact_en)
        return messages.guidance(
            template=SCHOOL_AID_GUIDANCE, details_url=f"{base}/support/", contact=contact
        )
    answers = resource.contact or settings.notify_contact_ja
    return messages.guidance(
        template=SCHOOL_AID_GUIDANCE,
        details_url=f"{base}/support/{resource.id}",
        contact=messages.Contact(ja=answers, en=answers),
    )


def plan(*, session: Session, settings: Settings, at: datetime | None = None) -> Planned:
    """Decide who gets personalised information now and queue it (in the caller's transaction)."""
    now = at or utcnow()
    candidates = _candidates(session)
    if not candidates:
        return Planned(0, 0, 0, 0)
    # The allowance is the first fact needed; the school's aid record is asked for (and its use
    # recorded) only for children whose allowance may be read.
    readable = policy.authorize_many(
        session=session,
        actor=ACTOR,
        scopes=[Scope.myna_benefits],
        purpose=Purpose.personalised_info,
        student_ids=candidates,
        at=now,
    )
    if not readable:
        return Planned(0, 0, 0, 0)
    with_aid_record = policy.authorize_many(
        session=session,
        actor=ACTOR,
        scopes=[Scope.school_aid],
        purpose=Purpose.personalised_info,
        student_ids=sorted(readable),
        at=now,
    )
    benefits: dict[int, list[BenefitStatus]] = {}
    for row in session.exec(
        select(BenefitStatus).where(
            col(BenefitStatus.student_id).in_(sorted(readable)),
            col(BenefitStatus.benefit).in_([Benefit.child_rearing_allowance, Benefit.school_attendance_aid]),
            BenefitStatus.as_of <= now.date(),
        )
    ):
        benefits.setdefault(row.student_id, []).append(row)
    aid: dict[int, list[SchoolAidStatus]] = {}
    for aid_row in session.exec(
        select(SchoolAidStatus).where(col(SchoolAidStatus.student_id).in_(sorted(with_aid_record)))
    ):
        aid.setdefault(aid_row.student_id, []).append(aid_row)

    message = _school_aid_message(session, settings)
    told = queued = skipped = 0
    for student_id, scopes in sorted(readable.items()):
        child_aid = aid.get(student_id, []) if student_id in with_aid_record else None
        if not needs_school_aid_guidance(benefits.get(student_id, []), child_aid, now.date()):
            continue
        grant_id = scopes[Scope.myna_benefits]
        guardian_id = consent_service.get_grant(session=session, grant_id=grant_id).guardian_id
        account_ids = [
            a
            for a in session.exec(
                select(LineAccount.id).where(_reachable_accounts(), LineAccount.guardian_id == guardian_id)
            ).all()
            if a is not None
        ]
        fresh = sorted(set(account_ids) - _already_told(session, account_ids, SCHOOL_AID_TOPIC, now))
        if not fresh:
            continue
        result = outbox.enqueue(
            session=session,
            settings=settings,
            account_ids=fresh,
            messages=[message],
            due=now,
            kind=BatchKind.push,
            grant_id=grant_id,
            needs_link=True,
            topic=SCHOOL_AID_TOPIC,
        )
        told += 1
        queued += result.queued
        skipped += result.skipped
    return Planned(len(readable), told, queued, skipped)
