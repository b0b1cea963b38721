"""The upstream records as they arrive, validated with pydantic, and where each one is stored.

Every record names its upstream id, its student (the school's student number), its status
(OneRoster's `active` / `tobedeleted`) and when the upstream last changed it. A field the
upstream did not send is None (unknown), never 0. An unknown field is ignored (and reported
once per run as schema drift); a missing required field or an unknown code fails validation,
and the record goes to quarantine with the reason.
The wire codes are the stand-ins' (mocks/); a real system's codes map here, in one place.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from app.roster.models import Homeroom, Sex, Student
from app.sources.models import (
    AidStatus,
    AssignmentSubmission,
    AttendanceDay,
    AttendanceMark,
    AttendanceReason,
    FeeStatus,
    GradeRecord,
    LearningActivity,
    MoodCheckin,
    NurseComplaint,
    NurseVisit,
    SchoolAidStatus,
    Source,
    Weather,
)
from connectors.store import Target
from consent.scopes import Scope

PROVENANCE = ("source", "sync_run_id", "fetched_at")

ATTENDANCE_REASON_CODES = {
    "01": AttendanceReason.illness,  # 病気
    "02": AttendanceReason.accident,  # 事故
    "03": AttendanceReason.family_care,  # 家事・家族の世話
    "09": AttendanceReason.other,  # その他
    "21": AttendanceReason.suspension,  # 出席停止
    "22": AttendanceReason.bereavement,  # 忌引
}
NURSE_COMPLAINT_CODES = {
    "頭痛": NurseComplaint.headache,
    "腹痛": NurseComplaint.stomachache,
    "けが": NurseComplaint.injury,
    "体調不良": NurseComplaint.fatigue,
    "気持ち": NurseComplaint.emotional,
    "その他": NurseComplaint.other,
}
AID_STATUS_CODES = {
    "未申請": AidStatus.not_applied,
    "申請中": AidStatus.applied,
    "認定": AidStatus.approved,
    "否認": AidStatus.denied,
}
WEATHER_CODES = {
    "晴れ": Weather.sunny,
    "くもり": Weather.cloudy,
    "雨": Weather.rain,
    "かみなり": Weather.thunder,
}


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _iso(value: Any) -> Any:
    # The standard library's parser gives a UTC time the one shared `UTC` tzinfo, so the many
    # comparisons of modification times (cursor, repeats across pages) need no offset look-ups;
    # pydantic-core's own tzinfo is looked up on every comparison. Bad text still fails.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


Moment = Annotated[AwareDatetime, BeforeValidator(_iso)]
"""An aware time as ISO 8601 text."""
JST = timedelta(hours=9)


def _school_day(moment: datetime) -> date:
    """The day in Japan, where the school is."""
    return (moment.astimezone(UTC) + JST).date()


def _term_start(school_year: int, term: int) -> date:
    return date(school_year + 1, 1, 1) if term == 3 else date(school_year, 4 if term == 1 else 9, 1)


class WireRecord(BaseModel):
    """Fields every record shares. `modified` drives the incremental cursor."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1, max_length=128)
    status: Literal["active", "tobedeleted"] = "active"
    modified: Moment = Field(alias="updatedAt")
    student: str = Field(min_length=1, max_length=32)

    @abstractmethod
    def key(self, student_id: int) -> tuple[Any, ...]:
        """The natural key of the row this record becomes."""

    @abstractmethod
    def row(self, student_id: int) -> dict[str, Any]:
        """The row this record becomes (without provenance)."""

    @abstractmethod
    def first_day(self) -> date:
        """The first day the record is about: a consent's data range starts on a day."""


class AttendanceRecord(WireRecord):
    day: date = Field(alias="date")
    mark: AttendanceMark
    # Codes are checked by pydantic-core (a Literal) and mapped in row(): no Python per record.
    reason: Literal["01", "02", "03", "09", "21", "22"] | None = None

    def first_day(self) -> date:
        return self.day

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.day, self.mark)

    def row(self, student_id: int) -> dict[str, Any]:
        reason = ATTENDANCE_REASON_CODES[self.reason] if self.reason else None
        return {"student_id": student_id, "day": self.day, "mark": self.mark, "reason": reason}


class NurseVisitRecord(WireRecord):
    visited_at: Moment = Field(alias="visitedAt")
    complaint: Literal["頭痛", "腹痛", "けが", "体調不良", "気持ち", "その他"]
    minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    sent_home: bool | None = Field(default=None, alias="sentHome")

    def first_day(self) -> date:
        return _school_day(self.visited_at)

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, _utc(self.visited_at))

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "visited_at": _utc(self.visited_at),
            "complaint": NURSE_COMPLAINT_CODES[self.complaint],
            "minutes": self.minutes,
            "sent_home": self.sent_home,
        }


class GradeRecordWire(WireRecord):
    school_year: int = Field(alias="schoolYear", ge=2000, le=2100)
    term: int = Field(ge=1, le=3)
    subject: str = Field(min_length=1, max_length=16)
    score: int | None = Field(default=None, ge=0, le=100)

    def first_day(self) -> date:
        return _term_start(self.school_year, self.term)

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.school_year, self.term, self.subject)

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "school_year": self.school_year,
            "term": self.term,
            "subject": self.subject,
            "score": self.score,
        }


class FeeRecord(WireRecord):
    month: date = Field(description="the first day of the month")
    billed_yen: int | None = Field(default=None, alias="billedYen", ge=0)
    paid_yen: int | None = Field(default=None, alias="paidYen", ge=0)
    arrears: bool | None = None

    @field_validator("month", mode="before")
    @classmethod
    def _first_of_month(cls, value: Any) -> Any:
        # The school system names a month as YYYY-MM.
        if isinstance(value, str) and len(value) == 7:
            return f"{value}-01"
        return value

    def first_day(self) -> date:
        return self.month

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.month)

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "month": self.month,
            "billed_yen": self.billed_yen,
            "paid_yen": self.paid_yen,
            "arrears": self.arrears,
        }


class SchoolAidRecord(WireRecord):
    school_year: int = Field(alias="schoolYear", ge=2000, le=2100)
    aid_status: Literal["未申請", "申請中", "認定", "否認"] = Field(alias="aidStatus")

    def first_day(self) -> date:
        return date(self.school_year, 4, 1)

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.school_year)

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "school_year": self.school_year,
            "status": AID_STATUS_CODES[self.aid_status],
        }


class LearningActivityRecord(WireRecord):
    week_start: date = Field(alias="weekStart")
    sign_in_days: int | None = Field(default=None, alias="signInDays", ge=0, le=7)
    minutes: int | None = Field(default=None, ge=0)

    def first_day(self) -> date:
        return self.week_start

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.week_start)

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "week_start": self.week_start,
            "sign_in_days": self.sign_in_days,
            "minutes": self.minutes,
        }


class SubmissionRecord(WireRecord):
    assignment: str = Field(alias="assignmentId", min_length=1, max_length=64)
    due_at: Moment = Field(alias="dueAt")
    submitted_at: Moment | None = Field(default=None, alias="submittedAt")

    def first_day(self) -> date:
        return _school_day(self.due_at)

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.assignment)

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "assignment_ref": self.assignment,
            "due_at": _utc(self.due_at),
            "submitted_at": _utc(self.submitted_at) if self.submitted_at else None,
        }


class MoodRecord(WireRecord):
    day: date = Field(alias="date")
    weather: Literal["晴れ", "くもり", "雨", "かみなり"]
    comment: str | None = Field(default=None, max_length=200)

    def first_day(self) -> date:
        return self.day

    def key(self, student_id: int) -> tuple[Any, ...]:
        return (student_id, self.day)

    def row(self, student_id: int) -> dict[str, Any]:
        return {
            "student_id": student_id,
            "day": self.day,
            "weather": WEATHER_CODES[self.weather],
            "reason": self.comment,
        }


SEX_CODES = {"female": Sex.female, "male": Sex.male, "unspecified": Sex.unspecified}


class RosterMetadata(BaseModel):
    """OneRoster 1.2 Japan Profile extensions (`metadata.jp.*`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    kana_family_name: str = Field(alias="jp.kanaFamilyName", min_length=1, max_length=64)
    kana_given_name: str = Field(alias="jp.kanaGivenName", min_length=1, max_length=64)
    homeroom: str | None = Field(default=None, alias="jp.homeroom", max_length=32)
    school_year: int = Field(alias="jp.schoolYear", ge=2000, le=2100)
    enrolled_on: date = Field(alias="jp.enrolledOn")
    transferred_in: bool = Field(default=False, alias="jp.transferredIn")
    left_on: date | None = Field(default=None, alias="jp.leftOn")


class RosterStudent(BaseModel):
    """A OneRoster `users` record of role student."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    sourced_id: str = Field(alias="sourcedId", min_length=1, max_length=32)
    status: Literal["active", "tobedeleted"] = "active"
    modified: Moment = Field(alias="dateLastModified")
    role: Literal["student"]
    family_name: str = Field(alias="familyName", min_length=1, max_length=32)
    given_name: str = Field(alias="givenName", min_length=1, max_length=32)
    birth_date: date = Field(alias="birthDate")
    sex: Sex = Sex.unspecified
    grades: list[str] = Field(min_length=1)
    metadata: RosterMetadata

    @property
    def id(self) -> str:
        return self.sourced_id

    @property
    def grade(self) -> int:
        # OneRoster Japan Profile grades: P1–P6 (小学校), J1–J3 (中学校) → 1–9.
        code = self.grades[0]
        number = int(code[1:])
        return number + 6 if code.startswith("J") else number

    @field_validator("grades")
    @classmethod
    def _known_grades(cls, value: list[str]) -> list[str]:
        allowed = {f"P{n}" for n in range(1, 7)} | {f"J{n}" for n in range(1, 4)}
        if value[0] not in allowed:
            raise ValueError(f"unknown grade code {value[0]!r}")
        return value


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


@dataclass(frozen=True)
class Resource:
    """One kind of record from one upstream, the consent scope that covers it and its table."""

    source: Source
    name: str
    scope: Scope
    wire: type[WireRecord]
    target: Target


def _target(model: Any, key: tuple[str, ...], compared: tuple[str, ...]) -> Target:
    return Target(_table(model), key=key, compared=(*compared, "grant_id"), provenance=PROVENANCE)


SCHOOL_AFFAIRS_RESOURCES = (
    Resource(
        Source.school_affairs,
        "attendance",
        Scope.school_attendance,
        AttendanceRecord,
        _target(AttendanceDay, ("student_id", "day", "mark"), ("reason",)),
    ),
    Resource(
        Source.school_affairs,
        "nurse-visits",
        Scope.school_nurse_visits,
        NurseVisitRecord,
        _target(NurseVisit, ("student_id", "visited_at"), ("complaint", "minutes", "sent_home")),
    ),
    Resource(
        Source.school_affairs,
        "grades",
        Scope.school_grades,
        GradeRecordWire,
        _target(GradeRecord, ("student_id", "school_year", "term", "subject"), ("score",)),
    ),
    Resource(
        Source.school_affairs,
        "fees",
        Scope.school_fees,
        FeeRecord,
        _target(FeeStatus, ("student_id", "month"), ("billed_yen", "paid_yen", "arrears")),
    ),
    Resource(
        Source.school_affairs,
        "school-aid",
        Scope.school_aid,
        SchoolAidRecord,
        _target(SchoolAidStatus, ("student_id", "school_year"), ("status",)),
    ),
)

SCHOOL_PLATFORM_RESOURCES = (
    Resource(
        Source.school_platform,
        "learning-activity",
        Scope.school_learning,
        LearningActivityRecord,
        _target(LearningActivity, ("student_id", "week_start"), ("sign_in_days", "minutes")),
    ),
    Resource(
        Source.school_platform,
        "submissions",
        Scope.school_learning,
        SubmissionRecord,
        _target(AssignmentSubmission, ("student_id", "assignment_ref"), ("due_at", "submitted_at")),
    ),
    Resource(
        Source.school_platform,
        "mood-checkins",
        Scope.school_mood,
        MoodRecord,
        _target(MoodCheckin, ("student_id", "day"), ("weather", "reason")),
    ),
)

HOMEROOM_TARGET = Target(_table(Homeroom), key=("school_id", "school_year", "grade", "name"), compared=())
STUDENT_TARGET = Target(
    _table(Student),
    key=("school_id", "school_student_id"),
    compared=(
        "homeroom_id",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "birth_date",
        "sex",
        "grade",
        "enrolled_on",
        "transferred_in",
        "left_on",
    ),
)
