"""Features for every child at once: one set-based SQL query per feature family.

Each family query starts from the enrolled children and LEFT JOINs aggregates of its source
table over the windows ending on the as-of day, so a child without rows still gets a row and
the SELECT decides what that means: zero when the child was enrolled for the whole window,
NULL (unknown) when not. Only the features the catalog uses are selected. SQLAlchemy Core only,
so the same query runs on SQLite and PostgreSQL; results land in numpy columns with NaN for
unknown, which `rules.evaluate` reads without a Python loop per child.

Definitions shared with the plain-Python reference (`rules.reference`), which the tests hold
this module to:
- a child is screened on day D when enrolled_on ≤ D and (left_on is NULL or left_on ≥ D);
- a window is *covered* when the child was enrolled on its first school day (or, with no
  school day in it, on its first calendar day); windowed counts are unknown when not covered;
- required days = school days in the window − excused (出席停止・忌引) marks; rates are unknown
  when required days are 0;
- marks are counted as recorded: the connector quarantines marks on days that are not 授業日;
- timestamps are stored in UTC and bucketed by the municipality's local day.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from app.core.db import one_of
from app.roster.models import SchoolDay, Student
from app.sources.models import (
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
from consent.scopes import Scope
from rules.features import FEATURES, Family, Window, school_year_start, window_start

_student: sa.Table = Student.__table__  # type: ignore[attr-defined]
_school_day: sa.Table = SchoolDay.__table__  # type: ignore[attr-defined]
_attendance: sa.Table = AttendanceDay.__table__  # type: ignore[attr-defined]
_nurse: sa.Table = NurseVisit.__table__  # type: ignore[attr-defined]
_mood: sa.Table = MoodCheckin.__table__  # type: ignore[attr-defined]
_learning: sa.Table = LearningActivity.__table__  # type: ignore[attr-defined]
_assignment: sa.Table = AssignmentSubmission.__table__  # type: ignore[attr-defined]
_grade: sa.Table = GradeRecord.__table__  # type: ignore[attr-defined]
_fee: sa.Table = FeeStatus.__table__  # type: ignore[attr-defined]
_benefit: sa.Table = BenefitStatus.__table__  # type: ignore[attr-defined]
_aid: sa.Table = SchoolAidStatus.__table__  # type: ignore[attr-defined]
_household: sa.Table = HouseholdInfo.__table__  # type: ignore[attr-defined]
_observation: sa.Table = StaffObservation.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Period:
    """The as-of day and everything derived from it that every family needs."""

    as_of: date
    tz: ZoneInfo

    def start(self, window: Window) -> date:
        return window_start(window, self.as_of)

    def earliest(self, windows: Collection[Window]) -> date:
        return min((self.start(w) for w in windows), default=self.as_of)

    def utc(self, day: date) -> datetime:
        """The UTC instant at which the local day begins."""
        return datetime.combine(day, time(), self.tz).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.utc(self.as_of + timedelta(days=1))


@dataclass
class FeatureTable:
    """Feature columns aligned with `student_ids`; NaN is unknown, flags are 1.0 / 0.0."""

    student_ids: NDArray[np.int64]
    school_ids: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]

    def row(self, index: int) -> dict[str, float | None]:
        return {
            name: None if np.isnan(column[index]) else float(column[index])
            for name, column in self.values.items()
        }


_ROSTER = ("school_id", "enrolled_on", "transferred_in")
"""What every family query reads of a child besides the id."""


def _roster(period: Period) -> sa.Select[Any]:
    """Every child enrolled on the as-of day, with what the family queries read of them."""
    return sa.select(_student.c.id, *[_student.c[name] for name in _ROSTER]).where(
        _student.c.enrolled_on <= period.as_of,
        sa.or_(_student.c.left_on.is_(None), _student.c.left_on >= period.as_of),
    )


def _enrolled(
    period: Period, children: sa.Table | None, first: int | None = None, last: int | None = None
) -> sa.CTE:
    """The children screened on the as-of day: every enrolled child, or CHILDREN (a
    `_children_table`, which holds the enrolled ones among those asked for, with their roster);
    only those with ids FIRST to LAST, if given."""
    if children is not None:
        query = sa.select(children.c.student_id.label("id"), *[children.c[name] for name in _ROSTER])
        ids = children.c.student_id
    else:
        query, ids = _roster(period), _student.c.id
    if first is not None and last is not None:
        query = query.where(ids.between(first, last))
    return query.cte("enrolled")


def school_windows(period: Period, used: Collection[Window]) -> sa.CTE:
    """Per school and window: the number of school days and the first one."""
    day = _school_day.c.day
    columns: list[sa.ColumnElement[Any]] = [_school_day.c.school_id]
    for window in used:
        inside = day >= period.start(window)
        columns.append(sa.func.sum(sa.case((inside, 1), else_=0)).label(f"days_{window.value}"))
        columns.append(sa.func.min(sa.case((inside, day))).label(f"first_{window.value}"))
    return (
        sa.select(*columns)
        .where(day >= period.earliest(used), day <= period.as_of)
        .group_by(_school_day.c.school_id)
        .cte("school_windows")
    )


def _covered(base: sa.CTE, windows: sa.CTE, period: Period, window: Window) -> sa.ColumnElement[bool]:
    first = sa.func.coalesce(windows.c[f"first_{window.value}"], period.start(window))
    return base.c.enrolled_on <= first


def _count_in(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _known(condition: sa.ColumnElement[bool], value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.case((condition, value), else_=sa.null())


def _float(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.cast(value, sa.Float)


def _windowed_names(stem: str, wanted: Collection[str]) -> list[Window]:
    return [w for w in Window if f"{stem}_{w.value}" in wanted]


def _used(wanted: Collection[str], *stems: str) -> list[Window]:
    """The windows the wanted features need: a family scans rows back to the earliest only."""
    return [w for w in Window if any(f"{stem}_{w.value}" in wanted for stem in stems)]


# --- families ---------------------------------------------------------------------------------


_MARKS_READ: dict[str, tuple[str, ...]] = {
    "required_days": ("excused",),
    "absence_days": ("absent",),
    "absence_rate": ("absent", "excused"),
    "attendance_rate": ("absent", "excused"),
    "late_arrivals": ("late",),
    "early_leaves": ("early",),
    "absence_reason_family_care": ("care",),
}
"""The counts of marks each attendance feature reads (per window)."""


def _family_attendance(
    base: sa.CTE,
    period: Period,
    wanted: Collection[str],
    latest: list[tuple[int, date]],
    *,
    scan_per_window: bool = False,
) -> sa.Select[Any]:
    used = _used(wanted, *_MARKS_READ)
    windows = school_windows(period, used)
    a = _attendance.c
    counts: dict[str, sa.ColumnElement[bool]] = {
        "absent": a.mark == AttendanceMark.absent,
        "excused": a.mark == AttendanceMark.excused,
        "late": a.mark == AttendanceMark.late,
        "early": a.mark == AttendanceMark.early_leave,
        "care": sa.and_(a.mark == AttendanceMark.absent, a.reason == AttendanceReason.family_care),
    }
    # Only the counts the wanted features read: each is an expression per mark read, and every
    # kind in every window was 20 where the catalog reads 8.
    read = [
        (kind, w)
        for w in used
        for kind in dict.fromkeys(
            kind for stem, kinds in _MARKS_READ.items() if f"{stem}_{w.value}" in wanted for kind in kinds
        )
    ]
    # PostgreSQL reads a year of marks once and counts every window from it (its reading costs
    # more than its counting: a scan per window was 1.9 s against 1.4 s for the 18,000 children
    # of an incremental run at 250,000). SQLite evaluates each expression of each mark slowly and
    # reads fast: each window's marks are counted on a scan of their own, with no day compared
    # (2.3 s against 3.2 s). Where a window is counted on a longer one's scan, the day is compared
    # first: SQLite reads a mark's reason from the table row (its index holds the rest), and then
    # only for marks inside the window.
    scans: dict[Window, list[tuple[str, Window]]] = {}
    for kind, w in read:
        scans.setdefault(w if scan_per_window else min(used, key=period.start), []).append((kind, w))
    # Each child's marks by the (student, day) index, the children the outer loop: SQLite, which
    # keeps no statistics, otherwise read a year of every child's marks by the day index to pick
    # out an incremental run's few. A child without marks has counts of 0, as the coalesce below
    # would make them.
    marks: dict[tuple[str, Window], sa.ColumnElement[int]] = {}
    joined: list[sa.CTE] = []
    for scanned, pairs in scans.items():
        start = period.start(scanned)

        def counted(kind: str, w: Window, start: date = start) -> sa.ColumnElement[bool]:
            inside = period.start(w)
            return counts[kind] if inside <= start else sa.and_(a.day >= inside, counts[kind])

        scan = (
            sa.select(
                base.c.id.label("student_id"),
                *[_count_in(counted(kind, w)).label(f"{kind}_{w.value}") for kind, w in pairs],
            )
            .select_from(base)
            .outerjoin(_attendance, sa.and_(a.student_id == base.c.id, a.day >= start, a.day <= period.as_of))
            .group_by(base.c.id)
            .cte(f"marks_{scanned.value}")
        )
        joined.append(scan)
        marks.update({(kind, w): scan.c[f"{kind}_{w.value}"] for kind, w in pairs})
    columns: list[sa.ColumnElement[Any]] = []
    for w in used:

        def count(kind: str, w: Window = w) -> sa.ColumnElement[int]:
            return sa.func.coalesce(marks[(kind, w)], 0)

        covered = _covered(base, windows, period, w)
        school_days = sa.func.coalesce(windows.c[f"days_{w.value}"], 0)
        columns += [
            _attendance_feature(stem, covered, school_days, count).label(f"{stem}_{w.value}")
            for stem in _MARKS_READ
            if f"{stem}_{w.value}" in wanted
        ]
    query = (
        sa.select(base.c.id, *columns)
        .select_from(base)
        .outerjoin(windows, windows.c.school_id == base.c.school_id)
    )
    for scan in joined:
        query = query.outerjoin(scan, scan.c.student_id == base.c.id)
    if "consecutive_absence_days" in wanted:
        run = _consecutive_absences(base, period, latest)
        # Before a transfer student's first day here, attendance is unknown, not present.
        earlier_day_enrolled = sa.exists().where(
            _school_day.c.school_id == base.c.school_id,
            _school_day.c.day >= base.c.enrolled_on,
            _school_day.c.day < run.c.first_day,
        )
        reaches_enrolment = sa.and_(
            base.c.transferred_in.is_(True), run.c.first_day.is_not(None), ~earlier_day_enrolled
        )
        query = query.add_columns(
            sa.case((reaches_enrolment, sa.null()), else_=sa.func.coalesce(run.c.absent_days, 0)).label(
                "consecutive_absence_days"
            )
        ).outerjoin(run, run.c.student_id == base.c.id)
    return query.order_by(base.c.id)


def _attendance_feature(
    stem: str,
    covered: sa.ColumnElement[bool],
    school_days: sa.ColumnElement[int],
    count: Callable[[str], sa.ColumnElement[int]],
) -> sa.ColumnElement[Any]:
    """STEM's value in one window, from the window's school days and counts of marks."""
    if stem not in ("required_days", "absence_rate", "attendance_rate"):
        (kind,) = _MARKS_READ[stem]
        return _known(covered, count(kind))
    required = school_days - count("excused")
    if stem == "required_days":
        return _known(covered, required)
    absent = count("absent")
    counted = absent if stem == "absence_rate" else required - absent
    return _known(sa.and_(covered, required > 0), _float(counted) / _float(required))


def _latest_school_days(connection: sa.Connection, period: Period) -> list[tuple[int, date]]:
    """Each school's latest school day on or before the as-of day."""
    day = _school_day.c.day
    return [
        (school_id, latest)
        for school_id, latest in connection.execute(
            sa.select(_school_day.c.school_id, sa.func.max(day))
            .where(day <= period.as_of)
            .group_by(_school_day.c.school_id)
        )
    ]


def _consecutive_absences(base: sa.CTE, period: Period, latest: list[tuple[int, date]]) -> sa.CTE:
    """The run of absent school days ending on the school's latest school day (excused days
    neither count nor break it), for the few children absent or excused on that day.

    For each such child, the school's last school day before it on which the child was not
    away is found by reading the school's calendar backwards, one index probe of the child's
    marks per day, and stopping at the first day without one; the run is then the child's
    marks after that day, one range of the natural key's index. Numbering every absent or
    excused day of the year (gaps and islands) read 750,000 marks for the 20,000 children away
    in a week of colds at 250,000 children, to keep the 90,000 of their current runs; a
    recursive walk, one school day a step with three look-ups each, took 0.8 s for the 13,000
    children away on a cold day at 250,000 children, this 0.27 s (under EXPLAIN ANALYZE).

    LATEST (`_latest_school_days`) comes in as literal rows: PostgreSQL could not estimate
    these rows when they came from a CTE, and joined each school's latest day to every school's
    marks of that day.
    """
    a = _attendance.c
    away = a.mark.in_([AttendanceMark.absent, AttendanceMark.excused])
    if not latest:
        latest = [(0, period.as_of)]  # no school day yet: no school, so no child matches
    latest_day = (
        sa.values(sa.column("school_id", sa.Integer), sa.column("day", sa.Date), name="latest_day")
        .data(latest)
        .cte("latest_day")
    )
    # Each child's latest school day first, apart (MATERIALIZED): joined in one query with the
    # marks, PostgreSQL matched the schools' latest days to the marks by day alone, and where
    # every school shares one latest day a merge join read that day's marks once per school
    # (7.5 M index entries at 250,000 children).
    latest_of_child = (
        sa.select(base.c.id, base.c.school_id, latest_day.c.day)
        .join(latest_day, latest_day.c.school_id == base.c.school_id)
        .cte("latest_of_child")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )

    # The children away on their school's latest day, found by one range of the day index.
    candidates = (
        sa.select(latest_of_child.c.id, latest_of_child.c.school_id, latest_of_child.c.day)
        .join(_attendance, sa.and_(a.student_id == latest_of_child.c.id, a.day == latest_of_child.c.day))
        .where(away, a.day >= min(day for _, day in latest), a.day <= period.as_of)
        .distinct()
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    child = candidates.c
    calendar = _school_day.c
    # A scalar subquery, not NOT EXISTS: PostgreSQL made that an anti-join against all the
    # child's marks of the year, compared day by day (0.7 s for 13,000 children); this stays one
    # index probe per school day read. Correlated to the child two levels up, which SQLAlchemy
    # does only when told.
    away_that_day = (
        sa.select(sa.literal(1))
        .where(a.student_id == child.id, a.day == calendar.day, away)
        .limit(1)
        .correlate(candidates, _school_day)
        .scalar_subquery()
    )
    last_present = (
        sa.select(calendar.day)
        .where(calendar.school_id == child.school_id, calendar.day < child.day, away_that_day.is_(None))
        .order_by(calendar.day.desc())
        .limit(1)
        .scalar_subquery()
    )
    since = (
        sa.select(child.id, child.day, last_present.label("last_present"))
        .cte("since_present")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # Away since the school's first school day: every mark up to today is in the run.
    after = sa.func.coalesce(since.c.last_present, sa.literal(date.min, sa.Date))
    return (
        sa.select(
            since.c.id.label("student_id"),
            _count_in(a.mark == AttendanceMark.absent).label("absent_days"),
            sa.func.min(a.day).label("first_day"),
        )
        .select_from(since)
        .join(_attendance, sa.and_(a.student_id == since.c.id, a.day > after, a.day <= since.c.day))
        .where(away)
        .group_by(since.c.id)
        .cte("absence_run")
    )


def _family_nurse(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    used = _used(wanted, "nurse_visits", "nurse_visits_emotional")
    windows = school_windows(period, used)
    n = _nurse.c
    visits = (
        sa.select(
            n.student_id,
            *[_count_in(n.visited_at >= period.utc(period.start(w))).label(f"all_{w.value}") for w in used],
            *[
                _count_in(
                    sa.and_(
                        n.visited_at >= period.utc(period.start(w)),
                        n.complaint == NurseComplaint.emotional,
                    )
                ).label(f"emotional_{w.value}")
                for w in used
            ],
        )
        .join(base, base.c.id == n.student_id)
        .where(n.visited_at >= period.utc(period.earliest(used)), n.visited_at < period.end_utc)
        .group_by(n.student_id)
        .cte("visits")
    )
    columns = []
    for stem, key in (("nurse_visits", "all"), ("nurse_visits_emotional", "emotional")):
        for w in _windowed_names(stem, wanted):
            columns.append(
                _known(
                    _covered(base, windows, period, w),
                    sa.func.coalesce(visits.c[f"{key}_{w.value}"], 0),
                ).label(f"{stem}_{w.value}")
            )
    return (
        sa.select(base.c.id, *columns)
        .select_from(base)
        .outerjoin(windows, windows.c.school_id == base.c.school_id)
        .outerjoin(visits, visits.c.student_id == base.c.id)
        .order_by(base.c.id)
    )


def _family_mood(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    used = _used(wanted, "mood_checkin_days", "mood_low_days", "mood_thunder_days")
    windows = school_windows(period, used)
    m = _mood.c
    picks = {
        "checkin": sa.true(),
        "low": m.weather.in_([Weather.rain, Weather.thunder]),
        "thunder": m.weather == Weather.thunder,
    }
    checkins = (
        sa.select(
            m.student_id,
            *[
                _count_in(sa.and_(condition, m.day >= period.start(w))).label(f"{k}_{w.value}")
                for k, condition in picks.items()
                for w in used
            ],
        )
        .join(base, base.c.id == m.student_id)
        .where(m.day >= period.earliest(used), m.day <= period.as_of)
        .group_by(m.student_id)
        .cte("checkins")
    )
    columns = []
    for w in _windowed_names("mood_checkin_days", wanted):
        columns.append(
            _known(
                _covered(base, windows, period, w),
                sa.func.coalesce(checkins.c[f"checkin_{w.value}"], 0),
            ).label(f"mood_checkin_days_{w.value}")
        )
    for stem, key in (("mood_low_days", "low"), ("mood_thunder_days", "thunder")):
        for w in _windowed_names(stem, wanted):
            some = sa.and_(_covered(base, windows, period, w), checkins.c[f"checkin_{w.value}"] > 0)
            columns.append(_known(some, checkins.c[f"{key}_{w.value}"]).label(f"{stem}_{w.value}"))
    return (
        sa.select(base.c.id, *columns)
        .select_from(base)
        .outerjoin(windows, windows.c.school_id == base.c.school_id)
        .outerjoin(checkins, checkins.c.student_id == base.c.id)
        .order_by(base.c.id)
    )


def complete_weeks(period: Period, window: Window) -> list[date]:
    """The Mondays of the weeks lying wholly inside the window."""
    start = period.start(window)
    monday = start + timedelta(days=(7 - start.weekday()) % 7)
    weeks = []
    while monday + timedelta(days=6) <= period.as_of:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def _family_learning(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    act = _learning.c
    sign_in_windows = [(w, complete_weeks(period, w)) for w in _windowed_names("sign_in_days", wanted)]
    week_columns: list[sa.ColumnElement[Any]] = []
    for w, weeks in sign_in_windows:
        if not weeks:
            continue
        inside = act.week_start.in_(weeks)
        week_columns += [
            sa.func.sum(sa.case((inside, act.sign_in_days), else_=0)).label(f"days_{w.value}"),
            _count_in(sa.and_(inside, act.sign_in_days.is_not(None))).label(f"weeks_{w.value}"),
        ]
    s = _assignment.c
    missed = sa.or_(s.submitted_at.is_(None), s.submitted_at > s.due_at)
    due_windows = _used(wanted, "assignments_missed", "assignment_submission_rate")
    windows = school_windows(period, due_windows)
    columns: list[sa.ColumnElement[Any]] = []
    query = sa.select(base.c.id).select_from(base)
    if week_columns:
        every_week = [week for _, weeks in sign_in_windows for week in weeks]
        weekly = (
            sa.select(act.student_id, *week_columns)
            .join(base, base.c.id == act.student_id)
            .where(act.week_start >= min(every_week), act.week_start <= max(every_week))
            .group_by(act.student_id)
            .cte("weekly")
        )
        query = query.outerjoin(weekly, weekly.c.student_id == base.c.id)
        for w, weeks in sign_in_windows:
            if not weeks:
                columns.append(sa.null().label(f"sign_in_days_{w.value}"))
                continue
            columns.append(
                _known(weekly.c[f"weeks_{w.value}"] == len(weeks), weekly.c[f"days_{w.value}"]).label(
                    f"sign_in_days_{w.value}"
                )
            )
    elif sign_in_windows:
        columns += [sa.null().label(f"sign_in_days_{w.value}") for w, _ in sign_in_windows]
    if due_windows:
        assignments = (
            sa.select(
                s.student_id,
                *[
                    _count_in(s.due_at >= period.utc(period.start(w))).label(f"due_{w.value}")
                    for w in due_windows
                ],
                *[
                    _count_in(sa.and_(s.due_at >= period.utc(period.start(w)), missed)).label(
                        f"missed_{w.value}"
                    )
                    for w in due_windows
                ],
            )
            .join(base, base.c.id == s.student_id)
            .where(s.due_at >= period.utc(period.earliest(due_windows)), s.due_at < period.end_utc)
            .group_by(s.student_id)
            .cte("assignments")
        )
        query = query.outerjoin(windows, windows.c.school_id == base.c.school_id).outerjoin(
            assignments, assignments.c.student_id == base.c.id
        )
        for w in due_windows:
            due = assignments.c[f"due_{w.value}"]
            known = sa.and_(_covered(base, windows, period, w), due > 0)
            missed_count = assignments.c[f"missed_{w.value}"]
            if f"assignments_missed_{w.value}" in wanted:
                columns.append(_known(known, missed_count).label(f"assignments_missed_{w.value}"))
            if f"assignment_submission_rate_{w.value}" in wanted:
                columns.append(
                    _known(known, _float(due - missed_count) / _float(due)).label(
                        f"assignment_submission_rate_{w.value}"
                    )
                )
    return query.add_columns(*columns).order_by(base.c.id)


def finished_terms(as_of: date, count: int = 2) -> list[tuple[int, int]]:
    """The last `count` terms (school year, term) that ended before the as-of day, newest first."""
    year = school_year_start(as_of).year
    ends = [
        ((y, t), end)
        for y in (year - 1, year)
        for t, end in ((1, date(y, 8, 31)), (2, date(y, 12, 31)), (3, date(y + 1, 3, 31)))
    ]
    done = [term for term, end in ends if end < as_of]
    return list(reversed(done))[:count]


def _family_grades(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    g = _grade.c
    terms = finished_terms(period.as_of)
    if not terms:
        return sa.select(base.c.id, *[sa.null().label(name) for name in sorted(wanted)]).order_by(base.c.id)
    latest = terms[0]
    previous = terms[1] if len(terms) > 1 else (0, 0)

    def average(term: tuple[int, int]) -> sa.ScalarSelect[Any]:
        """The child's average score of TERM, read by the natural key's index child by child."""
        return (
            sa.select(sa.func.avg(_float(g.score)))
            .where(
                g.student_id == base.c.id,
                g.school_year == term[0],
                g.term == term[1],
                g.score.is_not(None),
            )
            .scalar_subquery()
        )

    columns = []
    if "grade_average_latest_term" in wanted:
        columns.append(average(latest).label("grade_average_latest_term"))
    if "grade_change_from_previous_term" in wanted:
        columns.append((average(latest) - average(previous)).label("grade_change_from_previous_term"))
    return sa.select(base.c.id, *columns).select_from(base).order_by(base.c.id)


def _family_fees(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    f = _fee.c
    months = (
        sa.select(
            f.student_id,
            sa.func.count().label("months"),
            _count_in(f.arrears.is_(True)).label("arrears"),
            _count_in(f.arrears.is_(None)).label("unknown"),
        )
        .join(base, base.c.id == f.student_id)
        .where(
            f.month >= school_year_start(period.as_of),
            f.month <= period.as_of.replace(day=1),
        )
        .group_by(f.student_id)
        .cte("months")
    )
    known = sa.and_(months.c.months > 0, months.c.unknown == 0)
    return (
        sa.select(base.c.id, _known(known, months.c.arrears).label("lunch_arrears_months"))
        .select_from(base)
        .outerjoin(months, months.c.student_id == base.c.id)
        .order_by(base.c.id)
    )


def _flag(value: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """A boolean as 1 or 0, NULL (unknown) as NULL: a cast, so VALUE (a correlated subquery) is
    evaluated once."""
    return sa.cast(value, sa.Integer)


def _newest(base: sa.CTE, table: sa.Table, as_of: date, value: str, **keys: str) -> sa.ScalarSelect[Any]:
    """VALUE in the child's newest row of TABLE (with KEYS) on or before the day: one probe of
    the natural key's index per child, newest first (it holds VALUE too: INCLUDE on PostgreSQL).
    Numbering every child's rows newest first sorted them all, 0.76 s of an incremental run's
    18,000 children on SQLite."""
    return (
        sa.select(table.c[value])
        .where(
            table.c.student_id == base.c.id,
            *[table.c[key] == wanted for key, wanted in keys.items()],
            table.c.as_of <= as_of,
        )
        .order_by(table.c.as_of.desc())
        .limit(1)
        .scalar_subquery()
    )


_BENEFIT_FEATURES = {
    "receives_child_rearing_allowance": "child_rearing_allowance",
    "receives_public_assistance": "public_assistance",
    "resident_tax_exempt": "resident_tax_exempt",
}


def _family_status(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    query = sa.select(base.c.id).select_from(base)
    query = query.add_columns(
        *[
            _flag(_newest(base, _benefit, period.as_of, "receiving", benefit=benefit)).label(name)
            for name, benefit in _BENEFIT_FEATURES.items()
            if name in wanted
        ]
    )
    if "school_aid_approved" in wanted:
        aid = (
            sa.select(
                _aid.c.student_id,
                sa.case(
                    (_aid.c.status == "approved", 1),
                    (_aid.c.status.in_(["denied", "not_applied"]), 0),
                    else_=sa.null(),
                ).label("school_aid_approved"),
            )
            .join(base, base.c.id == _aid.c.student_id)
            .where(_aid.c.school_year == school_year_start(period.as_of).year)
            .subquery("aid")
        )
        query = query.outerjoin(aid, aid.c.student_id == base.c.id).add_columns(aid.c.school_aid_approved)
    household = {
        "single_parent_household": "single_parent",
        "household_member_needing_care": "member_needing_care",
    }
    query = query.add_columns(
        *[
            _flag(_newest(base, _household, period.as_of, column)).label(name)
            for name, column in household.items()
            if name in wanted
        ]
    )
    return query.order_by(base.c.id)


OBSERVATION_STEMS = {
    "observations": None,
    **{f"observations_{category.value}": category for category in ObservationCategory},
}
"""Each observation count's stem and the category it counts (None: every category)."""


def _family_observations(base: sa.CTE, period: Period, wanted: Collection[str]) -> sa.Select[Any]:
    """日常所見 per child, category and window, by the day observed: zero when the child was
    enrolled for the whole window and nobody recorded one."""
    used = _used(wanted, *OBSERVATION_STEMS)
    windows = school_windows(period, used)
    o = _observation.c
    wanted_counts = [
        (stem, category, w)
        for stem, category in OBSERVATION_STEMS.items()
        for w in _windowed_names(stem, wanted)
    ]

    def counted(category: ObservationCategory | None, w: Window) -> sa.ColumnElement[int]:
        inside = o.observed_on >= period.start(w)
        return _count_in(inside if category is None else sa.and_(inside, o.category == category))

    recorded = (
        sa.select(
            o.student_id,
            *[counted(category, w).label(f"{stem}_{w.value}") for stem, category, w in wanted_counts],
        )
        .join(base, base.c.id == o.student_id)
        .where(o.observed_on >= period.earliest(used), o.observed_on <= period.as_of)
        .group_by(o.student_id)
        .cte("recorded")
    )
    columns = [
        _known(
            _covered(base, windows, period, w), sa.func.coalesce(recorded.c[f"{stem}_{w.value}"], 0)
        ).label(f"{stem}_{w.value}")
        for stem, _category, w in wanted_counts
    ]
    return (
        sa.select(base.c.id, *columns)
        .select_from(base)
        .outerjoin(windows, windows.c.school_id == base.c.school_id)
        .outerjoin(recorded, recorded.c.student_id == base.c.id)
        .order_by(base.c.id)
    )


_FAMILIES: dict[Family, Callable[[sa.CTE, Period, Collection[str]], sa.Select[Any]]] = {
    Family.nurse: _family_nurse,
    Family.mood: _family_mood,
    Family.learning: _family_learning,
    Family.grades: _family_grades,
    Family.fees: _family_fees,
    Family.status: _family_status,
    Family.observations: _family_observations,
}


def tune_for_a_city(connection: sa.Connection) -> None:
    """PostgreSQL settings for the rest of this transaction, for queries over a city's records."""
    if connection.dialect.name != "postgresql":
        return
    # These queries' estimated costs pass jit_above_cost, and compiling them took seconds (more
    # than running them) on a loaded machine.
    connection.execute(sa.text("SET LOCAL jit = off"))
    # A city's aggregates and sorts spilled to disk with the default 4 MB per sort or hash (every
    # family query at 50,000 children).
    connection.execute(sa.text("SET LOCAL work_mem = '128MB'"))
    # A city's recent records are read from memory, not disk: at the default page cost of 4
    # PostgreSQL hashed a year of a table to pick out the 30,000 children of an incremental run
    # rather than probe their rows by index (features 5.6 → 4.8 s at 250,000 children).
    connection.execute(sa.text("SET LOCAL random_page_cost = 1.1"))


@contextmanager
def serial_queries(*connections: sa.Connection) -> Iterator[None]:
    """PostgreSQL: no parallel workers for the queries of the block on CONNECTIONS. Where two
    connections already keep both cores busy, each query's two workers only took turns with the
    other connection's: the search of an incremental run at 250,000 children took 1.4 s with
    them, 1.2 s without. (Not for the features: their queries lost more than they gained.)"""
    postgresql = [c for c in connections if c.dialect.name == "postgresql"]
    for connection in postgresql:
        connection.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))
    yield
    # Back to the default for the rest of the transaction (after a failure, the transaction
    # ends here and takes the setting with it).
    for connection in postgresql:
        connection.execute(sa.text("SET LOCAL max_parallel_workers_per_gather TO DEFAULT"))


def compute_features(
    *,
    connection: sa.Connection,
    as_of: date,
    features: Collection[str],
    student_ids: Collection[int] | None = None,
    granted: Mapping[Scope, Collection[int]] | None = None,
    timezone: str = "Asia/Tokyo",
) -> FeatureTable:
    """The named features of every child enrolled on AS_OF, or of STUDENT_IDS among them.

    Given STUDENT_IDS (the children consent allows), every family query joins a temporary
    table of them, so no other child's rows are read, at any scale, and the ids are sent once.
    Given GRANTED as well (per scope, the children whose families granted it), each feature is
    read only for the children granted its scope and is unknown (NaN) for the rest: data held
    under another purpose's grant is not read for this one. A staff-record feature (scope
    STAFF_RECORD) is read for all of STUDENT_IDS, the children consent let the caller screen.
    """
    period = Period(as_of=as_of, tz=ZoneInfo(timezone))
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown features: {unknown}")
    tune_for_a_city(connection)
    with side_connection(connection) as side:
        connections = [connection] if side is None else [connection, side]
        if student_ids is None:
            return _compute([(c, None) for c in connections], period, features)
        ids = sorted(set(student_ids))
        if granted is None:
            with _children_tables(connections, period, ids) as pairs:
                return _compute(pairs, period, features)
        # Scopes granted to the same children are read together: most families grant every
        # scope, and one query per family beats one per scope (each with its own children).
        wanted = set(ids)
        by_scope: dict[Scope | None, list[str]] = {}
        for name in features:
            by_scope.setdefault(FEATURES[name].scope, []).append(name)
        by_children: dict[tuple[int, ...], list[str]] = {}
        for scope, names in by_scope.items():
            allowed = tuple(ids) if scope is None else tuple(sorted(set(granted.get(scope, ())) & wanted))
            by_children.setdefault(allowed, []).extend(names)
        with _children_tables(connections, period, ids) as pairs:
            table = _compute(pairs, period, by_children.pop(tuple(ids), []))
        for allowed, names in by_children.items():
            with _children_tables(connections, period, list(allowed)) as pairs:
                part = _compute(pairs, period, names)
            rows = np.searchsorted(table.student_ids, part.student_ids)
            for name, column in part.values.items():
                table.values[name] = np.full(len(table.student_ids), np.nan)
                table.values[name][rows] = column
        return table


def seen_alike_apart(connection: sa.Connection) -> bool:
    """Whether another connection sees the data as CONNECTION does: when CONNECTION's
    transaction has written nothing (which no other connection could see), and, on SQLite, the
    database is a file (each connection to an in-memory database has a database of its own)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(sa.text("SELECT pg_current_xact_id_if_assigned()")).scalar() is None
    if connection.dialect.name == "sqlite":
        # Python's sqlite3 opens a transaction at the first write, not at a read.
        driver = connection.connection.driver_connection
        return connection.engine.url.database not in (None, "", ":memory:") and not getattr(
            driver, "in_transaction", True
        )
    return False


def features_on_one_connection(
    connection: sa.Connection, period: Period, features: Collection[str], student_ids: Collection[int]
) -> FeatureTable:
    """The named features of STUDENT_IDS (those enrolled), read on CONNECTION alone: for the
    incremental search, whose two connections are already both at work."""
    tune_for_a_city(connection)
    with _children_table(connection, period, sorted(set(student_ids))) as children:
        return _compute([(connection, children)], period, features)


@contextmanager
def side_connection(connection: sa.Connection) -> Iterator[sa.Connection | None]:
    """A second connection for half the family queries, so that both cores work (PostgreSQL
    runs one query on one core; SQLite runs it in this process, and Python's sqlite3 lets
    other threads run while a statement steps). None when another connection would not see
    what CONNECTION sees (`seen_alike_apart`). Each family query is one statement, so the two
    connections see the data as the one did, statement by statement (PostgreSQL's READ
    COMMITTED; a SQLite file in WAL mode, whose readers see the last commit)."""
    if not seen_alike_apart(connection):
        yield None
        return
    with connection.engine.connect() as side:
        tune_for_a_city(side)
        yield side


@contextmanager
def _children_tables(
    connections: list[sa.Connection], period: Period, ids: list[int]
) -> Iterator[list[tuple[sa.Connection, sa.Table | None]]]:
    """A table of the children on each connection (a temporary table is the connection's own),
    filled side by side: one after the other they were a seventh of the features of an
    incremental run at 250,000 children."""
    with ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=max(1, len(connections) - 1)) as pool:
            others = [
                pool.submit(stack.enter_context, _children_table(c, period, ids)) for c in connections[1:]
            ]
            first = stack.enter_context(_children_table(connections[0], period, ids))
            tables = [first, *(other.result() for other in others)]
        yield list(zip(connections, tables, strict=True))


@contextmanager
def _children_table(connection: sa.Connection, period: Period, ids: list[int]) -> Iterator[sa.Table]:
    """A session-local temporary table, not schema, of the children among IDS enrolled on the
    as-of day, with what the family queries read of their roster: it vanishes with the
    connection and is dropped as soon as the features are read. Each family query reads it
    rather than joining the roster again: that join was 60 ms a query, a tenth of the features
    of an incremental run at 250,000 children."""
    children = sa.Table(
        f"screening_children_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column("student_id", sa.Integer, primary_key=True),
        *[sa.Column(name, _student.c[name].type) for name in _ROSTER],
        prefixes=["TEMPORARY"],
    )
    children.create(connection)
    try:
        # One statement for all the ids, given as one parameter (`one_of`).
        for among in one_of(connection.dialect, _student.c.id, ids):
            connection.execute(children.insert().from_select(list(children.c), _roster(period).where(among)))
        if connection.dialect.name == "postgresql":
            # Autovacuum never analyses a temporary table: without its row count PostgreSQL
            # guessed thousands of children for a handful (or the reverse) and chose plans that
            # read every row of a year for an incremental run of a few thousand children.
            quoted = connection.dialect.identifier_preparer.quote(children.name)
            connection.execute(sa.text(f"ANALYZE {quoted}"))
        yield children
    finally:
        children.drop(connection)


# Each family query's share of the time, to take the longest first and to split the longest by
# child (seconds, one query at a time, for the 21,177 children of bench/screen.py's incremental run).
_FAMILY_COST = {
    Family.attendance: 0.8,
    Family.learning: 0.32,
    Family.status: 0.21,
    Family.mood: 0.17,
    Family.grades: 0.15,
    Family.fees: 0.13,
    Family.nurse: 0.08,
    Family.observations: 0.02,
}


@dataclass(frozen=True)
class _Query:
    """One family query: FAMILY's NAMES for the CHILDREN with ids FIRST to LAST (None: all)."""

    family: Family
    names: tuple[str, ...]
    children: int
    first: int | None = None
    last: int | None = None


def _queries(by_family: Mapping[Family, list[str]], ids: NDArray[np.int64], connections: int) -> list[_Query]:
    """The family queries, longest first. A family longer than half a connection's fair share
    is asked in one part per connection, each for a run of the children: the attendance query
    alone had SQLite's second connection wait idle for a third of an incremental run's features."""
    total = sum(_FAMILY_COST[family] for family in by_family)
    queries: list[tuple[float, _Query]] = []
    for family, names in by_family.items():
        cost = _FAMILY_COST[family]
        if connections == 1 or len(ids) < connections or cost <= total / connections / 2:
            queries.append((cost, _Query(family, tuple(names), len(ids))))
            continue
        for part in np.array_split(ids, connections):
            query = _Query(family, tuple(names), len(part), int(part[0]), int(part[-1]))
            queries.append((cost / connections, query))
    return [query for _cost, query in sorted(queries, key=lambda q: -q[0])]


def _compute(
    pairs: list[tuple[sa.Connection, sa.Table | None]], period: Period, features: Collection[str]
) -> FeatureTable:
    """The features, their family queries taken in turn by PAIRS (each a connection and its
    table of children, or None for every child), one thread per extra connection: whichever
    connection is free takes the next query, so both finish near together."""
    connection, children = pairs[0]
    base = _enrolled(period, children)
    roster = connection.execute(sa.select(base.c.id, base.c.school_id).order_by(base.c.id)).all()
    ids = np.array([r[0] for r in roster], dtype=np.int64)
    table = FeatureTable(
        student_ids=ids,
        school_ids=np.array([r[1] for r in roster], dtype=np.int64),
        values={},
    )
    by_family: dict[Family, list[str]] = {}
    for name in features:
        by_family.setdefault(FEATURES[name].family, []).append(name)
    queries = _queries(by_family, ids, len(pairs))
    waiting = deque(queries)
    found: dict[_Query, dict[str, NDArray[np.float64]]] = {}

    def take(connection: sa.Connection, children: sa.Table | None) -> None:
        while True:
            try:
                query = waiting.popleft()
            except IndexError:  # none left, or another thread took the last one
                return
            found[query] = _family(connection, children, period, query)

    if len(pairs) == 1:
        take(*pairs[0])
    else:
        with ThreadPoolExecutor(max_workers=len(pairs) - 1) as pool:
            others = [pool.submit(take, *pair) for pair in pairs[1:]]
            take(*pairs[0])
            for other in others:
                other.result()
    # The parts of a family in id order, as the queries were made (`_queries` keeps it).
    for query in queries:
        for name, column in found[query].items():
            table.values[name] = (
                column if name not in table.values else np.concatenate([table.values[name], column])
            )
    return table


def _family(
    connection: sa.Connection, children: sa.Table | None, period: Period, query: _Query
) -> dict[str, NDArray[np.float64]]:
    """The columns of QUERY, read on CONNECTION, each with a row per child in id order."""
    base = _enrolled(period, children, query.first, query.last)
    names = set(query.names)
    if query.family is Family.attendance:
        latest = _latest_school_days(connection, period) if "consecutive_absence_days" in names else []
        scan_per_window = connection.dialect.name == "sqlite"
        select = _family_attendance(base, period, names, latest, scan_per_window=scan_per_window)
    else:
        select = _FAMILIES[query.family](base, period, names)
    result = connection.execute(select)
    keys = list(result.keys())[1:]
    rows = result.all()
    if len(rows) != query.children:
        raise RuntimeError(f"{query.family} returned {len(rows)} rows for {query.children} children")
    # All the rows in one conversion (None becomes NaN, unknown): column by column through
    # zip() was a third of a full run's Python time at 250,000 children.
    # (As plain tuples: numpy probes a Row as a mapping first, one KeyError per row.)
    matrix = np.array([tuple(row) for row in rows], dtype=np.float64).reshape(len(rows), len(keys) + 1)
    return {key: matrix[:, index].copy() for index, key in enumerate(keys, start=1)}
