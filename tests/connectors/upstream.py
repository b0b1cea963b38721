"""A few children's records in the stand-ins' wire shape, made by hand for connector tests.

Small on purpose: every record is known, so a test can say exactly what must be stored.
(The demo world itself comes from app/world; these tests need a handful of precise rows.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from mocks.school_data import SchoolRecords

STAMP = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PER_STUDENT = {
    "attendance": 3,
    "nurse-visits": 1,
    "grades": 2,
    "fees": 2,
    "school-aid": 1,
    "learning-activity": 2,
    "submissions": 2,
    "mood-checkins": 3,
}
SCHOOL_AFFAIRS_RESOURCES = ("attendance", "nurse-visits", "grades", "fees", "school-aid")
PLATFORM_RESOURCES = ("learning-activity", "submissions", "mood-checkins")


def number(school: str, index: int) -> str:
    return f"{school}-{index:03d}"


def student_record(school: str, index: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sourcedId": number(school, index),
        "status": "active",
        "dateLastModified": STAMP + timedelta(seconds=index),
        "role": "student",
        "familyName": "加賀",
        "givenName": f"さくら{index}",
        "birthDate": date(2013, 4, 2) + timedelta(days=index),
        "sex": "female",
        "grades": ["J1"],
        "metadata": {
            "jp.kanaFamilyName": "カガ",
            "jp.kanaGivenName": "サクラ",
            "jp.homeroom": "1年1組",
            "jp.schoolYear": 2026,
            "jp.enrolledOn": "2026-04-06",
            "jp.transferredIn": False,
        },
    }
    return record | overrides


def _records(resource: str, student: str, index: int, n: int) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        base: dict[str, Any] = {
            "id": f"{resource}:{student}:{k}",
            "student": student,
            "status": "active",
            "updatedAt": STAMP + timedelta(minutes=k, seconds=index),
        }
        day = date(2026, 5, 11) + timedelta(days=k)
        shapes: dict[str, dict[str, Any]] = {
            "attendance": {"date": day, "mark": "absent", "reason": "01"},
            "nurse-visits": {
                "visitedAt": datetime(2026, 5, 12, 10, k, tzinfo=UTC),
                "complaint": "頭痛",
                "minutes": 15,
                "sentHome": False,
            },
            "grades": {
                "schoolYear": 2026,
                "term": 1,
                "subject": ("国語", "数学", "英語")[k % 3],
                "score": 70 + k,
            },
            "fees": {"month": f"2026-{4 + k:02d}", "billedYen": 4500, "paidYen": 4500, "arrears": False},
            "school-aid": {"schoolYear": 2026, "aidStatus": "未申請"},
            "learning-activity": {
                "weekStart": date(2026, 5, 11) + timedelta(weeks=k),
                "signInDays": 4,
                "minutes": 90,
            },
            "submissions": {
                "assignmentId": f"A-{k}",
                "dueAt": datetime(2026, 5, 15 + k, 8, tzinfo=UTC),
                "submittedAt": datetime(2026, 5, 14 + k, 20, tzinfo=UTC),
            },
            "mood-checkins": {"date": day, "weather": "晴れ", "comment": None},
        }
        out.append(base | shapes[resource])
    return out


def school_records(school: str, students: int, data: SchoolRecords | None = None) -> SchoolRecords:
    """STUDENTS children at SCHOOL, each with PER_STUDENT records of every resource."""
    data = data or SchoolRecords()
    for index in range(students):
        data.add_student(school, student_record(school, index))
        for resource, n in PER_STUDENT.items():
            data.add(resource, school, _records(resource, number(school, index), index, n))
    return data
