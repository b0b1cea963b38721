"""The staff domain's tables: daily observations, and the workflow records around an alert."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow
from consent.scopes import Wording


class ObservationCategory(StrEnum):
    """日常所見: what a teacher, nurse or counsellor noticed; a fixed list so it can be counted."""

    demeanour = "demeanour"  # 表情・様子の変化
    hygiene = "hygiene"  # 身なり・衛生
    hunger = "hunger"  # 空腹・食事
    injury = "injury"  # けが・あざ
    peer_relations = "peer_relations"  # 友人関係
    belongings = "belongings"  # 忘れ物・提出物
    tiredness = "tiredness"  # 疲れ・居眠り
    family_talk = "family_talk"  # 家庭の話（家族の世話など）
    other = "other"  # その他


OBSERVATION_WORDING: dict[ObservationCategory, Wording] = {
    ObservationCategory.demeanour: Wording("表情・様子の変化", "Change in mood or manner"),
    ObservationCategory.hygiene: Wording("身なり・衛生", "Clothing or hygiene"),
    ObservationCategory.hunger: Wording("空腹・食事", "Hunger or meals"),
    ObservationCategory.injury: Wording("けが・あざ", "Injury or bruise"),
    ObservationCategory.peer_relations: Wording("友人関係", "Relations with peers"),
    ObservationCategory.belongings: Wording("忘れ物・提出物", "Forgotten things, missing work"),
    ObservationCategory.tiredness: Wording("疲れ・居眠り", "Tiredness, dozing"),
    ObservationCategory.family_talk: Wording(
        "家庭の話（家族の世話など）", "Talk of home (caring for family)"
    ),
    ObservationCategory.other: Wording("その他", "Other"),
}


class StaffObservation(SQLModel, table=True):
    """A short observation about a child by a staff member in reach (seed 003: staff's own
    judgement counts beside the data). Never shown to the family or the child."""

    __tablename__ = "staff_observation"
    __table_args__ = (sa.Index("ix_staff_observation_student_day", "student_id", "observed_on"),)

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id")
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    observed_on: date
    category: ObservationCategory = Field(sa_type=enum_type(ObservationCategory))
    note: str = Field(max_length=400)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class CaseMeeting(SQLModel, table=True):
    """A ケース会議 about an alert: scheduled with its participants, then its outcome recorded."""

    __tablename__ = "case_meeting"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    held_on: date = Field(description="the day it is (or was) held")
    participants: str = Field(max_length=300, description="roles and names, as the school writes them")
    outcome: str | None = Field(default=None, max_length=1000, description="NULL until it was held")
    recorded_by_id: int = Field(foreign_key="staff_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    outcome_at: datetime | None = Field(default=None, sa_type=aware_datetime())


class SupportAction(SQLModel, table=True):
    """One step of the support plan: who does what by when, with an optional local resource.

    `resource_id` names an entry of the support-resource directory (notify); a plain integer,
    as domains meet through functions, not through each other's tables.
    """

    __tablename__ = "support_action"
    __table_args__ = (sa.Index("ix_support_action_open_due", "done_at", "due_on"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    owner_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    owner_text: str | None = Field(default=None, max_length=64, description="who, when not a staff user")
    what: str = Field(max_length=300)
    due_on: date
    resource_id: int | None = None
    created_by_id: int = Field(foreign_key="staff_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    done_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    done_by_id: int | None = Field(default=None, foreign_key="staff_user.id")


class CaseNote(SQLModel, table=True):
    """A note on an alert by a staff member; append-only like the alert's history."""

    __tablename__ = "case_note"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    student_id: int = Field(foreign_key="student.id")
    author_id: int = Field(foreign_key="staff_user.id")
    body: str = Field(max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())


class SignInEventKind(StrEnum):
    signed_in = "signed_in"
    failed = "failed"  # wrong password, unknown or disabled account (the page says the same)
    locked_out = "locked_out"  # refused by the rate limit before the password was checked
    signed_out = "signed_out"
    disabled = "disabled"  # the account was disabled: every session of it ended


SIGN_IN_EVENT_WORDING: dict[SignInEventKind, Wording] = {
    SignInEventKind.signed_in: Wording("サインイン", "Signed in"),
    SignInEventKind.failed: Wording("失敗", "Failed"),
    SignInEventKind.locked_out: Wording("ロック中の試行", "Locked out"),
    SignInEventKind.signed_out: Wording("サインアウト", "Signed out"),
    SignInEventKind.disabled: Wording("無効化（全端末サインアウト）", "Disabled, signed out everywhere"),
}


class StaffSignInEvent(SQLModel, table=True):
    """A sign-in, failure, lockout, sign-out or disabling of a staff account, for administrators.

    Never a password. `login` is kept only when it names an existing account: what someone typed
    into the login field for an unknown account may be a password typed in the wrong box.
    """

    __tablename__ = "staff_sign_in_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime(), index=True)
    kind: SignInEventKind = Field(sa_type=enum_type(SignInEventKind))
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    login: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=64, description="the client's IP address")
    detail: str | None = Field(default=None, max_length=128)
