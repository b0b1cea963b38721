"""The weekly review queue of a school: filled from the top up to the staff's capacity, with a
random sample from below the line, and everything else in a "more" list (DOMAIN.md lesson 2).

A threshold a school can act on comes from how many children its staff can review, not from a
score. The sample keeps the line honest: staff keep seeing children just below it, and what they
find there tells whether the line sits in the right place. Nothing is hidden: every new alert is
in exactly one of the three lists.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from app.core.types import utcnow
from rules.models import Alert, AlertStatus, ReviewCapacity

# A school that has not said yet: a small number, so nobody drowns on the first day.
DEFAULT_CAPACITY = 10
DEFAULT_MEDIUM_SHARE = 0.2


@dataclass(frozen=True)
class WeeklyQueue:
    school_id: int
    week: str  # ISO week, e.g. 2025-W40: the sample stays the same all week
    capacity: int
    medium_share: float
    capacity_is_default: bool
    top: list[Alert]  # the highest scores, up to capacity minus the sample
    sampled: list[Alert]  # drawn at random from below the line
    more: list[Alert]  # the rest, ranked, one click away

    @property
    def total(self) -> int:
        return len(self.top) + len(self.sampled) + len(self.more)


def capacity_of(*, session: Session, school_id: int) -> tuple[int, float, bool]:
    setting = session.get(ReviewCapacity, school_id)
    if setting is None:
        return DEFAULT_CAPACITY, DEFAULT_MEDIUM_SHARE, True
    return setting.weekly_capacity, setting.medium_share, False


def set_capacity(
    *,
    session: Session,
    school_id: int,
    weekly_capacity: int,
    medium_share: float = DEFAULT_MEDIUM_SHARE,
    staff_user_id: int | None = None,
) -> ReviewCapacity:
    setting = session.get(ReviewCapacity, school_id) or ReviewCapacity(
        school_id=school_id, weekly_capacity=weekly_capacity
    )
    setting.weekly_capacity = weekly_capacity
    setting.medium_share = medium_share
    setting.updated_at = utcnow()
    setting.updated_by_id = staff_user_id
    ReviewCapacity.model_validate(setting.model_dump())  # the table's bounds, before writing
    session.add(setting)
    session.flush()
    return setting


def weekly_queue(*, session: Session, school_id: int, today: date) -> WeeklyQueue:
    """New alerts with evidence, ranked by score (then the oldest first), split by capacity."""
    capacity, share, default = capacity_of(session=session, school_id=school_id)
    ranked = list(
        session.exec(
            select(Alert)
            .where(Alert.school_id == school_id, Alert.status == AlertStatus.new, col(Alert.score) > 0)
            .order_by(col(Alert.score).desc(), col(Alert.opened_at), col(Alert.id))
        )
    )
    sample_size = round(capacity * share)
    top = ranked[: capacity - sample_size]
    below = ranked[len(top) :]
    year, week, _ = today.isocalendar()
    week_label = f"{year}-W{week:02d}"
    # Seeded by school and week: the same sample on every page load of the week, a new one next.
    rng = random.Random(f"{school_id}:{week_label}")  # noqa: S311 - a fair draw, not a secret
    picked = set(rng.sample(range(len(below)), min(sample_size, len(below))))
    return WeeklyQueue(
        school_id=school_id,
        week=week_label,
        capacity=capacity,
        medium_share=share,
        capacity_is_default=default,
        top=top,
        sampled=[alert for i, alert in enumerate(below) if i in picked],
        more=[alert for i, alert in enumerate(below) if i not in picked],
    )
