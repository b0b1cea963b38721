"""The features a rule may use: names, meaning, windows, the consent scope each needs.

This registry is the whole vocabulary of the catalog. A name that is not here cannot be used
in a rule, and nothing here is a status attribute of the child (sex, nationality): those are
kept only to measure screening per group. Benefit and household facts are `status` features:
they may add weight to a rule that fired on behaviour, never fire one alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from app.staff.models import OBSERVATION_WORDING, ObservationCategory
from consent.scopes import Scope, Wording


class Window(StrEnum):
    """A period ending on the as-of day (inclusive)."""

    d7 = "7d"
    d14 = "14d"
    d30 = "30d"
    d90 = "90d"
    term = "term"  # the current 学期: Apr–Aug, Sep–Dec, Jan–Mar
    ytd = "ytd"  # the school year (年度) so far, from 1 April


WINDOW_WORDING: dict[Window, Wording] = {
    Window.d7: Wording("直近7日間", "last 7 days"),
    Window.d14: Wording("直近14日間", "last 14 days"),
    Window.d30: Wording("直近30日間", "last 30 days"),
    Window.d90: Wording("直近90日間", "last 90 days"),
    Window.term: Wording("今学期", "this term"),
    Window.ytd: Wording("今年度", "this school year"),
}


def school_year_start(as_of: date) -> date:
    return date(as_of.year if as_of.month >= 4 else as_of.year - 1, 4, 1)


def term_start(as_of: date) -> date:
    if as_of.month >= 9:
        return date(as_of.year, 9, 1)
    if as_of.month >= 4:
        return date(as_of.year, 4, 1)
    return date(as_of.year, 1, 1)


def window_start(window: Window, as_of: date) -> date:
    if window is Window.term:
        return term_start(as_of)
    if window is Window.ytd:
        return school_year_start(as_of)
    return as_of - timedelta(days=int(window.value.removesuffix("d")) - 1)


class Kind(StrEnum):
    behaviour = "behaviour"  # what happened: may fire a rule
    status = "status"  # a fact about the household: may only add weight


class ValueType(StrEnum):
    tally = "count"  # a whole number ≥ 0 (a member named `count` would shadow str.count)
    rate = "rate"  # between 0 and 1
    score = "score"  # a number on the 0–100 grade scale (or a difference of two)
    flag = "flag"  # yes / no


class Family(StrEnum):
    """Features computed together by one set-based query."""

    attendance = "attendance"
    nurse = "nurse"
    mood = "mood"
    learning = "learning"
    grades = "grades"
    fees = "fees"
    status = "status"
    observations = "observations"


_NOT_ENROLLED_WHOLE_PERIOD = Wording(
    "在籍期間が期間全体をカバーしていない（転入など）",
    "the child was not enrolled for the whole period (e.g. a transfer)",
)


STAFF_RECORD = None
"""The `scope` of a feature counted from the school's own staff records (日常所見), not from a
category the family shares: read for every child screened, that is every child whose family
granted early support at all, and for no other child."""


@dataclass(frozen=True)
class Feature:
    name: str
    family: Family
    scope: Scope | None
    """The consent category it reads, or STAFF_RECORD."""
    value_type: ValueType
    wording: Wording
    kind: Kind = Kind.behaviour
    window: Window | None = None
    unknown_when: Wording = _NOT_ENROLLED_WHOLE_PERIOD


def _windowed(
    stem: str,
    family: Family,
    scope: Scope | None,
    value_type: ValueType,
    ja: str,
    en: str,
    unknown_when: Wording | None = None,
) -> list[Feature]:
    extra = {} if unknown_when is None else {"unknown_when": unknown_when}
    return [
        Feature(
            name=f"{stem}_{window.value}",
            family=family,
            scope=scope,
            value_type=value_type,
            window=window,
            wording=Wording(f"{WINDOW_WORDING[window].ja}の{ja}", f"{en}, {WINDOW_WORDING[window].en}"),
            **extra,  # type: ignore[arg-type]
        )
        for window in Window
    ]


_RATE_UNKNOWN = Wording(
    "在籍期間が期間全体をカバーしていない、または出席すべき日がない",
    "not enrolled for the whole period, or no day the child had to attend",
)
_MOOD_UNKNOWN = Wording(
    "期間中に心の天気の記録がない、または在籍期間が期間全体をカバーしていない",
    "no mood check-in in the period, or not enrolled for the whole period",
)
_LEARNING_UNKNOWN = Wording(
    "期間中の週の記録が欠けている",
    "a week of the period has no record",
)
_ASSIGNMENT_UNKNOWN = Wording(
    "期間中に提出期限の課題がない、または在籍期間が期間全体をカバーしていない",
    "no assignment was due in the period, or not enrolled for the whole period",
)

A, N, M, L = Family.attendance, Family.nurse, Family.mood, Family.learning
_ALL: list[Feature] = [
    *_windowed(
        "required_days",
        A,
        Scope.school_attendance,
        ValueType.tally,
        "出席しなければならない日数",
        "days the child had to attend",
    ),
    *_windowed("absence_days", A, Scope.school_attendance, ValueType.tally, "欠席日数", "days absent"),
    *_windowed(
        "absence_rate",
        A,
        Scope.school_attendance,
        ValueType.rate,
        "欠席率（欠席日数÷出席しなければならない日数）",
        "share of required days absent",
        _RATE_UNKNOWN,
    ),
    *_windowed(
        "attendance_rate",
        A,
        Scope.school_attendance,
        ValueType.rate,
        "出席率（出席日数÷出席しなければならない日数）",
        "share of required days attended",
        _RATE_UNKNOWN,
    ),
    *_windowed("late_arrivals", A, Scope.school_attendance, ValueType.tally, "遅刻の回数", "late arrivals"),
    *_windowed("early_leaves", A, Scope.school_attendance, ValueType.tally, "早退の回数", "early leaves"),
    *_windowed(
        "absence_reason_family_care",
        A,
        Scope.school_attendance,
        ValueType.tally,
        "「家事・家族の世話」を理由とする欠席日数",
        "days absent for family care",
    ),
    Feature(
        name="consecutive_absence_days",
        family=A,
        scope=Scope.school_attendance,
        value_type=ValueType.tally,
        wording=Wording(
            "直近まで続いている連続欠席日数（出席停止・忌引の日は数えず、途切れともしない）",
            "school days absent in a row up to the latest school day (excused days skipped)",
        ),
        unknown_when=Wording(
            "連続欠席が在籍開始日までさかのぼる（それ以前は不明）",
            "the run of absences reaches back to the first day of enrolment",
        ),
    ),
    *_windowed(
        "nurse_visits",
        N,
        Scope.school_nurse_visits,
        ValueType.tally,
        "保健室の利用回数",
        "nurse's room visits",
    ),
    *_windowed(
        "nurse_visits_emotional",
        N,
        Scope.school_nurse_visits,
        ValueType.tally,
        "「気持ちの不調」での保健室の利用回数",
        "nurse's room visits for feeling low",
    ),
    *_windowed(
        "mood_checkin_days",
        M,
        Scope.school_mood,
        ValueType.tally,
        "心の天気を記録した日数",
        "days with a mood check-in",
    ),
    *_windowed(
        "mood_low_days",
        M,
        Scope.school_mood,
        ValueType.tally,
        "心の天気で「雨」「かみなり」を選んだ日数",
        "days the child picked rain or thunder",
        _MOOD_UNKNOWN,
    ),
    *_windowed(
        "mood_thunder_days",
        M,
        Scope.school_mood,
        ValueType.tally,
        "心の天気で「かみなり」を選んだ日数",
        "days the child picked thunder",
        _MOOD_UNKNOWN,
    ),
    *_windowed(
        "sign_in_days",
        L,
        Scope.school_learning,
        ValueType.tally,
        "学習 platform にログインした日数（期間内の完結した週）",
        "days signed in to the learning platform (whole weeks in the period)",
        _LEARNING_UNKNOWN,
    ),
    *_windowed(
        "assignments_missed",
        L,
        Scope.school_learning,
        ValueType.tally,
        "期限までに提出されなかった課題の数",
        "assignments not submitted by their due time",
        _ASSIGNMENT_UNKNOWN,
    ),
    *_windowed(
        "assignment_submission_rate",
        L,
        Scope.school_learning,
        ValueType.rate,
        "課題の提出率",
        "share of assignments submitted on time",
        _ASSIGNMENT_UNKNOWN,
    ),
    Feature(
        name="grade_average_latest_term",
        family=Family.grades,
        scope=Scope.school_grades,
        value_type=ValueType.score,
        wording=Wording("直近の終わった学期の成績の平均（100点満点）", "average score, last term"),
        unknown_when=Wording("終わった学期の成績がない", "no score for a finished term"),
    ),
    Feature(
        name="grade_change_from_previous_term",
        family=Family.grades,
        scope=Scope.school_grades,
        value_type=ValueType.score,
        wording=Wording(
            "直近の学期の平均と、その前の学期の平均との差（下がるとマイナス）",
            "change of the average score from the term before (negative is a drop)",
        ),
        unknown_when=Wording("比べる二つの学期の成績がそろっていない", "two terms are needed"),
    ),
    Feature(
        name="lunch_arrears_months",
        family=Family.fees,
        scope=Scope.school_fees,
        value_type=ValueType.tally,
        window=Window.ytd,
        wording=Wording("今年度の給食費が未納の月数", "months of school lunch arrears this year"),
        unknown_when=Wording(
            "今年度の給食費の記録がない、または未納かどうか不明の月がある",
            "no lunch fee record this year, or a month whose arrears are not known",
        ),
    ),
    *[
        Feature(
            name=name,
            family=Family.status,
            scope=scope,
            value_type=ValueType.flag,
            kind=Kind.status,
            wording=Wording(ja, en),
            unknown_when=Wording("記録がない、または不明と記録されている", "no record, or unknown"),
        )
        for name, scope, ja, en in [
            (
                "receives_child_rearing_allowance",
                Scope.myna_benefits,
                "児童扶養手当を受給している",
                "receives the child rearing allowance",
            ),
            (
                "receives_public_assistance",
                Scope.myna_benefits,
                "生活保護を受給している",
                "receives public assistance",
            ),
            (
                "resident_tax_exempt",
                Scope.myna_benefits,
                "住民税非課税世帯である",
                "the household is resident-tax exempt",
            ),
            (
                "school_aid_approved",
                Scope.school_aid,
                "今年度の就学援助が認定されている",
                "school attendance aid approved this year",
            ),
            (
                "single_parent_household",
                Scope.myna_household,
                "ひとり親世帯である",
                "single-parent household",
            ),
            (
                "household_member_needing_care",
                Scope.myna_household,
                "介護や障害の認定を受けた家族がいる",
                "a household member is certified for care or disability",
            ),
        ]
    ],
]

# Seed 003: staff's own judgement (現場職員の主観的評価) must count beside the data. A count of
# what staff recorded, zero when nobody recorded one; the catalog refuses a rule that such a
# count could fire without a fact from the data (rules.catalog).
_ALL += [
    *_windowed(
        "observations",
        Family.observations,
        STAFF_RECORD,
        ValueType.tally,
        "職員が記録した日常所見の数（すべての種類）",
        "daily observations recorded by staff, any kind",
    ),
    *[
        feature
        for category in ObservationCategory
        for feature in _windowed(
            f"observations_{category.value}",
            Family.observations,
            STAFF_RECORD,
            ValueType.tally,
            f"職員が記録した「{OBSERVATION_WORDING[category].ja}」の日常所見の数",
            f"daily observations recorded by staff: {OBSERVATION_WORDING[category].en.lower()}",
        )
    ],
]

FEATURES: dict[str, Feature] = {feature.name: feature for feature in _ALL}

# Kept out of the vocabulary on purpose (DOMAIN.md: DEWS); the loader names the reason.
FORBIDDEN_INPUTS = frozenset(
    {"sex", "gender", "nationality", "ethnicity", "birth_country", "foreign_national"}
)
