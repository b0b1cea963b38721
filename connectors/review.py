"""What a person decides about what the sync could not: quarantined records and identity reviews.

Both lists hold children's records (a quarantined payload, a household member's name and birth
date from Myna Portal), so they are for roles with municipality-wide reach and professional
confidentiality (app/staff/access.py), only for children of their municipality, and each item
is shown only when the family's consent allows that role the category now (consent.policy,
audited). The reason of a quarantined record is field names and messages only, never values.

- A quarantined record is re-processed (validated by today's rules; if it passes and consent
  still allows it, stored as the sync would store it) or dismissed. Either closes it.
- An identity review is decided: a person picks the child the record is about, or says it is
  about none of them. The connector then uses that decision; it never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.errors import Conflict, NotFound
from app.core.types import utcnow
from app.roster.models import GuardianLink, School, StaffUser, Student
from app.sources.models import Source
from app.staff.access import MATRIX, Reach, RoleRule
from app.staff.service import actor_for
from connectors import store
from connectors.models import (
    IdentityReview,
    MynaLink,
    QuarantineClosing,
    QuarantinedRecord,
    ReviewStatus,
    SyncRun,
)
from connectors.records import SCHOOL_AFFAIRS_RESOURCES, SCHOOL_PLATFORM_RESOURCES, Resource
from consent import policy
from consent.scopes import Purpose, Scope

PURPOSE = Purpose.early_support
RESOURCES: dict[tuple[Source, str], Resource] = {
    (r.source, r.name): r for r in (*SCHOOL_AFFAIRS_RESOURCES, *SCHOOL_PLATFORM_RESOURCES)
}
LIST_LIMIT = 200


def may_decide(rule: RoleRule) -> bool:
    """Who may open these lists: municipality-wide reach and bound by confidentiality."""
    return rule.reach is Reach.municipality and rule.confidentiality


def roles_that_decide() -> list[str]:
    return [role.value for role, rule in MATRIX.items() if may_decide(rule)]


@dataclass
class QuarantineItem:
    record: QuarantinedRecord
    school: str | None
    student_id: int | None
    payload: str | None  # None: withheld (no child named, or consent does not allow it now)
    reprocessable: bool


def _open() -> sa.ColumnElement[bool]:
    return sa.and_(
        col(QuarantinedRecord.resolved_run_id).is_(None), col(QuarantinedRecord.closed_at).is_(None)
    )


def _student_of(session: Session, record: QuarantinedRecord, school: str | None) -> int | None:
    """The child a quarantined record names: by student number at the run's school, or the
    Myna link it came through."""
    if record.source is Source.myna_portal:
        link_id = (record.record_ref or "").removeprefix("link:")
        link = session.get(MynaLink, int(link_id)) if link_id.isdigit() else None
        return link.student_id if link is not None else None
    try:
        number = orjson.loads(record.payload).get("student")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(number, str) or school is None:
        return None
    return session.exec(
        select(Student.id)
        .join(School, col(School.id) == col(Student.school_id))
        .where(School.code == school, Student.school_student_id == number)
    ).first()


def _scope_of(record: QuarantinedRecord) -> Scope | None:
    resource = RESOURCES.get((record.source, record.resource))
    if resource is not None:
        return resource.scope
    if record.source is Source.myna_portal:
        return Scope.myna_household if record.resource == "household" else Scope.myna_benefits
    return None  # the roster: kept for every student, no consent category


def _in_municipality(session: Session, student_id: int | None, municipality_id: int) -> bool:
    if student_id is None:
        return False
    student = session.get(Student, student_id)
    school = session.get(School, student.school_id) if student is not None else None
    return school is not None and school.municipality_id == municipality_id


def open_quarantine(*, session: Session, staff: StaffUser) -> list[QuarantineItem]:
    """Open quarantined records about children of the staff member's municipality (roster entries
    of its schools too), newest first; each payload shown only as consent allows, audited."""
    rows = session.exec(
        select(QuarantinedRecord, SyncRun.partition)
        .join(SyncRun, col(SyncRun.id) == col(QuarantinedRecord.sync_run_id))
        .where(_open())
        .order_by(col(QuarantinedRecord.id).desc())
        .limit(LIST_LIMIT)
    ).all()
    schools = set(
        session.exec(select(School.code).where(School.municipality_id == staff.municipality_id)).all()
    )
    actor = actor_for(session=session, staff=staff)
    items = []
    for record, partition in rows:
        school = partition if partition in schools else None
        student_id = _student_of(session, record, school if record.source is not Source.myna_portal else None)
        if record.source is Source.myna_portal:
            if not _in_municipality(session, student_id, staff.municipality_id):
                continue
        elif school is None:
            continue
        scope = _scope_of(record)
        payload: str | None = None
        if scope is None:
            payload = record.payload  # a roster entry: kept for every student of the school
        elif student_id is not None and scope in MATRIX[staff.role].categories:
            decision = policy.authorize(
                session=session, actor=actor, student_id=student_id, scope=scope, purpose=PURPOSE
            )
            payload = record.payload if decision.allowed else None
        items.append(
            QuarantineItem(
                record=record,
                school=partition,
                student_id=student_id,
                payload=payload,
                reprocessable=(record.source, record.resource) in RESOURCES and payload is not None,
            )
        )
    return items


def _open_record(session: Session, record_id: int, staff: StaffUser) -> QuarantineItem:
    for item in open_quarantine(session=session, staff=staff):
        if item.record.id == record_id:
            return item
    raise NotFound(
        "この隔離レコードは見つからないか、すでに処理済みです。 / No such open quarantined record."
    )


def dismiss(*, session: Session, staff: StaffUser, record_id: int) -> QuarantinedRecord:
    item = _open_record(session, record_id, staff)
    return _close(session, item.record, staff, QuarantineClosing.dismissed)


def _close(
    session: Session, record: QuarantinedRecord, staff: StaffUser, closing: QuarantineClosing
) -> QuarantinedRecord:
    record.closing = closing
    record.closed_by = staff.id
    record.closed_at = utcnow()
    session.add(record)
    session.flush()
    return record


@dataclass(frozen=True)
class Reprocessed:
    stored: bool
    message: str


def reprocess(*, session: Session, staff: StaffUser, record_id: int) -> Reprocessed:
    """Validate a quarantined record again and, when it passes, store it as the sync would.

    It is stored only for the child it names, under the grant that allows the category now, and
    only when it is about a day the grant covers; the record stays open when it still fails.
    """
    item = _open_record(session, record_id, staff)
    record = item.record
    resource = RESOURCES.get((record.source, record.resource))
    if not item.reprocessable or resource is None or item.student_id is None:
        raise Conflict("この記録は再処理できません。 / This record cannot be re-processed.")
    try:
        wire = resource.wire.model_validate(orjson.loads(record.payload))
    except ValidationError as exc:
        record.reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )[:1000]
        session.add(record)
        session.flush()
        return Reprocessed(
            False, "まだ検証に通りません。理由を更新しました。 / Still invalid; reason updated."
        )
    # Stored for the municipality's purpose, as the sync stores it: the connector's use, audited.
    connector = Actor(kind=ActorKind.connector, ref=f"quarantine:{record.id}", organisation="")
    decision = policy.authorize(
        session=session, actor=connector, student_id=item.student_id, scope=resource.scope, purpose=PURPOSE
    )
    if not decision.allowed or decision.grant_id is None:
        _close(session, record, staff, QuarantineClosing.dismissed)
        return Reprocessed(
            False, "同意がないため保存せずに閉じました。 / No consent now: closed, nothing stored."
        )
    first: date | None = policy.data_from(session=session, grant_ids=[decision.grant_id]).get(
        decision.grant_id
    )
    if first is not None and wire.first_day() < first:
        _close(session, record, staff, QuarantineClosing.dismissed)
        return Reprocessed(
            False, "同意の対象期間より前のため保存しません。 / Before the consented range: not stored."
        )
    stamp: dict[str, Any] = {
        "source": record.source,
        "sync_run_id": record.sync_run_id,
        "fetched_at": utcnow(),
    }
    key = wire.key(item.student_id)
    if wire.status == "tobedeleted":
        store.write(session=session, target=resource.target, rows=[], deleted_keys=[key], stamp=stamp)
    else:
        row = wire.row(item.student_id) | {"grant_id": decision.grant_id}
        store.write(session=session, target=resource.target, rows=[row], stamp=stamp)
    _close(session, record, staff, QuarantineClosing.reprocessed)
    return Reprocessed(True, "検証に通り、保存しました。 / Valid now: stored.")


# -- identity reviews ------------------------------------------------------------------------


@dataclass
class ReviewItem:
    review: IdentityReview
    link: MynaLink | None
    shown: bool  # False: consent does not allow this role the household category now
    children: list[Student]  # whom the record may be about: the linking guardian's children


def _link_of(session: Session, review: IdentityReview) -> MynaLink | None:
    link_id = (review.record_ref or "").removeprefix("link:")
    return session.get(MynaLink, int(link_id)) if link_id.isdigit() else None


def open_reviews(*, session: Session, staff: StaffUser) -> list[ReviewItem]:
    reviews = session.exec(
        select(IdentityReview)
        .where(IdentityReview.status == ReviewStatus.open)
        .order_by(col(IdentityReview.id))
        .limit(LIST_LIMIT)
    ).all()
    actor = actor_for(session=session, staff=staff)
    items = []
    for review in reviews:
        link = _link_of(session, review)
        if link is None or not _in_municipality(session, link.student_id, staff.municipality_id):
            continue
        decision = policy.authorize(
            session=session,
            actor=actor,
            student_id=link.student_id,
            scope=Scope.myna_household,
            purpose=PURPOSE,
        )
        children = session.exec(
            select(Student)
            .join(GuardianLink, col(GuardianLink.student_id) == col(Student.id))
            .where(GuardianLink.guardian_id == link.guardian_id)
            .order_by(col(Student.birth_date))
        ).all()
        items.append(ReviewItem(review, link, decision.allowed, list(children) if decision.allowed else []))
    return items


def decide(*, session: Session, staff: StaffUser, review_id: int, student_id: int | None) -> IdentityReview:
    """A person's decision: the child the record is about (one of the linking guardian's
    children), or None for none of them."""
    item = next((i for i in open_reviews(session=session, staff=staff) if i.review.id == review_id), None)
    if item is None or not item.shown:
        raise NotFound("この確認は見つからないか、すでに決定済みです。 / No such open review.")
    review = item.review
    if student_id is not None and student_id not in {c.id for c in item.children}:
        raise Conflict("候補にない児童生徒です。 / Not one of the candidates.")
    review.status = ReviewStatus.dismissed if student_id is None else ReviewStatus.resolved
    review.resolved_student_id = student_id
    review.decided_by = staff.id
    review.decided_at = utcnow()
    session.add(review)
    session.flush()
    return review
