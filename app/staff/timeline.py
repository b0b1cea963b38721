"""One child's history on one time axis, drawn as server-side SVG (no script, no CDN).

Lanes: attendance as a calendar heatmap (a column per week, a row per weekday), the 心の天気
mood line, nurse visits, weekly learning activity, term grades, lunch fees, and the people's
side: alerts, workflow steps and observations. A lane the role may not see, or the family did
not share, is drawn as a grey band that says so: blank is never drawn as zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlmodel import Session, col, select

from app.core.config import get_settings
from app.roster.models import SchoolDay
from app.sources.models import (
    AttendanceDay,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    SchoolAidStatus,
    Weather,
)
from app.staff.models import OBSERVATION_WORDING, StaffObservation, SupportAction
from app.staff.service import ChildView
from consent.scopes import Scope
from rules.models import ALERT_STATUS_WORDING, CATEGORY_WORDING, Alert, AlertEvent, AlertEventKind

WEEKS = 26
"""How far back the screen looks by default: half a school year."""

# Attendance cells: colour and words for every state a school day can be in.
DAY_STATES: dict[str, tuple[str, str]] = {
    "present": ("#cfe8cf", "出席 present"),
    "late": ("#f6d98b", "遅刻 late"),
    "early_leave": ("#f3c27a", "早退 early leave"),
    "absent": ("#c0392b", "欠席 absent"),
    "excused": ("#a9c6e8", "出席停止・忌引 excused"),
    "not_enrolled": ("#ffffff", "在籍前 not enrolled"),
}
MOOD_LEVEL = {Weather.sunny: 4, Weather.cloudy: 3, Weather.rain: 2, Weather.thunder: 1}
MOOD_WORDS = {
    Weather.sunny: "晴れ",
    Weather.cloudy: "くもり",
    Weather.rain: "雨",
    Weather.thunder: "かみなり",
}
TERM_END = {1: (7, 20), 2: (12, 24), 3: (3, 24)}


@dataclass(frozen=True)
class Event:
    """A dated line of the text list under the chart (the chart's accessible twin)."""

    day: date
    lane: str
    text: str


@dataclass
class Timeline:
    view: ChildView
    start: date
    end: date
    attendance: dict[date, str] = field(default_factory=dict)
    mood: list[tuple[date, Weather]] = field(default_factory=list)
    nurse: list[tuple[date, str]] = field(default_factory=list)
    learning: list[tuple[date, int | None]] = field(default_factory=list)
    grades: list[tuple[date, str, float]] = field(default_factory=list)
    fees: list[tuple[date, bool | None]] = field(default_factory=list)
    aid: list[tuple[int, str]] = field(default_factory=list)
    household: list[str] = field(default_factory=list)
    benefits: list[str] = field(default_factory=list)
    alerts: list[Event] = field(default_factory=list)
    observations: list[Event] = field(default_factory=list)

    def events(self) -> list[Event]:
        lines = [*self.alerts, *self.observations]
        lines += [Event(day, "保健室", text) for day, text in self.nurse]
        lines += [Event(day, "成績", f"{subject} {score:.0f}") for day, subject, score in self.grades]
        lines += [Event(month, "給食費", "未納 arrears") for month, arrears in self.fees if arrears]
        absences = [day for day, state in self.attendance.items() if state == "absent"]
        lines += [Event(day, "出欠", "欠席 absent") for day in absences]
        return sorted(lines, key=lambda event: event.day, reverse=True)


def _local_day(moment: datetime) -> date:
    zone = ZoneInfo(get_settings().timezone)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
    return aware.astimezone(zone).date()


def build(*, session: Session, view: ChildView, end: date, weeks: int = WEEKS) -> Timeline:
    """Gather what the view shares for the weeks ending on END (a Sunday is added to close the
    last week). Only categories in `view.shared` are read."""
    start = end - timedelta(days=end.weekday()) - timedelta(weeks=weeks - 1)
    student = view.student
    sid = student.id
    timeline = Timeline(view=view, start=start, end=end)
    if view.sees(Scope.school_attendance):
        # Columns, not entities: a half year of days per lane, and entity loading was the cost.
        calendar = session.exec(
            select(col(SchoolDay.day)).where(
                SchoolDay.school_id == student.school_id,
                col(SchoolDay.day) >= start,
                col(SchoolDay.day) <= end,
            )
        ).all()
        for day in calendar:
            gone = student.left_on is not None and day > student.left_on
            timeline.attendance[day] = "not_enrolled" if day < student.enrolled_on or gone else "present"
        marks = session.exec(
            select(col(AttendanceDay.day), col(AttendanceDay.mark)).where(
                AttendanceDay.student_id == sid,
                col(AttendanceDay.day) >= start,
                col(AttendanceDay.day) <= end,
            )
        ).all()
        # An absence outranks lateness on the same day; excused outranks both.
        rank = {"present": 0, "late": 1, "early_leave": 1, "absent": 2, "excused": 3}
        for day, mark in marks:
            state = mark.value
            if rank.get(state, 0) >= rank.get(timeline.attendance.get(day, "present"), 0):
                timeline.attendance[day] = state
        timeline.attendance = dict(sorted(timeline.attendance.items()))
    if view.sees(Scope.school_mood):
        timeline.mood = [
            (day, weather)
            for day, weather in session.exec(
                select(col(MoodCheckin.day), col(MoodCheckin.weather))
                .where(
                    MoodCheckin.student_id == sid, col(MoodCheckin.day) >= start, col(MoodCheckin.day) <= end
                )
                .order_by(col(MoodCheckin.day))
            )
        ]
    if view.sees(Scope.school_nurse_visits):
        for visited_at, complaint, went_home in session.exec(
            select(col(NurseVisit.visited_at), col(NurseVisit.complaint), col(NurseVisit.sent_home))
            .where(NurseVisit.student_id == sid)
            .order_by(col(NurseVisit.visited_at))
        ):
            visit_day = _local_day(visited_at)
            if start <= visit_day <= end:
                sent_home = "（早退）" if went_home else ""
                timeline.nurse.append((visit_day, f"{complaint.value}{sent_home}"))
    if view.sees(Scope.school_learning):
        timeline.learning = [
            (week_start, sign_in_days)
            for week_start, sign_in_days in session.exec(
                select(col(LearningActivity.week_start), col(LearningActivity.sign_in_days))
                .where(
                    LearningActivity.student_id == sid,
                    col(LearningActivity.week_start) >= start,
                    col(LearningActivity.week_start) <= end,
                )
                .order_by(col(LearningActivity.week_start))
            )
        ]
    if view.sees(Scope.school_grades):
        for school_year, term, subject, score in session.exec(
            select(
                col(GradeRecord.school_year),
                col(GradeRecord.term),
                col(GradeRecord.subject),
                col(GradeRecord.score),
            ).where(GradeRecord.student_id == sid)
        ):
            month, day_of_month = TERM_END[term]
            year = school_year + (1 if term == 3 else 0)
            term_end = date(year, month, day_of_month)
            if start <= term_end <= end and score is not None:
                timeline.grades.append((term_end, subject, float(score)))
        timeline.grades.sort()
    if view.sees(Scope.school_fees):
        timeline.fees = [
            (month, arrears)
            for month, arrears in session.exec(
                select(col(FeeStatus.month), col(FeeStatus.arrears))
                .where(FeeStatus.student_id == sid, col(FeeStatus.month) >= start.replace(day=1))
                .where(col(FeeStatus.month) <= end)
                .order_by(col(FeeStatus.month))
            )
        ]
    if view.sees(Scope.school_aid):
        timeline.aid = [
            (school_year, status.value)
            for school_year, status in session.exec(
                select(col(SchoolAidStatus.school_year), col(SchoolAidStatus.status))
                .where(SchoolAidStatus.student_id == sid)
                .order_by(col(SchoolAidStatus.school_year))
            )
        ]
    if view.sees(Scope.myna_household):
        latest = session.exec(
            select(HouseholdInfo)
            .where(HouseholdInfo.student_id == sid)
            .order_by(col(HouseholdInfo.as_of).desc())
        ).first()
        if latest is not None:
            timeline.household = _household_facts(latest)
    if view.sees(Scope.myna_benefits):
        for benefit in session.exec(
            select(BenefitStatus).where(BenefitStatus.student_id == sid).order_by(col(BenefitStatus.as_of))
        ):
            receiving = {True: "受給あり", False: "受給なし", None: "不明"}[benefit.receiving]
            timeline.benefits.append(f"{benefit.benefit.value}: {receiving}（{benefit.as_of:%Y-%m-%d}時点）")
    _people_side(session=session, timeline=timeline)
    return timeline


def _household_facts(info: HouseholdInfo) -> list[str]:
    def known(value: object, words: str) -> str:
        return f"{words}: {'不明' if value is None else value}"

    return [
        f"{info.as_of:%Y-%m-%d}時点",
        known(info.household_size, "世帯人数"),
        known(info.adults, "大人の人数"),
        known(
            {True: "はい", False: "いいえ"}.get(info.single_parent)
            if info.single_parent is not None
            else None,
            "ひとり親世帯",
        ),
        known(
            {True: "はい", False: "いいえ"}.get(info.member_needing_care)
            if info.member_needing_care is not None
            else None,
            "介護・障がいのある家族",
        ),
    ]


def _people_side(*, session: Session, timeline: Timeline) -> None:
    sid = timeline.view.student.id
    for at, kind, to_status, alert_category in session.exec(
        select(col(AlertEvent.at), col(AlertEvent.kind), col(AlertEvent.to_status), col(Alert.category))
        .join(Alert, col(Alert.id) == AlertEvent.alert_id)
        .where(Alert.student_id == sid)
        .order_by(col(AlertEvent.at))
    ):
        day = _local_day(at)
        if not timeline.start <= day <= timeline.end:
            continue
        category = CATEGORY_WORDING[alert_category].ja
        if kind is AlertEventKind.opened:
            text = f"アラート（{category}）"
        elif kind is AlertEventKind.status_changed and to_status is not None:
            text = f"{category}: {ALERT_STATUS_WORDING[to_status].ja}"
        else:
            continue
        timeline.alerts.append(Event(day, "アラート・対応", text))
    for action in session.exec(select(SupportAction).where(SupportAction.student_id == sid)):
        planned = _local_day(action.created_at)
        if timeline.start <= planned <= timeline.end:
            timeline.alerts.append(
                Event(planned, "アラート・対応", f"支援を計画: {action.what}（期限 {action.due_on}）")
            )
        if action.done_at is not None and timeline.start <= _local_day(action.done_at) <= timeline.end:
            timeline.alerts.append(
                Event(_local_day(action.done_at), "アラート・対応", f"支援を完了: {action.what}")
            )
    timeline.alerts.sort(key=lambda event: event.day)
    for observation in session.exec(
        select(StaffObservation)
        .where(StaffObservation.student_id == sid, col(StaffObservation.observed_on) >= timeline.start)
        .order_by(col(StaffObservation.observed_on))
    ):
        wording = OBSERVATION_WORDING[observation.category].ja
        timeline.observations.append(Event(observation.observed_on, "所見", f"{wording}: {observation.note}"))


# --- drawing -------------------------------------------------------------------------------

LEFT, WIDTH, TOP = 150, 960, 28
LANES: list[tuple[str, str, Scope | None, int]] = [
    # key, label, the category that must be shared (None: the school's own records), height
    ("attendance", "出欠 Attendance", Scope.school_attendance, 62),
    ("mood", "心の天気 Mood", Scope.school_mood, 48),
    ("nurse", "保健室 Nurse", Scope.school_nurse_visits, 26),
    ("learning", "学習 Learning", Scope.school_learning, 30),
    ("grades", "成績 Grades", Scope.school_grades, 40),
    ("fees", "給食費 Lunch fees", Scope.school_fees, 22),
    ("alerts", "アラート・対応 Alerts", None, 26),
    ("observations", "所見 Observations", None, 26),
]


def render_svg(timeline: Timeline) -> Markup:
    """The chart as inline SVG markup; every text in it is escaped."""
    span = (timeline.end - timeline.start).days + 1
    px_per_day = (WIDTH - LEFT - 10) / span

    def x(day: date) -> float:
        return round(LEFT + (day - timeline.start).days * px_per_day, 1)

    height = TOP + sum(lane[3] + 8 for lane in LANES) + 4
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="timeline-title" font-family="sans-serif" font-size="11">',
        '<title id="timeline-title">こどもの経過 / The child\'s timeline</title>',
    ]
    # Month grid and labels on the shared axis.
    month = timeline.start.replace(day=1)
    while month <= timeline.end:
        if month >= timeline.start:
            out.append(f'<line x1="{x(month)}" y1="{TOP - 6}" x2="{x(month)}" y2="{height}" stroke="#ddd"/>')
            out.append(f'<text x="{x(month) + 2}" y="{TOP - 10}" fill="#444">{month:%Y-%m}</text>')
        month = (month + timedelta(days=32)).replace(day=1)
    y = TOP
    for key, label, scope, lane_height in LANES:
        out.append(f'<text x="4" y="{y + 14}" fill="#1a1a1a">{escape(label)}</text>')
        withheld = timeline.view.withheld(scope) if scope is not None else None
        if withheld is not None:
            out.append(
                f'<rect x="{LEFT}" y="{y}" width="{WIDTH - LEFT - 10}" height="{lane_height}" fill="#eee"/>'
                f'<text x="{LEFT + 8}" y="{y + lane_height / 2 + 4}" fill="#555">{escape(withheld)}</text>'
            )
        else:
            out.extend(_LANE_DRAWERS[key](timeline, x, y, lane_height, px_per_day))
        y += lane_height + 8
    out.append("</svg>")
    # Safe: every piece of text that came from data went through escape() above.
    return Markup("".join(out))  # noqa: S704


def _attendance(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    cell = max(px * 7 - 1, 2)
    row = (h - 2) / 5
    shapes = []
    for day, state in timeline.attendance.items():
        if day.weekday() > 4:
            continue
        week_start = day - timedelta(days=day.weekday())
        colour, words = DAY_STATES[state]
        shapes.append(
            f'<rect x="{x(week_start)}" y="{round(y + day.weekday() * row, 1)}" width="{round(cell, 1)}" '
            f'height="{round(row - 1, 1)}" fill="{colour}" stroke="#bbb" stroke-width="0.3">'
            f"<title>{day:%Y-%m-%d} {escape(words)}</title></rect>"
        )
    if not shapes:
        shapes.append(_no_records(y, h))
    return shapes


def _mood(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    if not timeline.mood:
        return [_no_records(y, h)]

    def level_y(weather: Weather) -> float:
        return round(y + h - 4 - (MOOD_LEVEL[weather] - 1) * (h - 8) / 3, 1)

    points = " ".join(f"{x(day)},{level_y(weather)}" for day, weather in timeline.mood)
    shapes = [f'<polyline points="{points}" fill="none" stroke="#0b5cad" stroke-width="1.2"/>']
    shapes += [
        f'<circle cx="{x(day)}" cy="{level_y(weather)}" r="1.6" fill="#0b5cad">'
        f"<title>{day:%Y-%m-%d} {MOOD_WORDS[weather]}</title></circle>"
        for day, weather in timeline.mood
    ]
    return shapes


def _nurse(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    return [
        f'<circle cx="{x(day)}" cy="{y + h / 2}" r="4" fill="#8e44ad"><title>{day:%Y-%m-%d} '
        f"{escape(text)}</title></circle>"
        for day, text in timeline.nurse
    ] or [_no_records(y, h)]


def _learning(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    shapes = []
    for week, days in timeline.learning:
        if days is None:
            shapes.append(
                f'<rect x="{x(week)}" y="{y}" width="{round(px * 7 - 1, 1)}" height="{h}" fill="#f3f3f3">'
                f"<title>{week:%Y-%m-%d} 不明 unknown</title></rect>"
            )
            continue
        bar = round(h * days / 7, 1)
        shapes.append(
            f'<rect x="{x(week)}" y="{y + h - bar}" width="{round(px * 7 - 1, 1)}" height="{bar}" '
            f'fill="#16a085"><title>{week:%Y-%m-%d} ログイン{days}日</title></rect>'
        )
    return shapes or [_no_records(y, h)]


def _grades(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    by_day: dict[date, list[float]] = {}
    for day, _subject, score in timeline.grades:
        by_day.setdefault(day, []).append(score)
    shapes = []
    for day, scores in sorted(by_day.items()):
        mean = sum(scores) / len(scores)
        cy = round(y + h - 4 - mean / 100 * (h - 8), 1)
        shapes.append(
            f'<circle cx="{x(day)}" cy="{cy}" r="4" fill="#d35400"><title>{day:%Y-%m-%d} 平均 {mean:.0f}'
            f'</title></circle><text x="{x(day) + 6}" y="{cy + 4}">{mean:.0f}</text>'
        )
    return shapes or [_no_records(y, h)]


def _fees(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    shapes = []
    for month, arrears in timeline.fees:
        colour, words = {True: ("#c0392b", "未納"), False: ("#cfe8cf", "納付済"), None: ("#eee", "不明")}[
            arrears
        ]
        shapes.append(
            f'<rect x="{x(max(month, timeline.start))}" y="{y}" width="{round(px * 28, 1)}" height="{h}" '
            f'fill="{colour}" stroke="#bbb" stroke-width="0.3"><title>{month:%Y-%m} {words}</title></rect>'
        )
    return shapes or [_no_records(y, h)]


def _marker_shapes(
    events: list[Event], x: Scale, y: int, h: int, colour: str, *, triangle: bool
) -> list[str]:
    shapes = []
    for event in events:
        cx, cy = x(event.day), y + h / 2
        points = (
            f"{cx},{cy - 6} {cx + 6},{cy + 5} {cx - 6},{cy + 5}"
            if triangle
            else f"{cx},{cy - 6} {cx + 5},{cy} {cx},{cy + 6} {cx - 5},{cy}"
        )
        shapes.append(
            f'<polygon points="{points}" fill="{colour}">'
            f"<title>{event.day:%Y-%m-%d} {escape(event.text)}</title></polygon>"
        )
    return shapes or [_no_records(y, h)]


def _alerts(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    return _marker_shapes(timeline.alerts, x, y, h, "#c0392b", triangle=True)


def _observations(timeline: Timeline, x: Scale, y: int, h: int, px: float) -> list[str]:
    return _marker_shapes(timeline.observations, x, y, h, "#2c3e50", triangle=False)


def _no_records(y: int, h: int) -> str:
    return f'<text x="{LEFT + 8}" y="{y + h / 2 + 4}" fill="#777">記録なし / no records in this period</text>'


Scale = Callable[[date], float]
Drawer = Callable[[Timeline, Scale, int, int, float], list[str]]
_LANE_DRAWERS: dict[str, Drawer] = {
    "attendance": _attendance,
    "mood": _mood,
    "nurse": _nurse,
    "learning": _learning,
    "grades": _grades,
    "fees": _fees,
    "alerts": _alerts,
    "observations": _observations,
}
