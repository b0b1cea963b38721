"""The demo becomes real: the roster comes from the world, records only through consented sync
from stand-ins that serve that same world; a child without consent has a roster row and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.core.db import make_engine
from app.core.migrate import upgrade
from app.demo import first_sync, grant_demo_consents
from app.roster.models import Student
from app.world.generator import WorldSpec
from app.world.loader import load_world
from connectors.models import SyncStatus
from consent.models import ConsentGrant
from mocks import school_affairs, school_platform
from mocks.server import serving
from mocks.world_data import WorldRecords
from tests.connectors.test_faults import TABLES
from tests.databases import fresh_database

STUDENTS, SEED = 40, 7


@pytest.fixture
def demo_engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with fresh_database(backend, tmp_path_factory.mktemp("demo")) as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


async def test_only_consented_children_get_records_through_the_first_sync(demo_engine: Engine) -> None:
    load_world(demo_engine, students=STUDENTS, seed=SEED, force=False, records=False)
    assert all(_count(demo_engine, table) == 0 for table in TABLES.values())
    with Session(demo_engine) as session:
        consenting = grant_demo_consents(session=session)
        session.commit()
    data = WorldRecords(WorldSpec(students=STUDENTS, seed=SEED))
    with (
        serving(school_affairs.create_app(data)) as affairs,
        serving(school_platform.create_app(data)) as platform,
    ):
        settings = Settings(school_affairs_url=affairs, school_platform_url=platform)
        runs = await first_sync(engine=demo_engine, settings=settings)

    assert 0 < consenting < STUDENTS
    assert {run.status for run in runs} == {SyncStatus.succeeded}
    assert sum(run.quarantined for run in runs) == 0
    with Session(demo_engine) as session:
        with_consent = set(session.exec(select(ConsentGrant.student_id)))
        everyone = set(session.exec(select(Student.id)))
    assert len(everyone) == STUDENTS  # the roster sync matched the seeded roster, no duplicates
    for name, table in TABLES.items():
        holders = _students_with(demo_engine, table)
        assert holders <= with_consent, name
    assert _students_with(demo_engine, TABLES["mood-checkins"]) == with_consent


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table.__table__)).scalar_one())  # type: ignore[attr-defined]


def _students_with(engine: Engine, table: type) -> set[int]:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(table.__table__.c.student_id).distinct()).scalars())  # type: ignore[attr-defined]
