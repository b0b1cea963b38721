"""Which children an incremental run after a daily sync must screen again, found set-based.

After a new school day most children cannot change. A rule a child does not meet yesterday can
start to hold today only if one of its conditions turns true, and most conditions cannot turn
true by windows sliding alone: a count over a window only loses rows as the window slides; a
rate over the school year so far only improves with a day present; a run of absences needs a
mark on the new day; benefits, grades and fees stay as they are within a month. So, per rule:

- **steady rules** (every condition of that kind): only children with new rows the rule reads
  can start to meet it: rows about the new days, and rows written by syncs since the last run
  (their `sync_run_id` above the run's watermark; both indexed), or staff observations
  recorded since it started (a person may date one back). A count condition narrows
  them further: only children who have that many rows in today's window; an absence or
  attendance rate condition, or a run of absences, too: only children whose rate or run,
  counted from their marks, meets it;
- **other rules** (a rate over a rolling window, a `<` on a count): a count condition inside
  them still bounds who can meet them (`all`: the bounded parts; `any`: every part; `at
  least N`: N minus the unbounded parts); a rule that nothing bounds makes the run screen
  everyone.

And always: children whose open alert has evidence that may read differently today (a rule may
stop, a count move; a rule resting on rates alone stays as it was while each rate, counted
today, still meets its line, since a signal does not say a rate's value), whose alert
was closed or dismissed within the quiet period, whose windows start to cover their enrolment
(unknown becomes known), who enrolled on the new days, and whose families' consent changed.
Everyone else's alerts would come out of a full run unchanged, which the tests check by running
both. A new term, school year or month, a catalog change, a promotion or a gap of more than a
week makes the caller run a full screening instead.
"""

from __future__ import annotations

import copy
import math
from collections import Counter, deque
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from app.core.db import id_set, ids_in, joined_ids, one_of, one_of_or_all
from app.roster.models import SchoolDay, Student
from app.sources.erasure import SOURCE_TABLES
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
from app.staff.models import StaffObservation
from consent import policy
from rules.catalog import All, Any_, AtLeastN, Atom, Node, Op, Rule
from rules.compute import (
    OBSERVATION_STEMS,
    Period,
    features_on_one_connection,
    school_windows,
    serial_queries,
    side_connection,
    tune_for_a_city,
)
from rules.features import Family, Feature, Kind, ValueType, Window, school_year_start, term_start
from rules.models import OPEN_STATUSES, QUIET_DAYS, Alert, AlertStatus, Signal
from rules.reference import Truth, atom_truth

_attendance: sa.Table = AttendanceDay.__table__  # type: ignore[attr-defined]
_nurse: sa.Table = NurseVisit.__table__  # type: ignore[attr-defined]
_mood: sa.Table = MoodCheckin.__table__  # type: ignore[attr-defined]
_due: sa.Table = AssignmentSubmission.__table__  # type: ignore[attr-defined]
_fee: sa.Table = FeeStatus.__table__  # type: ignore[attr-defined]
_benefit: sa.Table = BenefitStatus.__table__  # type: ignore[attr-defined]
_household: sa.Table = HouseholdInfo.__table__  # type: ignore[attr-defined]
_student: sa.Table = Student.__table__  # type: ignore[attr-defined]
_school_day: sa.Table = SchoolDay.__table__  # type: ignore[attr-defined]
_alert: sa.Table = Alert.__table__  # type: ignore[attr-defined]
_observation: sa.Table = StaffObservation.__table__  # type: ignore[attr-defined]
_signal: sa.Table = Signal.__table__  # type: ignore[attr-defined]

_ROLLING = (Window.d7, Window.d14, Window.d30, Window.d90)
_MISSED = sa.or_(_due.c.submitted_at.is_(None), _due.c.submitted_at > _due.c.due_at)


def needs_full_run(as_of: date, last_as_of: date) -> bool:
    """Term and year windows restart, fee months turn, or too much slid: screen everyone."""
    return (
        term_start(as_of) != term_start(last_as_of)
        or school_year_start(as_of) != school_year_start(last_as_of)
        or (as_of.year, as_of.month) != (last_as_of.year, last_as_of.month)
        or as_of <= last_as_of
        or (as_of - last_as_of).days > 7
    )


def sync_watermark(*, session: Session) -> int:
    """The newest sync run that wrote any source row: rows above it are new to the next run."""
    highest = 0
    for table in SOURCE_TABLES:
        value = session.execute(sa.select(sa.func.max(table.c.sync_run_id))).scalar()
        highest = max(highest, int(value or 0))
    return highest


# --- rows that hold a count up ----------------------------------------------------------------


def _counted_rows(stem: str, first: date, last: date, period: Period) -> sa.Select[Any] | None:
    """student_id of each row the windowed count STEM counts between FIRST and LAST (inclusive)."""
    a, m, n = _attendance.c, _mood.c, _nurse.c
    dated: dict[str, tuple[sa.Table, sa.ColumnElement[bool]]] = {
        "absence_days": (_attendance, a.mark == AttendanceMark.absent),
        "late_arrivals": (_attendance, a.mark == AttendanceMark.late),
        "early_leaves": (_attendance, a.mark == AttendanceMark.early_leave),
        "absence_reason_family_care": (
            _attendance,
            sa.and_(a.mark == AttendanceMark.absent, a.reason == AttendanceReason.family_care),
        ),
        "mood_checkin_days": (_mood, sa.true()),
        "mood_low_days": (_mood, m.weather.in_([Weather.rain, Weather.thunder])),
        "mood_thunder_days": (_mood, m.weather == Weather.thunder),
    }
    if stem in OBSERVATION_STEMS:
        category = OBSERVATION_STEMS[stem]
        o = _observation.c
        return sa.select(o.student_id).where(
            o.observed_on >= first,
            o.observed_on <= last,
            sa.true() if category is None else o.category == category,
        )
    if stem in dated:
        table, condition = dated[stem]
        return sa.select(table.c.student_id).where(table.c.day >= first, table.c.day <= last, condition)
    stamped: dict[str, tuple[sa.Table, sa.Column[Any], sa.ColumnElement[bool]]] = {
        "nurse_visits": (_nurse, n.visited_at, sa.true()),
        "nurse_visits_emotional": (_nurse, n.visited_at, n.complaint == NurseComplaint.emotional),
        "assignments_missed": (_due, _due.c.due_at, _MISSED),
    }
    if stem in stamped:
        table, moment, condition = stamped[stem]
        return sa.select(table.c.student_id).where(
            moment >= period.utc(first), moment < period.utc(last + timedelta(days=1)), condition
        )
    if stem in _MOVED_BY_AWAY:
        # A rate over school days or a run of absences moves toward holding only through an
        # absent or excused mark (a late arrival or early leave changes neither).
        return sa.select(_attendance.c.student_id).where(
            _attendance.c.day >= first,
            _attendance.c.day <= last,
            _attendance.c.mark.in_([AttendanceMark.absent, AttendanceMark.excused]),
        )
    if stem == "lunch_arrears_months":
        if first > last.replace(day=1):
            # No month starts between them (the new days of a month): no row, and no scan of
            # a year of fees to find none (the planner does not see that the range is empty).
            return sa.select(_fee.c.student_id).where(sa.false())
        return sa.select(_fee.c.student_id).where(
            _fee.c.month >= first, _fee.c.month <= last.replace(day=1), _fee.c.arrears.is_(True)
        )
    return None


_AWAY_RATES = ("absence_rate", "attendance_rate")
_MOVED_BY_AWAY = (*_AWAY_RATES, "consecutive_absence_days")
_COUNTED = (
    "absence_days",
    "late_arrivals",
    "early_leaves",
    "absence_reason_family_care",
    "mood_checkin_days",
    "mood_low_days",
    "mood_thunder_days",
    "nurse_visits",
    "nurse_visits_emotional",
    "assignments_missed",
    "lunch_arrears_months",
)


def _stem(feature: Feature) -> str:
    return feature.name.removesuffix(f"_{feature.window.value}") if feature.window else feature.name


def drifts(feature: Feature) -> bool:
    """Whether the feature's value can change on a new school day without any row changing: a
    rate (its days grow), a run of absences (a day present ends it), anything not counted from
    rows. Counts of rows, grades, fees and status facts change only as rows come or go."""
    counted = _stem(feature) in _COUNTED or _stem(feature) in OBSERVATION_STEMS
    return not (counted or feature.family in (Family.grades, Family.fees, Family.status))


def _least_count(atom: Atom) -> int | None:
    """The fewest rows with which the atom holds, if it needs at least one."""
    threshold = float(atom.threshold)
    if atom.op is Op.ge and threshold > 0:
        return math.ceil(threshold)
    if atom.op is Op.gt and threshold >= 0:
        return math.floor(threshold) + 1
    return None


_YEAR_RATES = {"absence_rate": (Op.ge, Op.gt), "attendance_rate": (Op.lt, Op.le)}


def steady(atom: Atom) -> bool:
    """Whether the atom can turn true only through new rows (see the module)."""
    feature = atom.feature
    if feature.kind is Kind.status or feature.family in (Family.grades, Family.fees):
        return True
    if feature.name == "consecutive_absence_days":
        return _least_count(atom) is not None
    if feature.window is None:
        return False
    if feature.value_type is ValueType.tally:
        return _least_count(atom) is not None and feature.name != f"sign_in_days_{feature.window.value}"
    stem = feature.name.removesuffix(f"_{feature.window.value}")
    return feature.window in (Window.term, Window.ytd) and atom.op in _YEAR_RATES.get(stem, ())


def _atoms(node: Node) -> list[Atom]:
    return [node] if isinstance(node, Atom) else [a for part in node.parts for a in _atoms(part)]


_FAMILY_ROWS: dict[Family, tuple[sa.Table, ...]] = {
    Family.attendance: (_attendance,),
    Family.mood: (_mood,),
    Family.nurse: (_nurse,),
    Family.learning: (_due, LearningActivity.__table__),  # type: ignore[attr-defined]
    Family.grades: (GradeRecord.__table__,),  # type: ignore[attr-defined]
    Family.fees: (_fee,),
    Family.status: (_benefit, _household, SchoolAidStatus.__table__),  # type: ignore[attr-defined]
    Family.observations: (_observation,),
}


class Bounds:
    """A rule's necessary conditions for starting to hold today, as sets of children."""

    def __init__(
        self, connection: sa.Connection, last: Period, now: Period, watermark: int, since: datetime
    ) -> None:
        self.connection, self.last, self.now, self.watermark = connection, last, now, watermark
        self.since = since
        self._counts: dict[tuple[str, frozenset[int] | None], set[int] | None] = {}
        self._rows: dict[str, set[int]] = {}
        self._left: dict[str, set[int]] = {}
        self._away: dict[Window, dict[int, tuple[int, int]]] = {}
        self._school_days: dict[Window, dict[int, int]] = {}
        self._recent: dict[int, dict[int, frozenset[date]]] = {}

    def on(self, connection: sa.Connection) -> Bounds:
        """The same bounds asked on another connection, with the answers found so far and from
        now on shared (two threads may now and then ask the same question: the answer is the
        same, and a dict's item is set atomically)."""
        other = copy.copy(self)
        other.connection = connection
        return other

    def _ids(self, query: sa.Select[Any]) -> set[int]:
        return id_set(self.connection, query)

    def count(self, atom: Atom, among: Collection[int] | None = None) -> set[int] | None:
        """Children (AMONG these, if given) with enough rows in today's window for the count
        atom to hold."""
        # Cached by the children asked about too: rules sharing a condition and the rows they
        # read (the two attendance-rate rules) ask the same question.
        key = (atom.text, None if among is None else frozenset(among))
        if key not in self._counts:
            self._counts[key] = self._count(atom, None if among is None else sorted(among))
        return self._counts[key]

    def _count(self, atom: Atom, among: list[int] | None) -> set[int] | None:
        feature, least = atom.feature, _least_count(atom)
        if among is not None and _stem(feature) in _AWAY_RATES:
            return self.rate_holds(atom, among)
        if among is not None and _stem(feature) == "absence_days" and feature.window is not None:
            # The same marks a rate counts: one question per window for both conditions.
            return {
                student_id
                for student_id, (absent, _required) in self._away_days(feature.window, among).items()
                if atom_truth(atom, float(absent)) is Truth.true
            }
        if feature.name == "consecutive_absence_days" and least is not None and least >= 2:
            if among is not None:
                return self._run_bound(atom, least, among)
            return set(self._away_on_each_of_the_last_school_days(least, None))
        elif least is None or feature.window is None:
            return None
        else:
            stem = feature.name.removesuffix(f"_{feature.window.value}")
            rows = _counted_rows(stem, self.now.start(feature.window), self.now.as_of, self.now)
            if rows is None:
                return None
            counted = rows.subquery()
            query = (
                sa.select(counted.c.student_id)
                .group_by(counted.c.student_id)
                .having(sa.func.count() >= least)
            )
        if among is None:
            return self._ids(query)
        found: set[int] = set()
        dialect = self.connection.dialect
        # The children's own rows, by the student index.
        for only in one_of(dialect, query.selected_columns[0], among):
            found |= self._ids(query.where(only))
        return found

    def _run_bound(self, atom: Atom, least: int, among: list[int]) -> set[int]:
        """AMONG these children, those whose run of absences may meet ATOM (at least LEAST)
        today: absent on each of the school's LEAST latest school days, or away on each of them
        and a run counted (`run_holds`) that meets it. Counting every child away on each of the
        last days cost 0.3 s at 250,000 children in a week of colds (9,889 of them), most of them
        absent each day, whose run needs no counting."""
        absent_each_day: set[int] = set()
        away_each_day: set[int] = set()
        for student_id, absent_days in self._away_on_each_of_the_last_school_days(least, among).items():
            (absent_each_day if absent_days >= least else away_each_day).add(student_id)
        return absent_each_day | self.run_holds(atom, away_each_day)

    def rate_holds(self, atom: Atom, among: Collection[int]) -> set[int]:
        """AMONG these children, those whose absence or attendance rate meets ATOM today,
        counted from their marks in the atom's window as `rules.compute` counts them, less the
        window's coverage: a child kept here may still have an unknown rate, so the set holds
        every child for whom the atom is true, and perhaps a few more.

        A rate moves a little every school day: a bound by the count of absences alone let
        17,000 of 250,000 children through on a day of colds (five absences and one today),
        where a rate below 88 % needs twenty-odd."""
        feature, window = atom.feature, atom.feature.window
        assert window is not None and _stem(feature) in _AWAY_RATES
        found: set[int] = set()
        for student_id, (absent, required) in self._away_days(window, among).items():
            if required <= 0:
                continue  # unknown: the atom cannot hold
            # The feature's own arithmetic (rules.compute), so the same float compares.
            counted = absent if _stem(feature) == "absence_rate" else required - absent
            rate = float(counted) / float(required)
            if atom_truth(atom, rate) is Truth.true:
                found.add(student_id)
        return found

    def run_holds(self, atom: Atom, among: Collection[int]) -> set[int]:
        """AMONG these children, those whose run of absences meets ATOM today, counted as the
        feature is (`rules.compute`). Absent or excused on each of the last school days alone
        was a loose bound: a child excused all week has no run at all, and such children were
        half of those an incremental run at 250,000 children screened for nothing (2,616 of
        5,653)."""
        table = features_on_one_connection(self.connection, self.now, [atom.feature.name], among)
        runs = table.values[atom.feature.name]
        return {
            int(student_id)
            for student_id, run in zip(table.student_ids, runs, strict=True)
            if not math.isnan(run) and atom_truth(atom, float(run)) is Truth.true  # NaN: unknown
        }

    def _away_days(self, window: Window, among: Collection[int]) -> dict[int, tuple[int, int]]:
        """For each of AMONG: absences and required school days (the school's days less the
        excused ones) in WINDOW today. Kept per window: the rules' bounds and the alerts'
        holders ask about many of the same children."""
        known = self._away.setdefault(window, {})
        missing = sorted(set(among) - known.keys())
        if missing:
            start, as_of = self.now.start(window), self.now.as_of
            if window not in self._school_days:
                day = _school_day.c.day
                self._school_days[window] = dict(
                    self.connection.execute(
                        sa.select(_school_day.c.school_id, sa.func.count())
                        .where(day >= start, day <= as_of)
                        .group_by(_school_day.c.school_id)
                    ).all()
                )
            school_days = self._school_days[window]
            a = _attendance.c
            marks = (
                sa.select(
                    _student.c.id,
                    _student.c.school_id,
                    sa.func.count().filter(a.mark == AttendanceMark.absent),
                    sa.func.count().filter(a.mark == AttendanceMark.excused),
                )
                .outerjoin(
                    _attendance, sa.and_(a.student_id == _student.c.id, a.day >= start, a.day <= as_of)
                )
                .group_by(_student.c.id, _student.c.school_id)
            )
            for only in one_of(self.connection.dialect, _student.c.id, missing):
                for student_id, school_id, absent, excused in self.connection.execute(marks.where(only)):
                    known[student_id] = (absent, school_days.get(school_id, 0) - excused)
        return {student_id: known[student_id] for student_id in among if student_id in known}

    def _away_on_each_of_the_last_school_days(self, days: int, among: list[int] | None) -> dict[int, int]:
        """A run of DAYS or more absences ending on the school's latest school day (excused days
        neither count nor break it) covers at least its DAYS latest school days: the children
        (AMONG these, if given) absent or excused on each of them, with the number of those days
        they were absent. (Two days, whatever the threshold, let 14,000 children of 250,000
        through in a week of colds.) The marks are read by the day index from the earliest of
        those days and matched to each school's days here: numbering a year of school days in
        the query, once per batch of children, was 1.3 s of an incremental run on SQLite."""
        recent = self._latest_school_days(days)
        if not recent:
            return {}
        a = _attendance.c
        query = (
            sa.select(a.student_id, _student.c.school_id, a.day, a.mark)
            .join(_student, _student.c.id == a.student_id)
            .where(
                a.mark.in_([AttendanceMark.absent, AttendanceMark.excused]),
                a.day >= min(min(school_days) for school_days in recent.values()),
                a.day <= self.now.as_of,
            )
        )
        batches = [query.where(only) for only in one_of_or_all(self.connection.dialect, a.student_id, among)]
        away: dict[int, set[date]] = {}
        absent: dict[int, set[date]] = {}
        for batch in batches:
            for student_id, school_id, day, mark in self.connection.execute(batch):
                if day in recent.get(school_id, ()):
                    away.setdefault(student_id, set()).add(day)
                    if mark == AttendanceMark.absent:
                        absent.setdefault(student_id, set()).add(day)
        return {
            student_id: len(absent.get(student_id, ()))
            for student_id, away_days in away.items()
            if len(away_days) >= days
        }

    def _latest_school_days(self, days: int) -> dict[int, frozenset[date]]:
        """Each school's DAYS latest school days on or before the as-of day (fewer if it has
        had fewer). Read from the last two months, which hold them for every school unless it
        has just had a longer break; such a school's days are then read back to its first."""
        if days not in self._recent:
            day, school = _school_day.c.day, _school_day.c.school_id
            latest: dict[int, list[date]] = {}

            def read(query: sa.Select[Any]) -> None:
                for school_id, school_day in self.connection.execute(query.order_by(school, day.desc())):
                    if len(taken := latest.setdefault(school_id, [])) < days:
                        taken.append(school_day)

            recent = sa.select(school, day).where(day <= self.now.as_of)
            read(recent.where(day > self.now.as_of - timedelta(days=61)))
            schools = sa.select(school).where(day <= self.now.as_of).distinct()
            short = [s for (s,) in self.connection.execute(schools) if len(latest.get(s, ())) < days]
            if short:
                for school_id in short:
                    latest.pop(school_id, None)
                read(recent.where(school.in_(short)))
            self._recent[days] = {school_id: frozenset(taken) for school_id, taken in latest.items()}
        return self._recent[days]

    def new_rows(self, atom: Atom) -> set[int]:
        """Children with rows the atom reads about the new days, or synced since the last run."""
        feature, window = atom.feature, atom.feature.window
        key = feature.name.removesuffix(f"_{window.value}") if window else feature.name
        counted = _counted_rows(key, self.last.as_of + timedelta(days=1), self.now.as_of, self.now)
        if counted is None:
            # Any new row of the family: the same for each of its features (the six status
            # facts asked for the same three tables six times).
            key = f"family:{feature.family.value}"
        if key in self._rows:
            return self._rows[key]
        found: set[int] = set()
        tables = _FAMILY_ROWS[feature.family]
        if counted is not None and window is not None:  # a count: only the rows it counts
            found |= self._ids(counted)
            in_window = _counted_rows(key, self.now.start(window), self.now.as_of, self.now)
            assert in_window is not None
            found |= self._ids(in_window.where(self._written_since_last_run(tables[0])))
        elif counted is not None and key in _MOVED_BY_AWAY:  # a run of absences
            found |= self._ids(counted)
            found |= self._ids(
                sa.select(_attendance.c.student_id).where(self._written_since_last_run(_attendance))
            )
        else:
            for table in tables:
                found |= self._ids(sa.select(table.c.student_id).where(self._written_since_last_run(table)))
                dated = _dated(table, self.last, self.now)
                if dated is not None:
                    found |= self._ids(sa.select(table.c.student_id).where(dated))
        self._rows[key] = found
        return found

    def _written_since_last_run(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """Rows a sync wrote after the last run's watermark; staff observations (which a
        person may date back) recorded since the last run started."""
        if table is _observation:
            return _observation.c.created_at >= self.since
        # By id through the sync_run_id index: SQLite, without statistics, preferred the day
        # index and read a whole window (or table) to find the rows above the watermark, which
        # on most days are none (8 of an incremental run's 19 s at 50,000 children).
        return table.c.id.in_(sa.select(table.c.id).where(table.c.sync_run_id > self.watermark))

    def leaving(self, atom: Atom) -> set[int]:
        """Children with rows that a count over a rolling window no longer counts today."""
        window = atom.feature.window
        if window not in _ROLLING or drifts(atom.feature):
            return set()
        key = f"{_stem(atom.feature)}:{window.value}"
        if key not in self._left:
            first, last = self.last.start(window), self.now.start(window) - timedelta(days=1)
            rows = _counted_rows(_stem(atom.feature), first, last, self.now)
            self._left[key] = set() if rows is None or last < first else self._ids(rows)
        return self._left[key]

    def touched(self, atom: Atom) -> set[int]:
        """Children for whom the atom's value may differ from the last run's through rows: rows
        it reads that came or were synced, and rows its rolling window let go."""
        return self.new_rows(atom) | self.leaving(atom)

    def rule(self, rule: Rule) -> set[int] | None:
        atoms = _atoms(rule.when)
        if all(steady(atom) for atom in atoms):
            changed = set().union(*(self.new_rows(atom) for atom in atoms))
            # Counted among those children only, so even a count over the year is cheap.
            bound = self.node(rule.when, among=changed) if changed else None
            return changed if bound is None else changed & bound
        return self.node(rule.when)

    def node(self, node: Node, among: Collection[int] | None = None) -> set[int] | None:
        """Children (AMONG these, if given) for whom NODE can hold today as far as counts
        tell; None: anyone."""
        if isinstance(node, Atom):
            return self.count(node, among)
        parts = [self.node(part, among) for part in node.parts]
        known = [part for part in parts if part is not None]
        if isinstance(node, All):
            return set.intersection(*known) if known else None
        if isinstance(node, Any_):
            return set().union(*known) if len(known) == len(parts) else None
        assert isinstance(node, AtLeastN)
        need = node.n - (len(parts) - len(known))
        if need <= 0:
            return None
        seen = Counter(child for part in known for child in part)
        return {child for child, count in seen.items() if count >= need}


def _dated(table: sa.Table, last: Period, now: Period) -> sa.ColumnElement[bool] | None:
    """Rows about the new days, by the column that dates them (indexed)."""
    if "day" in table.c:
        return table.c.day.between(last.as_of + timedelta(days=1), now.as_of)
    for stamp in ("visited_at", "due_at"):
        if stamp in table.c:
            return sa.and_(table.c[stamp] >= last.end_utc, table.c[stamp] < now.end_utc)
    if "as_of" in table.c:
        return table.c.as_of.between(last.as_of + timedelta(days=1), now.as_of)
    return None  # grades, fees, aid: by term, month or year, which a full run starts


def _held_by_rates(rule: Rule) -> bool:
    """Whether RULE fires only while every one of its conditions holds, and the only ones that
    drift are absence or attendance rates."""
    atoms = _atoms(rule.when)
    conjunction = isinstance(rule.when, Atom) or (
        isinstance(rule.when, All) and all(isinstance(part, Atom) for part in rule.when.parts)
    )
    drifting = [atom for atom in atoms if drifts(atom.feature)]
    return conjunction and bool(drifting) and all(_stem(atom.feature) in _AWAY_RATES for atom in drifting)


def _holders_that_may_change(session: Session, rules: Collection[Rule], bounds: Bounds) -> set[int]:
    """Children with an open alert with evidence whose evidence may read differently today: a
    rule of it fires on a value that drifts (a rate may cross its line on a day present), or
    a row that any rule of the category reads came, went or left its window (a count moved,
    a rule may stop, an unknown may become known). The rest would come out of a full run as
    they are: a signal is rewritten only when what it says changes (`rules.engine`)."""
    by_id = {rule.id: rule for rule in rules}
    by_category: dict[str, list[Rule]] = {}
    for rule in rules:
        by_category.setdefault(rule.category.value, []).append(rule)
    open_statuses = [s.value for s in OPEN_STATUSES]
    # The holders of each category and rule, their ids as one text: 67,000 firing signals at
    # 250,000 children were as many row objects.
    firing = session.execute(
        sa.select(_alert.c.category, _signal.c.rule_id, joined_ids(_alert.c.student_id))
        .join(_signal, _signal.c.alert_id == _alert.c.id)
        .where(_alert.c.status.in_(open_statuses), _alert.c.score > 0, _signal.c.cleared_on.is_(None))
        .group_by(_alert.c.category, _signal.c.rule_id)
    ).all()
    found: set[int] = set()
    categories: dict[str, set[int]] = {}
    by_rates: dict[str, tuple[Rule, set[int]]] = {}
    for category, rule_id, joined in firing:
        holders = ids_in(joined)
        known = by_id.get(rule_id)
        if known is not None and _held_by_rates(known):
            by_rates.setdefault(rule_id, (known, set()))[1].update(holders)
        elif known is None or any(drifts(atom.feature) for atom in _atoms(known.when)):
            found |= holders  # a rule no longer live, or a drifting value: screen again
        else:
            categories.setdefault(str(category), set()).update(holders)
    touched: dict[str, set[int]] = {}

    def touched_in(category: str) -> set[int]:
        """Children with rows that any rule of CATEGORY reads that came, went or were synced."""
        if category not in touched:
            touched[category] = set().union(
                *(
                    bounds.touched(atom)
                    for rule in by_category.get(category, [])
                    for atom in [*_atoms(rule.when), *(booster.atom for booster in rule.boosters)]
                )
            )
        return touched[category]

    # A signal does not say a rate's value (`rules.engine.says`), so while each rate still
    # meets its line the rule says today what it said: the rest is as for counts. (Children
    # whose rows moved are screened again anyway: their rates are not counted. The others met
    # the line before, so their windows are covered, and a rate counted without coverage is
    # the feature's own.)
    for rule, holders in by_rates.values():
        unsure = holders - found - touched_in(rule.category.value)
        still = set(unsure)
        for atom in _atoms(rule.when):
            if drifts(atom.feature):
                still &= bounds.rate_holds(atom, still)
        found |= unsure - still
        categories.setdefault(rule.category.value, set()).update(holders)
    for category, holders in categories.items():
        found |= holders & touched_in(category)
    return found


def changed_children(
    *,
    session: Session,
    rules: Collection[Rule],
    since: datetime,
    watermark: int,
    as_of: date,
    last_as_of: date,
    timezone: str,
) -> set[int] | None:
    """The children whose alerts may differ from the last run's (see the module); None when a
    live rule could start to hold for anyone, so everyone must be screened."""
    tz = ZoneInfo(timezone)
    last, now = Period(as_of=last_as_of, tz=tz), Period(as_of=as_of, tz=tz)
    connection = session.connection()
    tune_for_a_city(connection)
    bounds = Bounds(connection, last, now, watermark, since)

    waiting = deque(rules)

    def started_by_rules(bounds: Bounds) -> set[int] | None:
        """The children the rules not yet taken (by this or the other thread) may start to
        hold for; None when one of them could hold for anyone."""
        found: set[int] = set()
        while True:
            try:
                rule = waiting.popleft()
            except IndexError:  # none left, or the other thread took the last one
                break
            bounded = bounds.rule(rule)
            if bounded is None:
                waiting.clear()  # everyone is screened: no other rule need be asked
                return None
            found |= bounded
            # What a rule adds for a household or benefit fact may change with new rows too.
            for booster in rule.boosters:
                found |= bounds.new_rows(booster.atom)
        return found

    # On PostgreSQL the rules' bounds are asked on a second connection while this one asks the
    # rest and then takes the rules still waiting, so that both cores work to the end (the
    # server runs one query on one core; the search was three of an incremental run's eleven
    # seconds at 250,000 children, query after query).
    with side_connection(connection) as side:
        if side is None:
            by_rules = started_by_rules(bounds)
            rest = None if by_rules is None else _rest(session, rules, bounds)
        else:
            with serial_queries(connection, side), ThreadPoolExecutor(max_workers=1) as pool:
                asked = pool.submit(started_by_rules, bounds.on(side))
                rest = _rest(session, rules, bounds)
                mine = started_by_rules(bounds)
                theirs = asked.result()
            by_rules = None if mine is None or theirs is None else mine | theirs
    return None if by_rules is None or rest is None else by_rules | rest


def _rest(session: Session, rules: Collection[Rule], bounds: Bounds) -> set[int]:
    """The children to screen again whatever the rules' own bounds say (see the module)."""
    found: set[int] = set()
    since, last, now = bounds.since, bounds.last, bounds.now
    as_of, last_as_of = now.as_of, last.as_of

    def ids(query: sa.Select[Any]) -> None:
        found.update(id_set(session.connection(), query))

    found |= _holders_that_may_change(session, rules, bounds)
    # Closed or dismissed within the quiet period: stronger evidence, or its end, may reopen them.
    ids(
        sa.select(_alert.c.student_id).where(
            _alert.c.status.in_([AlertStatus.closed.value, AlertStatus.dismissed.value]),
            _alert.c.closed_at >= since - timedelta(days=QUIET_DAYS + 1),
        )
    )
    # Windows whose start passes a child's enrolment date: unknown becomes known. (One query
    # for the four windows: one each read the roster four times, 0.46 s on SQLite.)
    windows = school_windows(now, _ROLLING)
    enrolled_on = _student.c.enrolled_on
    ids(
        sa.select(_student.c.id)
        .join(windows, windows.c.school_id == _student.c.school_id)
        .where(
            sa.or_(
                *(
                    sa.and_(enrolled_on > last.start(w), enrolled_on <= windows.c[f"first_{w.value}"])
                    for w in _ROLLING
                )
            )
        )
    )
    ids(sa.select(_student.c.id).where(_student.c.enrolled_on.between(last_as_of + timedelta(days=1), as_of)))
    # Consent given, changed or stopped since the last run.
    found.update(policy.students_with_consent_changes(session=session, since=since))
    return found
