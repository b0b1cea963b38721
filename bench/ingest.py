"""Ingest benchmark: a school year of N students pulled over loopback HTTP from the school affairs
and platform stand-ins into PostgreSQL and SQLite, through the real sync (consent, validation,
staged upserts, cursors).

Prints one JSON line per database: records fetched per second end to end, peak memory of the
syncing process and of the stand-ins, and a second run with nothing changed (rows written and
how many times faster). Every child has consent, so every record of the year is fetched.
PostgreSQL is measured when BENCH_POSTGRES_URL (or TEST_DATABASE_URL) is set. The sync runs as
the service's daily sync and `tsunagu sync` do: on PostgreSQL with `sync_workers` workers side by
side (two by default; --workers N to choose), on SQLite with one writer.

    python bench/ingest.py [--students 50000] [--databases sqlite postgresql] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.core.db import make_engine  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from app.demo import NOTICE_HASH, NOTICE_VERSION, SCHOOL_SCOPES  # noqa: E402
from app.roster.models import GuardianLink  # noqa: E402
from app.world.loader import load_world  # noqa: E402
from connectors import service  # noqa: E402
from consent.models import ConsentGrant, ConsentPermission  # noqa: E402
from consent.scopes import Purpose  # noqa: E402
from tests.databases import fresh_database  # noqa: E402


def prepare(url: str, students: int, seed: int) -> None:
    """In a child process, so the sync's peak memory is its own: the roster, and consent for all.

    The grants are written in bulk (a live grant and its permissions is all the policy reads),
    not one by one through the consent service with its receipts: that would take longer than
    the sync being measured."""
    engine = make_engine(url)
    upgrade(engine)
    load_world(engine, students=students, seed=seed, force=False, records=False)
    grants: sa.Table = ConsentGrant.__table__  # type: ignore[attr-defined]
    permissions: sa.Table = ConsentPermission.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        first: dict[int, int] = {}
        for guardian_id, student_id in session.exec(
            select(GuardianLink.guardian_id, GuardianLink.student_id)
        ):
            first.setdefault(student_id, guardian_id)
        now = datetime.now(UTC)
        scopes = sorted(scope.value for scope in SCHOOL_SCOPES)
        ids = session.execute(
            sa.insert(grants).returning(grants.c.id, grants.c.student_id, sort_by_parameter_order=True),
            [
                {
                    "guardian_id": guardian_id,
                    "student_id": student_id,
                    "scopes": scopes,
                    "purposes": [Purpose.early_support.value],
                    "fetch_frequency": "daily",
                    "data_life_days": 365,
                    "starts_at": now,
                    "status": "active",
                    "status_changed_at": now,
                    "notice_version": NOTICE_VERSION,
                    "notice_hash": NOTICE_HASH,
                    "created_at": now,
                }
                for student_id, guardian_id in first.items()
            ],
        ).all()
        session.execute(
            sa.insert(permissions),
            [
                {
                    "grant_id": grant_id,
                    "student_id": student_id,
                    "scope": scope,
                    "purpose": Purpose.early_support,
                }
                for grant_id, student_id in ids
                for scope in scopes
            ],
        )
        session.commit()
    if engine.dialect.name == "postgresql":
        # As autovacuum would have by the time a sync runs (the test server runs without it):
        # planned as empty, the consent query of every run read all grants one by one.
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE consent_grant, consent_permission")
    engine.dispose()


def start_stand_ins(students: int, seed: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """The two school stand-ins in one process, their world built and serialised before they
    answer: what is measured is the sync, not the stand-in making up a school year."""
    env = {**os.environ, "TSUNAGU_DEMO_STUDENTS": str(students), "TSUNAGU_DEMO_SEED": str(seed)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mocks",
            "--ephemeral",
            "--print-urls",
            "--prebuild",
            "--only",
            "school_affairs",
            "school_platform",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    urls: dict[str, str] = {}
    for raw in process.stdout:
        line = raw.decode().strip()
        if line == "ready":
            break
        label, _, url = line.partition("\t")
        urls["platform" if "platform" in label else "affairs"] = url.rstrip("/")
    return process, urls


def peak_mb(pid: int | None = None) -> float:
    if pid is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields from the state on (field 3 of proc(5) is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user + system)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU time of the PostgreSQL backends that served the run (same host): what the server's
    postmaster has reaped of its children between the start and the moment every backend of the
    benchmark's database has exited (the sync disposes its engine at the end; autovacuum is off).

    Sampling the live backends every 0.2 s from a thread missed each backend's time after its
    last sample, and the thread, waiting for the GIL behind the sync, sampled seldom: the same
    work read 5.9 µs per record in one run and 12.5 in the next."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.postmaster = 0
        self.started = 0.0
        self.ended = 0.0

    def _reaped(self) -> float:
        fields = _stat(self.postmaster)
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")

    def _others(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).scalar_one()
            )

    def _settled(self) -> float:
        """The reaped time once no other backend of the database is left (the set-up's gone)."""
        deadline = time.monotonic() + 30
        while self._others() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # the last backend (this check's own) reaped
        return self._reaped()

    def __enter__(self) -> PostgresCpu:
        with self.engine.connect() as connection:
            backend = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            self.postmaster = int(_stat(backend)[1])
        self.started = self._settled()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.ended = self._settled()
        self.engine.dispose()

    def seconds(self) -> float:
        return round(self.ended - self.started, 1)


async def sync(url: str, settings: Settings, workers: int) -> tuple[float, dict[str, float]]:
    engine = make_engine(url)
    with Session(engine) as session:
        service.enqueue(session=session, requested_by="bench")
        session.commit()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        runs = await service.work_together(
            engine=engine, settings=settings, name="bench", workers=workers, page_size=5000
        )
    finally:
        engine.dispose()
    seconds = time.perf_counter() - started
    totals: dict[str, float] = {"cpu_seconds": round(time.process_time() - cpu, 1)}
    totals |= {
        name: sum(getattr(run, name) for run in runs)
        for name in ("fetched", "inserted", "updated", "unchanged", "deleted", "quarantined", "requests")
    }
    totals["failed_runs"] = sum(run.status.value != "succeeded" for run in runs)
    return seconds, totals


def measure(
    backend: str, students: int, seed: int, urls: dict[str, str], pid: int, workers: int | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(backend, Path(tmp)) as url:
        started = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=prepare, args=(url, students, seed))
        child.start()
        child.join()
        setup = time.perf_counter() - started
        settings = Settings(
            database_url=url,
            school_affairs_url=urls["affairs"],
            school_platform_url=urls["platform"],
            upstream_timeout_seconds=300,
        )
        postgres = backend == "postgresql"
        workers = service.worker_count(settings, workers)
        stand_ins = cpu_seconds(pid)
        with PostgresCpu(url) if postgres else nullcontext() as database_first:
            first_seconds, first = asyncio.run(sync(url, settings, workers))
        stand_ins, stand_ins_first = cpu_seconds(pid), cpu_seconds(pid) - stand_ins
        with PostgresCpu(url) if postgres else nullcontext() as database_second:
            second_seconds, second = asyncio.run(sync(url, settings, workers))
        stand_ins_second = cpu_seconds(pid) - stand_ins
    records = first["fetched"]

    def per_record(seconds: float) -> float:
        return round(seconds * 1e6 / records, 1)

    database = {}
    if database_first is not None and database_second is not None:
        database = {
            "postgres_cpu_seconds": database_first.seconds(),
            "postgres_cpu_us_per_record": per_record(database_first.seconds()),
            "second_run_postgres_cpu_seconds": database_second.seconds(),
        }
    return {
        "benchmark": "ingest",
        "database": backend,
        "students": students,
        "workers": workers,
        "setup_seconds": round(setup, 1),
        "records": records,
        "seconds": round(first_seconds, 1),
        "records_per_second": round(records / first_seconds),
        "sync_cpu_seconds": first["cpu_seconds"],
        "sync_cpu_us_per_record": per_record(first["cpu_seconds"]),
        "stand_ins_cpu_seconds": round(stand_ins_first, 1),
        "stand_ins_cpu_us_per_record": per_record(stand_ins_first),
        **database,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "rows_inserted": first["inserted"],
        "requests": first["requests"],
        "failed_runs": first["failed_runs"],
        "peak_rss_mb_sync": peak_mb(),
        "peak_rss_mb_stand_ins": peak_mb(pid),
        "second_run_seconds": round(second_seconds, 2),
        "second_run_cpu_seconds": second["cpu_seconds"],
        "second_run_stand_ins_cpu_seconds": round(stand_ins_second, 1),
        "second_run_records": second["fetched"],
        "second_run_rows_written": second["inserted"] + second["updated"] + second["deleted"],
        "second_run_speedup": round(first_seconds / second_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--databases", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=None, help="PostgreSQL (default: sync_workers)")
    args = parser.parse_args()
    postgres = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_DATABASE_URL")
    if postgres:
        os.environ["TEST_DATABASE_URL"] = postgres
    backends = args.databases or ["sqlite", *(["postgresql"] if postgres else [])]
    started = time.perf_counter()
    process, urls = start_stand_ins(args.students, args.seed)
    built = {
        "stand_ins_build_seconds": round(time.perf_counter() - started, 1),
        "stand_ins_build_cpu_seconds": round(cpu_seconds(process.pid), 1),
    }
    try:
        for backend in backends:
            figures = measure(backend, args.students, args.seed, urls, process.pid, args.workers)
            print(json.dumps(figures | built), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
