"""The database engine and the one place where transactions commit or roll back."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlmodel import Session, SQLModel

from app.core.config import get_settings
from app.core.errors import ConfigurationError

# Alembic autogenerate and the PostgreSQL/SQLite DDL need stable constraint names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


def _json_text(value: Any) -> str:
    """A JSON column's text, as the stdlib encoder would accept it (keys that are not text are
    written as text; numpy numbers as numbers), in UTF-8 rather than escaped."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # WAL lets the web process read while a sync or seed writes; SQLite leaves foreign keys
    # off unless asked on every connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(get_settings().sqlite_busy_timeout_ms)}")
    cursor.close()


class SQLiteWriterTurn:
    """Writers of a hot path take turns on SQLite's one write lock here instead of in SQLite.

    A connection that finds the lock taken sleeps in growing steps (1, 2, 5, 10 … 100 ms)
    before it looks again, and the lock sits idle meanwhile. Waiting here wakes the next writer
    as soon as the lock is given back: threads of a process queue on a mutex, processes (the
    service's workers) on an flock of a file beside the database, opened for each turn (a few
    µs) so that no descriptor outlives it or is shared by a fork. Writers that do not come
    through here take the lock through SQLite, as before.
    """

    def __init__(self) -> None:
        self._threads = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        database = get_settings().sqlite_path
        with self._threads:
            if database is None:  # in memory: one process
                yield
                return
            with beside_database(str(database), "writers", wait=True):
                yield


@contextmanager
def beside_database(database: str, name: str, *, wait: bool) -> Iterator[None]:
    """A lock between processes on a file beside the SQLite DATABASE (`<database>-NAME`), held
    for the block: an flock, given back when the file closes, also if the process dies. WAIT
    for it, or raise BlockingIOError at once while another holds it."""
    with open(f"{database}-{name}", "a", encoding="utf-8") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL, with a clear error for a URL we cannot use."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"TSUNAGU_DATABASE_URL is not a database URL: {url!r}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
        )
    in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    pool: dict[str, int] = {}
    if not in_memory:
        # A pool smaller than the requests a worker serves at once opens and closes connections
        # all along. A 6 s token benchmark run (16 exchanges at a time over two workers) opened
        # 56 PostgreSQL sessions with SQLAlchemy's default of five, 33 with ten, 23 with sixteen.
        # (An in-memory SQLite database has one connection per thread, no such pool.)
        size = get_settings().database_pool_size
        pool = {"pool_size": size, "max_overflow": 2 * size}
    if parsed.get_backend_name() == "sqlite" and not in_memory:
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    try:
        # orjson reads and writes JSON columns: the stdlib decoder was a tenth of an incremental
        # screening run at 250,000 children (127,000 signals' and alerts' facts read back), and
        # the encoder most of its writes on SQLite (46,000 signals' and alerts' facts).
        engine = create_engine(
            parsed, pool_pre_ping=True, json_deserializer=orjson.loads, json_serializer=_json_text, **pool
        )
    except NoSuchModuleError as exc:
        raise ConfigurationError(f"no driver for {parsed.drivername!r}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work for jobs and the CLI: commit on success, roll back on any error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one transaction per request, committed only if the handler succeeds."""
    with session_scope() as session:
        yield session


def one_of(
    dialect: sa.Dialect, column: sa.ColumnElement[int], ids: Sequence[int]
) -> list[sa.ColumnElement[bool]]:
    """The condition that selects the rows whose COLUMN is one of IDS, as a list: empty for no
    ids, so that a caller looping over it asks no query.

    The ids travel as one parameter. PostgreSQL: `= ANY(array)`. SQLite: `IN` the
    values of a JSON array (`json_each`), which it searches by COLUMN's index as it does a list
    of literals. IN lists of literals cost more to render, one bound name per id (SQLAlchemy),
    than their queries took to run: on PostgreSQL 1.8 of an incremental screening run's 22 s at
    250,000 children; on SQLite, in lists of 5,000, 0.19 s of the 4.2 s."""
    if not ids:
        return []
    if dialect.name == "postgresql":
        return [column == sa.any_(sa.literal(list(ids), ARRAY(sa.Integer)))]
    listed = sa.literal(orjson.dumps(list(ids)).decode(), sa.String)
    return [column.in_(sa.select(sa.column("value")).select_from(sa.func.json_each(listed)))]


def one_of_or_all(
    dialect: sa.Dialect, column: sa.ColumnElement[int], ids: Sequence[int] | None
) -> list[sa.ColumnElement[bool]]:
    """`one_of`, or, when IDS is None (every row asked for, unlike an empty list), one
    condition every row meets."""
    return [sa.true()] if ids is None else one_of(dialect, column, ids)


def joined_ids(column: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
    """An aggregate of COLUMN's ids as one comma-separated text (`ids_in` reads it back): for
    tens of thousands of ids, a row object per id cost more than the query that found them."""
    return sa.func.aggregate_strings(sa.cast(column, sa.String), ",")


def ids_in(joined: str | None) -> set[int]:
    """The ids of a `joined_ids` text (None, from no row at all: none)."""
    return set(map(int, joined.split(","))) if joined else set()


def id_set(connection: sa.Connection, query: sa.Select[Any]) -> set[int]:
    """The distinct ids in QUERY's first column, sent back as one text (`joined_ids`)."""
    found = query.distinct().subquery()
    return ids_in(connection.execute(sa.select(joined_ids(found.c[0]))).scalar())
