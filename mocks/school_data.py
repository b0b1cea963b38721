"""The records the school stand-ins hold: a roster and, per resource, records per school.

Records are plain dicts in the upstream's wire shape (dates and times as Python objects;
orjson writes them as ISO 8601). Every record has `id`, `student` (the school's student
number), `status` and `updatedAt`; a change through `touch` moves `updatedAt` to now, as a
real system's modification time does.

A resource of a school is also kept serialised (`packed`), once, until it changes: a real
system answers a page from its database, not by building every record again, and the
stand-ins share the machine with the sync they are measured against (bench/ingest.py).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch: how the packed columns hold a time."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Packed:
    """The records of one resource of one school, oldest change first, serialised once: each
    record's JSON in one buffer (separated by commas), with the columns a query filters on."""

    body: bytes
    starts: NDArray[np.int64]  # where each record starts in `body`; one more: the end + 1
    changed: NDArray[np.int64]  # the modification time, microseconds since the epoch
    students: NDArray[np.int32]  # index into `numbers`
    days: NDArray[np.int32]  # the first day the record is about, as a date ordinal
    numbers: dict[str, int]

    @classmethod
    def of(
        cls, records: list[Record], *, changed: str, student: str, day: Callable[[Record], date] | None = None
    ) -> Packed:
        blobs = [orjson.dumps(r) for r in records]
        starts = np.zeros(len(blobs) + 1, dtype=np.int64)
        np.cumsum([len(b) + 1 for b in blobs], out=starts[1:])
        numbers: dict[str, int] = {}
        return cls(
            body=b",".join(blobs),
            starts=starts,
            changed=np.fromiter((micros(r[changed]) for r in records), np.int64, len(records)),
            students=np.fromiter(
                (numbers.setdefault(r[student], len(numbers)) for r in records), np.int32, len(records)
            ),
            days=(
                np.zeros(len(records), np.int32)
                if day is None
                else np.fromiter((day(r).toordinal() for r in records), np.int32, len(records))
            ),
            numbers=numbers,
        )

    def __len__(self) -> int:
        return len(self.changed)

    def select(
        self,
        *,
        students: Collection[str] | None = None,
        since: datetime | None = None,
        data_from: date | None = None,
    ) -> NDArray[np.int64]:
        """The positions of the records asked for, in order."""
        first = 0 if since is None else int(np.searchsorted(self.changed, micros(since), side="right"))
        chosen = np.arange(first, len(self), dtype=np.int64)
        if students is not None:
            wanted = [self.numbers[s] for s in students if s in self.numbers]
            chosen = chosen[np.isin(self.students[first:], wanted)]
        if data_from is not None:
            chosen = chosen[self.days[chosen] >= data_from.toordinal()]
        return chosen

    def after(self, moment: datetime, record_id: str) -> int:
        """The position after the record (MOMENT, RECORD_ID) in (time, id) order: keyset paging."""
        at = micros(moment)
        low = int(np.searchsorted(self.changed, at, side="left"))
        high = int(np.searchsorted(self.changed, at, side="right"))
        # Records changed at the same moment are ordered by id: read theirs from the JSON.
        ids = [orjson.loads(self.record(i))["id"] for i in range(low, high)]
        return low + bisect.bisect_right(ids, record_id)

    def record(self, position: int) -> bytes:
        return self.body[self.starts[position] : self.starts[position + 1] - 1]

    def json_list(self, positions: NDArray[np.int64]) -> bytes:
        """The records at POSITIONS as a JSON array."""
        if len(positions) == 0:
            return b"[]"
        first, last = int(positions[0]), int(positions[-1])
        if last - first + 1 == len(positions):  # one run of records: one slice of the buffer
            return b"[" + self.body[self.starts[first] : self.starts[last + 1] - 1] + b"]"
        body, starts = self.body, self.starts
        return b"[" + b",".join([body[starts[i] : starts[i + 1] - 1] for i in positions.tolist()]) + b"]"


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
    # (resource or ROSTER, school) → the same, serialised; dropped on change.
    _packed: dict[tuple[str, str], Packed] = field(default_factory=dict)

    ROSTER = "roster"

    def changed(self, resource: str, school: str) -> None:
        self._ordered.pop((resource, school), None)
        self._packed.pop((resource, school), None)

    def packed(self, resource: str, school: str) -> Packed | None:
        """A resource of a school (or ROSTER), serialised, oldest change first; None when a record
        is too odd to index (a test's hand-made one): the caller then filters the dicts."""
        packed = self._packed.get((resource, school))
        if packed is not None:
            return packed
        try:
            if resource == self.ROSTER:
                packed = Packed.of(self.students(school), changed="dateLastModified", student="sourcedId")
            else:
                packed = Packed.of(
                    self.query(resource, school),
                    changed="updatedAt",
                    student="student",
                    day=lambda r: data_day(resource, r),
                )
        except (KeyError, TypeError, ValueError):
            return None
        self._packed[(resource, school)] = packed
        return packed

    def add_student(self, school: str, user: Record) -> None:
        self.roster[school][user["sourcedId"]] = user
        self.changed(self.ROSTER, school)

    def add(self, resource: str, school: str, records: Iterable[Record]) -> None:
        by_student = self.records[resource][school]
        for record in records:
            by_student[record["student"]][record["id"]] = record
        self.changed(resource, school)

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
                self.changed(resource, school)
                return record
        raise KeyError(record_id)

    def touch_student(self, school: str, student: str, **changes: Any) -> Record:
        user = self.roster[school][student]
        user.update(changes)
        user["dateLastModified"] = self.now()
        self.changed(self.ROSTER, school)
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
