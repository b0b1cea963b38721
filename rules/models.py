"""Screening tables: runs, alerts (child × category), the signals that explain them, their history,
and each school's weekly review capacity.

The staff console builds the triage workflow on `Alert.status` and `AlertEvent`; screening only
opens alerts, refreshes their evidence and clears it. Case notes, meetings and support actions
belong to the staff domain.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.types import aware_datetime, enum_type, utcnow
from consent.scopes import Wording


class Category(StrEnum):
    """What kind of difficulty an alert is about (the pilots' categories)."""

    non_attendance = "non_attendance"  # 不登校
    economic_hardship = "economic_hardship"  # 経済的困難
    abuse_neglect = "abuse_neglect"  # 虐待・ネグレクトの疑い
    young_carer = "young_carer"  # ヤングケアラー
    bullying = "bullying"  # いじめ
    wellbeing = "wellbeing"  # 心身の不調


CATEGORY_WORDING: dict[Category, Wording] = {
    Category.non_attendance: Wording("不登校", "School non-attendance"),
    Category.economic_hardship: Wording("経済的困難", "Economic hardship"),
    Category.abuse_neglect: Wording("虐待・ネグレクトの疑い", "Possible abuse or neglect"),
    Category.young_carer: Wording("ヤングケアラー", "Young carer"),
    Category.bullying: Wording("いじめ", "Bullying"),
    Category.wellbeing: Wording("心身の不調", "Physical or emotional wellbeing"),
}


class AlertStatus(StrEnum):
    """The triage workflow of issue #8: people move an alert; screening only opens it."""

    new = "new"  # 新規
    under_review = "under_review"  # 確認中
    case_meeting = "case_meeting"  # ケース会議
    support = "support"  # 支援中
    monitoring = "monitoring"  # 見守り
    closed = "closed"  # 終結
    dismissed = "dismissed"  # 対応不要: counted as a false positive by the backtest


ALERT_STATUS_WORDING: dict[AlertStatus, Wording] = {
    AlertStatus.new: Wording("新規", "New"),
    AlertStatus.under_review: Wording("確認中", "Under review"),
    AlertStatus.case_meeting: Wording("ケース会議", "Case meeting"),
    AlertStatus.support: Wording("支援中", "Support"),
    AlertStatus.monitoring: Wording("見守り", "Monitoring"),
    AlertStatus.closed: Wording("終結", "Closed"),
    AlertStatus.dismissed: Wording("対応不要", "Dismissed"),
}

OPEN_STATUSES = frozenset(
    {
        AlertStatus.new,
        AlertStatus.under_review,
        AlertStatus.case_meeting,
        AlertStatus.support,
        AlertStatus.monitoring,
    }
)

# After people closed or dismissed an alert, the same evidence does not reopen it for this long;
# stronger evidence (a higher score) does.
QUIET_DAYS = 30


class RunKind(StrEnum):
    full = "full"  # every enrolled child
    incremental = "incremental"  # only the children whose data changed since the last run
    backtest = "backtest"  # measured against labels; writes no alert, its results in `summary`


class RunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"  # nothing of the run was kept; the previous alerts stand


class ScreeningRun(SQLModel, table=True):
    """One evaluation of the catalog. A failed run wrote nothing but this row."""

    __tablename__ = "screening_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: RunKind = Field(sa_type=enum_type(RunKind))
    status: RunStatus = Field(sa_type=enum_type(RunStatus), default=RunStatus.running)
    as_of: date = Field(description="the day the features were computed for")
    catalog_version: str = Field(max_length=16)
    started_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime(), index=True)
    finished_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    children_screened: int = 0
    alerts_opened: int = 0
    alerts_updated: int = 0
    alerts_cleared: int = 0
    signals_written: int = 0
    summary: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=sa.JSON,
        description="per rule: children fired, insufficient data, not consented (trial included)",
    )
    error: str | None = Field(default=None, max_length=500)


class Alert(SQLModel, table=True):
    """One child × one category while it is open: the rules that fired roll up into its score."""

    __tablename__ = "alert"
    __table_args__ = (
        # At most one open alert per child and category, on both databases.
        sa.Index(
            "ux_alert_open_student_category",
            "student_id",
            "category",
            unique=True,
            sqlite_where=sa.text("status NOT IN ('closed', 'dismissed')"),
            postgresql_where=sa.text("status NOT IN ('closed', 'dismissed')"),
        ),
        sa.Index("ix_alert_school_status_score", "school_id", "status", "score"),
        # The municipality-wide queue reads alerts highest score first and stops at a page: the
        # databases walk this index backwards and sort only ties (no DESC column needed).
        sa.Index("ix_alert_score", "score"),
        # Room on each page for the next version of every row on it: a run may refresh a third
        # of the open alerts in place, and an update that changes no indexed column then stays
        # on its page (HOT), with no new index entries (migration 9c4e2a7f1b38).
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: int | None = Field(default=None, primary_key=True)
    student_id: int = Field(foreign_key="student.id", index=True)
    school_id: int = Field(foreign_key="school.id")
    category: Category = Field(sa_type=enum_type(Category))
    status: AlertStatus = Field(sa_type=enum_type(AlertStatus), default=AlertStatus.new)
    score: float = Field(description="sum of the weights of the rules firing now; 0 = cleared")
    assignee_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    closed_at: datetime | None = Field(default=None, sa_type=aware_datetime())
    closed_reason: str | None = Field(default=None, max_length=200)
    opened_run_id: int = Field(foreign_key="screening_run.id")
    # The run that last wrote the row, set only by that run (after its row was committed); runs
    # are never deleted. Not a foreign key: checking it row by row on every refresh took
    # 0.2 s of an incremental run's writes at 250,000 children (migration 7a1c5e9b3d20).
    last_run_id: int
    evidence_as_of: date = Field(description="the as-of day of the evidence shown")
    coverage: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=sa.JSON,
        description="rules of this category that could not be judged for the child: "
        '{"insufficient_data": [rule ids], "not_consented": [rule ids]}',
    )


class Signal(SQLModel, table=True):
    """A rule firing for a child, with every atom's value, threshold and window dates.

    One row per alert and rule: a re-run refreshes it in place when what it says changes (a
    count, a result, the weight; not window dates or a rate moving by days passing alone, so
    `last_seen_on` is the day of the facts shown) and marks it cleared when the rule stops
    firing, so re-runs never duplicate evidence.
    """

    __tablename__ = "signal"
    # Room on each page for the next version of every row on it (see Alert): a signal's refresh
    # changes no indexed column.
    __table_args__ = (sa.UniqueConstraint("alert_id", "rule_id"), {"postgresql_with": {"fillfactor": 50}})

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id")
    student_id: int = Field(foreign_key="student.id", index=True)
    rule_id: str = Field(max_length=64)
    rule_version: str = Field(max_length=16)
    weight: float = Field(description="the rule's weight plus the status facts that added to it")
    atoms: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_type=sa.JSON,
        description="[{name, feature, op, threshold, value, result, window_start, window_end}]",
    )
    boosters: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    said_digest: str | None = Field(
        default=None,
        max_length=32,
        description="digest of what the facts and weight say (rules.engine.said_digest); "
        "empty: unknown, the next run rewrites the signal",
    )
    first_run_id: int = Field(foreign_key="screening_run.id")
    last_run_id: int  # as Alert.last_run_id
    first_seen_on: date
    last_seen_on: date
    cleared_on: date | None = None


class AlertEventKind(StrEnum):
    opened = "opened"  # screening opened the alert
    evidence_changed = "evidence_changed"  # rules started or stopped firing, score moved
    evidence_cleared = "evidence_cleared"  # no rule fires any more; people decide what next
    status_changed = "status_changed"  # a person moved it through the workflow
    assigned = "assigned"


class AlertEvent(SQLModel, table=True):
    """The history of an alert, append-only: what screening saw and what people did."""

    __tablename__ = "alert_event"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    kind: AlertEventKind = Field(sa_type=enum_type(AlertEventKind))
    from_status: AlertStatus | None = Field(default=None, sa_type=enum_type(AlertStatus))
    to_status: AlertStatus | None = Field(default=None, sa_type=enum_type(AlertStatus))
    run_id: int | None = Field(default=None, foreign_key="screening_run.id")
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id")
    reason: str | None = Field(default=None, max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class ReviewCapacity(SQLModel, table=True):
    """How many new alerts a school's staff can review in a week (DOMAIN.md lesson 2)."""

    __tablename__ = "review_capacity"

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    weekly_capacity: int = Field(ge=0, le=1000)
    medium_share: float = Field(
        default=0.2,
        ge=0.0,
        le=0.5,
        description="share of the capacity given to a random sample from below the line",
    )
    updated_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    updated_by_id: int | None = Field(default=None, foreign_key="staff_user.id")


class RulePromotion(SQLModel, table=True):
    """An administrator's decision that a trial rule (this exact version) may reach staff."""

    __tablename__ = "rule_promotion"

    rule_id: str = Field(primary_key=True, max_length=64)
    rule_version: str = Field(max_length=16)
    promoted_at: datetime = Field(default_factory=utcnow, sa_type=aware_datetime())
    promoted_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    reason: str = Field(max_length=200)
