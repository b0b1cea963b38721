"""The consent vocabulary: data scopes (per source and category) and purposes, with plain words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """One category of a child's data from one source; each is its own toggle on the consent page."""

    school_attendance = "school.attendance"
    school_nurse_visits = "school.nurse_visits"
    school_grades = "school.grades"
    school_mood = "school.mood"
    school_learning = "school.learning"
    school_fees = "school.fees"
    school_aid = "school.aid"
    myna_household = "myna.household"
    myna_benefits = "myna.benefits"


class Purpose(StrEnum):
    early_support = "early_support"  # 早期発見と支援
    support_info = "support_info"  # 支援情報のお知らせ
    personalised_info = "personalised_info"  # あなたに合った支援情報


@dataclass(frozen=True)
class Wording:
    ja: str
    en: str


SCOPE_WORDING: dict[Scope, Wording] = {
    Scope.school_attendance: Wording("出欠の記録（欠席・遅刻・早退とその理由）", "Attendance"),
    Scope.school_nurse_visits: Wording("保健室の利用記録", "Nurse's room visits"),
    Scope.school_grades: Wording("成績（学期ごとの評価）", "Grades per term"),
    Scope.school_mood: Wording("心の天気（毎朝の気持ちの記録）", "Daily mood check-ins"),
    Scope.school_learning: Wording("学習の記録（ログイン・課題の提出）", "Learning activity"),
    Scope.school_fees: Wording("給食費の納付状況", "School lunch fees"),
    Scope.school_aid: Wording("就学援助の状況", "School attendance aid"),
    Scope.myna_household: Wording("世帯の情報（マイナポータル）", "Household (Myna Portal)"),
    Scope.myna_benefits: Wording(
        "手当・援助の受給状況（児童手当・児童扶養手当・生活保護・住民税非課税など）",
        "Benefits received (Myna Portal)",
    ),
}

PURPOSE_WORDING: dict[Purpose, Wording] = {
    Purpose.early_support: Wording(
        "困りごとの早期発見と支援（学校・市の職員が支援の必要に早く気づくため）",
        "Early notice and support by school and city staff",
    ),
    Purpose.support_info: Wording(
        "地域の支援情報のお知らせ（すべてのご家庭に同じ内容をお届けします）",
        "Local support information (the same for every family)",
    ),
    Purpose.personalised_info: Wording(
        "あなたのご家庭に合った支援制度のご案内", "Support schemes that fit your family"
    ),
}
