"""Seed benchmark: one school year of N students into a fresh database; prints one JSON line.

    python bench/seed.py [--students 50000] [--database-url URL]

Without a URL it uses a temporary SQLite file. A PostgreSQL URL gets a schema of its own for
the run (dropped afterwards), as the tests do. Goal: 50,000 students into SQLite in ≤ 120 s
with peak memory ≤ 1 GB. `cpu_seconds` is reported beside wall time because a shared machine's
wall clock also counts other people's work.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.db import make_engine
from app.core.migrate import upgrade
from app.world.loader import load_world


@contextmanager
def fresh_database(url: str | None) -> Iterator[str]:
    if url is None:
        with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'seed.db'}"
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--progress", action="store_true", help="show the progress bar on stderr")
    args = parser.parse_args()
    with fresh_database(args.database_url) as url:
        engine = make_engine(url)
        upgrade(engine)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        summary = load_world(
            engine, students=args.students, seed=args.seed, force=False, progress=args.progress
        )
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        engine.dispose()
    figures = {
        "benchmark": "seed",
        "students": summary["students"],
        "rows_written": summary["rows_total"],
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "rows_per_second": round(summary["rows_total"] / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "database": make_url(url).get_backend_name(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
