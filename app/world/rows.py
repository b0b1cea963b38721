"""What the demo world hands out: rows of tsunagu's tables, column by column, and the ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlmodel import SQLModel

from app.sources.models import Source


@dataclass(frozen=True)
class Rows:
    """Rows of one table as one upstream system would give them.

    Columns are numpy arrays of one length (dates as `datetime64[D]`, instants as
    `datetime64[us]` in UTC, enums as their string values); `missing` marks NULLs.
    """

    table: type[SQLModel]
    upstream: Source
    columns: dict[str, NDArray[Any]]
    missing: dict[str, NDArray[np.bool_]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self) -> Iterator[dict[str, Any]]:
        """One dict per row with plain Python values (date, aware datetime, None): for the stand-ins."""
        python: dict[str, list[Any]] = {}
        for name, values in self.columns.items():
            if values.dtype.kind == "M" and np.datetime_data(values.dtype)[0] != "D":
                python[name] = [v.replace(tzinfo=UTC) for v in values.astype("datetime64[us]").astype(object)]
            else:
                python[name] = values.astype(object).tolist() if values.dtype.kind == "M" else values.tolist()
            for index in np.flatnonzero(self.missing.get(name, np.zeros(0, bool))).tolist():
                python[name][index] = None
        names = list(python)
        for row in zip(*python.values(), strict=True):
            yield dict(zip(names, row, strict=True))


class Category(StrEnum):
    """Planted ground truth, so that screening rules can be measured against it."""

    school_non_attendance = "school_non_attendance"  # 不登校: 30+ days absent, not for illness
    economic_hardship = "economic_hardship"  # 経済的困窮
    young_carer = "young_carer"  # ヤングケアラー
    bullying = "bullying"  # いじめの兆候
    long_term_illness = "long_term_illness"  # 長期療養: many days absent for illness, not 不登校
    healthy_control = "healthy_control"  # none of the above planted: a control for false alarms


@dataclass(frozen=True)
class Label:
    student_id: int
    school_code: str
    school_student_id: str
    category: Category
    # When the signs begin: a school day for the individual categories, the first of the month
    # for hardship (April 1 when it predates the school year, as does a carer's first school day);
    # None for controls.
    onset: date | None

    def as_json(self) -> dict[str, Any]:
        return {
            "student_id": self.student_id,
            "school_code": self.school_code,
            "school_student_id": self.school_student_id,
            "category": self.category.value,
            "onset": self.onset.isoformat() if self.onset else None,
        }


@dataclass(frozen=True)
class YearlyAttendance:
    """指導要録「出欠の記録」of each student for the school year, as the school affairs system keeps it."""

    student_id: NDArray[np.int64]
    school_days: NDArray[np.int64]  # 授業日数 within the child's enrolment
    excused_days: NDArray[np.int64]  # 出席停止・忌引等の日数
    absent_days: NDArray[np.int64]  # 欠席日数

    @property
    def required_days(self) -> NDArray[np.int64]:
        """出席しなければならない日数 = 授業日数 − 出席停止・忌引等の日数."""
        return self.school_days - self.excused_days

    @property
    def attended_days(self) -> NDArray[np.int64]:
        """出席日数 = 出席しなければならない日数 − 欠席日数."""
        return self.required_days - self.absent_days


@dataclass(frozen=True)
class Batch:
    """One piece of the world: the municipality, or one district's schools and their school year."""

    name: str
    students: int
    rows: list[Rows]
    labels: list[Label] = field(default_factory=list)
    attendance: list[YearlyAttendance] = field(default_factory=list)
