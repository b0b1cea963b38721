"""The demo world (app/world) as the stand-ins hold it: school records and Myna Portal residents.

The world is generated district by district from its spec, so a stand-in builds a school's
records only when a client first asks for that school, and keeps at most a few districts in
memory (a 50,000-student world never sits in one process whole). The spec comes from the
environment, as `tsunagu run` seeds it: TSUNAGU_DEMO_STUDENTS (600) and TSUNAGU_DEMO_SEED.
The codes below are the upstream systems' own (the connector maps them back).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from app.roster.models import Guardian, GuardianLink, Homeroom, School, Student
from app.sources.models import (
    AssignmentSubmission,
    AttendanceDay,
    BenefitStatus,
    FeeStatus,
    GradeRecord,
    HouseholdInfo,
    LearningActivity,
    MoodCheckin,
    NurseVisit,
    SchoolAidStatus,
)
from app.world.generator import District, WorldSpec
from app.world.people import national_id_subject
from mocks.myna_portal import MynaRecords, Resident
from mocks.national_id.app import Person
from mocks.school_data import Record, SchoolRecords, data_day

DEMO_STUDENTS = 600
DEMO_SEED = 20261123
REASON_CODES = {
    "illness": "01",
    "accident": "02",
    "family_care": "03",
    "other": "09",
    "suspension": "21",
    "bereavement": "22",
}
COMPLAINT_CODES = {
    "headache": "頭痛",
    "stomachache": "腹痛",
    "injury": "けが",
    "fatigue": "体調不良",
    "emotional": "気持ち",
    "other": "その他",
}
AID_CODES = {"not_applied": "未申請", "applied": "申請中", "approved": "認定", "denied": "否認"}
WEATHER_CODES = {"sunny": "晴れ", "cloudy": "くもり", "rain": "雨", "thunder": "かみなり"}
JST = timedelta(hours=9)


def _evening(day: date) -> datetime:
    """Marks of a day are entered by the end of that school day (17:00 JST)."""
    return datetime.combine(day, time(17), tzinfo=UTC) - JST


def _grade_code(grade: int) -> str:
    return f"J{grade - 6}" if grade > 6 else f"P{grade}"


def _wire(table: Any, number: str, row: dict[str, Any]) -> tuple[str, Record]:
    """(resource, wire record) for one row of the world's tables."""
    if table is AttendanceDay:
        return "attendance", {
            "id": f"att:{number}:{row['day']}:{row['mark']}",
            "date": row["day"],
            "mark": row["mark"],
            "reason": REASON_CODES.get(row["reason"]) if row["reason"] else None,
            "updatedAt": _evening(row["day"]),
        }
    if table is NurseVisit:
        return "nurse-visits", {
            "id": f"nurse:{number}:{row['visited_at'].isoformat()}",
            "visitedAt": row["visited_at"],
            "complaint": COMPLAINT_CODES[row["complaint"]],
            "minutes": row["minutes"],
            "sentHome": row["sent_home"],
            "updatedAt": row["visited_at"] + timedelta(hours=1),
        }
    if table is GradeRecord:
        return "grades", {
            "id": f"grade:{number}:{row['school_year']}:{row['term']}:{row['subject']}",
            "schoolYear": row["school_year"],
            "term": row["term"],
            "subject": row["subject"],
            "score": row["score"],
            "updatedAt": _evening(date(row["school_year"], (7, 12, 3)[row["term"] - 1], 20))
            + timedelta(days=365 if row["term"] == 3 else 0),
        }
    if table is FeeStatus:
        month: date = row["month"]
        return "fees", {
            "id": f"fee:{number}:{month:%Y-%m}",
            "month": f"{month:%Y-%m}",
            "billedYen": row["billed_yen"],
            "paidYen": row["paid_yen"],
            "arrears": row["arrears"],
            "updatedAt": _evening(month + timedelta(days=27)),
        }
    if table is SchoolAidStatus:
        return "school-aid", {
            "id": f"aid:{number}:{row['school_year']}",
            "schoolYear": row["school_year"],
            "aidStatus": AID_CODES[row["status"]],
            "updatedAt": _evening(date(row["school_year"], 5, 31)),
        }
    if table is LearningActivity:
        return "learning-activity", {
            "id": f"learn:{number}:{row['week_start']}",
            "weekStart": row["week_start"],
            "signInDays": row["sign_in_days"],
            "minutes": row["minutes"],
            "updatedAt": _evening(row["week_start"] + timedelta(days=6)),
        }
    if table is AssignmentSubmission:
        return "submissions", {
            "id": f"sub:{number}:{row['assignment_ref']}",
            "assignmentId": row["assignment_ref"],
            "dueAt": row["due_at"],
            "submittedAt": row["submitted_at"],
            "updatedAt": max(row["due_at"], row["submitted_at"] or row["due_at"]),
        }
    if table is MoodCheckin:
        return "mood-checkins", {
            "id": f"mood:{number}:{row['day']}",
            "date": row["day"],
            "weather": WEATHER_CODES[row["weather"]],
            "comment": row["reason"],
            "updatedAt": _evening(row["day"]),
        }
    raise KeyError(table)


RECORD_TABLES = (
    AttendanceDay,
    NurseVisit,
    GradeRecord,
    FeeStatus,
    SchoolAidStatus,
    LearningActivity,
    AssignmentSubmission,
    MoodCheckin,
)


def load_district(data: SchoolRecords, district: District) -> None:
    """Generate one district and add its two schools' roster and records to DATA."""
    batch = district.generate()
    by_table: dict[Any, list[Any]] = {}
    for rows in batch.rows:
        by_table.setdefault(rows.table, []).append(rows)
    codes = {r["id"]: r["code"] for rows in by_table[School] for r in rows.records()}
    homerooms = {r["id"]: r for rows in by_table.get(Homeroom, []) for r in rows.records()}
    students: dict[int, tuple[str, str]] = {}  # world key → (school code, student number)
    for rows in by_table.get(Student, []):
        for s in rows.records():
            code = codes[s["school_id"]]
            homeroom = homerooms.get(s["homeroom_id"])
            students[s["id"]] = (code, s["school_student_id"])
            data.add_student(
                code,
                {
                    "sourcedId": s["school_student_id"],
                    "status": "active",
                    "dateLastModified": datetime.combine(s["enrolled_on"], time(0), tzinfo=UTC),
                    "role": "student",
                    "familyName": s["family_name"],
                    "givenName": s["given_name"],
                    "birthDate": s["birth_date"],
                    "sex": s["sex"],
                    "grades": [_grade_code(s["grade"])],
                    "metadata": {
                        "jp.kanaFamilyName": s["family_name_kana"],
                        "jp.kanaGivenName": s["given_name_kana"],
                        "jp.homeroom": homeroom["name"] if homeroom else None,
                        "jp.schoolYear": homeroom["school_year"] if homeroom else district.spec.school_year,
                        "jp.enrolledOn": s["enrolled_on"],
                        "jp.transferredIn": s["transferred_in"],
                        "jp.leftOn": s["left_on"],
                    },
                },
            )
    for table in RECORD_TABLES:
        grouped: dict[tuple[str, str], list[Record]] = {}
        for rows in by_table.get(table, []):
            for row in rows.records():
                code, number = students[row["student_id"]]
                resource, record = _wire(table, number, row)
                record.update(student=number, status="active")
                grouped.setdefault((resource, code), []).append(record)
        for (resource, code), records in grouped.items():
            data.add(resource, code, records)


class WorldRecords(SchoolRecords):
    """SchoolRecords that fill themselves from the world, a district at a time, on first use.

    A district put away keeps its latest changes (the last `TAIL` before its newest), so an
    incremental question about it (`since` within that tail) is answered without building the
    district again, as a real system answers from an index on its modification time.
    """

    TAIL = timedelta(days=2)
    ROSTER = "roster"

    def __init__(self, spec: WorldSpec, *, keep_districts: int = 4) -> None:
        super().__init__()
        self.spec = spec
        self.keep = keep_districts
        self.loaded: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self.district_of = {
            school.code: district for district in spec.districts for school in district.schools
        }
        # (resource or ROSTER, school) → (the tail's start, its records oldest change first)
        self.tails: dict[tuple[str, str], tuple[datetime, list[Record]]] = {}

    def ensure(self, school: str) -> None:
        district = self.district_of.get(school)
        if district is None:
            return
        if district.index in self.loaded:
            self.loaded.move_to_end(district.index)
            return
        while len(self.loaded) >= self.keep:
            _, codes = self.loaded.popitem(last=False)
            for code in codes:
                self._keep_tails(code)
                self.roster.pop(code, None)
                for resource, by_school in self.records.items():
                    by_school.pop(code, None)
                    self._ordered.pop((resource, code), None)
        load_district(self, district)
        first, second = district.schools
        self.loaded[district.index] = (first.code, second.code)

    def prebuild(self) -> None:
        """Build and serialise every school of the world now, not on its first request: a
        benchmark then measures the sync, not the stand-in making up its world (bench/ingest.py)."""
        from mocks import school_affairs, school_platform  # they build their apps from this module

        resources = (*school_affairs.RESOURCES, *school_platform.RESOURCES)
        for district in self.spec.districts:
            for school in district.schools:
                for resource in (self.ROSTER, *resources):
                    self.packed(resource, school.code)

    def _keep_tails(self, code: str) -> None:
        users = super().students(code)
        if users:
            start = users[-1]["dateLastModified"] - self.TAIL
            self.tails[(self.ROSTER, code)] = (start, [u for u in users if u["dateLastModified"] > start])
        for resource in list(self.records):
            ordered = super().query(resource, code)
            if ordered:
                start = ordered[-1]["updatedAt"] - self.TAIL
                self.tails[(resource, code)] = (start, super().query(resource, code, since=start))

    def _tail(self, resource: str, school: str, since: datetime | None) -> list[Record] | None:
        """The records changed after SINCE, when a put-away district's tail holds them all."""
        district = self.district_of.get(school)
        tail = self.tails.get((resource, school))
        if since is None or district is None or district.index in self.loaded or tail is None:
            return None
        start, records = tail
        return records if since >= start else None

    def students(self, school: str, *, since: datetime | None = None) -> list[Record]:
        tail = self._tail(self.ROSTER, school, since)
        if tail is not None:
            return [u for u in tail if since is None or u["dateLastModified"] > since]
        self.ensure(school)
        return super().students(school, since=since)

    def query(
        self,
        resource: str,
        school: str,
        *,
        students: Collection[str] | None = None,
        since: datetime | None = None,
        data_from: date | None = None,
    ) -> list[Record]:
        tail = self._tail(resource, school, since)
        if tail is not None:
            named = None if students is None else set(students)
            return [
                r
                for r in tail
                if (since is None or r["updatedAt"] > since)
                and (named is None or r["student"] in named)
                and (data_from is None or data_day(resource, r) >= data_from)
            ]
        self.ensure(school)
        return super().query(resource, school, students=students, since=since, data_from=data_from)


@cache
def demo_school_records() -> WorldRecords:
    """The world `tsunagu run` seeds, shared by every stand-in of this process."""
    students = int(os.environ.get("TSUNAGU_DEMO_STUDENTS", DEMO_STUDENTS))
    seed = int(os.environ.get("TSUNAGU_DEMO_SEED", DEMO_SEED))
    return WorldRecords(WorldSpec(students=students, seed=seed))


MYNA_CATEGORY_OF = {
    "child_allowance": "child_allowance",
    "child_rearing_allowance": "single_parent",
    "school_attendance_aid": "school_aid",
    "public_assistance": "public_assistance",
    "resident_tax_exempt": "tax",
}


def myna_residents(spec: WorldSpec) -> MynaRecords:
    """Every guardian of the world as a card holder, with the household and benefits the portal
    holds about them (taken from their first child's rows in the world)."""
    data = MynaRecords()
    for district in spec.districts:
        batch = district.generate()
        tables: dict[Any, list[dict[str, Any]]] = {}
        for rows in batch.rows:
            tables.setdefault(rows.table, []).extend(rows.records())
        students = {s["id"]: s for s in tables.get(Student, [])}
        households = {h["student_id"]: h for h in tables.get(HouseholdInfo, [])}
        benefits: dict[int, dict[str, dict[str, Any]]] = {}
        for b in sorted(tables.get(BenefitStatus, []), key=lambda b: b["as_of"]):
            benefits.setdefault(b["student_id"], {})[MYNA_CATEGORY_OF[b["benefit"]]] = {
                "asOf": b["as_of"],
                "receiving": b["receiving"],
            }
        children: dict[int, list[int]] = {}
        for link in tables.get(GuardianLink, []):
            children.setdefault(link["guardian_id"], []).append(link["student_id"])
        for guardian in tables.get(Guardian, []):
            kids = children.get(guardian["id"], [])
            if not kids:
                continue
            first = kids[0]
            members = [
                {
                    "relation": "本人",
                    "familyName": guardian["family_name"],
                    "givenName": guardian["given_name"],
                    "familyNameKana": guardian["family_name_kana"],
                    "givenNameKana": guardian["given_name_kana"],
                    "birthDate": guardian["birth_date"],
                },
                *(
                    {
                        "relation": "子",
                        "familyName": students[k]["family_name"],
                        "givenName": students[k]["given_name"],
                        "familyNameKana": students[k]["family_name_kana"],
                        "givenNameKana": students[k]["given_name_kana"],
                        "birthDate": students[k]["birth_date"],
                    }
                    for k in kids
                    if k in students
                ),
            ]
            records: dict[str, dict[str, Any]] = dict(benefits.get(first, {}))
            household = households.get(first)
            if household is not None:
                records["household"] = {
                    "asOf": household["as_of"],
                    "members": members,
                    "householdSize": household["household_size"],
                    "adults": household["adults"],
                    "singleParent": household["single_parent"],
                    "memberNeedingCare": household["member_needing_care"],
                }
            name = f"{guardian['family_name']} {guardian['given_name']}"
            data.add(Resident(f"guardian-{guardian['id']}", name, records))
    return data


@cache
def demo_myna_residents() -> MynaRecords:
    students = int(os.environ.get("TSUNAGU_DEMO_STUDENTS", DEMO_STUDENTS))
    seed = int(os.environ.get("TSUNAGU_DEMO_SEED", DEMO_SEED))
    return myna_residents(WorldSpec(students=students, seed=seed))


def national_id_people(spec: WorldSpec) -> list[Person]:
    """Every guardian of the world as the national-ID login knows them (the subject tsunagu's seed
    gave them), with their children's school and homeroom to help a demo visitor pick one."""
    people: list[Person] = []
    for district in spec.districts:
        tables: dict[Any, list[dict[str, Any]]] = {}
        for rows in district.roster_rows():
            tables.setdefault(rows.table, []).extend(rows.records())
        schools = {s["id"]: s["name"] for s in tables[School]}
        homerooms = {h["id"]: h["name"] for h in tables.get(Homeroom, [])}
        students = {s["id"]: s for s in tables.get(Student, [])}
        children: dict[int, list[str]] = {}
        relationship: dict[int, str] = {}
        for link in tables.get(GuardianLink, []):
            child = students[link["student_id"]]
            children.setdefault(link["guardian_id"], []).append(
                f"{schools[child['school_id']]} {homerooms.get(child['homeroom_id'], '')} "
                f"{child['family_name']} {child['given_name']}"
            )
            relationship[link["guardian_id"]] = link["relationship"]
        for guardian in tables.get(Guardian, []):
            birth = guardian["birth_date"]
            people.append(
                Person(
                    sub=national_id_subject(guardian["id"]),
                    name=f"{guardian['family_name']} {guardian['given_name']}",
                    address=guardian["address"] or "",
                    birthdate=birth.isoformat() if birth else "",
                    gender="female" if relationship.get(guardian["id"]) == "母" else "male",
                    kana=f"{guardian['family_name_kana']} {guardian['given_name_kana']}",
                    children=tuple(children.get(guardian["id"], [])),
                )
            )
    return people


@cache
def demo_national_id_people() -> list[Person]:
    """The guardians `tsunagu run` seeds, as the stand-in's login page offers them."""
    students = int(os.environ.get("TSUNAGU_DEMO_STUDENTS", DEMO_STUDENTS))
    seed = int(os.environ.get("TSUNAGU_DEMO_SEED", DEMO_SEED))
    return national_id_people(WorldSpec(students=students, seed=seed))
