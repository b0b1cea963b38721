"""The school calendar: 授業日 are term weekdays less holidays and closed days, plus Saturday events."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from app.core.errors import BadRequest
from app.roster.models import SchoolKind
from app.world.calendar import school_calendar


@pytest.mark.parametrize("kind", list(SchoolKind))
def test_school_days_of_fy2025(kind: SchoolKind) -> None:
    calendar = school_calendar(2025, kind)
    days = calendar.days.astype(object).tolist()
    assert 195 <= len(days) <= 210  # a Japanese school year has about 200 授業日
    assert days == sorted(set(days))
    assert days[0] == date(2025, 4, 7) and days[-1] == date(2026, 3, 24)
    saturdays = [d for d in days if d.weekday() >= 5]
    assert saturdays == ([date(2025, 5, 24)] if kind is SchoolKind.elementary else [date(2025, 9, 27)])
    for holiday in (
        date(2025, 4, 29),
        date(2025, 5, 5),
        date(2025, 5, 6),
        date(2025, 11, 24),
        date(2026, 2, 23),
    ):
        assert holiday not in days
    # 長期休業: nothing between the terms.
    assert not [d for d in days if date(2025, 7, 19) <= d <= date(2025, 8, 24)]
    assert not [d for d in days if date(2025, 12, 25) <= d <= date(2026, 1, 7)]
    assert calendar.graduation in days


def test_terms_and_closed_days() -> None:
    junior_high = school_calendar(2025, SchoolKind.junior_high)
    elementary = school_calendar(2025, SchoolKind.elementary)
    assert np.datetime64("2025-09-29") not in junior_high.days  # 体育大会の振替休業日
    assert np.datetime64("2025-09-29") in elementary.days
    terms = junior_high.term_of(
        np.array(["2025-04-07", "2025-08-01", "2025-10-01", "2026-03-24"], dtype="datetime64[D]")
    )
    assert terms.tolist() == [1, 0, 2, 3]


def test_an_unknown_school_year_is_a_clear_error() -> None:
    with pytest.raises(BadRequest, match="no school calendar for 1999年度"):
        school_calendar(1999, SchoolKind.elementary)
