"""The plain reference evaluator: load one child's rows, compute features and rules in Python.

It is the yardstick for the set-based engine: written straight from the definitions in
`rules.compute`'s docstring, one child at a time, with no SQL beyond "give me this child's
rows". Tests hold the engine to it; the benchmark measures how much slower it is.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from app.roster.models import SchoolDay, Student
from app.sources.models import (
    AidStatus,
    AssignmentSubmission,
    AttendanceDay,
    AttendanceMark,
    AttendanceReason,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseComplaint,
    NurseVisit,
    SchoolAidStatus,
    Weather,
)
from app.staff.models import ObservationCategory, StaffObservation
from rules.catalog import All, Any_, AtLeastN, Atom, Node, Op, Rule
from rules.compute import Period, complete_weeks, finished_terms
from rules.features import FEATURES, Window, school_year_start

Value = float | None


class Truth(Enum):
    true = "true"
    false = "false"
    unknown = "unknown"  # insufficient data


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _enrolled_on_day(student: Student, day: date) -> bool:
    return student.enrolled_on <= day and (student.left_on is None or student.left_on >= day)


def child_features(
    *, session: Session, student_id: int, as_of: date, names: Collection[str], timezone: str
) -> dict[str, Value] | None:
    """The named features of one child, or None when the child is not enrolled on AS_OF."""
    student = session.get(Student, student_id)
    if student is None or not _enrolled_on_day(student, as_of):
        return None
    period = Period(as_of=as_of, tz=ZoneInfo(timezone))
    calendar = select(SchoolDay).where(SchoolDay.school_id == student.school_id, SchoolDay.day <= as_of)
    days = sorted(row.day for row in session.exec(calendar))

    def covered(window: Window) -> bool:
        start = period.start(window)
        inside = [d for d in days if d >= start]
        return student.enrolled_on <= (inside[0] if inside else start)

    def rows(model: type, *conditions: Any) -> list[Any]:
        query: Any = select(model).where(model.student_id == student_id, *conditions)  # type: ignore[attr-defined]
        return list(session.exec(query).all())

    marks: list[AttendanceDay] = rows(AttendanceDay, AttendanceDay.day <= as_of)
    visits: list[NurseVisit] = rows(NurseVisit)
    moods: list[MoodCheckin] = rows(MoodCheckin, MoodCheckin.day <= as_of)
    weeks: list[LearningActivity] = rows(LearningActivity)
    assignments: list[AssignmentSubmission] = rows(AssignmentSubmission)
    grades: list[GradeRecord] = rows(GradeRecord)
    fees: list[FeeStatus] = rows(FeeStatus)
    benefits: list[BenefitStatus] = rows(BenefitStatus, BenefitStatus.as_of <= as_of)
    aid: list[SchoolAidStatus] = rows(SchoolAidStatus)
    homes: list[HouseholdInfo] = rows(HouseholdInfo, HouseholdInfo.as_of <= as_of)
    noticed: list[StaffObservation] = rows(StaffObservation, StaffObservation.observed_on <= as_of)

    values: dict[str, Value] = {}
    for name in names:
        feature = FEATURES[name]
        window = feature.window
        stem = name.removesuffix(f"_{window.value}") if window else name
        if window is not None and stem not in ("lunch_arrears_months",):
            start = period.start(window)
            start_utc = period.utc(start)
            values[name] = _windowed(
                stem,
                covered=covered(window),
                school_days=sum(1 for d in days if d >= start),
                marks=[m for m in marks if m.day >= start],
                visits=[v for v in visits if start_utc <= _utc(v.visited_at) < period.end_utc],
                moods=[m for m in moods if m.day >= start],
                weeks=weeks,
                complete=complete_weeks(period, window),
                assignments=[a for a in assignments if start_utc <= _utc(a.due_at) < period.end_utc],
                observations=[o for o in noticed if o.observed_on >= start],
            )
        elif name == "consecutive_absence_days":
            values[name] = _consecutive(student, days, marks)
        elif name in ("grade_average_latest_term", "grade_change_from_previous_term"):
            values[name] = _grades(name, grades, as_of)
        elif name == "lunch_arrears_months":
            months = [f for f in fees if school_year_start(as_of) <= f.month <= as_of.replace(day=1)]
            unknown = any(f.arrears is None for f in months)
            values[name] = None if not months or unknown else float(sum(1 for f in months if f.arrears))
        else:
            values[name] = _status(name, benefits, aid, homes, as_of)
    return values


def _windowed(
    stem: str,
    *,
    covered: bool,
    school_days: int,
    marks: list[AttendanceDay],
    visits: list[NurseVisit],
    moods: list[MoodCheckin],
    weeks: list[LearningActivity],
    complete: list[date],
    assignments: list[AssignmentSubmission],
    observations: list[StaffObservation],
) -> Value:
    if stem == "sign_in_days":
        by_week = {w.week_start: w.sign_in_days for w in weeks}
        if not complete or any(by_week.get(monday) is None for monday in complete):
            return None
        return float(sum(by_week[monday] or 0 for monday in complete))
    if not covered:
        return None
    absent = sum(1 for m in marks if m.mark is AttendanceMark.absent)
    required = school_days - sum(1 for m in marks if m.mark is AttendanceMark.excused)
    missed = sum(1 for a in assignments if a.submitted_at is None or _utc(a.submitted_at) > _utc(a.due_at))
    low = sum(1 for m in moods if m.weather in (Weather.rain, Weather.thunder))
    thunder = sum(1 for m in moods if m.weather is Weather.thunder)
    counts: dict[str, Value] = {
        "required_days": float(required),
        "absence_days": float(absent),
        "absence_rate": float(absent) / float(required) if required > 0 else None,
        "attendance_rate": float(required - absent) / float(required) if required > 0 else None,
        "late_arrivals": float(sum(1 for m in marks if m.mark is AttendanceMark.late)),
        "early_leaves": float(sum(1 for m in marks if m.mark is AttendanceMark.early_leave)),
        "absence_reason_family_care": float(
            sum(
                1
                for m in marks
                if m.mark is AttendanceMark.absent and m.reason is AttendanceReason.family_care
            )
        ),
        "nurse_visits": float(len(visits)),
        "nurse_visits_emotional": float(sum(1 for v in visits if v.complaint is NurseComplaint.emotional)),
        "mood_checkin_days": float(len(moods)),
        "mood_low_days": float(low) if moods else None,
        "mood_thunder_days": float(thunder) if moods else None,
        "assignments_missed": float(missed) if assignments else None,
        "assignment_submission_rate": (
            float(len(assignments) - missed) / float(len(assignments)) if assignments else None
        ),
        "observations": float(len(observations)),
        **{
            f"observations_{category.value}": float(sum(1 for o in observations if o.category is category))
            for category in ObservationCategory
        },
    }
    return counts[stem]


def _consecutive(student: Student, days: list[date], marks: list[AttendanceDay]) -> Value:
    absent = {m.day for m in marks if m.mark is AttendanceMark.absent}
    excused = {m.day for m in marks if m.mark is AttendanceMark.excused}
    run, first = 0, None
    for day in reversed(days):
        if day not in absent and day not in excused:
            break
        run += day in absent
        first = day
    # Before a transfer student's first day here, attendance is unknown, not present.
    if (
        first is not None
        and student.transferred_in
        and not any(student.enrolled_on <= d < first for d in days)
    ):
        return None
    return float(run)


def _grades(name: str, grades: list[GradeRecord], as_of: date) -> Value:
    terms = finished_terms(as_of)

    def average(term: tuple[int, int] | None) -> Value:
        scores = [
            float(g.score)
            for g in grades
            if term is not None and (g.school_year, g.term) == term and g.score is not None
        ]
        return sum(scores) / len(scores) if scores else None

    latest = average(terms[0] if terms else None)
    if name == "grade_average_latest_term":
        return latest
    previous = average(terms[1] if len(terms) > 1 else None)
    return None if latest is None or previous is None else latest - previous


_BENEFITS = {
    "receives_child_rearing_allowance": "child_rearing_allowance",
    "receives_public_assistance": "public_assistance",
    "resident_tax_exempt": "resident_tax_exempt",
}


def _flag(value: bool | None) -> Value:
    return None if value is None else float(value)


def _status(
    name: str,
    benefits: list[BenefitStatus],
    aid: list[SchoolAidStatus],
    homes: list[HouseholdInfo],
    as_of: date,
) -> Value:
    if name in _BENEFITS:
        matching = [b for b in benefits if b.benefit == _BENEFITS[name]]
        return _flag(max(matching, key=lambda b: b.as_of).receiving) if matching else None
    if name == "school_aid_approved":
        year = [a for a in aid if a.school_year == school_year_start(as_of).year]
        if not year or year[0].status is AidStatus.applied:
            return None
        return 1.0 if year[0].status is AidStatus.approved else 0.0
    if not homes:
        return None
    home = max(homes, key=lambda h: h.as_of)
    if name == "single_parent_household":
        return _flag(home.single_parent)
    return _flag(home.member_needing_care)


# --- rules ------------------------------------------------------------------------------------


def atom_truth(atom: Atom, value: Value) -> Truth:
    if value is None:
        return Truth.unknown
    threshold = float(atom.threshold)
    holds = {
        Op.ge: value >= threshold,
        Op.gt: value > threshold,
        Op.le: value <= threshold,
        Op.lt: value < threshold,
        Op.eq: value == threshold,
        Op.ne: value != threshold,
    }[atom.op]
    return Truth.true if holds else Truth.false


def node_truth(node: Node, values: dict[str, Value]) -> Truth:
    if isinstance(node, Atom):
        return atom_truth(node, values[node.feature.name])
    parts = [node_truth(part, values) for part in node.parts]
    trues = parts.count(Truth.true)
    unknowns = parts.count(Truth.unknown)
    if isinstance(node, All):
        need = len(parts)
    elif isinstance(node, Any_):
        need = 1
    else:
        assert isinstance(node, AtLeastN)
        need = node.n
    if trues >= need:
        return Truth.true
    if trues + unknowns < need:
        return Truth.false
    return Truth.unknown


def rule_truth(rule: Rule, values: dict[str, Value]) -> Truth:
    return node_truth(rule.when, values)
