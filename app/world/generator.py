"""The demo world generator: a fictional municipality's upstream systems and a school year of their
records, yielded district by district so that any size streams in bounded memory.

Pure: it reads only its data files and the spec, writes nothing, and the same spec gives the same
world. Each district draws from its own random stream (seed, district number), so a stand-in can
regenerate one school without the others, and keys are fixed by arithmetic, not by what came before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from app.core.errors import BadRequest
from app.roster.models import Municipality, School, SchoolDay, SchoolKind, StaffRole
from app.sources.models import Source
from app.world.calendar import school_calendar
from app.world.data import world_shape
from app.world.people import Pupils, Roster, SchoolPlace, district_roster, staff_count, staff_rows
from app.world.rows import Batch, Category, Label, Rows
from app.world.school_year import school_year_rows

MUNICIPALITY_KEY = 1
MUNICIPAL_STAFF: list[tuple[str, StaffRole, str]] = [
    ("admin", StaffRole.administrator, "システム管理者"),
    ("case1", StaffRole.case_worker, "こども家庭センター"),
    ("case2", StaffRole.case_worker, "こども家庭センター"),
    ("ssw1", StaffRole.school_social_worker, "スクールソーシャルワーカー"),
    ("ssw2", StaffRole.school_social_worker, "スクールソーシャルワーカー"),
]
MAX_STUDENTS = 250_000


@dataclass(frozen=True)
class WorldSpec:
    students: int
    seed: int
    school_year: int = 2025

    def __post_init__(self) -> None:
        if not 1 <= self.students <= MAX_STUDENTS:
            raise BadRequest(f"students must be between 1 and {MAX_STUDENTS:,}, not {self.students:,}")

    @cached_property
    def districts(self) -> list[District]:
        """The districts and where each one's keys start; pure arithmetic on the spec."""
        count = max(1, round(self.students / int(world_shape()["district_students"])))
        sizes = np.full(count, self.students // count)
        sizes[: self.students % count] += 1
        districts: list[District] = []
        students = homerooms = 0
        staff = len(MUNICIPAL_STAFF)
        for index, size in enumerate(sizes.tolist()):
            grade_sizes = _grade_sizes(size)
            district = District(index, self, grade_sizes, students, homerooms, staff)
            districts.append(district)
            students += size
            homerooms += district.homerooms
            staff += staff_count(district.homerooms)
        return districts


@dataclass(frozen=True)
class District:
    """A 学区: one junior high and the elementary school that feeds it."""

    index: int
    spec: WorldSpec
    grade_sizes: dict[int, int]
    student_offset: int
    homeroom_offset: int
    staff_offset: int

    @property
    def students(self) -> int:
        return sum(self.grade_sizes.values())

    @property
    def homerooms(self) -> int:
        size = int(world_shape()["homeroom_size"])
        return sum(-(-n // size) for n in self.grade_sizes.values())

    @property
    def schools(self) -> tuple[SchoolPlace, SchoolPlace]:
        stems: list[str] = world_shape()["school_name_stems"]
        stem = stems[self.index % len(stems)]
        if self.index >= len(stems):
            stem += f"第{self.index // len(stems) + 1}"
        number = self.index + 1
        return (
            SchoolPlace(
                key=2 * self.index + 1,
                code=f"C199{number:06d}1",
                slug=f"jh{number:03d}",
                name=f"青葉市立{stem}中学校",
                kind=SchoolKind.junior_high,
                calendar=school_calendar(self.spec.school_year, SchoolKind.junior_high),
            ),
            SchoolPlace(
                key=2 * self.index + 2,
                code=f"B199{number:06d}2",
                slug=f"es{number:03d}",
                name=f"青葉市立{stem}小学校",
                kind=SchoolKind.elementary,
                calendar=school_calendar(self.spec.school_year, SchoolKind.elementary),
            ),
        )

    def _roster(self) -> tuple[np.random.Generator, Roster]:
        rng = np.random.default_rng(np.random.SeedSequence(self.spec.seed, spawn_key=(self.index + 1,)))
        roster = district_roster(
            rng,
            schools=self.schools,
            grade_sizes=self.grade_sizes,
            student_offset=self.student_offset,
            homeroom_offset=self.homeroom_offset,
            staff_offset=self.staff_offset,
            municipality_key=MUNICIPALITY_KEY,
            school_year=self.spec.school_year,
        )
        return rng, roster

    def roster_rows(self) -> list[Rows]:
        """The district's schools and people only, the same as `generate` gives, without the school
        year's records (the roster is drawn first, so it does not depend on them)."""
        _rng, roster = self._roster()
        return [_school_rows(self.schools), *roster.rows]

    def generate(self) -> Batch:
        rng, roster = self._roster()
        schools = self.schools
        rows = [_school_rows(schools), *_calendar_rows(schools), *roster.rows]
        labels, attendance = [], []
        for school in schools:
            pupils = roster.pupils.subset(roster.pupils.school_key == school.key)
            if not len(pupils):
                continue
            year = school_year_rows(rng, school, pupils)
            rows += year.rows
            attendance.append(year.attendance)
            labels += _labels(rng, school, pupils)
        return Batch(f"{schools[0].name}・{schools[1].name}", self.students, rows, labels, attendance)


def generate(spec: WorldSpec) -> Iterator[Batch]:
    """The municipality first, then each district with its schools and their school year."""
    yield _municipality(spec)
    for district in spec.districts:
        yield district.generate()


def _grade_sizes(students: int) -> dict[int, int]:
    """Equal cohorts in the nine grades; the remainder goes to the youngest."""
    sizes = np.full(9, students // 9)
    sizes[: students % 9] += 1
    return {grade: int(size) for grade, size in enumerate(sizes.tolist(), start=1)}


def _municipality(spec: WorldSpec) -> Batch:
    shape = world_shape()["municipality"]
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(0,)))
    municipality = Rows(
        Municipality,
        Source.school_affairs,
        {
            "id": np.array([MUNICIPALITY_KEY]),
            "code": np.array([shape["code"]]),
            "name": np.array([shape["name"]]),
        },
    )
    staff = staff_rows(
        rng, [(login, role, title, None, None) for login, role, title in MUNICIPAL_STAFF], 0, MUNICIPALITY_KEY
    )
    return Batch(str(shape["name"]), 0, [municipality, staff])


def _school_rows(schools: tuple[SchoolPlace, ...]) -> Rows:
    return Rows(
        School,
        Source.school_affairs,
        {
            "id": np.array([s.key for s in schools]),
            "municipality_id": np.full(len(schools), MUNICIPALITY_KEY),
            "code": np.array([s.code for s in schools]),
            "name": np.array([s.name for s in schools]),
            "kind": np.array([s.kind.value for s in schools]),
        },
    )


def _calendar_rows(schools: tuple[SchoolPlace, ...]) -> list[Rows]:
    return [
        Rows(
            SchoolDay,
            Source.school_affairs,
            {"school_id": np.full(len(s.calendar.days), s.key), "day": s.calendar.days},
        )
        for s in schools
    ]


def _labels(rng: np.random.Generator, school: SchoolPlace, pupils: Pupils) -> list[Label]:
    """The ground truth: planted categories with their onset, hardship by household, and controls."""
    planted = world_shape()["planted"]
    share = float(planted["healthy_controls"])
    stays = np.isnat(pupils.left_on) | (pupils.left_on == np.datetime64(school.calendar.graduation))
    clean = (pupils.category == "") & np.isnat(pupils.hardship_onset) & ~pupils.care_need & stays
    clean &= pupils.enrolled_on <= np.datetime64(school.calendar.first_day)
    control = clean & (rng.random(len(pupils)) < share / max(float(clean.mean()), share))
    labels = []
    for index in range(len(pupils)):
        entries: list[tuple[Category, np.datetime64 | None]] = []
        if pupils.category[index]:
            entries.append((Category(str(pupils.category[index])), pupils.onset[index]))
        if not np.isnat(pupils.hardship_onset[index]):
            entries.append((Category.economic_hardship, pupils.hardship_onset[index]))
        if control[index]:
            entries.append((Category.healthy_control, None))
        for category, onset in entries:
            labels.append(
                Label(
                    student_id=int(pupils.key[index]),
                    school_code=school.code,
                    school_student_id=str(pupils.school_student_id[index]),
                    category=category,
                    onset=None if onset is None else onset.astype(object),
                )
            )
    return labels
