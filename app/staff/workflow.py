"""The triage workflow on top of screening's alerts: who may move an alert where, and the records
each step needs (a case meeting, support actions, a reason), always with its history and audit.

新規 → 確認中 → ケース会議 → 支援中 → 見守り → 終結, or 対応不要 (dismissed) from the first steps.
A step that skips a state, lacks what it needs, or races another person's change is refused
with a clear message and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.models import Outcome
from app.core.errors import BadRequest, Conflict, Forbidden, NotFound
from app.core.types import utcnow
from app.roster.models import Homeroom, School, StaffUser, Student
from app.staff.access import MATRIX, Reach, child_in_reach, in_reach
from app.staff.models import CaseMeeting, CaseNote, SupportAction
from app.staff.service import PURPOSE, ChildView, actor_for, open_child, reach_clause
from consent import policy
from consent.scopes import Scope
from notify import resources
from rules.catalog import Catalog, load_catalog
from rules.features import FEATURES
from rules.models import (
    ALERT_STATUS_WORDING,
    OPEN_STATUSES,
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    Category,
    Signal,
)
from rules.queue import WeeklyQueue, weekly_queue

S = AlertStatus
NEXT: dict[AlertStatus, tuple[AlertStatus, ...]] = {
    S.new: (S.under_review, S.dismissed),
    S.under_review: (S.case_meeting, S.monitoring, S.dismissed),
    S.case_meeting: (S.support, S.monitoring, S.closed),
    S.support: (S.monitoring, S.closed),
    S.monitoring: (S.support, S.closed),
    S.closed: (),
    S.dismissed: (),
}
"""The only steps there are; anything else is 'skipping states'."""

NEEDS_REASON = frozenset({S.closed, S.dismissed})
DECISIONS = frozenset({S.case_meeting, S.support, S.monitoring, S.closed, S.dismissed})
"""Steps that decide something about a child: only roles that may decide take them."""
ACTION_STATUSES = frozenset({S.case_meeting, S.support, S.monitoring})


def _words(status: AlertStatus) -> str:
    wording = ALERT_STATUS_WORDING[status]
    return f"{wording.ja}（{wording.en}）"


@lru_cache
def catalog() -> Catalog:
    return load_catalog()


@lru_cache
def category_scopes() -> dict[Category, frozenset[Scope]]:
    """The data categories each alert category's rules read (from the rule catalog)."""
    found: dict[Category, set[Scope]] = {}
    for rule in catalog().rules:
        found.setdefault(rule.category, set()).update(rule.scopes)
    return {category: frozenset(scopes) for category, scopes in found.items()}


# --- reading -------------------------------------------------------------------------------


def alert_in_reach(*, session: Session, staff: StaffUser, alert_id: int) -> Alert:
    """The alert, or NotFound when it does not exist or its child is outside reach."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound("お探しのアラートは見つかりません。 / No such alert.")
    child_in_reach(session=session, staff=staff, student_id=alert.student_id)
    return alert


@dataclass(frozen=True)
class AtomFact:
    words: str
    value: object
    op: str
    threshold: object
    window: str
    result: object


@dataclass(frozen=True)
class Reason:
    rule_id: str
    title: str
    description: str
    weight: float
    first_seen_on: date
    last_seen_on: date
    cleared_on: date | None
    withheld: str | None
    """Why the facts are not shown (role or consent), else None."""
    facts: list[AtomFact]


def reasons(*, session: Session, alert: Alert, view: ChildView) -> list[Reason]:
    """Why the alert fired: each rule with its facts, values, thresholds and windows, shown only
    for the categories the view shares (a teacher never reads a household fact here either)."""
    found = []
    rules = {rule.id: rule for rule in catalog().rules}
    for signal in session.exec(
        select(Signal).where(Signal.alert_id == alert.id).order_by(col(Signal.weight).desc())
    ):
        rule = rules.get(signal.rule_id)
        names = [str(fact.get("feature")) for fact in [*signal.atoms, *signal.boosters]]
        # A staff observation count is shown to whoever may open the child (no category).
        scopes = {scope for name in names if name in FEATURES and (scope := FEATURES[name].scope)}
        withheld = next((view.withheld(scope) for scope in sorted(scopes) if view.withheld(scope)), None)
        if withheld is None and any(name not in FEATURES for name in names):
            # A fact this version does not know the category of is not shown: fail closed.
            withheld = "表示できない項目を含みます / Contains a fact that cannot be shown"
        facts = []
        if withheld is None:
            for atom in [*signal.atoms, *signal.boosters]:
                feature = FEATURES.get(str(atom.get("feature")))
                window = ""
                if atom.get("window_start") or atom.get("window_end"):
                    window = f"{atom.get('window_start') or ''}〜{atom.get('window_end') or ''}"
                facts.append(
                    AtomFact(
                        words=feature.wording.ja if feature else str(atom.get("feature")),
                        value="不明 unknown" if atom.get("value") is None else atom.get("value"),
                        op=str(atom.get("op", "")),
                        threshold=atom.get("threshold"),
                        window=window,
                        result=atom.get("result"),
                    )
                )
        found.append(
            Reason(
                rule_id=signal.rule_id,
                title=rule.title.ja if rule else signal.rule_id,
                description=rule.description.ja if rule else "",
                weight=signal.weight,
                first_seen_on=signal.first_seen_on,
                last_seen_on=signal.last_seen_on,
                cleared_on=signal.cleared_on,
                withheld=withheld,
                facts=facts,
            )
        )
    return found


def evidence_scopes(*, session: Session, alert: Alert) -> set[Scope]:
    """The categories the alert's evidence reads: what opening the alert uses."""
    scopes: set[Scope] = set()
    for signal in session.exec(select(Signal).where(Signal.alert_id == alert.id)):
        for atom in [*signal.atoms, *signal.boosters]:
            feature = FEATURES.get(str(atom.get("feature")))
            if feature is not None and feature.scope is not None:
                scopes.add(feature.scope)
    return scopes


def open_alert(*, session: Session, staff: StaffUser, alert_id: int) -> tuple[Alert, ChildView]:
    """Open an alert for a person: reach first (404), then consent for its evidence (audited)."""
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    view = open_child(
        session=session,
        staff=staff,
        student_id=alert.student_id,
        categories=evidence_scopes(session=session, alert=alert),
    )
    return alert, view


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    who: str
    what: str


def history(*, session: Session, alert: Alert) -> list[HistoryLine]:
    """Everything that happened to the alert, oldest first: screening's and people's steps,
    notes, meetings and support actions."""
    names = {staff.id: staff.display_name for staff in session.exec(select(StaffUser))}
    lines: list[HistoryLine] = []
    for event in session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert.id)):
        who = names.get(event.staff_user_id, "") if event.staff_user_id else "スクリーニング / screening"
        if event.kind is AlertEventKind.status_changed and event.to_status is not None:
            what = f"{_words(event.from_status) if event.from_status else ''} → {_words(event.to_status)}"
            if event.reason:
                what += f"：{event.reason}"
        elif event.kind is AlertEventKind.assigned:
            what = f"担当者を設定 / assigned: {event.detail.get('assignee_name', '')}"
        else:
            what = {
                AlertEventKind.opened: "アラートが作成されました / opened by screening",
                AlertEventKind.evidence_changed: "根拠が変わりました / evidence changed",
                AlertEventKind.evidence_cleared: "規則に該当しなくなりました / no rule fires any more",
            }.get(event.kind, event.kind.value)
        lines.append(HistoryLine(event.at, who, what))
    for note in session.exec(select(CaseNote).where(CaseNote.alert_id == alert.id)):
        lines.append(HistoryLine(note.created_at, names.get(note.author_id, ""), f"メモ / note：{note.body}"))
    for meeting in session.exec(select(CaseMeeting).where(CaseMeeting.alert_id == alert.id)):
        lines.append(
            HistoryLine(
                meeting.created_at,
                names.get(meeting.recorded_by_id, ""),
                f"ケース会議を設定 / meeting set: {meeting.held_on}（{meeting.participants}）",
            )
        )
        if meeting.outcome is not None and meeting.outcome_at is not None:
            lines.append(HistoryLine(meeting.outcome_at, "", f"会議の結果 / outcome：{meeting.outcome}"))
    for action in session.exec(select(SupportAction).where(SupportAction.alert_id == alert.id)):
        owner = names.get(action.owner_id, "") if action.owner_id else action.owner_text or ""
        lines.append(
            HistoryLine(
                action.created_at,
                names.get(action.created_by_id, ""),
                f"支援 / support: {owner}「{action.what}」期限 {action.due_on}",
            )
        )
        if action.done_at is not None:
            lines.append(
                HistoryLine(
                    action.done_at, names.get(action.done_by_id or 0, ""), f"完了 / done：{action.what}"
                )
            )
    return sorted(lines, key=lambda line: _aware(line.at))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def meetings(*, session: Session, alert: Alert) -> Sequence[CaseMeeting]:
    return session.exec(
        select(CaseMeeting).where(CaseMeeting.alert_id == alert.id).order_by(col(CaseMeeting.id))
    ).all()


def actions(*, session: Session, alert: Alert) -> Sequence[SupportAction]:
    return session.exec(
        select(SupportAction).where(SupportAction.alert_id == alert.id).order_by(col(SupportAction.due_on))
    ).all()


def resource_names(*, session: Session) -> dict[int, str]:
    """The published support resources a plan may link to (the directory is small)."""
    return {
        resource.id: f"{resource.name_ja}（{resource.area}）"
        for resource in resources.search(session=session)
        if resource.id is not None
    }


def colleagues(*, session: Session, staff: StaffUser, alert: Alert) -> list[StaffUser]:
    """Active staff who could be assigned: the child is within their reach and they see data."""
    student = session.get(Student, alert.student_id)
    assert student is not None
    candidates = session.exec(
        select(StaffUser)
        .where(StaffUser.municipality_id == staff.municipality_id, col(StaffUser.is_active))
        .order_by(col(StaffUser.display_name))
    ).all()
    return [
        person
        for person in candidates
        if MATRIX[person.role].reach is not Reach.nobody
        and in_reach(session=session, staff=person, student=student)
    ]


# --- the queue -----------------------------------------------------------------------------


class Band(StrEnum):
    """Where a new alert sits in its school's weekly review queue (rules.queue)."""

    top = "top"  # within the capacity, by score
    sampled = "sampled"  # drawn at random from below the line, to keep the line honest
    more = "more"  # below the line: one click away, never hidden


@dataclass(frozen=True)
class QueueRow:
    alert: Alert
    student: Student
    homeroom_name: str
    assignee_name: str
    shared: bool
    """False when the family shares none of the role's categories now: the row shows no detail."""
    band: Band | None = None


@dataclass(frozen=True)
class WeeklyReview:
    """A school's new alerts this week, split by its review capacity (DOMAIN.md lesson 2)."""

    school_id: int
    week: str
    capacity: int
    sample_size: int
    capacity_is_default: bool
    review: list[QueueRow]
    """Within the capacity: the top scores, then the sample from below the line."""
    more: list[QueueRow]


@dataclass(frozen=True)
class Queue:
    weekly: WeeklyReview | None
    """For a school: its new alerts by the weekly queue. None for a municipality-wide list."""
    rows: list[QueueRow]
    """The other open alerts (all open alerts, ranked, for a municipality-wide list), one page."""
    total: int
    page: int
    pages: int
    more_than_total: bool = False
    """More open alerts than `total` (COUNT_BOUND): the list pages through the first ones only."""


PAGE_SIZE = 50
COUNT_BOUND = 1_000

_ASSIGNEE = aliased(StaffUser)
_ROWS = (
    select(Alert, Student, col(Homeroom.name), col(_ASSIGNEE.display_name))
    .join(Student, col(Student.id) == Alert.student_id)
    .outerjoin(Homeroom, col(Homeroom.id) == Student.homeroom_id)
    .outerjoin(_ASSIGNEE, col(_ASSIGNEE.id) == Alert.assignee_id)
)
"""Alerts with their child, the child's homeroom and the assignee's name: a queue row's every
part in one query (built once: composing it cost more than PostgreSQL took to run it)."""


def queue_school(*, session: Session, staff: StaffUser, school_id: int | None) -> int | None:
    """Whose weekly queue the page shows: the staff member's school; for a municipality-wide
    reach, a school of the municipality they picked (else none: a ranked list of every school)."""
    reach = MATRIX[staff.role].reach
    if reach in (Reach.homeroom, Reach.school):
        return staff.school_id
    if reach is Reach.municipality and school_id is not None:
        school = session.get(School, school_id)
        if school is not None and school.municipality_id == staff.municipality_id:
            return school_id
    return None


def queue(
    *,
    session: Session,
    staff: StaffUser,
    today: date,
    statuses: Sequence[AlertStatus] = tuple(sorted(OPEN_STATUSES)),
    category: Category | None = None,
    homeroom_id: int | None = None,
    assignee_id: int | None = None,
    school_id: int | None = None,
    page: int = 1,
) -> Queue:
    """Open alerts of children in reach. For a school, new alerts come from screening's weekly
    review queue: the capacity the school set, a sample from below the line, and the rest in
    a "more" list; the other open alerts follow, highest score first, a page at a time.
    Filters narrow every list without moving the line."""
    school = queue_school(session=session, staff=staff, school_id=school_id)
    city_wide = school is None and MATRIX[staff.role].reach is Reach.municipality
    if city_wide:
        # Every open alert of the municipality: ask of each alert, highest score first (the
        # score index), whether its child is in reach, and stop at a page. Joined the other
        # way round, both databases read every child of the city first (0.5 s at 250,000).
        child = aliased(Student)
        in_reach: sa.ColumnElement[bool] = sa.exists().where(
            col(child.id) == Alert.student_id, reach_clause(staff, child)
        )
    else:
        in_reach = reach_clause(staff)
    conditions = [in_reach, col(Alert.status).in_(list(statuses))]
    if school is not None:
        conditions.append(col(Alert.school_id) == school)
    if category is not None:
        conditions.append(col(Alert.category) == category)
    if homeroom_id is not None:
        conditions.append(col(Student.homeroom_id) == homeroom_id)
    if assignee_id is not None:
        conditions.append(col(Alert.assignee_id) == assignee_id)

    weekly_pairs: list[tuple[Alert, Student, str | None, str | None, Band]] = []
    weekly = None
    if school is not None:
        # The weekly queue holds the new alerts with evidence; the rest are listed below it.
        conditions.append(sa.or_(col(Alert.status) != AlertStatus.new, col(Alert.score) <= 0))
        if AlertStatus.new in statuses:
            weekly = weekly_queue(session=session, school_id=school, today=today)
            weekly_pairs = _weekly_rows(
                session,
                staff,
                weekly,
                category=category,
                homeroom_id=homeroom_id,
                assignee_id=assignee_id,
            )
    ranked = (
        _ROWS.where(*conditions)
        .order_by(col(Alert.score).desc(), col(Alert.opened_at), col(Alert.id))
        .limit(PAGE_SIZE)
    )
    first_page = page <= 1
    listed = session.exec(ranked).all() if first_page else []
    if first_page and len(listed) < PAGE_SIZE:
        # The whole list fits on the first page: it is its own count.
        total = len(listed)
    else:
        # Counted up to a bound: past it the page says "more than" and asks for a filter,
        # rather than counting every open alert of a city on every page load. The child is
        # joined only when a condition reads it (a city-wide reach asks of each alert instead).
        counted = select(Alert.id)
        if homeroom_id is not None or not city_wide:
            counted = counted.join(Student, col(Student.id) == Alert.student_id)
        total = session.exec(
            select(sa.func.count()).select_from(counted.where(*conditions).limit(COUNT_BOUND + 1).subquery())
        ).one()
    pages = max(1, -(-min(total, COUNT_BOUND) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    if not first_page:
        listed = session.exec(ranked.offset((page - 1) * PAGE_SIZE)).all()
    pairs = [*weekly_pairs, *((alert, child, room, person, None) for alert, child, room, person in listed)]
    rows = _queue_rows(session, staff, pairs)
    review = None
    if weekly is not None:
        weekly_rows = rows[: len(weekly_pairs)]
        review = WeeklyReview(
            school_id=weekly.school_id,
            week=weekly.week,
            capacity=weekly.capacity,
            sample_size=round(weekly.capacity * weekly.medium_share),
            capacity_is_default=weekly.capacity_is_default,
            review=[row for row in weekly_rows if row.band is not Band.more],
            more=[row for row in weekly_rows if row.band is Band.more],
        )
    return Queue(
        weekly=review,
        rows=rows[len(weekly_pairs) :],
        total=min(total, COUNT_BOUND),
        page=page,
        pages=pages,
        more_than_total=total > COUNT_BOUND,
    )


def _weekly_rows(
    session: Session,
    staff: StaffUser,
    weekly: WeeklyQueue,
    *,
    category: Category | None,
    homeroom_id: int | None,
    assignee_id: int | None,
) -> list[tuple[Alert, Student, str | None, str | None, Band]]:
    """The weekly queue's alerts in its order, with their children, narrowed to the staff
    member's reach (a homeroom teacher sees their own class's part) and the filters."""
    banded = [
        *((alert, Band.top) for alert in weekly.top),
        *((alert, Band.sampled) for alert in weekly.sampled),
        *((alert, Band.more) for alert in weekly.more),
    ]
    if not banded:
        return []
    ids = [alert.id for alert, _band in banded]
    in_reach = {
        alert.id: (student, homeroom_name, assignee_name)
        for alert, student, homeroom_name, assignee_name in session.exec(
            _ROWS.where(col(Alert.id).in_(ids), reach_clause(staff))
        )
    }
    return [
        (alert, *in_reach[alert.id], band)
        for alert, band in banded
        if alert.id in in_reach
        and (category is None or alert.category == category)
        and (homeroom_id is None or in_reach[alert.id][0].homeroom_id == homeroom_id)
        and (assignee_id is None or alert.assignee_id == assignee_id)
    ]


def _queue_rows(
    session: Session,
    staff: StaffUser,
    rows: Sequence[tuple[Alert, Student, str | None, str | None, Band | None]],
) -> list[QueueRow]:
    # Consent for the listed children, in one bulk call that audits each use: only the
    # categories behind the listed alerts' rules, which is what a row of the queue stands on.
    ids = sorted({student.id for _alert, student, *_rest in rows if student.id is not None})
    wanted = MATRIX[staff.role].categories & frozenset().union(
        *(category_scopes().get(alert.category, frozenset()) for alert, *_rest in rows)
    )
    shared: dict[int, dict[Scope, int]] = {}
    if ids and wanted:
        shared = policy.authorize_many(
            session=session,
            actor=actor_for(session=session, staff=staff),
            scopes=wanted,
            purpose=PURPOSE,
            student_ids=ids,
        )
    return [
        QueueRow(
            alert=alert,
            student=student,
            homeroom_name=homeroom_name or "",
            assignee_name=assignee_name or "",
            shared=bool(
                set(shared.get(student.id or 0, {})) & category_scopes().get(alert.category, frozenset())
            ),
            band=band,
        )
        for alert, student, homeroom_name, assignee_name, band in rows
    ]


@dataclass(frozen=True)
class Overdue:
    alert: Alert
    student: Student
    what: str
    due_on: date


def overdue(*, session: Session, staff: StaffUser, today: date) -> list[Overdue]:
    """Support actions past their due date and case meetings past their day without an outcome,
    for children in reach, oldest first."""
    found: list[Overdue] = []
    late_actions = session.exec(
        select(SupportAction, Alert, Student)
        .join(Alert, col(Alert.id) == SupportAction.alert_id)
        .join(Student, col(Student.id) == SupportAction.student_id)
        .where(reach_clause(staff), col(SupportAction.done_at).is_(None), col(SupportAction.due_on) < today)
        .where(col(Alert.status).in_(list(OPEN_STATUSES)))
    ).all()
    for action, alert, student in late_actions:
        found.append(Overdue(alert, student, f"支援 / support: {action.what}", action.due_on))
    late_meetings = session.exec(
        select(CaseMeeting, Alert, Student)
        .join(Alert, col(Alert.id) == CaseMeeting.alert_id)
        .join(Student, col(Student.id) == CaseMeeting.student_id)
        .where(reach_clause(staff), col(CaseMeeting.outcome).is_(None), col(CaseMeeting.held_on) < today)
        .where(col(Alert.status).in_(list(OPEN_STATUSES)))
    ).all()
    for meeting, alert, student in late_meetings:
        found.append(
            Overdue(alert, student, "ケース会議の結果が未記録 / meeting outcome missing", meeting.held_on)
        )
    return sorted(found, key=lambda item: item.due_on)


# --- changing ------------------------------------------------------------------------------


def _audit_change(*, session: Session, staff: StaffUser, alert: Alert, action: str, detail: str) -> None:
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=actor_for(session=session, staff=staff),
            action=action,
            outcome=Outcome.done,
            student_id=alert.student_id,
            purpose=PURPOSE.value,
            detail=detail[:256],
        ),
    )


def _require_decider(staff: StaffUser) -> None:
    if not MATRIX[staff.role].may_decide:
        raise Forbidden(
            "この判断は学校管理職・SC・SSW・こども家庭センターが行います。"
            " / Only a school leader, SC, SSW or case worker takes this step."
        )


def change_status(
    *,
    session: Session,
    staff: StaffUser,
    alert_id: int,
    expected: AlertStatus,
    to: AlertStatus,
    reason: str = "",
    meeting_on: date | None = None,
    participants: str = "",
) -> Alert:
    """Move an alert one allowed step. `expected` is the status the person saw: if someone else
    moved it meanwhile, nothing changes (Conflict)."""
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    if alert.status is not expected:
        raise Conflict(
            f"このアラートはすでに「{_words(alert.status)}」に変わっています。ページを開き直してください。"
            " / Someone changed this alert meanwhile; reload the page."
        )
    if to not in NEXT[alert.status]:
        allowed = "、".join(_words(s) for s in NEXT[alert.status]) or "なし / none"
        raise BadRequest(
            f"「{_words(alert.status)}」から「{_words(to)}」へは進めません（段階を飛ばせません）。"
            f"次に進める状態: {allowed} / That step is not allowed from here."
        )
    if to in DECISIONS:
        _require_decider(staff)
    reason = reason.strip()
    if to in NEEDS_REASON and not reason:
        raise BadRequest(f"「{_words(to)}」にするには理由が必要です。 / A reason is required.")
    if to is S.case_meeting and (meeting_on is None or not participants.strip()):
        raise BadRequest(
            "ケース会議の日付と参加者を入力してください。 / A meeting date and participants are required."
        )
    if alert.status is S.case_meeting and to is S.support:
        held = [m for m in meetings(session=session, alert=alert) if m.outcome]
        if not held:
            raise BadRequest("先にケース会議の結果を記録してください。 / Record the meeting's outcome first.")
    if to is S.support and not any(a.done_at is None for a in actions(session=session, alert=alert)):
        raise BadRequest(
            "支援中にするには、担当・内容・期限のある支援を1つ以上登録してください。"
            " / Add at least one open support action (who, what, due) first."
        )
    now = utcnow()
    previous = alert.status
    if to is S.case_meeting:
        assert meeting_on is not None
        session.add(
            CaseMeeting(
                alert_id=alert.id or 0,
                student_id=alert.student_id,
                held_on=meeting_on,
                participants=participants.strip(),
                recorded_by_id=staff.id or 0,
            )
        )
    alert.status = to
    alert.updated_at = now
    if to in NEEDS_REASON:
        alert.closed_at = now
        alert.closed_reason = reason[:200]
    session.add(alert)
    session.add(
        AlertEvent(
            alert_id=alert.id or 0,
            at=now,
            kind=AlertEventKind.status_changed,
            from_status=previous,
            to_status=to,
            staff_user_id=staff.id,
            reason=reason[:200] or None,
        )
    )
    session.flush()
    _audit_change(
        session=session, staff=staff, alert=alert, action="alert.status_changed", detail=f"{previous}->{to}"
    )
    return alert


def assign(*, session: Session, staff: StaffUser, alert_id: int, assignee_id: int | None) -> Alert:
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    if alert.status not in OPEN_STATUSES:
        raise Conflict("終わったアラートの担当は変えられません。 / The alert is finished.")
    name = ""
    if assignee_id is not None:
        person = next(
            (p for p in colleagues(session=session, staff=staff, alert=alert) if p.id == assignee_id), None
        )
        if person is None:
            raise BadRequest("その職員は担当にできません。 / That person cannot be assigned to this child.")
        name = person.display_name
    alert.assignee_id = assignee_id
    alert.updated_at = utcnow()
    session.add(alert)
    session.add(
        AlertEvent(
            alert_id=alert.id or 0,
            kind=AlertEventKind.assigned,
            staff_user_id=staff.id,
            detail={"assignee_id": assignee_id, "assignee_name": name},
        )
    )
    session.flush()
    _audit_change(session=session, staff=staff, alert=alert, action="alert.assigned", detail=str(assignee_id))
    return alert


def add_note(*, session: Session, staff: StaffUser, alert_id: int, body: str) -> CaseNote:
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    if not body.strip():
        raise BadRequest("メモが空です。 / The note is empty.")
    note = CaseNote(
        alert_id=alert.id or 0, student_id=alert.student_id, author_id=staff.id or 0, body=body.strip()
    )
    session.add(note)
    session.flush()
    _audit_change(
        session=session, staff=staff, alert=alert, action="alert.note_added", detail=f"note {note.id}"
    )
    return note


def record_meeting_outcome(
    *, session: Session, staff: StaffUser, alert_id: int, meeting_id: int, outcome: str
) -> CaseMeeting:
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    _require_decider(staff)
    meeting = session.get(CaseMeeting, meeting_id)
    if meeting is None or meeting.alert_id != alert.id:
        raise NotFound("そのケース会議は見つかりません。 / No such meeting.")
    if meeting.outcome is not None:
        raise Conflict("この会議の結果は記録済みです。 / The outcome is already recorded.")
    if not outcome.strip():
        raise BadRequest("会議の結果を入力してください。 / The outcome is empty.")
    meeting.outcome = outcome.strip()
    meeting.outcome_at = utcnow()
    session.add(meeting)
    session.flush()
    _audit_change(
        session=session,
        staff=staff,
        alert=alert,
        action="alert.meeting_outcome",
        detail=f"meeting {meeting.id}",
    )
    return meeting


def add_support_action(
    *,
    session: Session,
    staff: StaffUser,
    alert_id: int,
    what: str,
    due_on: date,
    owner_id: int | None = None,
    owner_text: str = "",
    resource_id: int | None = None,
    today: date,
) -> SupportAction:
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    _require_decider(staff)
    if alert.status not in ACTION_STATUSES:
        raise BadRequest(
            "支援はケース会議の後に登録します。 / Support actions are planned from the case meeting on."
        )
    if not what.strip():
        raise BadRequest("支援の内容を入力してください。 / Say what will be done.")
    if due_on < today:
        raise BadRequest("期限が過去の日付です。 / The due date is in the past.")
    if owner_id is not None and owner_id not in {
        p.id for p in colleagues(session=session, staff=staff, alert=alert)
    }:
        raise BadRequest("その職員は担当にできません。 / That person cannot own this action.")
    if owner_id is None and not owner_text.strip():
        raise BadRequest("担当を選ぶか入力してください。 / Say who does it.")
    if resource_id is not None:
        resources.get(session=session, resource_id=resource_id, published_only=True)
    action = SupportAction(
        alert_id=alert.id or 0,
        student_id=alert.student_id,
        owner_id=owner_id,
        owner_text=owner_text.strip() or None,
        what=what.strip(),
        due_on=due_on,
        resource_id=resource_id,
        created_by_id=staff.id or 0,
    )
    session.add(action)
    session.flush()
    _audit_change(
        session=session,
        staff=staff,
        alert=alert,
        action="alert.support_planned",
        detail=f"action {action.id}",
    )
    return action


def complete_action(*, session: Session, staff: StaffUser, alert_id: int, action_id: int) -> SupportAction:
    alert = alert_in_reach(session=session, staff=staff, alert_id=alert_id)
    action = session.get(SupportAction, action_id)
    if action is None or action.alert_id != alert.id:
        raise NotFound("その支援は見つかりません。 / No such support action.")
    if action.done_at is not None:
        raise Conflict("この支援は完了済みです。 / Already done.")
    if not (MATRIX[staff.role].may_decide or action.owner_id == staff.id):
        raise Forbidden(
            "担当者か判断できる役割の職員が完了にします。 / Only its owner or a decider marks it done."
        )
    action.done_at = utcnow()
    action.done_by_id = staff.id
    session.add(action)
    session.flush()
    _audit_change(
        session=session, staff=staff, alert=alert, action="alert.support_done", detail=f"action {action.id}"
    )
    return action
