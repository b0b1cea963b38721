"""The sync work queue: enqueue runs, claim them (several workers, no double work), run them.

A queued `SyncRun` is a job. A worker claims the oldest queued run with
`SELECT … FOR UPDATE SKIP LOCKED` and marks it running in the same short transaction, so on
PostgreSQL any number of workers (threads or processes, on any machine) share the queue and
each run is done once. SQLite has no row locks (SQLAlchemy leaves the clause out there) and
its single writer makes one worker the right number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.core.collector import fewer_collections
from app.core.config import Settings
from app.core.db import session_scope
from app.core.errors import AppError
from app.core.types import utcnow
from app.roster.models import School
from app.sources.models import Source
from connectors.clients import SchoolClients, school_clients
from connectors.models import IdentityReview, QuarantinedRecord, ReviewStatus, SyncRun, SyncStatus
from connectors.myna import sync_links
from connectors.sync import RunContext, execute

log = logging.getLogger("tsunagu.sync")

SCHOOL_SOURCES = (Source.school_affairs, Source.school_platform)
SOURCES = (*SCHOOL_SOURCES, Source.myna_portal)
MYNA_PARTITION = "links"  # Myna Portal is fetched per guardian's link, not per school


def enqueue(
    *,
    session: Session,
    sources: Iterable[Source] = SCHOOL_SOURCES,
    schools: Iterable[str] | None = None,
    since: datetime | None = None,
    requested_by: str = "schedule",
) -> list[SyncRun]:
    """Queue one run per (source, school), and one for Myna Portal's links; school affairs first,
    so rosters come in first."""
    codes = (
        list(schools)
        if schools is not None
        else list(session.exec(select(School.code).order_by(School.code)))
    )
    runs = [
        SyncRun(source=source, partition=code, since=since, requested_by=requested_by)
        for source in sorted(set(sources) & set(SCHOOL_SOURCES), key=list(SOURCES).index)
        for code in codes
    ]
    if Source.myna_portal in set(sources):
        runs.append(SyncRun(source=Source.myna_portal, partition=MYNA_PARTITION, requested_by=requested_by))
    session.add_all(runs)
    session.flush()
    return runs


def claim(*, session: Session, worker: str) -> SyncRun | None:
    """The oldest queued run, now running and owned by WORKER; None when the queue is empty."""
    run = session.exec(
        select(SyncRun)
        .where(SyncRun.status == SyncStatus.queued)
        .order_by(col(SyncRun.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if run is None:
        return None
    run.status = SyncStatus.running
    run.claimed_by = worker
    run.started_at = utcnow()
    session.add(run)
    session.flush()
    return run


async def run_one(*, engine: Engine, run: SyncRun, clients: SchoolClients, settings: Settings) -> SyncRun:
    """Execute a claimed run and record how it ended."""
    ctx = RunContext(
        engine=engine, run=run, clients=clients, overlap=timedelta(minutes=settings.sync_overlap_minutes)
    )
    requests_before, retries_before = clients.stats()
    try:
        if run.source is Source.myna_portal:
            status = await _myna(ctx, run, settings)
        else:
            status = await execute(ctx)
    except AppError as exc:
        ctx.tally.note(exc.message)
        status = SyncStatus.failed
    except Exception as exc:
        # The run is marked failed for the operator; the traceback goes to the log only.
        log.exception("sync run failed", extra={"fields": {"run": run.id}})
        ctx.tally.note(f"internal error: {type(exc).__name__}")
        status = SyncStatus.failed
    requests, retries = clients.stats()
    ctx.tally.requests = requests - requests_before
    ctx.tally.retries = retries - retries_before

    def finish(session: Session) -> SyncRun:
        stored = session.get(SyncRun, run.id)
        assert stored is not None
        for name, value in vars(ctx.tally).items():
            setattr(stored, name, list(value) if name == "errors" else value)
        stored.status = status
        stored.finished_at = utcnow()
        session.add(stored)
        session.flush()
        return stored

    return await ctx.db(finish)


async def _myna(ctx: RunContext, run: SyncRun, settings: Settings) -> SyncStatus:
    tally = await sync_links(engine=ctx.engine, run=run, settings=settings)
    for name in ("fetched", "inserted", "updated", "unchanged", "quarantined", "discarded"):
        setattr(ctx.tally, name, tally[name])
    for error in tally["errors"]:
        ctx.tally.note(error)
    if not tally["errors"]:
        return SyncStatus.succeeded
    stored = tally["inserted"] + tally["unchanged"] + tally["updated"]
    return SyncStatus.partial if stored else SyncStatus.failed


async def work(
    *,
    engine: Engine,
    worker: str,
    clients: SchoolClients,
    settings: Settings,
    on_done: Callable[[SyncRun], None] | None = None,
) -> list[SyncRun]:
    """Claim and run queued runs until none is left; the runs this worker did."""
    done: list[SyncRun] = []

    def claim_one() -> SyncRun | None:
        with session_scope(engine) as session:
            return claim(session=session, worker=worker)

    with fewer_collections():
        while True:
            run = await asyncio.to_thread(claim_one)
            if run is None:
                return done
            finished = await run_one(engine=engine, run=run, clients=clients, settings=settings)
            done.append(finished)
            if on_done is not None:
                on_done(finished)


def worker_count(settings: Settings, requested: int | None = None) -> int:
    """How many sync workers run side by side: as REQUESTED, else the `sync_workers` setting;
    one on SQLite, whose one writer more workers would only wait for."""
    return 1 if settings.is_sqlite else requested or settings.sync_workers


async def work_together(
    *,
    engine: Engine,
    settings: Settings,
    name: str,
    workers: int | None = None,
    on_done: Callable[[SyncRun], None] | None = None,
    page_size: int | None = None,
) -> list[SyncRun]:
    """`worker_count(WORKERS)` workers work the queue side by side, each with its own upstream
    clients; every run they did, in the order queued."""
    clients = [school_clients(settings, page_size=page_size) for _ in range(worker_count(settings, workers))]
    try:
        done = await asyncio.gather(
            *(
                work(engine=engine, worker=f"{name}-{n}", clients=c, settings=settings, on_done=on_done)
                for n, c in enumerate(clients)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    return sorted((run for runs in done for run in runs), key=lambda r: r.id or 0)


def recent_runs(*, session: Session, limit: int = 100) -> Sequence[SyncRun]:
    return session.exec(select(SyncRun).order_by(col(SyncRun.id).desc()).limit(limit)).all()


def open_counts(*, session: Session) -> dict[str, int]:
    """How many quarantined records and identity reviews wait for a person (counts only)."""
    quarantined = session.exec(
        select(sa.func.count())
        .select_from(QuarantinedRecord)
        .where(col(QuarantinedRecord.resolved_run_id).is_(None), col(QuarantinedRecord.closed_at).is_(None))
    ).one()
    reviews = session.exec(
        select(sa.func.count()).select_from(IdentityReview).where(IdentityReview.status == ReviewStatus.open)
    ).one()
    return {"quarantined": quarantined, "reviews": reviews}
