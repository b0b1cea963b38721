"""The world generator: deterministic, consistent with its calendar, honest about what it does not know."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from functools import cache

import numpy as np
import pytest

from app.core.errors import BadRequest
from app.roster.models import Guardian, Homeroom, StaffRole, StaffUser, Student
from app.sources.models import AttendanceDay, HouseholdInfo, MoodCheckin
from app.world.data import family_names, variant_kanji
from app.world.generator import WorldSpec, generate
from app.world.rows import Batch, Category, Rows

DATE_COLUMNS = ("day", "week_start", "month", "as_of", "visited_at", "due_at", "submitted_at")


@cache
def world(students: int = 1200, seed: int = 11) -> tuple[Batch, ...]:
    return tuple(generate(WorldSpec(students=students, seed=seed)))


def rows_of(batches: tuple[Batch, ...], table: type) -> list[Rows]:
    return [rows for batch in batches for rows in batch.rows if rows.table is table]


def column(batches: tuple[Batch, ...], table: type, name: str) -> np.ndarray:
    return np.concatenate([rows.columns[name] for rows in rows_of(batches, table)])


def test_same_seed_same_world_and_another_seed_another() -> None:
    first = list(generate(WorldSpec(students=300, seed=5)))
    second = list(generate(WorldSpec(students=300, seed=5)))
    assert [b.name for b in first] == [b.name for b in second]
    for a, b in zip(first, second, strict=True):
        assert [r.table for r in a.rows] == [r.table for r in b.rows]
        for ra, rb in zip(a.rows, b.rows, strict=True):
            assert ra.columns.keys() == rb.columns.keys()
            for name in ra.columns:
                assert np.array_equal(ra.columns[name], rb.columns[name]), (ra.table, name)
            for name in ra.missing:
                assert np.array_equal(ra.missing[name], rb.missing[name])
        assert a.labels == b.labels
    other = list(generate(WorldSpec(students=300, seed=6)))
    names = column(tuple(first), Student, "given_name")
    assert not np.array_equal(names, column(tuple(other), Student, "given_name"))


def test_scales_by_districts_with_keys_that_never_collide() -> None:
    batches = world(2500, 3)
    assert [b.students for b in batches] == [0, 1250, 1250]
    for table in (Student, Guardian):
        keys = column(batches, table, "id")
        assert len(np.unique(keys)) == len(keys)
    assert sorted(column(batches, Student, "id").tolist()) == list(range(1, 2501))


@pytest.mark.parametrize("students", [1, 5, 1801])
def test_keys_fixed_by_arithmetic_are_the_keys_generated(students: int) -> None:
    """Each district's key ranges are computed without generating the others: they must fit exactly."""
    batches = tuple(generate(WorldSpec(students=students, seed=3)))
    for table in (Student, Homeroom, StaffUser):
        keys = sorted(column(batches, table, "id").tolist())
        assert keys == list(range(1, len(keys) + 1)), table


def test_attendance_record_arithmetic_matches_the_daily_marks() -> None:
    """出席しなければならない日数 = 授業日数 − 出席停止・忌引等; 出席日数 = それ − 欠席日数."""
    batches = world()
    student = column(batches, AttendanceDay, "student_id")
    mark = column(batches, AttendanceDay, "mark")
    excused = Counter(student[mark == "excused"].tolist())
    absent = Counter(student[mark == "absent"].tolist())
    checked = 0
    for batch in batches:
        for record in batch.attendance:
            for i, key in enumerate(record.student_id.tolist()):
                assert record.excused_days[i] == excused[key]
                assert record.absent_days[i] == absent[key]
                assert record.required_days[i] == record.school_days[i] - excused[key]
                assert record.attended_days[i] == record.required_days[i] - absent[key]
                checked += 1
    assert checked == 1200
    # A day is one mark at most, and an excused day is never also an absence.
    days = column(batches, AttendanceDay, "day")
    pairs = Counter(zip(student.tolist(), days.tolist(), strict=True))
    assert max(pairs.values()) == 1


def test_transfer_students_have_nothing_before_they_arrived() -> None:
    batches = world()
    ids = column(batches, Student, "id")
    transferred = column(batches, Student, "transferred_in")
    enrolled = dict(zip(ids.tolist(), column(batches, Student, "enrolled_on").tolist(), strict=True))
    arrivals = set(ids[transferred].tolist())
    assert len(arrivals) >= 10
    seen_after = set()
    for batch in batches:
        for rows in batch.rows:
            for date_column in (
                c for c in DATE_COLUMNS if c in rows.columns and "student_id" in rows.columns
            ):
                check_arrivals(rows, date_column, arrivals, enrolled)
                seen_after |= arrivals & set(rows.columns["student_id"].tolist())
    assert seen_after == arrivals  # they do have records once they came


def local_dates(values: np.ndarray) -> np.ndarray:
    """Dates as the school sees them: instants are UTC, the school day is in Japan (UTC+9)."""
    if np.datetime_data(values.dtype)[0] == "D":
        return values
    return (values + np.timedelta64(9, "h")).astype("datetime64[D]")


def check_arrivals(rows: Rows, date_column: str, arrivals: set[int], enrolled: dict[int, date]) -> None:
    blank = rows.missing.get(date_column, np.zeros(len(rows), dtype=bool))
    for key, when, unknown in zip(
        rows.columns["student_id"].tolist(),
        local_dates(rows.columns[date_column]).tolist(),
        blank.tolist(),
        strict=True,
    ):
        if key in arrivals and not unknown:
            # A week or a month counts from its first day: it may begin before the arrival.
            last = when + timedelta(days={"week_start": 6, "month": 30}.get(date_column, 0))
            assert last >= enrolled[key], (rows.table, key, when, enrolled[key])


def test_labels_point_at_real_students_and_school_non_attendance_shows() -> None:
    batches = world()
    ids = column(batches, Student, "id")
    school_ids = dict(zip(ids.tolist(), column(batches, Student, "school_student_id").tolist(), strict=True))
    labels = [label for batch in batches for label in batch.labels]
    categories = Counter(label.category for label in labels)
    assert set(categories) == set(Category)
    for label in labels:
        assert school_ids[label.student_id] == label.school_student_id
        assert (label.onset is None) == (label.category is Category.healthy_control)
    absent = column(batches, AttendanceDay, "mark") == "absent"
    student = column(batches, AttendanceDay, "student_id")
    reason = column(batches, AttendanceDay, "reason")
    for label in labels:
        if label.category is Category.school_non_attendance:
            # MEXT's 不登校: 30+ days a year, most of them not for illness.
            own = absent & (student == label.student_id)
            assert own.sum() >= 30
            assert (reason[own] != "illness").mean() > 0.5


def test_mood_turns_stormy_after_bullying_onset() -> None:
    batches = world()
    bullied = {
        label.student_id: np.datetime64(label.onset)
        for batch in batches
        for label in batch.labels
        if label.category is Category.bullying
    }
    assert bullied
    student, day = column(batches, MoodCheckin, "student_id"), column(batches, MoodCheckin, "day")
    stormy = np.isin(column(batches, MoodCheckin, "weather"), ["rain", "thunder"])
    for key, onset in bullied.items():
        own = student == key
        before, after = stormy[own & (day < onset)], stormy[own & (day >= onset)]
        assert after.mean() > before.mean() + 0.3


def test_names_have_readings_and_variant_kanji() -> None:
    batches = world()
    kana = np.concatenate(
        [column(batches, Student, "family_name_kana"), column(batches, Student, "given_name_kana")]
    )
    assert all(all("\u3041" <= ch <= "\u309f" for ch in text) for text in kana.tolist())
    variants = set(variant_kanji())
    assert any(set(name) & variants for name in family_names().kanji.tolist())
    guardians = column(batches, Guardian, "family_name").tolist()
    assert any(set(name) & variants for name in guardians)


def test_unknowns_are_null_not_zero() -> None:
    batches = world()
    nulls: Counter[str] = Counter()
    for batch in batches:
        for rows in batch.rows:
            for name, mask in rows.missing.items():
                nulls[f"{rows.table.__tablename__}.{name}"] += int(mask.sum())
    for name in (
        "learning_activity.minutes",
        "fee_status.arrears",
        "grade_record.score",
        "household_info.member_needing_care",
        "benefit_status.receiving",
        "nurse_visit.minutes",
    ):
        assert nulls[name] > 0, name


def test_records_are_plain_python_for_the_stand_ins() -> None:
    visits = rows_of(world(), MoodCheckin)[0]
    first = next(visits.records())
    assert set(first) == {"student_id", "day", "weather", "reason"}
    assert isinstance(first["student_id"], int)
    assert first["day"].isoformat() >= "2025-04-07"


def test_size_is_bounded() -> None:
    with pytest.raises(BadRequest):
        WorldSpec(students=0, seed=1)
    with pytest.raises(BadRequest):
        WorldSpec(students=250_001, seed=1)


def test_every_staff_role_has_an_account() -> None:
    roles = set(column(world(), StaffUser, "role").tolist())
    assert roles == {role.value for role in StaffRole}


def test_young_carers_show_family_care_and_a_household_member_needing_care() -> None:
    batches = world()
    carers = {
        label.student_id: np.datetime64(label.onset)
        for batch in batches
        for label in batch.labels
        if label.category is Category.young_carer
    }
    assert carers
    student, day = column(batches, AttendanceDay, "student_id"), column(batches, AttendanceDay, "day")
    family_care = column(batches, AttendanceDay, "reason") == "family_care"
    for key, onset in carers.items():
        assert (family_care & (student == key) & (day >= onset)).any()
    household = rows_of(batches, HouseholdInfo)
    needing_care = {
        key
        for rows in household
        for key, value, unknown in zip(
            rows.columns["student_id"].tolist(),
            rows.columns["member_needing_care"].tolist(),
            rows.missing["member_needing_care"].tolist(),
            strict=True,
        )
        if value and not unknown
    }
    assert len(needing_care & set(carers)) >= 0.5 * len(carers)
