"""The records the school stand-ins hold: a roster and, per resource, records per school.

Records are plain dicts in the upstream's wire shape (dates and times as Python objects;
orjson writes them as ISO 8601). Every record has `id`, `student` (the school's student
number), `status` and `updatedAt`; a change through `touch` moves `updatedAt` to now, as a
real system's modification time does.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

Record = dict[str, Any]
JST = timedelta(hours=9)
TERM_STARTS = {1: (0, 4), 2: (0, 9), 3: (1, 1)}  # term → (years after the school year's, month)


def data_day(resource: str, record: Record) -> date:
    """The first day a record is about (school days in Japan time): a family's consent may cover
    data only from a given day on."""
    value = {
        "attendance": "date",
        "nurse-visits": "visitedAt",
        "fees": "month",
        "learning-activity": "weekStart",
        "submissions": "dueAt",
        "mood-checkins": "date",
    }.get(resource)
    if value is not None:
        return _day(record[value])
    year = int(record["schoolYear"])
    if resource == "grades":
        later, month = TERM_STARTS[int(record["term"])]
        return date(year + later, month, 1)
    return date(year, 4, 1)  # school-aid: the school year


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) + JST).date()
    if isinstance(value, str) and len(value) == 7:  # a month, YYYY-MM
        return date.fromisoformat(f"{value}-01")
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _order(record: Record) -> tuple[datetime, str]:
    return (record["updatedAt"], record["id"])


@dataclass
class SchoolRecords:
    # school code → student number → OneRoster user
    roster: dict[str, dict[str, Record]] = field(default_factory=lambda: defaultdict(dict))
    # resource → school code → student number → record id → record
    records: dict[str, dict[str, dict[str, dict[str, Record]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    )
    _clock: datetime | None = None
    # (resource, school) → every record of the school, oldest change first; dropped on change.
    _ordered: dict[tuple[str, str], list[Record]] = field(default_factory=dict)

    def add_student(self, school: str, user: Record) -> None:
        self.roster[school][user["sourcedId"]] = user

    def add(self, resource: str, school: str, records: Iterable[Record]) -> None:
        by_student = self.records[resource][school]
        for record in records:
            by_student[record["student"]][record["id"]] = record
        self._ordered.pop((resource, school), None)

    def now(self) -> datetime:
        """A modification time later than any before it, even within one clock tick."""
        now = datetime.now(UTC)
        if self._clock is not None and now <= self._clock:
            now = self._clock + timedelta(microseconds=1)
        self._clock = now
        return now

    def touch(self, resource: str, school: str, record_id: str, **changes: Any) -> Record:
        """Change a record (or only its modification time) as the school system would."""
        for records in self.records[resource][school].values():
            if record_id in records:
                record = records[record_id]
                record.update(changes)
                record["updatedAt"] = self.now()
                self._ordered.pop((resource, school), None)
                return record
        raise KeyError(record_id)

    def touch_student(self, school: str, student: str, **changes: Any) -> Record:
        user = self.roster[school][student]
        user.update(changes)
        user["dateLastModified"] = self.now()
        return user

    def students(self, school: str, *, since: datetime | None = None) -> list[Record]:
        users = self.roster.get(school, {}).values()
        chosen = [u for u in users if since is None or u["dateLastModified"] > since]
        return sorted(chosen, key=lambda u: (u["dateLastModified"], u["sourcedId"]))

    def query(
        self,
        resource: str,
        school: str,
        *,
        students: Collection[str] | None = None,
        since: datetime | None = None,
        data_from: date | None = None,
    ) -> list[Record]:
        """Records of a school (or of the named students only), oldest change first; with
        DATA_FROM, only records about that day or later."""
        by_student = self.records.get(resource, {}).get(school, {})
        if students is None:
            # A whole school is asked for page after page: keep it sorted between changes.
            ordered = self._ordered.get((resource, school))
            if ordered is None:
                ordered = sorted((r for records in by_student.values() for r in records.values()), key=_order)
                self._ordered[(resource, school)] = ordered
            if since is not None:
                ordered = ordered[bisect.bisect_right(ordered, since, key=lambda r: r["updatedAt"]) :]
        else:
            ordered = [
                record
                for student in students
                if student in by_student
                for record in by_student[student].values()
                if since is None or record["updatedAt"] > since
            ]
            ordered.sort(key=_order)
        if data_from is None:
            return ordered
        return [r for r in ordered if data_day(resource, r) >= data_from]
