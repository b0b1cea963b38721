"""The school stand-ins' serialised records answer every question exactly as the records do."""

from __future__ import annotations

from datetime import date, timedelta

import orjson
import pytest

from mocks.school_data import SchoolRecords
from tests.connectors.upstream import STAMP, number, school_records

SCHOOL = "T-PACK"


@pytest.fixture
def data() -> SchoolRecords:
    return school_records(SCHOOL, 6)


def _json(records: object) -> object:
    return orjson.loads(orjson.dumps(records))


@pytest.mark.parametrize("resource", ["attendance", "fees", "grades", "mood-checkins", "submissions"])
def test_a_packed_query_gives_what_the_records_give(data: SchoolRecords, resource: str) -> None:
    packed = data.packed(resource, SCHOOL)
    assert packed is not None
    some = [number(SCHOOL, 1), number(SCHOOL, 4), "nobody"]
    for students in (None, some):
        for since in (None, STAMP, STAMP + timedelta(minutes=1, seconds=3)):
            for data_from in (None, date(2026, 5, 12), date(2026, 5, 1)):
                expected = data.query(resource, SCHOOL, students=students, since=since, data_from=data_from)
                positions = packed.select(students=students, since=since, data_from=data_from)
                assert orjson.loads(packed.json_list(positions)) == _json(expected)
                # A page from the middle (not one run of the buffer when students are named).
                assert orjson.loads(packed.json_list(positions[1:3])) == _json(expected[1:3])


def test_keyset_paging_resumes_after_the_record_named(data: SchoolRecords) -> None:
    packed = data.packed("mood-checkins", SCHOOL)
    assert packed is not None
    ordered = data.query("mood-checkins", SCHOOL)
    for index in (0, 5, len(ordered) - 1):
        record = ordered[index]
        assert packed.after(record["updatedAt"], record["id"]) == index + 1


def test_a_change_drops_the_serialised_copy(data: SchoolRecords) -> None:
    before = data.packed("attendance", SCHOOL)
    changed = data.touch("attendance", SCHOOL, f"attendance:{number(SCHOOL, 2)}:0", reason="02")
    after = data.packed("attendance", SCHOOL)
    assert after is not before and after is not None
    assert orjson.loads(after.json_list(after.select()))[-1] == _json(changed)
    roster = data.packed(data.ROSTER, SCHOOL)
    data.touch_student(SCHOOL, number(SCHOOL, 0), givenName="さくら改")
    assert data.packed(data.ROSTER, SCHOOL) is not roster


def test_a_record_too_odd_to_index_is_served_from_the_records(data: SchoolRecords) -> None:
    data.add("fees", SCHOOL, [{"id": "odd", "student": number(SCHOOL, 0), "updatedAt": STAMP}])
    assert data.packed("fees", SCHOOL) is None
