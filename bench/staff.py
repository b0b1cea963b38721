"""Staff console benchmark: queue and timeline latency under 50 concurrent staff sessions, and
audit appends per second; prints one JSON line.

    python bench/staff.py [--students 250000] [--sessions 50] [--requests 2000] [--database-url URL]

The database is built for the run (a temporary SQLite file, or a PostgreSQL schema of its own):
a municipality of N students in schools of about 500, an open alert with its evidence for one
child in twelve, a family consent for three in four of those, and a term of records (school
days, attendance, mood, nurse visits) for the children whose timelines are opened. The service
runs as its own process (uvicorn) on an ephemeral loopback port; 50 signed-in staff (school
leaders of 40 schools and 10 municipal case workers) alternate between the alert queue and a
child's timeline until the request count or the time bound is reached. Every request is a real
read: reach, consent and audit included. Goals: p95 ≤ 150 ms; audit ≥ 10,000 appends/s.

The load model is a closed loop of people: each session sends a request, waits for the page,
then reads it before the next click. The reading time is drawn from a negative exponential
distribution with a mean of 7 s (TPC-W's think time for web users) and every session starts at
a random moment within one think time, so 50 sessions offer about 7 requests/s, not a burst of
50 at once. That is still heavier than 50 people working a queue (a queue page or a timeline
takes longer than 7 s to read). `--think-ms 0` makes every session click again the moment a
page arrives: a saturation test of the server's capacity (its requests/s), whose latencies are
queueing time, not what a person waits.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.audit.models import Outcome
from app.core.db import make_engine
from app.core.migrate import upgrade
from app.models import (
    Alert,
    AlertEvent,
    AttendanceDay,
    ConsentGrant,
    ConsentPermission,
    Guardian,
    Homeroom,
    MoodCheckin,
    Municipality,
    NurseVisit,
    ReviewCapacity,
    School,
    SchoolDay,
    ScreeningRun,
    Signal,
    StaffUser,
    Student,
    WebSession,
)
from consent.scopes import Purpose, Scope

ROOT = Path(__file__).resolve().parents[1]
SCHOOL_SIZE = 500
ROOMS_PER_GRADE = 3
ALERT_EVERY = 12
TIMELINE_CHILDREN_PER_SCHOOL = 12
AS_OF = date(2026, 11, 20)
TERM_START = date(2026, 9, 1)
CONCURRENT_WRITERS = 8
PAGE_USES = 100  # a queue page of 50 children, two categories each


def _table(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


def _insert(connection: sa.Connection, model: Any, rows: list[dict[str, Any]], chunk: int = 5_000) -> None:
    for start in range(0, len(rows), chunk):
        connection.execute(sa.insert(_table(model)), rows[start : start + chunk])


def build(engine: Engine, students: int) -> dict[str, Any]:
    """Write the bench's world with bulk inserts; returns what the load needs to know."""
    rng = random.Random(20261123)
    now = datetime.now(UTC)
    school_days = [TERM_START + timedelta(days=d) for d in range((AS_OF - TERM_START).days + 1)]
    school_days = [d for d in school_days if d.weekday() < 5]
    schools = -(-students // SCHOOL_SIZE)
    with engine.begin() as connection:
        connection.execute(sa.insert(_table(Municipality)), [{"id": 1, "code": "999001", "name": "ベンチ市"}])
        _insert(
            connection,
            School,
            [
                {
                    "id": s,
                    "municipality_id": 1,
                    "code": f"B{s:05d}",
                    "name": f"ベンチ第{s}小学校",
                    "kind": "elementary",
                }
                for s in range(1, schools + 1)
            ],
        )
        rooms: list[dict[str, Any]] = []
        for s in range(1, schools + 1):
            for grade in range(1, 7):
                for n in range(1, ROOMS_PER_GRADE + 1):
                    rooms.append(
                        {
                            "id": len(rooms) + 1,
                            "school_id": s,
                            "school_year": 2026,
                            "grade": grade,
                            "name": f"{grade}年{n}組",
                        }
                    )
        _insert(connection, Homeroom, rooms)
        _insert(
            connection,
            SchoolDay,
            [{"school_id": s, "day": d} for s in range(1, schools + 1) for d in school_days],
        )
        rows = []
        for i in range(1, students + 1):
            school = (i - 1) // SCHOOL_SIZE + 1
            room = (school - 1) * 6 * ROOMS_PER_GRADE + (i % (6 * ROOMS_PER_GRADE)) + 1
            rows.append(
                {
                    "id": i,
                    "school_id": school,
                    "homeroom_id": room,
                    "school_student_id": f"{i:07d}",
                    "family_name": "試験",
                    "given_name": f"子{i}",
                    "family_name_kana": "シケン",
                    "given_name_kana": "コ",
                    "birth_date": date(2015, 4, 2),
                    "sex": "unspecified",
                    "grade": rooms[room - 1]["grade"],
                    "enrolled_on": date(2021, 4, 1),
                    "transferred_in": False,
                }
            )
        _insert(connection, Student, rows)
        connection.execute(
            sa.insert(_table(ScreeningRun)),
            [
                {
                    "id": 1,
                    "kind": "full",
                    "status": "succeeded",
                    "as_of": AS_OF,
                    "catalog_version": "bench",
                    "started_at": now,
                    "children_screened": students,
                    "summary": {},
                }
            ],
        )
        alert_children = list(range(1, students + 1, ALERT_EVERY))
        alerts: list[dict[str, Any]] = []
        signals: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        guardians: list[dict[str, Any]] = []
        grants: list[dict[str, Any]] = []
        permissions: list[dict[str, Any]] = []
        for n, child in enumerate(alert_children, start=1):
            school = (child - 1) // SCHOOL_SIZE + 1
            score = round(rng.uniform(1, 8), 1)
            alerts.append(
                {
                    "id": n,
                    "student_id": child,
                    "school_id": school,
                    "category": "non_attendance",
                    "status": "new",
                    "score": score,
                    "opened_at": now,
                    "updated_at": now,
                    "opened_run_id": 1,
                    "last_run_id": 1,
                    "evidence_as_of": AS_OF,
                    "coverage": {"insufficient_data": [], "not_consented": []},
                }
            )
            signals.append(
                {
                    "alert_id": n,
                    "student_id": child,
                    "rule_id": "chronic_absence_30d",
                    "rule_version": "1",
                    "weight": score,
                    "first_run_id": 1,
                    "last_run_id": 1,
                    "first_seen_on": AS_OF,
                    "last_seen_on": AS_OF,
                    "boosters": [],
                    "atoms": [
                        {
                            "name": "absent_often",
                            "feature": "absence_rate_30d",
                            "op": ">=",
                            "threshold": 0.1,
                            "value": 0.2,
                            "result": True,
                            "window_start": "2026-10-22",
                            "window_end": "2026-11-20",
                        }
                    ],
                }
            )
            events.append(
                {"alert_id": n, "at": now, "kind": "opened", "to_status": "new", "run_id": 1, "detail": {}}
            )
            if n % 4:
                guardians.append(
                    {
                        "id": n,
                        "family_name": "試験",
                        "given_name": "保護者",
                        "family_name_kana": "シケン",
                        "given_name_kana": "ホゴシャ",
                        "created_at": now,
                    }
                )
                grants.append(
                    {
                        "id": n,
                        "guardian_id": n,
                        "student_id": child,
                        "scopes": [s.value for s in Scope],
                        "purposes": [Purpose.early_support.value],
                        "fetch_frequency": "daily",
                        "data_life_days": 365,
                        "starts_at": now - timedelta(days=90),
                        "status": "active",
                        "status_changed_at": now,
                        "notice_version": "bench",
                        "notice_hash": "0" * 64,
                        "created_at": now,
                    }
                )
                permissions += [
                    {
                        "grant_id": n,
                        "scope": s.value,
                        "purpose": Purpose.early_support.value,
                        "student_id": child,
                    }
                    for s in Scope
                ]
        _insert(connection, Alert, alerts)
        _insert(connection, Signal, signals)
        _insert(connection, AlertEvent, events)
        _insert(connection, Guardian, guardians)
        _insert(connection, ConsentGrant, grants)
        _insert(connection, ConsentPermission, permissions)
        _insert(
            connection,
            ReviewCapacity,
            [
                {"school_id": s, "weekly_capacity": 10, "medium_share": 0.2, "updated_at": now}
                for s in range(1, schools + 1)
            ],
        )
        # A term of records for the children whose timelines are opened.
        leader_schools = list(range(1, min(40, schools) + 1))
        per_school: dict[int, list[int]] = {}
        for grant in grants:
            school = (grant["student_id"] - 1) // SCHOOL_SIZE + 1
            if (
                school in leader_schools
                and len(per_school.setdefault(school, [])) < TIMELINE_CHILDREN_PER_SCHOOL
            ):
                per_school[school].append(grant["student_id"])
        timeline_children = [child for children in per_school.values() for child in children]
        attendance, mood, nurse = [], [], []
        weathers = ["sunny", "cloudy", "rain", "thunder"]
        for child in timeline_children:
            for day in school_days:
                mood.append(
                    {
                        "student_id": child,
                        "day": day,
                        "weather": rng.choice(weathers),
                        "source": "demo_loader",
                        "fetched_at": now,
                    }
                )
                if rng.random() < 0.12:
                    attendance.append(
                        {
                            "student_id": child,
                            "day": day,
                            "mark": "absent",
                            "reason": "illness",
                            "source": "demo_loader",
                            "fetched_at": now,
                        }
                    )
            for k in range(3):
                nurse.append(
                    {
                        "student_id": child,
                        "visited_at": datetime(2026, 10, 5 + k * 7, 2, tzinfo=UTC),
                        "complaint": "headache",
                        "source": "demo_loader",
                        "fetched_at": now,
                    }
                )
        _insert(connection, MoodCheckin, mood)
        _insert(connection, AttendanceDay, attendance)
        _insert(connection, NurseVisit, nurse)
        # Staff and their signed-in sessions (the cookie is the token; only its hash is stored).
        staff, sessions, cookies = [], [], []
        for n in range(1, 51):
            case_worker = n > 40
            staff.append(
                {
                    "id": n,
                    "login": f"bench-{n}",
                    "display_name": f"職員{n}",
                    "role": "case_worker" if case_worker else "school_leader",
                    "municipality_id": 1,
                    "school_id": None if case_worker else leader_schools[(n - 1) % len(leader_schools)],
                    "is_active": True,
                }
            )
            token = secrets.token_urlsafe(32)
            sessions.append(
                {
                    "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                    "principal_kind": "staff",
                    "principal_id": n,
                    "csrf_token": secrets.token_urlsafe(16),
                    "created_at": now,
                    "last_seen_at": now,
                }
            )
            cookies.append(token)
        _insert(connection, StaffUser, staff)
        _insert(connection, WebSession, sessions)
        if connection.dialect.name == "postgresql":
            for model in (
                Municipality,
                School,
                Homeroom,
                Student,
                Alert,
                Guardian,
                ConsentGrant,
                StaffUser,
                ScreeningRun,
            ):
                table = _table(model).name
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608 - our table names
                )
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
    by_school: dict[int, list[int]] = {}
    for child in timeline_children:
        by_school.setdefault((child - 1) // SCHOOL_SIZE + 1, []).append(child)
    return {
        "alerts": len(alerts),
        "consented": len(grants),
        "cookies": cookies,
        "staff": staff,
        "timeline_children": by_school,
    }


@contextmanager
def fresh_database(url: str | None) -> Iterator[str]:
    """A temporary SQLite file, or a schema of its own in the given PostgreSQL (dropped after)."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'staff.db'}"
        return
    parsed = make_url(url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def load(
    base: str, world: dict[str, Any], requests: int, seconds: float, sessions: int, think_ms: float
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"queue": [], "timeline": []}
    errors = 0
    failures: dict[str, int] = {}
    remaining = requests
    deadline = time.monotonic() + seconds
    every_child = [c for children in world["timeline_children"].values() for c in children]

    async def staff_member(n: int) -> None:
        nonlocal errors, remaining
        member = world["staff"][n]
        children = (
            world["timeline_children"].get(member["school_id"], every_child)
            if member["school_id"]
            else every_child
        )
        rng = random.Random(n)
        cookies = {"tsunagu_session": world["cookies"][n]}
        async with httpx.AsyncClient(
            base_url=base, cookies=cookies, timeout=30, headers={"accept": "text/html"}
        ) as client:
            turn = n
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                kind = "queue" if turn % 2 else "timeline"
                turn += 1
                url = (
                    "/staff/alerts"
                    if kind == "queue"
                    else f"/staff/children/{rng.choice(children)}?end={AS_OF}"
                )
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.TransportError as exc:
                    errors += 1
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                    continue
                latencies[kind].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors += 1
                    failures[str(response.status_code)] = failures.get(str(response.status_code), 0) + 1
                await reading(rng)

    async def reading(rng: random.Random) -> None:
        """A person reads the page before the next click (0: hammer the server)."""
        if think_ms > 0:
            await asyncio.sleep(rng.expovariate(1000 / think_ms))

    async def first_click(n: int) -> None:
        if think_ms > 0:  # people do not all sign in at the same instant
            await asyncio.sleep(random.Random(-n).uniform(0, think_ms / 1000))
        await staff_member(n)

    started = time.perf_counter()
    await asyncio.gather(*(first_click(n) for n in range(sessions)))
    elapsed = time.perf_counter() - started

    def pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)

    return {
        "requests_done": sum(len(v) for v in latencies.values()),
        "errors": errors,
        "failures": failures,
        "requests_per_second": round(sum(len(v) for v in latencies.values()) / elapsed, 1),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "queue_p50_ms": pct(latencies["queue"], 50),
        "queue_p95_ms": pct(latencies["queue"], 95),
        "timeline_p50_ms": pct(latencies["timeline"], 50),
        "timeline_p95_ms": pct(latencies["timeline"], 95),
    }


def audit_rates(engine: Engine) -> dict[str, float]:
    """Entries per second: in batches (a queue page's uses) one writer after another, one per
    transaction (a single change), and from concurrent writers, each transaction a page's uses."""
    actor = Actor(kind=ActorKind.staff, ref="bench", organisation="ベンチ市", role="case_worker")
    entries = [
        audit.Entry(
            actor=actor,
            action=audit.USE,
            outcome=Outcome.allowed,
            student_id=i,
            scope="school.attendance",
            purpose="early_support",
            grant_id=i,
        )
        for i in range(1, 1001)
    ]

    def write(batch: list[audit.Entry], transactions: int) -> None:
        for _ in range(transactions):
            with Session(engine) as session:
                audit.append_many(session=session, entries=batch)
                session.commit()

    started = time.perf_counter()
    write(entries, 20)
    batched = 20 * len(entries) / (time.perf_counter() - started)
    started = time.perf_counter()
    singles = 1000
    for i in range(singles):
        write(entries[i : i + 1], 1)
    single = singles / (time.perf_counter() - started)
    page = entries[:PAGE_USES]
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT_WRITERS) as pool:
        list(pool.map(lambda _n: write(page, 40), range(CONCURRENT_WRITERS)))
    concurrent = CONCURRENT_WRITERS * 40 * len(page) / (time.perf_counter() - started)
    with Session(engine) as session:
        verified = audit.verify(session=session)
    return {
        "audit_appends_per_second_batched": round(batched),
        "audit_appends_per_second_one_per_transaction": round(single),
        "audit_appends_per_second_concurrent": round(concurrent),
        "audit_concurrent_writers": CONCURRENT_WRITERS,
        "audit_entries_per_transaction_concurrent": PAGE_USES,
        "audit_chains_intact": verified.ok,
        "audit_chains": verified.chains,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=250_000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument(
        "--requests", type=int, default=2_000, help="total requests, queue and timeline alternating"
    )
    parser.add_argument("--seconds", type=float, default=180, help="upper bound of the load phase")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=7000,
        help="mean reading time between a person's requests (exponential); 0: a saturation test",
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    sessions = min(args.sessions, 50)
    with fresh_database(args.database_url) as url:
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        world = build(engine, args.students)
        setup_seconds = time.perf_counter() - started
        port = _free_port()
        env = {
            **os.environ,
            "TSUNAGU_DATABASE_URL": url,
            "TSUNAGU_LOG_LEVEL": "WARNING",
            "TSUNAGU_MODE": "demo",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--no-access-log",
                # Longer than any think time plus queueing: the server must not close a kept-alive
                # connection just as a client sends on it (a ReadError that is not the service's).
                "--timeout-keep-alive",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240  # a loaded machine imports slowly
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the service did not start")
                time.sleep(0.2)
            load_before = round(os.getloadavg()[0], 2)
            figures = asyncio.run(load(base, world, args.requests, args.seconds, sessions, args.think_ms))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rates = audit_rates(engine)
        engine.dispose()
    print(
        json.dumps(
            {
                "benchmark": "staff",
                "database": make_url(url).get_backend_name(),
                "students": args.students,
                "open_alerts": world["alerts"],
                "consented_children": world["consented"],
                "staff_sessions": sessions,
                "server_workers": args.workers,
                "think_ms": args.think_ms,
                "think_time": "exponential" if args.think_ms > 0 else "none (saturation)",
                "load_average_1m_before": load_before,
                "setup_seconds": round(setup_seconds, 1),
                **figures,
                **rates,
            }
        )
    )


if __name__ == "__main__":
    main()
