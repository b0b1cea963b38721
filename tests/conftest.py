"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL
is set. The schema comes from the real migrations; each test runs inside a transaction that is
rolled back, so tests never see each other's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import get_engine, get_session, make_engine
from app.core.migrate import upgrade
from app.main import create_app
from consent import keys
from tests.databases import BACKENDS, fresh_database


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which database engine the test runs on: every test that touches a database runs on each."""
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by the whole run, one per backend."""
    with fresh_database(backend, tmp_path_factory.mktemp("db")) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of the test's backend."""
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    """Point the settings (and so every get_engine() caller) at the test database."""
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", database_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture(autouse=True)
def fresh_signing_key() -> None:
    """A signing key cached by an earlier test may have been rolled back or live in another database."""
    keys.forget_signing_key()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose commits become savepoints of an outer transaction that is rolled back."""
    connection = engine.connect()
    outer = connection.begin()
    if engine.dialect.name == "sqlite":
        # pysqlite opens a transaction only before its first write, so the first SAVEPOINT would
        # open one itself and its RELEASE (a test's commit) would commit for good, leaking rows
        # into later tests. An explicit BEGIN makes the outer transaction real.
        connection.exec_driver_sql("BEGIN")
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def app(session: Session, engine: Engine, settings_env: None) -> FastAPI:
    application = create_app()

    @contextmanager
    def _unit_of_work() -> Iterator[Session]:
        # Mirrors session_scope: commit on success (a savepoint here), roll back on error.
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    def _test_session() -> Iterator[Session]:
        with _unit_of_work() as unit:
            yield unit

    application.dependency_overrides[get_session] = _test_session
    application.state.unit_of_work = _unit_of_work
    application.dependency_overrides[get_engine] = lambda: engine
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
