"""Connector fixtures: a database of their own (sync commits for real), the school stand-ins
served on ephemeral loopback ports, and a helper that runs a whole sync."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.core.db import make_engine
from app.core.migrate import upgrade
from app.roster.models import School, Student
from app.sources.models import Source
from connectors import service
from connectors.clients import school_clients
from connectors.http import RetryPolicy
from connectors.models import SyncRun
from consent.models import ConsentGrant
from consent.scopes import Scope
from mocks import school_affairs, school_platform
from mocks.faults import StandInState
from mocks.school_data import SchoolRecords
from mocks.server import serving
from tests.databases import fresh_database
from tests.factories import make_grant, make_guardian, make_school

_codes = itertools.count(1)


@pytest.fixture(scope="module")
def sync_engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated database of the module's own: a sync commits in its own transactions."""
    with fresh_database(backend, tmp_path_factory.mktemp("sync")) as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


@dataclass
class Upstreams:
    engine: Engine
    data: SchoolRecords
    affairs_url: str
    platform_url: str
    school: str
    affairs: StandInState
    platform: StandInState
    page_size: int = 4
    # Generous: a busy machine must not turn a happy path into a timeout (tests about hangs set less).
    timeout: float = 10.0
    runs: list[SyncRun] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(
            school_affairs_url=self.affairs_url,
            school_platform_url=self.platform_url,
            upstream_timeout_seconds=self.timeout,
            sync_overlap_minutes=1,
        )

    async def faults(self, url: str, **knobs: Any) -> None:
        async with httpx.AsyncClient() as http:
            (await http.put(f"{url}/_control/faults", json=knobs)).raise_for_status()

    async def clear(self) -> None:
        async with httpx.AsyncClient() as http:
            for url in (self.affairs_url, self.platform_url):
                (await http.delete(f"{url}/_control/faults")).raise_for_status()
                (await http.delete(f"{url}/_control/requests")).raise_for_status()

    async def asked(self, url: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{url}/_control/requests")
        response.raise_for_status()
        asked: list[dict[str, Any]] = response.json()
        return asked

    async def sync(
        self,
        sources: Sequence[Source] = (Source.school_affairs, Source.school_platform),
        since: datetime | None = None,
    ) -> list[SyncRun]:
        with Session(self.engine) as session:
            service.enqueue(
                session=session, sources=sources, schools=[self.school], since=since, requested_by="test"
            )
            session.commit()
        clients = school_clients(
            self.settings,
            retry=RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05),
            page_size=self.page_size,
        )
        try:
            runs = await service.work(
                engine=self.engine, worker="test", clients=clients, settings=self.settings
            )
        finally:
            await clients.aclose()
        self.runs.extend(runs)
        return runs

    def student_ids(self) -> dict[str, int]:
        with Session(self.engine) as session:
            school_id = session.exec(select(School.id).where(School.code == self.school)).one()
            rows = session.exec(
                select(Student.school_student_id, Student.id).where(Student.school_id == school_id)
            ).all()
            return {number: sid for number, sid in rows if sid is not None}

    def grant(
        self, student_number: str, scopes: Sequence[Scope] = tuple(Scope), data_from: date | None = None
    ) -> ConsentGrant:
        with Session(self.engine, expire_on_commit=False) as session:
            student = session.get(Student, self.student_ids()[student_number])
            assert student is not None
            grant = make_grant(
                session,
                student=student,
                guardian=make_guardian(session, student=student),
                scopes=scopes,
                data_from=data_from,
            )
            session.commit()
            return grant

    def count(self, table: Any, student_number: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(table.__table__)
        if student_number is not None:
            query = query.where(table.__table__.c.student_id == self.student_ids()[student_number])
        else:
            query = query.where(table.__table__.c.student_id.in_(list(self.student_ids().values()) or [-1]))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())


@pytest.fixture
def upstreams(sync_engine: Engine) -> Iterator[Upstreams]:
    """Both school stand-ins over one set of records, and a school of tsunagu's own to sync."""
    code = f"S{next(_codes):05d}"
    with Session(sync_engine) as session:
        make_school(session, code=code)
        session.commit()
    data = SchoolRecords()
    affairs_app, platform_app = school_affairs.create_app(data), school_platform.create_app(data)
    with serving(affairs_app) as affairs, serving(platform_app) as platform:
        yield Upstreams(
            engine=sync_engine,
            data=data,
            affairs_url=affairs,
            platform_url=platform,
            school=code,
            affairs=affairs_app.state.stand_in,
            platform=platform_app.state.stand_in,
        )
