"""Source-data tables. Every row says where it came from (source, sync run, grant, fetched at).

Blank is not zero (DOMAIN.md lesson 3): a value the source did not give is NULL, never 0.
`grant_id` and `sync_run_id` are plain integers, not foreign keys: the consent and connectors
domains own those tables, and domains meet through each other's functions, not through each
other's tables. `sync_run_id` is indexed (screening finds the rows synced since its last run).
`grant_id` is not: a grant is one child's, so deleting a revoked grant's data reads that child's
rows by the natural key's index, which starts with the child (`app.sources.erasure`). Its own
index cost every row the sync writes (a city's year is 77 million rows) and served only that.

On PostgreSQL the natural key's index also carries (INCLUDE) the columns screening reads of a
child's rows, so that reading a few thousand children's rows needs the index alone
(migration 5e8a1f3c7b92).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow


class Source(StrEnum):
    school_affairs = "school_affairs"  # 統合型校務支援システム
    school_platform = "school_platform"  # 学習 platform
    myna_portal = "myna_portal"  # マイナポータル「わたしの情報」
    demo_loader = "demo_loader"  # written straight from the demo world (tests, benchmarks)


class Provenance(SQLModel):
    source: Source = Field(sa_type=enum_type(Source))
    sync_run_id: int | None = Field(default=None, index=True)
    grant_id: int | None = None
    fetched_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class AttendanceMark(StrEnum):
    absent = "absent"  # 欠席
    late = "late"  # 遅刻
    early_leave = "early_leave"  # 早退
    excused = "excused"  # 出席停止・忌引等: not required to attend, not an absence


class AttendanceReason(StrEnum):
    illness = "illness"  # 病気
    accident = "accident"  # 事故
    family_care = "family_care"  # 家事・家族の世話
    other = "other"  # その他
    suspension = "suspension"  # 出席停止 (e.g. infectious disease)
    bereavement = "bereavement"  # 忌引


class AttendanceDay(Provenance, table=True):
    """A daily attendance mark that is not plain presence.

    Storage choice: only exceptions are stored (about 5 % of student-days), and presence is
    derived from the school calendar (`school_day`) within the child's enrolment. A school year
    of 50,000 students is then ~0.5 M rows instead of ~10 M, so loading is ~20× less work, and
    every rate is one indexed scan of a small table joined to a 200-row calendar.
    """

    __tablename__ = "attendance_day"
    __table_args__ = (
        sa.UniqueConstraint("student_id", "day", "mark", postgresql_include=["reason"]),
        # Covering (mark, reason): "who was absent on these days" reads the index only.
        sa.Index("ix_attendance_day_day_student_mark", "day", "student_id", "mark", "reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    day: date
    mark: AttendanceMark = Field(sa_type=enum_type(AttendanceMark))
    reason: AttendanceReason | None = Field(default=None, sa_type=enum_type(AttendanceReason))


class NurseComplaint(StrEnum):
    headache = "headache"  # 頭痛
    stomachache = "stomachache"  # 腹痛
    injury = "injury"  # けが
    fatigue = "fatigue"  # 体調不良・だるさ
    emotional = "emotional"  # 気持ちの不調
    other = "other"


class NurseVisit(Provenance, table=True):
    """A visit to the nurse's room (保健室来室)."""

    __tablename__ = "nurse_visit"
    __table_args__ = (sa.UniqueConstraint("student_id", "visited_at"),)

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    visited_at: datetime = Field(sa_type=aware_datetime(), index=True)
    complaint: NurseComplaint = Field(sa_type=enum_type(NurseComplaint))
    minutes: int | None = None
    sent_home: bool | None = None


class GradeRecord(Provenance, table=True):
    """A term's score (0–100) in one subject."""

    __tablename__ = "grade_record"
    __table_args__ = (
        sa.UniqueConstraint("student_id", "school_year", "term", "subject", postgresql_include=["score"]),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    school_year: int
    term: int = Field(ge=1, le=3)
    subject: str = Field(max_length=16)
    score: int | None = Field(default=None, ge=0, le=100)


class LearningActivity(Provenance, table=True):
    """A week of activity on the school platform."""

    __tablename__ = "learning_activity"
    __table_args__ = (
        sa.UniqueConstraint("student_id", "week_start"),
        sa.Index("ix_learning_activity_week_student", "week_start", "student_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    week_start: date = Field(description="Monday")
    sign_in_days: int | None = Field(default=None, ge=0, le=7)
    minutes: int | None = Field(default=None, ge=0)


class AssignmentSubmission(Provenance, table=True):
    """An assignment given to the child; `submitted_at` NULL means not submitted."""

    __tablename__ = "assignment_submission"
    __table_args__ = (
        sa.UniqueConstraint("student_id", "assignment_ref"),
        sa.Index("ix_assignment_submission_due_student_submitted", "due_at", "student_id", "submitted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    assignment_ref: str = Field(max_length=64)
    due_at: datetime = Field(sa_type=aware_datetime())
    submitted_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class Weather(StrEnum):
    """心の天気: the child's own pick each morning."""

    sunny = "sunny"  # 晴れ
    cloudy = "cloudy"  # くもり
    rain = "rain"  # 雨
    thunder = "thunder"  # かみなり


class MoodCheckin(Provenance, table=True):
    __tablename__ = "mood_checkin"
    __table_args__ = (
        sa.UniqueConstraint("student_id", "day", postgresql_include=["weather"]),
        sa.Index("ix_mood_checkin_day_student_weather", "day", "student_id", "weather"),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    day: date
    weather: Weather = Field(sa_type=enum_type(Weather))
    reason: str | None = Field(default=None, max_length=200)


class FeeStatus(Provenance, table=True):
    """School lunch fees for one month; `arrears` NULL means the school did not say."""

    __tablename__ = "fee_status"
    __table_args__ = (sa.UniqueConstraint("student_id", "month", postgresql_include=["arrears"]),)

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    month: date = Field(description="first day of the month")
    billed_yen: int | None = Field(default=None, ge=0)
    paid_yen: int | None = Field(default=None, ge=0)
    arrears: bool | None = None


class AidStatus(StrEnum):
    not_applied = "not_applied"
    applied = "applied"
    approved = "approved"
    denied = "denied"


class SchoolAidStatus(Provenance, table=True):
    """就学援助 for one school year, as the school affairs system records it."""

    __tablename__ = "school_aid_status"
    __table_args__ = (sa.UniqueConstraint("student_id", "school_year"),)

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    school_year: int
    status: AidStatus = Field(sa_type=enum_type(AidStatus))


class HouseholdInfo(Provenance, table=True):
    """世帯情報 from Myna Portal, as of a date. Every fact is nullable: the portal may not say."""

    __tablename__ = "household_info"
    __table_args__ = (
        sa.UniqueConstraint(
            "student_id", "as_of", postgresql_include=["single_parent", "member_needing_care"]
        ),
        # An incremental screening asks which children have facts dated on the new days.
        sa.Index("ix_household_info_as_of_student", "as_of", "student_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    as_of: date
    household_size: int | None = Field(default=None, ge=1)
    adults: int | None = Field(default=None, ge=0)
    single_parent: bool | None = None
    member_needing_care: bool | None = Field(
        default=None, description="a household member certified for long-term care or disability"
    )


class Benefit(StrEnum):
    child_allowance = "child_allowance"  # 児童手当
    child_rearing_allowance = "child_rearing_allowance"  # 児童扶養手当
    public_assistance = "public_assistance"  # 生活保護
    resident_tax_exempt = "resident_tax_exempt"  # 住民税非課税
    school_attendance_aid = "school_attendance_aid"  # 就学援助


class BenefitStatus(Provenance, table=True):
    """Whether the household receives a benefit, as of a date; NULL `receiving` is unknown."""

    __tablename__ = "benefit_status"
    __table_args__ = (
        sa.UniqueConstraint("student_id", "benefit", "as_of", postgresql_include=["receiving"]),
        # An incremental screening asks which children have facts dated on the new days.
        sa.Index("ix_benefit_status_as_of_student", "as_of", "student_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    benefit: Benefit = Field(sa_type=enum_type(Benefit))
    as_of: date
    receiving: bool | None = None
