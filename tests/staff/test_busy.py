"""Contention is not a fault: a request that cannot get SQLite's write lock in time gets a clear
503 page with Retry-After, changes nothing, and the next try works."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import get_engine, make_engine
from app.core.migrate import upgrade
from app.core.types import utcnow
from app.main import create_app
from app.roster.models import StaffRole
from app.sessions.models import WebSession
from tests.staff.conftest import HTML, build_roster, make_staff, sign_in_directly


@pytest.fixture
def own_sqlite(backend: str, empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    if backend != "sqlite":
        pytest.skip("PostgreSQL writers wait on row locks; SQLite has one write lock and a timeout")
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("TSUNAGU_SQLITE_BUSY_TIMEOUT_MS", "100")
    get_settings.cache_clear()
    get_engine.cache_clear()
    engine = make_engine(empty_database_url)
    upgrade(engine)
    yield engine
    engine.dispose()
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


async def test_a_held_write_lock_gives_503_with_retry_after_then_works(own_sqlite: Engine) -> None:
    app = create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        with Session(own_sqlite) as session:
            staff = make_staff(session, build_roster(session), StaffRole.school_leader)
            sign_in_directly(client, session, staff)
            # Idle for two minutes: the next page moves the idle clock on, which is a write.
            session.execute(sa.update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=2)))
            session.commit()
        blocker = own_sqlite.connect()
        blocker.exec_driver_sql("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            busy = await client.get("/staff/", headers=HTML)
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "2"
            assert "混み合っています" in busy.text and "Traceback" not in busy.text
            api_busy = await client.get("/staff/", headers={"accept": "application/json"})
            assert api_busy.status_code == 503 and api_busy.json()["error"] == "busy"
        finally:
            blocker.rollback()
            blocker.close()
        assert (await client.get("/staff/", headers=HTML)).status_code == 200
