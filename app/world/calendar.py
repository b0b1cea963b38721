"""The school calendar (学年暦): which days are 授業日 for a kind of school in a school year."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import numpy as np
from numpy.typing import NDArray

from app.core.errors import BadRequest
from app.roster.models import SchoolKind
from app.world.data import calendars


@dataclass(frozen=True)
class SchoolCalendar:
    school_year: int
    kind: SchoolKind
    days: NDArray[np.datetime64]  # 授業日, ascending, as datetime64[D]
    terms: tuple[tuple[date, date], ...]  # 学期: first and last day; the gaps are 長期休業
    graduation: date  # 卒業式: the graduating grade's last day

    @property
    def first_day(self) -> date:
        return date(self.school_year, 4, 1)

    @property
    def last_day(self) -> date:
        return date(self.school_year + 1, 3, 31)

    def term_of(self, days: NDArray[np.datetime64]) -> NDArray[np.int64]:
        """The term (1, 2, 3) each day falls in, 0 outside every term."""
        term = np.zeros(len(days), dtype=np.int64)
        for number, (first, last) in enumerate(self.terms, start=1):
            term[(days >= np.datetime64(first)) & (days <= np.datetime64(last))] = number
        return term


def school_years() -> list[int]:
    """The school years the calendar file describes."""
    return sorted(calendars())


@cache
def school_calendar(school_year: int, kind: SchoolKind) -> SchoolCalendar:
    """The 授業日 of a school year: weekdays inside a term, less holidays and closed days, plus event days."""
    spec = calendars().get(school_year)
    if spec is None:
        raise BadRequest(f"no school calendar for {school_year}年度; known: {school_years()}")
    own = spec[kind.value]
    holidays = set(spec["holidays"]) | set(own.get("closed_days") or {})
    days: set[date] = set(own.get("event_days") or {})
    terms = tuple((first, last) for first, last in spec["terms"])
    for first, last in terms:
        day = first
        while day <= last:
            if day.weekday() < 5 and day not in holidays:
                days.add(day)
            day += timedelta(days=1)
    return SchoolCalendar(
        school_year=school_year,
        kind=kind,
        days=np.array(sorted(days), dtype="datetime64[D]"),
        terms=terms,
        graduation=own["graduation"],
    )
