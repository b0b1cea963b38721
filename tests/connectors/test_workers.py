"""Several sync workers share the queue without doing any run twice (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlmodel import Session

from app.sources.models import Source
from connectors import service
from connectors.clients import school_clients
from connectors.http import RetryPolicy
from connectors.models import SyncRun, SyncStatus
from tests.connectors.conftest import Upstreams
from tests.connectors.upstream import school_records
from tests.factories import make_school


def test_a_claimed_run_is_skipped_by_other_workers_not_waited_for(upstreams: Upstreams, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer and runs one worker; row locks are PostgreSQL's")
    with Session(upstreams.engine, expire_on_commit=False) as session:
        runs = service.enqueue(session=session, schools=[upstreams.school], requested_by="test")
        session.commit()
    with (
        Session(upstreams.engine) as first,
        Session(upstreams.engine) as second,
        Session(upstreams.engine) as third,
    ):
        mine = service.claim(session=first, worker="one")  # held, not yet committed
        theirs = service.claim(session=second, worker="two")
        nothing = service.claim(session=third, worker="three")
        assert mine is not None and theirs is not None
        assert {mine.id, theirs.id} == {r.id for r in runs}
        assert nothing is None
        first.rollback()
        second.rollback()
    with Session(upstreams.engine) as session:  # leave no queued run for the next test's workers
        for run in runs:
            session.delete(session.get(SyncRun, run.id))
        session.commit()


async def test_workers_side_by_side_do_every_run_once(upstreams: Upstreams, backend: str) -> None:
    codes = [upstreams.school]
    with Session(upstreams.engine) as session:
        for n in range(3):
            codes.append(make_school(session, code=f"{upstreams.school}{n}").code)
        session.commit()
    for code in codes:
        school_records(code, 3, upstreams.data)
    with Session(upstreams.engine, expire_on_commit=False) as session:
        queued = service.enqueue(session=session, schools=codes, requested_by="test")
        session.commit()
    workers = 3 if backend == "postgresql" else 1
    settings = upstreams.settings
    clients = [
        school_clients(settings, retry=RetryPolicy(base_delay=0.01), page_size=2) for _ in range(workers)
    ]
    try:
        done = await asyncio.gather(
            *(
                service.work(engine=upstreams.engine, worker=f"w{n}", clients=c, settings=settings)
                for n, c in enumerate(clients)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    runs = [run for worker_runs in done for run in worker_runs]
    assert Counter(run.id for run in runs) == Counter({run.id: 1 for run in queued})
    assert {run.status for run in runs} == {SyncStatus.succeeded}
    assert {(run.source, run.partition) for run in runs} == {
        (source, code) for source in (Source.school_affairs, Source.school_platform) for code in codes
    }
    assert len({run.claimed_by for run in runs}) == workers
