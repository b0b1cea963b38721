"""The people of one district: households, students, guardians, homerooms, staff, and planted cases."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.roster.models import Guardian, GuardianLink, Homeroom, SchoolKind, StaffRole, StaffUser, Student
from app.sources.models import AidStatus, Source
from app.world.calendar import SchoolCalendar
from app.world.data import adult_given_names, child_given_names, family_names, variant_kanji, world_shape
from app.world.rows import Category, Rows

NOT_A_DAY = np.datetime64("NaT", "D")
JUNIOR_HIGH_GRADES = (7, 8, 9)  # 中学1–3年 are grades 7–9: one numbering for the nine years of 義務教育


@dataclass(frozen=True)
class SchoolPlace:
    """One school of a district and where its keys start."""

    key: int
    code: str
    slug: str
    name: str
    kind: SchoolKind
    calendar: SchoolCalendar

    @property
    def grades(self) -> tuple[int, ...]:
        return JUNIOR_HIGH_GRADES if self.kind is SchoolKind.junior_high else (1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Pupils:
    """The students of a district, one array entry each, with what the world knows of them."""

    key: NDArray[np.int64]
    school_student_id: NDArray[np.str_]
    school_key: NDArray[np.int64]
    grade: NDArray[np.int64]
    homeroom_key: NDArray[np.int64]
    household: NDArray[np.int64]
    enrolled_on: NDArray[np.datetime64]
    left_on: NDArray[np.datetime64]  # the last day enrolled: 転出 or 卒業式; NaT while enrolled
    category: NDArray[np.str_]  # the planted individual category, "" for none
    onset: NDArray[np.datetime64]  # when that category's signs begin
    hardship: NDArray[np.bool_]  # the household is in economic hardship …
    hardship_onset: NDArray[np.datetime64]  # … from this date
    aid: NDArray[np.str_]  # 就学援助 status (AidStatus value), "" when the school has no record
    single_parent: NDArray[np.bool_]
    adults: NDArray[np.int64]
    children: NDArray[np.int64]  # children in the household, at these schools or not
    care_need: NDArray[np.bool_]  # a household member needs care …
    care_since: NDArray[np.datetime64]  # … from this date (NaT: before the year)
    ability: NDArray[np.float64]  # latent school performance, the centre of the child's scores

    def __len__(self) -> int:
        return len(self.key)

    def subset(self, mask: NDArray[np.bool_]) -> Pupils:
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in fields(self)})


@dataclass(frozen=True)
class Roster:
    pupils: Pupils
    rows: list[Rows]


def district_roster(
    rng: np.random.Generator,
    *,
    schools: tuple[SchoolPlace, SchoolPlace],
    grade_sizes: dict[int, int],
    student_offset: int,
    homeroom_offset: int,
    staff_offset: int,
    municipality_key: int,
    school_year: int,
) -> Roster:
    """Households first, then their children in homerooms, their guardians, and the schools' staff."""
    shape = world_shape()
    grade = np.repeat(np.array(list(grade_sizes), dtype=np.int64), list(grade_sizes.values()))
    count = len(grade)
    household = _households(rng, grade)
    households = int(household.max()) + 1
    single_parent_h = rng.random(households) < 0.11
    grandparent_h = rng.random(households) < 0.15
    adults_h = np.where(single_parent_h, 1, 2) + grandparent_h
    siblings_here = np.bincount(household, minlength=households)
    children_h = siblings_here + rng.choice(3, size=households, p=[0.7, 0.22, 0.08])
    # Single-parent households are several times as often poor; 0.11 × 0.45 + 0.89 × 0.08 ≈ 0.12,
    # scaled to the share world.yaml asks for.
    hardship_h = rng.random(households) < np.where(single_parent_h, 0.45, 0.08) * (
        shape["planted"]["economic_hardship_households"] / 0.12
    )
    family_h = family_names().draw(rng, households)
    # On a hand-typed school roster a 異体字 is often written in its common form (髙橋 → 高橋),
    # while the guardian's own records keep the 住民票 spelling.
    common_spelling_h = rng.random(households) < 0.35

    sex = np.where(rng.random(count) < 0.49, "female", "male")
    given = np.empty(count, dtype=np.int64)
    for value in ("female", "male"):
        chosen = sex == value
        given[chosen] = child_given_names().draw(rng, int(chosen.sum()), sex=value)
    birth_date = _birth_dates(rng, grade, school_year)

    family_kanji = family_names().kanji[family_h]
    roster_family = np.where(common_spelling_h, _common_spelling(family_kanji), family_kanji)[household]
    family_kana = family_names().kana[family_h][household]
    given_kanji = child_given_names().kanji[given]
    given_kana = child_given_names().kana[given]

    # Order the students as a school lists them: school, grade, homeroom, then by reading (名簿順).
    homeroom_sizes: dict[int, int] = {}
    homeroom_local = np.zeros(count, dtype=np.int64)
    for g in grade_sizes:
        in_grade = np.flatnonzero(grade == g)
        if not len(in_grade):
            continue  # a tiny world may leave a grade empty: no homeroom for it
        rooms = -(-len(in_grade) // int(shape["homeroom_size"]))
        homeroom_sizes[g] = rooms
        homeroom_local[rng.permutation(in_grade)] = np.arange(len(in_grade)) % rooms
    school_index = (grade <= 6).astype(np.int64)  # the junior high first, then the elementary school
    order = np.lexsort((given_kana, family_kana, homeroom_local, grade, school_index))
    reorder = [grade, household, sex, birth_date, roster_family, family_kana, given_kanji, given_kana]
    grade, household, sex, birth_date, roster_family, family_kana, given_kanji, given_kana = (
        a[order] for a in reorder
    )
    homeroom_local, school_index = homeroom_local[order], school_index[order]
    key = student_offset + np.arange(count, dtype=np.int64) + 1

    homeroom_rows, homeroom_key = _homerooms(
        schools, homeroom_sizes, homeroom_offset, grade, homeroom_local, school_year
    )
    school_key = np.array([s.key for s in schools], dtype=np.int64)[school_index]
    enrolled_on, left_on, transferred_in, moved_out = _enrolment(
        rng, schools, school_index, grade, school_year
    )
    school_student_id = _school_student_ids(
        schools, school_index, grade, enrolled_on, transferred_in, school_year
    )

    category, onset = _planted(rng, schools, school_index, grade, eligible=~transferred_in & ~moved_out)
    hardship_onset_h = np.where(
        rng.random(households) < 0.6,
        np.datetime64(date(school_year, 4, 1)),
        np.array([np.datetime64(date(school_year, m, 1)) for m in rng.integers(6, 13, size=households)]),
    )
    hardship = hardship_h[household]
    hardship_onset = np.where(hardship, np.maximum(hardship_onset_h[household], enrolled_on), NOT_A_DAY)
    # A young carer's household has someone who needs care; a few other households too (cared for
    # by adults), so that the household fact alone does not give the label away.
    carer = category == Category.young_carer.value
    care_need = carer | (rng.random(households) < 0.04)[household]
    care_since = np.where(carer & (onset > schools[0].calendar.days[0]), onset, NOT_A_DAY)
    aid = _school_aid(rng, hardship, hardship_onset, school_year)

    pupils = Pupils(
        key=key,
        school_student_id=school_student_id,
        school_key=school_key,
        grade=grade,
        homeroom_key=homeroom_key,
        household=household,
        enrolled_on=enrolled_on,
        left_on=left_on,
        category=category,
        onset=onset,
        hardship=hardship,
        hardship_onset=hardship_onset,
        aid=aid,
        single_parent=single_parent_h[household],
        adults=adults_h[household],
        children=children_h[household],
        care_need=care_need,
        care_since=care_since,
        ability=np.clip(rng.normal(68, 12, size=count), 20, 98) - 4 * hardship,
    )
    student_rows = Rows(
        table=Student,
        upstream=Source.school_affairs,
        columns={
            "id": key,
            "school_id": school_key,
            "homeroom_id": homeroom_key,
            "school_student_id": school_student_id,
            "family_name": roster_family,
            "given_name": given_kanji,
            "family_name_kana": family_kana,
            "given_name_kana": given_kana,
            "birth_date": birth_date,
            "sex": sex,
            "grade": grade,
            "enrolled_on": enrolled_on,
            "transferred_in": transferred_in,
            "left_on": np.where(np.isnat(left_on), np.datetime64(date(school_year, 4, 1)), left_on),
        },
        missing={"left_on": np.isnat(left_on)},
    )
    guardian_rows, link_rows = _guardians(
        rng, household, key, family_h, birth_date, student_offset, school_year, single_parent_h
    )
    staff_rows = _staff(rng, schools, homeroom_rows, staff_offset, municipality_key)
    return Roster(pupils=pupils, rows=[homeroom_rows, student_rows, guardian_rows, link_rows, staff_rows])


def _households(rng: np.random.Generator, grade: NDArray[np.int64]) -> NDArray[np.int64]:
    """Group the students into households of one to three children, siblings in different grades."""
    by_grade: dict[int, list[int]] = {
        int(g): rng.permutation(np.flatnonzero(grade == g)).tolist() for g in np.unique(grade)
    }
    household = np.full(len(grade), -1, dtype=np.int64)
    sizes = rng.choice([1, 2, 3], size=len(grade), p=[0.6, 0.32, 0.08]).tolist()
    sibling_grades = rng.random((len(grade), 2)).tolist()
    number = 0
    for student in rng.permutation(len(grade)).tolist():
        if household[student] >= 0:
            continue
        household[student] = number
        taken = {int(grade[student])}
        for draw in sibling_grades[student][: sizes[student] - 1]:
            open_grades = [g for g, pool in by_grade.items() if g not in taken and _has_free(pool, household)]
            if not open_grades:
                break
            g = open_grades[int(draw * len(open_grades))]
            sibling = _pop_free(by_grade[g], household)
            household[sibling] = number
            taken.add(g)
        number += 1
    return household


def _has_free(pool: list[int], household: NDArray[np.int64]) -> bool:
    while pool and household[pool[-1]] >= 0:
        pool.pop()
    return bool(pool)


def _pop_free(pool: list[int], household: NDArray[np.int64]) -> int:
    _has_free(pool, household)
    return pool.pop()


def _common_spelling(names: NDArray[np.str_]) -> NDArray[np.str_]:
    table = str.maketrans(variant_kanji())
    return np.array([name.translate(table) for name in names.tolist()], dtype=names.dtype)


def _birth_dates(
    rng: np.random.Generator, grade: NDArray[np.int64], school_year: int
) -> NDArray[np.datetime64]:
    """A child in grade g of 年度 Y was born between April 2 of Y−g−6 and April 1 of Y−g−5."""
    first = np.array(
        [np.datetime64(f"{school_year - g - 6}-04-02") for g in grade.tolist()], dtype="datetime64[D]"
    )
    birth: NDArray[np.datetime64] = first + rng.integers(0, 365, size=len(grade)).astype("timedelta64[D]")
    return birth


def _homerooms(
    schools: tuple[SchoolPlace, SchoolPlace],
    sizes: dict[int, int],
    offset: int,
    grade: NDArray[np.int64],
    local: NDArray[np.int64],
    school_year: int,
) -> tuple[Rows, NDArray[np.int64]]:
    keys: dict[tuple[int, int], int] = {}
    columns: dict[str, list[Any]] = {"id": [], "school_id": [], "school_year": [], "grade": [], "name": []}
    for school in schools:
        for g in school.grades:
            for room in range(sizes.get(g, 0)):
                keys[(g, room)] = offset + len(keys) + 1
                shown = g - 6 if school.kind is SchoolKind.junior_high else g
                for column, value in zip(
                    columns,
                    (keys[(g, room)], school.key, school_year, g, f"{shown}年{room + 1}組"),
                    strict=True,
                ):
                    columns[column].append(value)
    rows = Rows(Homeroom, Source.school_affairs, {k: np.array(v) for k, v in columns.items()})
    homeroom_key = np.array([keys[(g, r)] for g, r in zip(grade.tolist(), local.tolist(), strict=True)])
    return rows, homeroom_key.astype(np.int64)


def _enrolment(
    rng: np.random.Generator,
    schools: tuple[SchoolPlace, SchoolPlace],
    school_index: NDArray[np.int64],
    grade: NDArray[np.int64],
    school_year: int,
) -> tuple[NDArray[np.datetime64], NDArray[np.datetime64], NDArray[np.bool_], NDArray[np.bool_]]:
    """First and last day at the school: the entrance year's April 1, a 転入日, a 転出 day, or 卒業式."""
    transfers = world_shape()["transfers"]
    count = len(grade)
    grade_in_school = np.where(grade >= 7, grade - 6, grade)
    enrolled_on = np.array(
        [np.datetime64(f"{school_year - g + 1}-04-01") for g in grade_in_school.tolist()],
        dtype="datetime64[D]",
    )
    left_on = np.full(count, NOT_A_DAY)
    draw = rng.random(count)
    transferred_in = draw < transfers["in"]
    moving_out = (draw >= transfers["in"]) & (draw < transfers["in"] + transfers["out"])
    for index, school in enumerate(schools):
        days = school.calendar.days
        here = school_index == index
        arriving = here & transferred_in
        enrolled_on[arriving] = days[rng.integers(20, len(days) - 20, size=int(arriving.sum()))]
        leaving = here & moving_out
        left_on[leaving] = days[rng.integers(30, len(days) - 10, size=int(leaving.sum()))]
        graduating = here & (grade == max(school.grades)) & ~moving_out
        left_on[graduating] = np.datetime64(school.calendar.graduation)
    return enrolled_on, left_on, transferred_in, moving_out


def _school_student_ids(
    schools: tuple[SchoolPlace, SchoolPlace],
    school_index: NDArray[np.int64],
    grade: NDArray[np.int64],
    enrolled_on: NDArray[np.datetime64],
    transferred_in: NDArray[np.bool_],
    school_year: int,
) -> NDArray[np.str_]:
    """The school's own id: entrance year and a serial, e.g. 20230041 (転入生 get the year they came)."""
    entry_year = enrolled_on.astype("datetime64[Y]").astype(np.int64) + 1970
    entry_year = np.where(transferred_in, school_year, entry_year)
    serials: dict[tuple[int, int], int] = {}
    ids = []
    for school, year in zip(school_index.tolist(), entry_year.tolist(), strict=True):
        serials[(school, year)] = serials.get((school, year), 0) + 1
        ids.append(f"{year}{serials[(school, year)]:04d}")
    return np.array(ids)


def _planted(
    rng: np.random.Generator,
    schools: tuple[SchoolPlace, SchoolPlace],
    school_index: NDArray[np.int64],
    grade: NDArray[np.int64],
    *,
    eligible: NDArray[np.bool_],
) -> tuple[NDArray[np.str_], NDArray[np.datetime64]]:
    """Plant the individual categories (one at most per child) and the school day their signs begin.

    Only children enrolled the whole year carry one, so every onset has a before and an after.
    """
    planted = world_shape()["planted"]
    count = len(grade)
    category = np.full(count, "", dtype="<U24")
    onset = np.full(count, NOT_A_DAY)
    # The school-day index range in which each category's signs may begin.
    windows = {
        Category.school_non_attendance: (15, 140),
        Category.bullying: (20, 170),
        Category.young_carer: (20, 150),
        Category.long_term_illness: (20, 140),
    }
    draw = rng.random(count)
    for index, school in enumerate(schools):
        here = (school_index == index) & eligible
        threshold = 0.0
        for chosen_category, (first, last) in windows.items():
            rate = float(planted[chosen_category.value][school.kind.value])
            if chosen_category is Category.young_carer:
                rate *= 1.3 if school.kind is SchoolKind.junior_high else 1.0
            chosen = here & (draw >= threshold) & (draw < threshold + rate)
            if chosen_category is Category.young_carer:
                chosen &= grade >= 3  # the youngest children are not counted as carers
            threshold += rate
            category[chosen] = chosen_category.value
            day_index = rng.integers(first, last, size=int(chosen.sum()))
            if chosen_category is Category.young_carer:
                day_index[rng.random(len(day_index)) < 0.5] = 0  # care began before the year
            onset[chosen] = school.calendar.days[day_index]
    return category, onset


def _school_aid(
    rng: np.random.Generator,
    hardship: NDArray[np.bool_],
    hardship_onset: NDArray[np.datetime64],
    school_year: int,
) -> NDArray[np.str_]:
    """就学援助: most families in hardship are approved, some only applied, some never apply."""
    count = len(hardship)
    draw = rng.random(count)
    late = hardship_onset >= np.datetime64(date(school_year, 11, 1))
    aid = np.full(count, AidStatus.not_applied.value, dtype="<U12")
    aid[hardship & (draw < 0.65)] = AidStatus.approved.value
    aid[hardship & late & (draw < 0.65)] = AidStatus.applied.value
    aid[~hardship & (draw < 0.01)] = AidStatus.denied.value
    aid[rng.random(count) < 0.02] = ""  # the school affairs system has no record for these
    return aid


def _guardians(
    rng: np.random.Generator,
    household: NDArray[np.int64],
    student_key: NDArray[np.int64],
    family_h: NDArray[np.int64],
    child_birth: NDArray[np.datetime64],
    student_offset: int,
    school_year: int,
    single_parent_h: NDArray[np.bool_],
) -> tuple[Rows, Rows]:
    """One guardian per household, and a second for some two-parent households; each linked to the
    household's children (links unverified until a guardian uses the school's invitation code)."""
    households = len(family_h)
    second = ~single_parent_h & (rng.random(households) < 0.35)
    owner = np.concatenate([np.arange(households), np.flatnonzero(second)])
    mother_first = rng.random(households) < np.where(single_parent_h, 0.88, 0.75)
    is_mother = np.concatenate([mother_first, ~mother_first[second]])
    count = len(owner)
    given = np.empty(count, dtype=np.int64)
    for value, chosen in (("female", is_mother), ("male", ~is_mother)):
        given[chosen] = adult_given_names().draw(rng, int(chosen.sum()), sex=value)
    # Guardian keys sit in a range twice the size of the district's student range: never collide.
    key = 2 * student_offset + np.arange(count, dtype=np.int64) + 1
    eldest_birth = np.full(households, np.datetime64("2100-01-01", "D"))
    np.minimum.at(eldest_birth, household, child_birth)
    birth = eldest_birth[owner] - (rng.integers(24, 42, size=count) * 365.25).astype("timedelta64[D]")
    stems = world_shape()["school_name_stems"]
    address = np.array(
        [
            f"青葉市{stems[int(s)]}町{int(a)}丁目{int(b)}番{int(c)}号"
            for s, a, b, c in zip(
                rng.integers(0, len(stems), households),
                rng.integers(1, 6, households),
                rng.integers(1, 30, households),
                rng.integers(1, 20, households),
                strict=True,
            )
        ]
    )[owner]
    guardians = Rows(
        Guardian,
        Source.school_affairs,
        {
            "id": key,
            "subject": np.array([national_id_subject(int(k)) for k in key]),
            "family_name": family_names().kanji[family_h][owner],
            "given_name": adult_given_names().kanji[given],
            "family_name_kana": family_names().kana[family_h][owner],
            "given_name_kana": adult_given_names().kana[given],
            "birth_date": birth,
            "address": address,
        },
        missing={"birth_date": rng.random(count) < 0.05, "address": rng.random(count) < 0.03},
    )
    guardian_of_household: list[list[int]] = [[] for _ in range(households)]
    for index, h in enumerate(owner.tolist()):
        guardian_of_household[h].append(index)
    link_guardian, link_student, relationship = [], [], []
    for student, h in zip(student_key.tolist(), household.tolist(), strict=True):
        for g in guardian_of_household[h]:
            link_guardian.append(int(key[g]))
            link_student.append(student)
            relationship.append("母" if is_mother[g] else "父")
    link_count = len(link_student)
    links = Rows(
        GuardianLink,
        Source.school_affairs,
        {
            "id": 2 * student_offset + np.arange(link_count, dtype=np.int64) + 1,
            "guardian_id": np.array(link_guardian, dtype=np.int64),
            "student_id": np.array(link_student, dtype=np.int64),
            "relationship": np.array(relationship),
        },
    )
    return guardians, links


def national_id_subject(guardian_key: int) -> str:
    """The subject the national-ID sign-in stand-in gives this guardian of the demo world.

    The world's guardians are seeded as if they had signed in once before, so that signing in
    as one of them at the stand-in (which lists the same world) finds them, not a stranger.
    """
    return f"jp-nid-{guardian_key:08d}"


StaffMember = tuple[str, StaffRole, str, int | None, int | None]  # login, role, title, school, homeroom


def staff_rows(
    rng: np.random.Generator,
    people: list[StaffMember],
    offset: int,
    municipality_key: int,
) -> Rows:
    """Staff accounts (login, role, school, homeroom); no passwords: sign-in is set up later."""
    count = len(people)
    sex = np.where(rng.random(count) < 0.5, "female", "male")
    given = np.empty(count, dtype=np.int64)
    for value in ("female", "male"):
        chosen = sex == value
        given[chosen] = adult_given_names().draw(rng, int(chosen.sum()), sex=value)
    family = family_names().kanji[family_names().draw(rng, count)]
    names = [
        f"{f} {g}（{title}）"
        for f, g, (_, _, title, _, _) in zip(
            family.tolist(), adult_given_names().kanji[given].tolist(), people, strict=True
        )
    ]
    return Rows(
        StaffUser,
        Source.school_affairs,
        {
            "id": offset + np.arange(count, dtype=np.int64) + 1,
            "login": np.array([person[0] for person in people]),
            "display_name": np.array(names),
            "role": np.array([person[1].value for person in people]),
            "municipality_id": np.full(count, municipality_key, dtype=np.int64),
            "school_id": np.array([person[3] or 0 for person in people], dtype=np.int64),
            "homeroom_id": np.array([person[4] or 0 for person in people], dtype=np.int64),
        },
        missing={
            "school_id": np.array([person[3] is None for person in people]),
            "homeroom_id": np.array([person[4] is None for person in people]),
        },
    )


def _staff(
    rng: np.random.Generator,
    schools: tuple[SchoolPlace, SchoolPlace],
    homerooms: Rows,
    offset: int,
    municipality_key: int,
) -> Rows:
    people: list[StaffMember] = []
    for school in schools:
        people += [
            (f"{school.slug}.principal", StaffRole.school_leader, "校長", school.key, None),
            (f"{school.slug}.vice", StaffRole.school_leader, "教頭", school.key, None),
            (f"{school.slug}.nurse", StaffRole.school_nurse, "養護教諭", school.key, None),
            (
                f"{school.slug}.counselor",
                StaffRole.school_counselor,
                "スクールカウンセラー",
                school.key,
                None,
            ),
        ]
        here = homerooms.columns["school_id"] == school.key
        for room, g, name in zip(
            homerooms.columns["id"][here].tolist(),
            homerooms.columns["grade"][here].tolist(),
            homerooms.columns["name"][here].tolist(),
            strict=True,
        ):
            shown = g - 6 if school.kind is SchoolKind.junior_high else g
            room_number = name.split("年")[1].removesuffix("組")
            login = f"{school.slug}.hr{shown}-{room_number}"
            people.append((login, StaffRole.homeroom_teacher, f"{name}担任", school.key, room))
    return staff_rows(rng, people, offset, municipality_key)


def staff_count(homerooms: int) -> int:
    """How many staff accounts a district has: four per school, and one teacher per homeroom."""
    return 8 + homerooms
