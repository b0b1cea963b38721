"""Roster tables: who is in which school and homeroom, who their guardians are, who the staff are."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow


class SchoolKind(StrEnum):
    elementary = "elementary"  # 小学校
    junior_high = "junior_high"  # 中学校


class Sex(StrEnum):
    """Kept only to measure screening per group (DOMAIN.md lesson on DEWS); never a rule input."""

    female = "female"
    male = "male"
    unspecified = "unspecified"


class StaffRole(StrEnum):
    homeroom_teacher = "homeroom_teacher"  # 担任
    school_nurse = "school_nurse"  # 養護教諭
    school_leader = "school_leader"  # 学校管理職
    school_counselor = "school_counselor"  # スクールカウンセラー
    school_social_worker = "school_social_worker"  # スクールソーシャルワーカー
    case_worker = "case_worker"  # こども家庭センター
    administrator = "administrator"  # 管理者


class Municipality(SQLModel, table=True):
    __tablename__ = "municipality"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=6, unique=True, description="全国地方公共団体コード")
    name: str = Field(max_length=64)


class School(SQLModel, table=True):
    __tablename__ = "school"

    id: int | None = Field(default=None, primary_key=True)
    municipality_id: int = Field(foreign_key="municipality.id", index=True)
    code: str = Field(max_length=16, unique=True, description="学校コード")
    name: str = Field(max_length=64)
    kind: SchoolKind = Field(sa_type=enum_type(SchoolKind))


class Homeroom(SQLModel, table=True):
    __tablename__ = "homeroom"
    __table_args__ = (sa.UniqueConstraint("school_id", "school_year", "grade", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    school_year: int = Field(description="年度 (April to March)")
    grade: int = Field(ge=1, le=9)
    name: str = Field(max_length=32, description="e.g. 1年2組")


class Student(SQLModel, table=True):
    __tablename__ = "student"
    __table_args__ = (sa.UniqueConstraint("school_id", "school_student_id"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    homeroom_id: int | None = Field(default=None, foreign_key="homeroom.id", index=True)
    school_student_id: str = Field(max_length=32, description="the school's own stable id")
    family_name: str = Field(max_length=32)
    given_name: str = Field(max_length=32)
    family_name_kana: str = Field(max_length=64)
    given_name_kana: str = Field(max_length=64)
    birth_date: date
    sex: Sex = Field(sa_type=enum_type(Sex), default=Sex.unspecified)
    grade: int = Field(ge=1, le=9)
    enrolled_on: date = Field(description="first day at this school; a transfer's 転入日")
    transferred_in: bool = Field(default=False, description="転入生: earlier months are unknown")
    left_on: date | None = Field(default=None, description="転出 or graduation")


class Guardian(SQLModel, table=True):
    __tablename__ = "guardian"

    id: int | None = Field(default=None, primary_key=True)
    subject: str | None = Field(
        default=None,
        max_length=128,
        unique=True,
        description="the national-ID login's stable subject, set at first sign-in",
    )
    family_name: str = Field(max_length=32)
    given_name: str = Field(max_length=32)
    family_name_kana: str = Field(max_length=64)
    given_name_kana: str = Field(max_length=64)
    birth_date: date | None = None
    address: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class GuardianLink(SQLModel, table=True):
    """A guardian's verified link to a child, made with a school-issued invitation code."""

    __tablename__ = "guardian_link"
    __table_args__ = (sa.UniqueConstraint("guardian_id", "student_id"),)

    id: int | None = Field(default=None, primary_key=True)
    guardian_id: int = Field(foreign_key="guardian.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    relationship: str = Field(max_length=16, default="保護者")
    verified_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class StaffUser(SQLModel, table=True):
    """A staff member; the role and the scope (homeroom, school, municipality) bound what they see."""

    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=64)
    role: StaffRole = Field(sa_type=enum_type(StaffRole))
    municipality_id: int = Field(foreign_key="municipality.id", index=True)
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    homeroom_id: int | None = Field(default=None, foreign_key="homeroom.id")
    password_hash: str | None = Field(default=None, max_length=255)
    is_active: bool = True


class SchoolDay(SQLModel, table=True):
    """The school calendar: one row per 授業日 (instructional day) of a school.

    Attendance rates are computed over the days a child had to attend:
    授業日数 − 出席停止・忌引 days, within the child's enrolment.
    """

    __tablename__ = "school_day"

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    day: date = Field(primary_key=True)
