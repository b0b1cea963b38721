"""Screening benchmark: a city of N students × one school year; prints one JSON line per database.

    python bench/screen.py [--students 250000] [--postgresql-url URL] [--sample 200]
    python bench/screen.py --database-url URL [--seed-only]   # seed once, measure many times


For each database (a temporary SQLite file; PostgreSQL when a URL is given, in a schema of its
own): seed the demo world (the world's fast path), give every family a consent grant for early
support, hold back one school day of records, then time
- a full screening run as `tsunagu screen` does it (consent asked and audited, features, rules,
  alerts written), and the feature queries alone;
- the plain per-child reference evaluator on a random sample, extrapolated to N;
- the held-back school day arriving (its rows inserted, as a daily sync would) and an
  incremental run.
Goals: full run ≤ 30 s on PostgreSQL, ≤ 60 s on SQLite; reference ≥ 50× slower; incremental
≤ 5 s. `consent_seconds` is the part of the full run spent in consent.policy (its audit entries).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/consent.py is named like the consent package: keep this folder off the import path, and
# put the repository on it instead (for tests/databases.py, the tests' throw-away databases).
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Collection, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from datetime import time as clock  # noqa: E402
from typing import Any  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from app.audit.models import AuditEntry  # noqa: E402
from app.core.db import make_engine  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from app.core.types import utcnow  # noqa: E402
from app.roster.models import GuardianLink, SchoolDay, Student  # noqa: E402
from app.sources.erasure import SOURCE_TABLES  # noqa: E402
from app.sources.models import AssignmentSubmission, AttendanceDay, MoodCheckin, NurseVisit  # noqa: E402
from app.world.loader import is_seeded, load_world  # noqa: E402
from consent.models import ConsentGrant, ConsentPermission  # noqa: E402
from consent.scopes import Purpose, Scope  # noqa: E402
from rules import engine as screening  # noqa: E402
from rules.catalog import load_catalog  # noqa: E402
from rules.compute import compute_features  # noqa: E402
from rules.models import Alert, AlertEvent, ScreeningRun, Signal  # noqa: E402
from rules.reference import child_features, rule_truth  # noqa: E402
from tests.databases import fresh_database  # noqa: E402

TZ = "Asia/Tokyo"


def table(model: type) -> sa.Table:
    found: sa.Table = model.__table__  # type: ignore[attr-defined]
    return found


def grant_everyone(engine: Engine) -> int:
    """One active grant per child (every scope, early support), written set-based."""
    grant, permission, link = table(ConsentGrant), table(ConsentPermission), table(GuardianLink)
    now = utcnow()
    first_link = (
        sa.select(link.c.student_id, sa.func.min(link.c.guardian_id).label("guardian_id"))
        .group_by(link.c.student_id)
        .subquery()
    )
    with engine.begin() as connection:
        connection.execute(
            grant.insert().from_select(
                [
                    "guardian_id",
                    "student_id",
                    "scopes",
                    "purposes",
                    "fetch_frequency",
                    "data_life_days",
                    "starts_at",
                    "status",
                    "status_changed_at",
                    "notice_version",
                    "notice_hash",
                    "created_at",
                ],
                sa.select(
                    first_link.c.guardian_id,
                    first_link.c.student_id,
                    sa.literal([s.value for s in Scope], sa.JSON),
                    sa.literal([Purpose.early_support.value], sa.JSON),
                    sa.literal("daily"),
                    sa.literal(365),
                    sa.literal(datetime(2025, 4, 1, tzinfo=UTC)),
                    sa.literal("active"),
                    sa.literal(now),
                    sa.literal("bench"),
                    sa.literal("0" * 64),
                    sa.literal(now),
                ),
            )
        )
        for scope in Scope:
            connection.execute(
                permission.insert().from_select(
                    ["grant_id", "scope", "purpose", "student_id"],
                    sa.select(
                        grant.c.id,
                        sa.literal(scope.value),
                        sa.literal(Purpose.early_support.value),
                        grant.c.student_id,
                    ),
                )
            )
        count = connection.execute(sa.select(sa.func.count()).select_from(grant)).scalar_one()
    return int(count)


def settle(engine: Engine, tables: Collection[sa.Table] | None = None) -> None:
    """PostgreSQL: VACUUM ANALYZE what the seed and the grants wrote in one go (or TABLES). A
    city's tables grow a day at a time and autovacuum keeps up; right after a bulk seed the
    planner had no statistics of the grants (it guessed one row and nested-looped 20,000 of
    them) and no page was marked all-visible, so no index-only scan was possible."""
    if engine.dialect.name != "postgresql":
        return
    if tables is None:
        tables = [*SOURCE_TABLES, table(ConsentGrant), table(ConsentPermission), table(Student)]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for source in tables:
            connection.execute(sa.text(f"VACUUM ANALYZE {source.name}"))


def school_days_around(engine: Engine, near: date) -> tuple[date, date]:
    """The last school day on or before NEAR (the as-of day) and the next one (the new day)."""
    days = table(SchoolDay)
    with engine.connect() as connection:
        as_of = connection.execute(sa.select(sa.func.max(days.c.day)).where(days.c.day <= near)).scalar_one()
        new_day = connection.execute(
            sa.select(sa.func.min(days.c.day)).where(days.c.day > as_of)
        ).scalar_one()
    return as_of, new_day


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, clock(), ZoneInfo(TZ)).astimezone(UTC)
    return start, start + timedelta(days=1)


def _day_filters(day: date) -> dict[sa.Table, sa.ColumnElement[bool]]:
    start, end = _day_bounds(day)
    return {
        table(AttendanceDay): table(AttendanceDay).c.day == day,
        table(MoodCheckin): table(MoodCheckin).c.day == day,
        table(NurseVisit): sa.and_(
            table(NurseVisit).c.visited_at >= start, table(NurseVisit).c.visited_at < end
        ),
        table(AssignmentSubmission): sa.and_(
            table(AssignmentSubmission).c.due_at >= start, table(AssignmentSubmission).c.due_at < end
        ),
    }


def hold_back(engine: Engine, day: date) -> dict[sa.Table, list[dict[str, Any]]]:
    """Take one school day's records out, as if they had not been synced yet."""
    held: dict[sa.Table, list[dict[str, Any]]] = {}
    with engine.begin() as connection:
        for source, condition in _day_filters(day).items():
            held[source] = [
                dict(row) for row in connection.execute(sa.select(source).where(condition)).mappings()
            ]
            connection.execute(source.delete().where(condition))
    return held


def deliver(engine: Engine, held: dict[sa.Table, list[dict[str, Any]]]) -> int:
    """The day's records arrive, stamped with the time they were fetched.

    On PostgreSQL the tables are then vacuumed (not timed). The seed writes child by child, so
    one day's rows lie on every page of a table, and written back into the room that holding
    them back left, they cleared every page's all-visible bit: each index-only scan of the
    incremental run then read the heap too (1.2 M heap fetches for one 14-day count of mood
    check-ins). A city's tables grow a day at a time: a daily sync's rows lie on a few new pages
    at the end, and the rest stay all-visible, as they are after this VACUUM."""
    now = utcnow()
    with engine.begin() as connection:
        for source, rows in held.items():
            for start in range(0, len(rows), 10_000):
                batch = [{**row, "fetched_at": now} for row in rows[start : start + 10_000]]
                for row in batch:
                    row.pop("id", None)
                if batch:
                    connection.execute(source.insert(), batch)
    settle(engine, list(held))
    return sum(len(rows) for rows in held.values())


def audit_entries(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table(AuditEntry))).scalar_one())


@contextmanager
def units(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def seeded(engine: Engine, *, students: int, seed: int) -> tuple[dict[str, Any], float | None]:
    """Seed the world, or reuse a database seeded by an earlier run (`--database-url`): its
    screening results are emptied, its grants and records kept (a run puts back the day it
    holds back)."""
    upgrade(engine)
    if not is_seeded(engine):
        started = time.perf_counter()
        world = load_world(engine, students=students, seed=seed, force=False)
        return world, time.perf_counter() - started
    screening_tables = [table(model) for model in (AlertEvent, Signal, Alert, ScreeningRun)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Emptied, not deleted row by row: the dead rows of earlier runs (a 431 MB signal
            # table for 70,000 live rows after a few runs) slowed each run more than the last.
            # CASCADE: with them the staff's records of those alerts, which a bench never has.
            names = ", ".join(t.name for t in screening_tables)
            connection.execute(sa.text(f"TRUNCATE {names} CASCADE"))
        else:
            for screening_table in screening_tables:
                connection.execute(screening_table.delete())
        count = connection.execute(sa.select(sa.func.count()).select_from(table(Student))).scalar_one()
        rows = sum(
            connection.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
            for source in SOURCE_TABLES
        )
    return {"students": int(count), "rows_total": int(rows)}, None


def bench(
    url: str,
    *,
    students: int,
    seed: int,
    sample: int,
    seed_only: bool = False,
    near: date = date(2026, 1, 29),
) -> dict[str, Any]:
    engine = make_engine(url)
    world, seed_seconds = seeded(engine, students=students, seed=seed)
    if seed_only:
        engine.dispose()
        return {
            "benchmark": "screen",
            "database": engine.dialect.name,
            "seeded": world,
            "seconds": seed_seconds,
        }
    with engine.connect() as connection:
        has_grants = connection.execute(
            sa.select(sa.func.count()).select_from(table(ConsentGrant))
        ).scalar_one()
    grants = has_grants or grant_everyone(engine)
    as_of, new_day = school_days_around(engine, near)
    held = hold_back(engine, new_day)
    settle(engine)
    catalog = load_catalog()

    consent_seconds = 0.0
    authorize = screening.consent_authorizer("ベンチ市")

    def timed_authorizer(run_id: int) -> screening.Authorizer:
        inner = authorize(run_id)

        def wrapped(**kwargs: Any) -> dict[int, dict[Scope, int]]:
            nonlocal consent_seconds
            began = time.perf_counter()
            try:
                return inner(**kwargs)
            finally:
                consent_seconds += time.perf_counter() - began

        return wrapped

    audit_before = audit_entries(engine)
    started = time.perf_counter()
    full = screening.run_screening(
        units=lambda: units(engine), catalog=catalog, as_of=as_of, authorize_for=timed_authorizer, timezone=TZ
    )
    full_seconds = time.perf_counter() - started
    full_consent_seconds, consent_seconds = consent_seconds, 0.0
    full_audit_entries = audit_entries(engine) - audit_before
    progress = {"full_seconds": round(full_seconds, 2), "consent_seconds": round(full_consent_seconds, 2)}
    print(json.dumps({"stage": "full", **progress, "load": os.getloadavg()}), file=sys.stderr, flush=True)

    with engine.connect() as connection:
        started = time.perf_counter()
        features = compute_features(
            connection=connection, as_of=as_of, features=catalog.features(), timezone=TZ
        )
        feature_seconds = time.perf_counter() - started
    children = features.student_ids.tolist()

    rng = random.Random(seed)
    picked = rng.sample(children, min(sample, len(children)))
    started = time.perf_counter()
    with Session(engine) as session:
        for student_id in picked:
            values = child_features(
                session=session, student_id=student_id, as_of=as_of, names=catalog.features(), timezone=TZ
            )
            assert values is not None
            for rule in catalog.rules:
                rule_truth(rule, values)
    reference_per_child = (time.perf_counter() - started) / len(picked)
    print(
        json.dumps({"stage": "reference", "per_child": round(reference_per_child, 4)}),
        file=sys.stderr,
        flush=True,
    )
    reference_seconds = reference_per_child * len(children)

    delivered = deliver(engine, held)
    audit_before = audit_entries(engine)
    started = time.perf_counter()
    incremental = screening.run_screening(
        units=lambda: units(engine),
        catalog=catalog,
        as_of=new_day,
        authorize_for=timed_authorizer,
        incremental=True,
        timezone=TZ,
    )
    incremental_seconds = time.perf_counter() - started
    incremental_audit_entries = audit_entries(engine) - audit_before
    engine.dispose()
    return {
        "benchmark": "screen",
        "database": engine.dialect.name,
        "students": world["students"],
        "source_rows": world["rows_total"],
        "seed_seconds": None if seed_seconds is None else round(seed_seconds, 1),
        "grants": grants,
        "as_of": as_of.isoformat(),
        "rules": len(catalog.rules),
        "children_screened": full.children,
        "alerts_opened": full.opened,
        "signals_written": full.signals,
        "full_seconds": round(full_seconds, 2),
        "full_consent_seconds": round(full_consent_seconds, 2),
        "full_audit_entries": full_audit_entries,
        "feature_query_seconds": round(feature_seconds, 2),
        "reference_sample": len(picked),
        "reference_seconds_per_child": round(reference_per_child, 4),
        "reference_seconds_extrapolated": round(reference_seconds, 1),
        "reference_vs_full": round(reference_seconds / full_seconds, 1),
        "reference_vs_full_without_consent": round(
            reference_seconds / max(full_seconds - full_consent_seconds, 1e-9), 1
        ),
        "new_day": new_day.isoformat(),
        "new_day_rows": delivered,
        "incremental_kind": incremental.kind.value,
        "incremental_children": incremental.children,
        "incremental_alerts_opened_updated_cleared": [
            incremental.opened,
            incremental.updated,
            incremental.cleared,
        ],
        "incremental_signals_written": incremental.signals,
        "incremental_audit_entries": incremental_audit_entries,
        "incremental_seconds": round(incremental_seconds, 2),
        "incremental_consent_seconds": round(consent_seconds, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "goals": {
            "full_seconds": 30 if engine.dialect.name == "postgresql" else 60,
            "reference_vs_full": 50,
            "incremental_seconds": 5,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--sample", type=int, default=200, help="children for the reference evaluator")
    parser.add_argument("--postgresql-url", default=None, help="also run on PostgreSQL (a schema of its own)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--database-url", default=None, help="a database kept between runs: seeded if empty, else reused"
    )
    parser.add_argument("--seed-only", action="store_true", help="with --database-url: seed, measure nothing")
    parser.add_argument("--as-of", default="2026-01-29", help="screen the last school day on or before this")
    args = parser.parse_args()
    if args.database_url:
        figures = bench(
            args.database_url,
            students=args.students,
            seed=args.seed,
            sample=args.sample,
            seed_only=args.seed_only,
            near=date.fromisoformat(args.as_of),
        )
        print(json.dumps(figures), flush=True)
        return
    backends = [] if args.skip_sqlite else ["sqlite"]
    if args.postgresql_url:
        os.environ["TEST_DATABASE_URL"] = args.postgresql_url
        backends.append("postgresql")
    for backend in backends:
        with (
            tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as directory,
            fresh_database(backend, Path(directory)) as url,
        ):
            print(
                json.dumps(bench(url, students=args.students, seed=args.seed, sample=args.sample)), flush=True
            )


if __name__ == "__main__":
    main()
