"""One school's year of records: daily attendance marks, 心の天気, nurse visits, weekly learning,
assignments, term grades, monthly lunch fees, 就学援助, and the Myna Portal household facts.

Everything is drawn for the whole school at once as (students × school days) matrices, so a
district of a thousand children takes milliseconds; nothing outside a child's enrolment exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    AttendanceMark,
    AttendanceReason,
    Benefit,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseComplaint,
    NurseVisit,
    SchoolAidStatus,
    Source,
    Weather,
)
from app.world.data import mood_reasons, world_shape
from app.world.people import Pupils, SchoolPlace
from app.world.rows import Category, Rows, YearlyAttendance

# Daily mark codes in the (students × days) matrix; only non-zero codes become rows.
OUTSIDE, PRESENT, ABSENT, LATE, EARLY_LEAVE, EXCUSED = -1, 0, 1, 2, 3, 4
# Text columns are object arrays that index a few shared strings: cheap to hand to the database.
MARK_VALUES = np.array(
    ["", ""]
    + [m.value for m in (AttendanceMark.absent, AttendanceMark.late, AttendanceMark.early_leave)]
    + [AttendanceMark.excused.value],
    dtype=object,
)  # indexed by code + 1
REASONS = list(AttendanceReason)
NO_REASON = -1
REASON_VALUES = np.array([r.value for r in REASONS], dtype=object)
ILLNESS = REASONS.index(AttendanceReason.illness)
ACCIDENT = REASONS.index(AttendanceReason.accident)
FAMILY_CARE = REASONS.index(AttendanceReason.family_care)
OTHER = REASONS.index(AttendanceReason.other)
SUSPENSION = REASONS.index(AttendanceReason.suspension)
BEREAVEMENT = REASONS.index(AttendanceReason.bereavement)
WEATHER = np.array([w.value for w in Weather], dtype=object)  # sunny, cloudy, rain, thunder
# 心の天気 is an ordinal pick: a child's "low" level z ~ N(shift, 1) falls between these cuts.
# With no shift: 55 % sunny, 30 % cloudy, 12 % rain, 3 % thunder.
WEATHER_CUTS = np.array([0.126, 1.036, 1.881])
COMPLAINTS = np.array([c.value for c in NurseComplaint], dtype=object)  # headache … other
COMPLAINT_MIX = np.array(
    [
        [0.15, 0.15, 0.35, 0.18, 0.05, 0.12],  # everyday visits: mostly small injuries
        [0.15, 0.25, 0.05, 0.10, 0.40, 0.05],  # bullying: stomach aches and a heavy heart
        [0.30, 0.30, 0.05, 0.15, 0.15, 0.05],  # before and around 不登校: headaches, stomach aches
        [0.15, 0.10, 0.05, 0.55, 0.10, 0.05],  # young carer: tired
    ]
).cumsum(axis=1)
JST = np.timedelta64(9, "h")


@dataclass(frozen=True)
class SchoolYear:
    rows: list[Rows]
    attendance: YearlyAttendance


def school_year_rows(rng: np.random.Generator, school: SchoolPlace, pupils: Pupils) -> SchoolYear:
    """Draw the school's year for its pupils (all of one school)."""
    year = _Year(rng, school, pupils)
    marks, reasons = year.attendance_marks()
    rows = [
        year.attendance_rows(marks, reasons),
        year.mood_rows(marks),
        year.nurse_rows(marks),
        year.learning_rows(),
        year.assignment_rows(),
        year.grade_rows(),
        year.fee_rows(),
        year.aid_rows(),
        *year.myna_rows(),
    ]
    attendance = YearlyAttendance(
        student_id=pupils.key,
        school_days=(marks != OUTSIDE).sum(axis=1),
        excused_days=(marks == EXCUSED).sum(axis=1),
        absent_days=(marks == ABSENT).sum(axis=1),
    )
    return SchoolYear(rows=[r for r in rows if len(r)], attendance=attendance)


class _Year:
    def __init__(self, rng: np.random.Generator, school: SchoolPlace, pupils: Pupils) -> None:
        self.rng, self.school, self.pupils = rng, school, pupils
        self.calendar = school.calendar
        self.days = school.calendar.days
        count, day_count = len(pupils), len(self.days)
        self.shape = (count, day_count)
        left = np.where(np.isnat(pupils.left_on), self.days[-1], pupils.left_on)
        self.enrolled = (self.days[None, :] >= pupils.enrolled_on[:, None]) & (
            self.days[None, :] <= left[:, None]
        )
        onset_index = np.searchsorted(self.days, pupils.onset)  # NaT sorts last: never reached
        self.onset_index = np.where(np.isnat(pupils.onset), day_count + 1, onset_index)
        self.day_index = np.arange(day_count)

    def _after(self, category: Category) -> NDArray[np.bool_]:
        """(students × days): the category's signs are showing."""
        planted: NDArray[np.bool_] = self.pupils.category == category.value
        return planted[:, None] & (self.day_index[None, :] >= self.onset_index[:, None])

    def _lead_in(self, category: Category, days: int) -> NDArray[np.bool_]:
        planted: NDArray[np.bool_] = self.pupils.category == category.value
        start = self.onset_index - days
        return (
            planted[:, None]
            & (self.day_index[None, :] >= start[:, None])
            & (self.day_index[None, :] < self.onset_index[:, None])
        )

    def _spread(self, starts: NDArray[np.bool_], lengths: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Episodes of `lengths` school days from each start."""
        out = np.zeros(self.shape, dtype=bool)
        for k in range(int(lengths.max(initial=1))):
            out[:, k:] |= starts[:, : self.shape[1] - k] & (lengths[:, : self.shape[1] - k] > k)
        return out

    # 出欠 ------------------------------------------------------------------------------------
    def attendance_marks(self) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
        rng, shape = self.rng, self.shape
        count, day_count = shape
        marks = np.zeros(shape, dtype=np.int8)
        reasons = np.full(shape, NO_REASON, dtype=np.int8)

        def mark(where: NDArray[np.bool_], code: int, reason: NDArray[Any] | int) -> None:
            marks[where] = code
            reasons[where] = reason[where] if isinstance(reason, np.ndarray) else reason

        month = self.days.astype("datetime64[M]").astype(np.int64) % 12 + 1
        winter = np.isin(month, (12, 1, 2)) * 0.6 + 1.0  # colds and flu
        illness_rate = rng.gamma(2.0, 0.008, size=count)
        starts = rng.random(shape) < illness_rate[:, None] * winter[None, :]
        ill = self._spread(starts, np.minimum(rng.geometric(0.6, size=shape), 5))
        everyday_reason = rng.choice(
            [ILLNESS, ACCIDENT, OTHER, FAMILY_CARE], p=[0.86, 0.03, 0.09, 0.02], size=shape
        )
        mark(rng.random(shape) < rng.gamma(0.7, 0.01, size=count)[:, None], LATE, NO_REASON)
        mark(rng.random(shape) < rng.gamma(0.7, 0.006, size=count)[:, None], EARLY_LEAVE, ILLNESS)
        mark(ill, ABSENT, everyday_reason.astype(np.int8))

        # 不登校: a few weeks of scattered absences and lateness, then most days absent.
        lead_in = self._lead_in(Category.school_non_attendance, 20)
        mark(lead_in & (rng.random(shape) < 0.15), LATE, NO_REASON)
        mark(lead_in & (rng.random(shape) < 0.2), ABSENT, np.where(rng.random(shape) < 0.5, ILLNESS, OTHER))
        refusing = self._after(Category.school_non_attendance)
        mark(refusing & (rng.random(shape) < 0.2), LATE, NO_REASON)
        stay_home = rng.uniform(0.7, 0.95, size=count)[:, None]
        mark(
            refusing & (rng.random(shape) < stay_home),
            ABSENT,
            np.where(rng.random(shape) < 0.7, OTHER, ILLNESS),
        )
        # Bullying: leaving early, some days off "sick".
        bullied = self._after(Category.bullying)
        mark(bullied & (rng.random(shape) < 0.05), EARLY_LEAVE, ILLNESS)
        mark(bullied & (rng.random(shape) < 0.04), ABSENT, np.where(rng.random(shape) < 0.6, ILLNESS, OTHER))
        # Young carer: late and off for 家事・家族の世話.
        caring = self._after(Category.young_carer)
        mark(
            caring & (rng.random(shape) < 0.15),
            LATE,
            np.where(rng.random(shape) < 0.6, FAMILY_CARE, NO_REASON),
        )
        mark(caring & (rng.random(shape) < 0.03), EARLY_LEAVE, FAMILY_CARE)
        mark(caring & (rng.random(shape) < 0.05), ABSENT, FAMILY_CARE)
        # 長期療養: one long absence for illness.
        sick = self._after(Category.long_term_illness)
        run = (self.day_index[None, :] - self.onset_index[:, None]) < rng.integers(30, 50, size=count)[
            :, None
        ]
        mark(sick & run, ABSENT, ILLNESS)

        # 出席停止 (influenza in January–February, other infections any time) and 忌引: excused.
        flu = rng.random(count) < 0.12
        season = np.flatnonzero(np.isin(month, (1, 2)))
        flu_start = np.zeros(shape, dtype=bool)
        if len(season):
            flu_start[np.flatnonzero(flu), rng.choice(season, size=int(flu.sum()))] = True
        other = rng.random(count) < 0.03
        flu_start[np.flatnonzero(other), rng.integers(0, day_count, size=int(other.sum()))] = True
        mark(self._spread(flu_start, np.full(shape, 5)), EXCUSED, SUSPENSION)
        mourning = rng.random(count) < 0.015
        loss = np.zeros(shape, dtype=bool)
        loss[np.flatnonzero(mourning), rng.integers(0, day_count, size=int(mourning.sum()))] = True
        mark(self._spread(loss, rng.choice([1, 3, 5, 7], size=shape)), EXCUSED, BEREAVEMENT)

        marks[~self.enrolled] = OUTSIDE
        return marks, reasons

    def attendance_rows(self, marks: NDArray[np.int8], reasons: NDArray[np.int8]) -> Rows:
        student, day = np.nonzero(marks > PRESENT)
        reason = reasons[student, day]
        return Rows(
            AttendanceDay,
            Source.school_affairs,
            {
                "student_id": self.pupils.key[student],
                "day": self.days[day],
                "mark": MARK_VALUES[marks[student, day] + 1],
                "reason": REASON_VALUES[np.maximum(reason, 0)],
            },
            missing={"reason": reason == NO_REASON},
        )

    def _mode(self) -> NDArray[np.int8]:
        """Which kind of day each (student, day) is for nurse complaints: 0 everyday … 3 carer."""
        mode = np.zeros(self.shape, dtype=np.int8)
        mode[self._after(Category.bullying)] = 1
        mode[
            self._lead_in(Category.school_non_attendance, 20) | self._after(Category.school_non_attendance)
        ] = 2
        mode[self._after(Category.young_carer)] = 3
        return mode

    # 心の天気 --------------------------------------------------------------------------------
    def mood_rows(self, marks: NDArray[np.int8]) -> Rows:
        rng, shape = self.rng, self.shape
        count = shape[0]
        present = (marks == PRESENT) | (marks == LATE) | (marks == EARLY_LEAVE)
        checked_in = present & (rng.random(shape) < rng.beta(8, 1.5, size=count)[:, None])
        shift = np.zeros(shape, dtype=np.float32)
        shift += rng.normal(0, 0.35, size=count)[:, None]  # temperament
        mondays = self.days.astype("datetime64[D]").view(np.int64) % 7 == 4  # 1970-01-05 was a Monday
        shift += np.where(mondays, 0.15, 0.0)[None, :].astype(np.float32)
        shift[self._after(Category.bullying)] += 2.0
        shift[self._lead_in(Category.school_non_attendance, 20)] += 0.8
        shift[self._after(Category.school_non_attendance)] += 1.2
        shift[self._after(Category.young_carer)] += 0.5
        hardship_days = self.pupils.hardship_onset[:, None] <= self.days[None, :]
        shift[hardship_days] += 0.2
        student, day = np.nonzero(checked_in)
        level = shift[student, day] + rng.standard_normal(len(student)).astype(np.float32)
        weather = np.searchsorted(WEATHER_CUTS, level)
        reason, has_reason = self._mood_reasons(student, day, weather)
        return Rows(
            MoodCheckin,
            Source.school_platform,
            {
                "student_id": self.pupils.key[student],
                "day": self.days[day],
                "weather": WEATHER[weather],
                "reason": reason,
            },
            missing={"reason": ~has_reason},
        )

    def _mood_reasons(
        self, student: NDArray[np.int64], day: NDArray[np.int64], weather: NDArray[np.int64]
    ) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
        """A short reason on some check-ins; a child with planted signs often names the theme."""
        rng = self.rng
        low = weather >= 2
        has_reason = np.where(low, rng.random(len(weather)) < 0.3, rng.random(len(weather)) < 0.04)
        themes = ["everyday", "friends", "family", "school"]
        theme = np.zeros(len(student), dtype=np.int8)
        for number, category in enumerate(
            (Category.bullying, Category.young_carer, Category.school_non_attendance), start=1
        ):
            showing = self._after(category)
            if category is Category.school_non_attendance:
                showing |= self._lead_in(category, 20)
            theme[showing[student, day] & low & (rng.random(len(student)) < 0.6)] = number
        reason = np.full(len(student), None, dtype=object)
        for (topic, mood), texts in mood_reasons().items():
            chosen = has_reason & (theme == themes.index(topic)) & (low == (mood == "low"))
            reason[chosen] = np.array(texts.tolist(), dtype=object)[
                rng.integers(0, len(texts), int(chosen.sum()))
            ]
        return reason, has_reason

    # 保健室来室 -------------------------------------------------------------------------------
    def nurse_rows(self, marks: NDArray[np.int8]) -> Rows:
        rng, shape = self.rng, self.shape
        present = (marks == PRESENT) | (marks == LATE) | (marks == EARLY_LEAVE)
        rate = np.broadcast_to(rng.gamma(1.2, 0.01, size=shape[0])[:, None], shape).copy()
        rate[self._after(Category.bullying)] += 0.06
        rate[self._lead_in(Category.school_non_attendance, 20)] += 0.08
        rate[self._after(Category.school_non_attendance)] += 0.05  # 保健室登校 on the days they come
        rate[self._after(Category.young_carer)] += 0.02
        student, day = np.nonzero(present & (rng.random(shape) < rate))
        mode = self._mode()[student, day]
        complaint = (rng.random(len(student))[:, None] > COMPLAINT_MIX[mode]).sum(axis=1)
        complaint = np.minimum(complaint, len(COMPLAINTS) - 1)
        minutes_after_840 = rng.integers(0, 80, size=len(student)) * 5
        local = self.days[day].astype("datetime64[m]") + np.timedelta64(8 * 60 + 40, "m") + minutes_after_840
        stay = np.clip(np.rint(rng.lognormal(np.log(10), 0.6, size=len(student))), 3, 120).astype(np.int64)
        emotional = COMPLAINTS[complaint] == NurseComplaint.emotional.value
        stay[emotional] = np.minimum(stay[emotional] * 3, 120)
        unwell = np.isin(COMPLAINTS[complaint], ["headache", "fatigue", "stomachache"])
        sent_home = rng.random(len(student)) < np.where(unwell, 0.15, 0.03)
        return Rows(
            NurseVisit,
            Source.school_affairs,
            {
                "student_id": self.pupils.key[student],
                "visited_at": (local - JST).astype("datetime64[us]"),
                "complaint": COMPLAINTS[complaint],
                "minutes": stay,
                "sent_home": sent_home,
            },
            missing={
                "minutes": rng.random(len(student)) < 0.04,
                "sent_home": rng.random(len(student)) < 0.08,
            },
        )

    # 学習 platform ---------------------------------------------------------------------------
    def _weeks(self) -> NDArray[np.datetime64]:
        """The Mondays of the weeks that touch the school year."""
        first = np.datetime64(self.calendar.first_day)
        monday = first - ((first.astype(np.int64) - 4) % 7)
        return np.arange(monday, np.datetime64(self.calendar.last_day) + 1, 7).astype("datetime64[D]")

    def _week_factor(self, weeks: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """How much of their usual selves a child is each week: planted signs pull it down."""
        pupils = self.pupils
        factor = np.ones((len(pupils), len(weeks)))
        for category, weight in (
            (Category.school_non_attendance, 0.4),
            (Category.bullying, 0.85),
            (Category.young_carer, 0.7),
            (Category.long_term_illness, 0.3),
        ):
            showing = (pupils.category == category.value)[:, None] & (weeks[None, :] >= pupils.onset[:, None])
            factor[showing] *= weight
        factor[pupils.hardship_onset[:, None] <= weeks[None, :]] *= 0.8  # no quiet place or network at home
        return factor

    def _enrolled_between(
        self, first: NDArray[np.datetime64], last: NDArray[np.datetime64]
    ) -> NDArray[np.bool_]:
        """(students × periods): enrolled on some day of each period [first, last]."""
        pupils = self.pupils
        left = np.where(np.isnat(pupils.left_on), np.datetime64(self.calendar.last_day), pupils.left_on)
        return (pupils.enrolled_on[:, None] <= last[None, :]) & (left[:, None] >= first[None, :])

    def learning_rows(self) -> Rows:
        rng, pupils = self.rng, self.pupils
        weeks = self._weeks()
        school_days = np.array([((self.days >= w) & (self.days < w + 7)).sum() for w in weeks])
        engagement = rng.beta(6, 2, size=len(pupils))[:, None] * self._week_factor(weeks)
        open_days = np.minimum(7, school_days + 2)[None, :]
        in_session = np.where(school_days > 0, 1.0, 0.3)[None, :]
        sign_ins = rng.binomial(
            np.broadcast_to(open_days, engagement.shape), np.clip(engagement * in_session, 0, 1)
        )
        typical = 35 if self.school.kind.value == "junior_high" else 25
        minutes = np.rint(sign_ins * rng.lognormal(np.log(typical), 0.5, size=sign_ins.shape)).astype(
            np.int64
        )
        student, week = np.nonzero(self._enrolled_between(weeks, weeks + 6))
        outage = rng.integers(0, len(weeks))  # one week the platform's feed was lost: unknown, not zero
        lost = week == outage
        return Rows(
            LearningActivity,
            Source.school_platform,
            {
                "student_id": pupils.key[student],
                "week_start": weeks[week],
                "sign_in_days": sign_ins[student, week],
                "minutes": minutes[student, week],
            },
            missing={"sign_in_days": lost, "minutes": lost | (rng.random(len(student)) < 0.01)},
        )

    def assignment_rows(self) -> Rows:
        """One assignment a week per grade, due at 17:00 on the week's last school day."""
        rng, pupils = self.rng, self.pupils
        weeks = self._weeks()
        due_days = []
        for monday in weeks:
            in_week = self.days[(self.days >= monday) & (self.days < monday + 7)]
            if len(in_week) >= 3:
                due_days.append(in_week[-1])
        due_day = np.array(due_days, dtype="datetime64[D]")
        due_mondays = due_day - ((due_day.astype(np.int64) - 4) % 7).astype("timedelta64[D]")
        factor = self._week_factor(due_mondays)
        submits = rng.random(factor.shape) < rng.beta(10, 1, size=len(pupils))[:, None] * factor
        student, week = np.nonzero(self._enrolled_between(due_day, due_day))
        due_at = (due_day[week].astype("datetime64[m]") + np.timedelta64(17 * 60, "m") - JST).astype(
            "datetime64[us]"
        )
        late = rng.random(len(student)) < 0.15
        offset_minutes = np.where(
            late, rng.integers(1, 72 * 60, size=len(student)), -rng.integers(1, 96 * 60, size=len(student))
        )
        week_numbers = (due_mondays - weeks[0]).astype(np.int64) // 7 + 1
        grade = pupils.grade[student]
        ref = np.char.add(
            np.char.add(f"{self.school.slug}-g", grade.astype(str)),
            np.char.add("-w", np.char.zfill(week_numbers[week].astype(str), 2)),
        )
        return Rows(
            AssignmentSubmission,
            Source.school_platform,
            {
                "student_id": pupils.key[student],
                "assignment_ref": ref,
                "due_at": due_at,
                # Never before the child arrived: a 転入生's first hand-in comes after the 転入日.
                "submitted_at": np.maximum(
                    due_at + offset_minutes.astype("timedelta64[m]"),
                    (pupils.enrolled_on[student].astype("datetime64[m]") - JST).astype("datetime64[us]"),
                ),
            },
            missing={"submitted_at": ~submits[student, week]},
        )

    # 成績・給食費・就学援助 ---------------------------------------------------------------------
    def grade_rows(self) -> Rows:
        rng, pupils = self.rng, self.pupils
        subjects_by_grade: dict[int, list[str]] = world_shape()["subjects"]
        columns: dict[str, list[NDArray[Any]]] = {k: [] for k in ("student_id", "term", "subject", "score")}
        missing: list[NDArray[np.bool_]] = []
        for grade in np.unique(pupils.grade).tolist():
            subjects = subjects_by_grade[grade]
            in_grade = np.flatnonzero(pupils.grade == grade)
            ability = pupils.ability[in_grade][:, None] + rng.normal(
                0, 6, size=(len(in_grade), len(subjects))
            )
            for term, (_, term_end) in enumerate(self.calendar.terms, start=1):
                end = np.datetime64(term_end)
                left = np.where(np.isnat(pupils.left_on[in_grade]), end, pupils.left_on[in_grade])
                last_day = np.minimum(end, left)
                here = (pupils.enrolled_on[in_grade] <= last_day) & (
                    (left >= end) | (pupils.left_on[in_grade] == np.datetime64(self.calendar.graduation))
                )
                category, onset = pupils.category[in_grade], pupils.onset[in_grade]
                showing = onset <= last_day
                penalty = np.select(
                    [
                        showing & (category == Category.school_non_attendance.value),
                        showing & (category == Category.bullying.value),
                        showing & (category == Category.young_carer.value),
                    ],
                    [15.0, 6.0, 5.0],
                    0.0,
                )
                score = np.clip(np.rint(ability - penalty[:, None] + rng.normal(0, 4, ability.shape)), 0, 100)
                # 評価不能: too few days in class to grade; and now and then a score the school never entered.
                ungraded = showing & np.isin(
                    category, [Category.school_non_attendance.value, Category.long_term_illness.value]
                )
                blank = (ungraded[:, None] & (rng.random(score.shape) < 0.6)) | (
                    rng.random(score.shape) < 0.01
                )
                rows_here = np.flatnonzero(here)
                columns["student_id"].append(np.repeat(pupils.key[in_grade][rows_here], len(subjects)))
                columns["term"].append(np.full(len(rows_here) * len(subjects), term))
                columns["subject"].append(np.tile(np.array(subjects), len(rows_here)))
                columns["score"].append(score[rows_here].ravel().astype(np.int64))
                missing.append(blank[rows_here].ravel())
        joined = {k: np.concatenate(v) for k, v in columns.items()}
        joined["school_year"] = np.full(len(joined["term"]), self.calendar.school_year)
        return Rows(GradeRecord, Source.school_affairs, joined, missing={"score": np.concatenate(missing)})

    def fee_rows(self) -> Rows:
        """学校給食費 each month but August; arrears where a family in hardship gets no aid."""
        rng, pupils = self.rng, self.pupils
        year = self.calendar.school_year
        months = np.array(
            [np.datetime64(date(year + (m < 4), m, 1)) for m in (4, 5, 6, 7, 9, 10, 11, 12, 1, 2, 3)]
        )
        month_ends = (months.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1
        student, month = np.nonzero(self._enrolled_between(months, month_ends))
        fee = int(world_shape()["lunch_fee_yen"][self.school.kind.value])
        # 就学援助 pays lunch from two months after an approval; before that a poor family may fall behind.
        aid_from = np.where(
            pupils.aid == "approved",
            (pupils.hardship_onset.astype("datetime64[M]") + 2).astype("datetime64[D]"),
            np.datetime64("NaT", "D"),
        )
        month_day = months[month]
        struggling = (pupils.hardship_onset[student] <= month_day) & ~(aid_from[student] <= month_day)
        arrears = rng.random(len(student)) < np.where(struggling, 0.55, 0.01)
        paid = np.where(arrears, np.where(rng.random(len(student)) < 0.6, 0, fee // 2), fee)
        unknown = rng.random(len(student)) < 0.015  # the school did not say
        return Rows(
            FeeStatus,
            Source.school_affairs,
            {
                "student_id": pupils.key[student],
                "month": month_day,
                "billed_yen": np.full(len(student), fee),
                "paid_yen": paid,
                "arrears": arrears,
            },
            missing={"billed_yen": rng.random(len(student)) < 0.005, "paid_yen": unknown, "arrears": unknown},
        )

    def aid_rows(self) -> Rows:
        known = self.pupils.aid != ""
        return Rows(
            SchoolAidStatus,
            Source.school_affairs,
            {
                "student_id": self.pupils.key[known],
                "school_year": np.full(int(known.sum()), self.calendar.school_year),
                "status": self.pupils.aid[known],
            },
        )

    # マイナポータル「わたしの情報」 ------------------------------------------------------------
    def myna_rows(self) -> tuple[Rows, Rows]:
        """Household facts and benefit receipt as of April 1 and October 1, for children enrolled then."""
        rng, pupils = self.rng, self.pupils
        year = self.calendar.school_year
        as_of_dates = np.array([np.datetime64(date(year, 4, 1)), np.datetime64(date(year, 10, 1))])
        student, snapshot = np.nonzero(self._enrolled_between(as_of_dates, as_of_dates))
        as_of = as_of_dates[snapshot]
        adults, children = pupils.adults[student], pupils.children[student]
        care = pupils.care_need[student] & ~(pupils.care_since[student] > as_of)
        size = len(student)
        household = Rows(
            HouseholdInfo,
            Source.myna_portal,
            {
                "student_id": pupils.key[student],
                "as_of": as_of,
                "household_size": adults + children,
                "adults": adults,
                "single_parent": pupils.single_parent[student],
                "member_needing_care": care,
            },
            missing={
                name: rng.random(size) < 0.03
                for name in ("household_size", "adults", "single_parent", "member_needing_care")
            },
        )
        households = int(pupils.household.max(initial=0)) + 1
        welfare_h = rng.random(households) < 0.12
        allowance_h = rng.random(households) < 0.4
        poor = pupils.hardship_onset[student] <= as_of
        poor_all_year = pupils.hardship_onset[student] == np.datetime64(date(year, 4, 1))
        h = pupils.household[student]
        receiving = {
            Benefit.child_allowance: np.ones(size, dtype=bool),
            Benefit.child_rearing_allowance: pupils.single_parent[student] & (poor | allowance_h[h]),
            Benefit.public_assistance: poor & welfare_h[h],
            Benefit.resident_tax_exempt: poor_all_year
            & (welfare_h[h] | allowance_h[h] | (pupils.adults[student] == 1)),
            Benefit.school_attendance_aid: (pupils.aid[student] == "approved") & poor,
        }
        benefits = list(receiving)
        benefit_rows = Rows(
            BenefitStatus,
            Source.myna_portal,
            {
                "student_id": np.tile(pupils.key[student], len(benefits)),
                "benefit": np.repeat(np.array([b.value for b in benefits]), size),
                "as_of": np.tile(as_of, len(benefits)),
                "receiving": np.concatenate([receiving[b] for b in benefits]),
            },
            missing={"receiving": rng.random(size * len(benefits)) < 0.03},
        )
        return household, benefit_rows
