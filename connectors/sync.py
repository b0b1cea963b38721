"""One sync run: for one school, fetch what the families consented to, validate, store, checkpoint.

The order of a run:
1. the roster (school affairs only): every student, the one category kept without consent,
   because invitations and universal notices need it;
2. `consent.policy.authorize_many` names the children and the categories allowed for the
   early-support purpose (the uses are audited); a category no child allows is never asked for;
3. per resource, page through the upstream from the cursor (minus an overlap window; children
   whose grant is newer than the cursor's grant watermark get their whole history, but never
   anything about a day before their grant's `data_from`: school affairs is asked from that
   day, the platform's earlier rows are dropped unstored), validate every record (a page in
   one pydantic-core call; invalid ones go to quarantine with the reason), and upsert in
   batches;
4. before every request and every write, grants stopped since the run began (revoked, paused,
   expired, objected) are looked up: that child is asked for no more, and nothing more of
   theirs is stored;
5. the cursor moves only in the transaction of the last durable write, only when the paging
   was complete, and never past a record quarantined for the first time, so the next run
   repeats what this one could not finish (a record garbled on the way arrives whole). A
   record the quarantine already holds, unchanged, is not quarantined again and lets the
   cursor pass (connectors/quarantine.py): it waits for a person or for a new version.
HTTP is async; database work runs in a worker thread so that fetching is never blocked by it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.audit.actors import Actor, ActorKind
from app.core.db import session_scope
from app.core.errors import AppError, UpstreamError
from app.core.types import utcnow
from app.roster.models import Homeroom, Municipality, School, Student
from app.sources.models import Source
from connectors import quarantine as quarantines
from connectors import store
from connectors.clients import Page, SchoolClients
from connectors.models import SyncCursor, SyncRun, SyncStatus
from connectors.quarantine import Entry
from connectors.records import (
    HOMEROOM_TARGET,
    SCHOOL_AFFAIRS_RESOURCES,
    SCHOOL_PLATFORM_RESOURCES,
    STUDENT_TARGET,
    Resource,
    RosterStudent,
    WireRecord,
)
from consent import policy
from consent.scopes import Purpose, Scope

log = logging.getLogger("tsunagu.sync")

PURPOSE = Purpose.early_support
STUDENTS_PER_QUERY = 500
BATCH_ROWS = 20_000
ROSTER = "students"
RESOURCES: dict[Source, tuple[Resource, ...]] = {
    Source.school_affairs: SCHOOL_AFFAIRS_RESOURCES,
    Source.school_platform: SCHOOL_PLATFORM_RESOURCES,
}
T = TypeVar("T")


@dataclass
class Tally:
    requests: int = 0
    retries: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    discarded: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, counts: store.WriteCounts) -> None:
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        self.deleted += counts.deleted

    def note(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)


def _reason(error: ValidationError) -> str:
    # Field names and messages only: the offending values are personal data and stay in the
    # quarantined payload, which only operators can read.
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
        for e in error.errors(include_input=False, include_url=False)
    ]
    return "; ".join(parts)[:1000]


def _modified(raw: dict[str, Any], field_name: str) -> datetime | None:
    value = raw.get(field_name)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Written:
    """What a batch write did: its counts, and the records it dropped for a grant that stopped."""

    counts: store.WriteCounts
    discarded: int


@dataclass
class Buffer:
    """Records of one resource waiting for their batch write, unique by natural key."""

    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    deletes: dict[tuple[Any, ...], int] = field(default_factory=dict)  # key → student id
    modified: dict[tuple[Any, ...], datetime] = field(default_factory=dict)
    quarantine: list[Entry] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.deletes) + len(self.quarantine)

    def take(self) -> Buffer:
        taken = Buffer(self.rows, self.deletes, self.modified, self.quarantine, self.refs)
        self.rows, self.deletes, self.modified, self.quarantine, self.refs = {}, {}, {}, [], []
        return taken


@dataclass
class Progress:
    """Where a resource stands in this run; decides whether and where the cursor may move."""

    complete: bool = True
    newest: datetime | None = None  # the latest modification stored
    oldest_quarantined: datetime | None = None
    quarantined_without_time: bool = False

    def next_position(self, position: datetime | None) -> datetime | None:
        if self.quarantined_without_time:
            return position
        candidate = self.newest or position
        if self.oldest_quarantined is not None and candidate is not None:
            candidate = min(candidate, self.oldest_quarantined - timedelta(microseconds=1))
        return candidate


class RunContext:
    """Everything one run knows; its database steps are plain functions run in a thread."""

    def __init__(self, *, engine: Engine, run: SyncRun, clients: SchoolClients, overlap: timedelta) -> None:
        assert run.id is not None and run.started_at is not None
        self.engine = engine
        self.run_id = run.id
        self.source = run.source
        self.school_code = run.partition
        self.since = run.since
        self.started_at = run.started_at
        self.clients = clients
        self.overlap = overlap
        self.tally = Tally()
        self.school_id = 0
        self.actor = Actor(kind=ActorKind.connector, ref=f"sync-run:{run.id}", organisation="")
        self.students: dict[str, int] = {}  # the school's student number → student id
        self.allowed: dict[int, dict[Scope, int]] = {}  # student id → scope → grant id
        self.data_from: dict[int, date] = {}  # grant id → the first day it covers, where set
        self.stopped: set[int] = set()  # children whose grant stopped during the run
        self.held: dict[str, set[str]] = {}  # resource → digests of payloads in quarantine
        self.cursors: dict[str, SyncCursor] = {}  # resource → where the last complete run stopped
        self.writing: asyncio.Future[Written] | None = None  # the batch write under way

    def write_behind(self, work: Callable[[Session], Written]) -> None:
        """Start a batch write and go on fetching: its counts reach the tally in `settle`.
        One write at a time per run, across resources: a resource's last batch is written
        while the next resource is fetched, not before (most resources of a school fit one
        batch, so waiting there kept the database and the fetching taking turns)."""
        assert self.writing is None, "settle() before the next write"
        self.writing = asyncio.ensure_future(self.db(work))

    async def settle(self) -> None:
        """Wait for the write under way, if any; its failure is raised here."""
        writing, self.writing = self.writing, None
        if writing is not None:
            written = await writing
            self.tally.add(written.counts)
            self.tally.discarded += written.discarded

    async def db(self, work: Callable[[Session], T]) -> T:
        def in_transaction() -> T:
            with session_scope(self.engine) as session:
                return work(session)

        return await asyncio.to_thread(in_transaction)

    # -- set-up ---------------------------------------------------------------------------

    def load_school(self, session: Session) -> None:
        row = session.exec(
            select(School.id, Municipality.name)
            .join(Municipality, col(Municipality.id) == col(School.municipality_id))
            .where(School.code == self.school_code)
        ).first()
        if row is None:
            raise AppError(f"school {self.school_code} is not configured in tsunagu")
        school_id, municipality = row
        assert school_id is not None
        self.school_id = school_id
        self.actor = Actor(kind=ActorKind.connector, ref=f"sync-run:{self.run_id}", organisation=municipality)

    def load_students(self, session: Session) -> None:
        self.students = {
            number: student_id
            for number, student_id in session.exec(
                select(Student.school_student_id, Student.id).where(Student.school_id == self.school_id)
            )
            if student_id is not None
        }

    def authorize(self, session: Session, scopes: Iterable[Scope]) -> None:
        self.allowed = policy.authorize_many(
            session=session,
            actor=self.actor,
            scopes=sorted(set(scopes)),
            purpose=PURPOSE,
            student_ids=list(self.students.values()),
        )
        grants = {grant for allowed in self.allowed.values() for grant in allowed.values()}
        self.data_from = policy.data_from(session=session, grant_ids=grants)

    def refresh_stopped(self, session: Session) -> set[int]:
        """Children whose allowing grant stopped since the run began; they get nothing more."""
        granted = {grant for scopes in self.allowed.values() for grant in scopes.values()}
        for stopped in policy.grants_stopped_since(session=session, since=self.started_at):
            if stopped.status == "objected" and PURPOSE not in stopped.purposes:
                continue
            if stopped.grant_id in granted:
                self.stopped.add(stopped.student_id)
        return self.stopped

    def load_checkpoints(self, session: Session) -> None:
        """Every resource's cursor and quarantined digests, read once when the run starts: read
        per resource, these small reads were a transaction each, much of a run with nothing new."""
        self.cursors = {
            cursor.resource: cursor
            for cursor in session.exec(
                select(SyncCursor).where(
                    SyncCursor.source == self.source, SyncCursor.partition == self.school_code
                )
            )
        }
        for cursor in self.cursors.values():
            # SQLite keeps no offset: positions are stored as UTC wall-clock.
            if cursor.position is not None and cursor.position.tzinfo is None:
                cursor.position = cursor.position.replace(tzinfo=UTC)
        self.held = quarantines.known_digests(session=session, source=self.source, partition=self.school_code)

    def cursor(self, resource: str) -> SyncCursor:
        """Where RESOURCE stood when the run started (a new cursor if it was never synced)."""
        found = self.cursors.get(resource)
        if found is None:
            return SyncCursor(source=self.source, resource=resource, partition=self.school_code)
        return found

    def since_for(self, cursor: SyncCursor) -> datetime | None:
        if self.since is not None:
            return self.since
        return None if cursor.position is None else cursor.position - self.overlap

    def save_cursor(self, session: Session, resource: str, position: datetime | None, watermark: int) -> None:
        # Read again rather than merged: the watermark only grows, whoever moved it meanwhile.
        cursor = session.exec(
            select(SyncCursor).where(
                SyncCursor.source == self.source,
                SyncCursor.resource == resource,
                SyncCursor.partition == self.school_code,
            )
        ).first() or SyncCursor(source=self.source, resource=resource, partition=self.school_code)
        cursor.position = position
        cursor.grant_watermark = max(cursor.grant_watermark, watermark)
        cursor.sync_run_id = self.run_id
        cursor.updated_at = utcnow()
        session.add(cursor)
        session.flush()

    def save_quarantine(self, session: Session, resource: str, items: list[Entry]) -> None:
        quarantines.save(
            session=session, run_id=self.run_id, source=self.source, resource=resource, entries=items
        )

    def resolve_quarantine(self, session: Session, resource: str, refs: list[str]) -> None:
        """Records stored now whose earlier versions were quarantined are no longer open."""
        table = quarantines.TABLE
        open_ = sa.and_(
            table.c.source == self.source,
            table.c.resource == resource,
            table.c.resolved_run_id.is_(None),
            table.c.sync_run_id != self.run_id,
        )
        if not refs or session.execute(sa.select(sa.exists().where(open_))).scalar() is not True:
            return
        for start in range(0, len(refs), 5000):
            session.execute(
                sa.update(table)
                .where(open_, table.c.record_ref.in_(refs[start : start + 5000]))
                .values(resolved_run_id=self.run_id)
            )

    # -- records --------------------------------------------------------------------------

    def quarantine(
        self,
        buffer: Buffer,
        progress: Progress,
        raw: Any,
        reason: str,
        time_field: str,
        *,
        resource: str,
        grant_id: int | None,
    ) -> None:
        record = raw if isinstance(raw, dict) else {}
        ref = record.get("id", record.get("sourcedId"))
        entry = Entry(
            record_ref=str(ref)[:128] if ref is not None else None,
            payload=orjson.dumps(raw).decode(),
            reason=reason,
            grant_id=grant_id,
        )
        modified = _modified(record, time_field)
        held = self.held.setdefault(resource, set())
        if entry.digest in held:
            # Quarantined already (by an earlier run, or earlier in this one): it waits there
            # for a person or a new version, and holds nothing back.
            self.tally.unchanged += 1
            if modified is not None and (progress.newest is None or modified > progress.newest):
                progress.newest = modified
            return
        held.add(entry.digest)
        buffer.quarantine.append(entry)
        self.tally.quarantined += 1
        if modified is None:
            progress.quarantined_without_time = True
        elif progress.oldest_quarantined is None or modified < progress.oldest_quarantined:
            progress.oldest_quarantined = modified

    def drift(self, resource: str, page: Page, model: type[BaseModel]) -> None:
        """Report an unknown field once per run: the upstream's schema changed."""
        if not page.records:
            return
        known = {f.alias or name for name, f in model.model_fields.items()} | set(model.model_fields)
        for name in sorted(set(page.records[0]) - known):
            self.tally.note(f"{resource}: unknown field {name!r} ignored (schema drift)")


async def _ahead(pages: AsyncIterator[Page]) -> AsyncIterator[Page]:
    """Ask for the next page before this one is processed: the upstream builds it meanwhile."""
    iterator = aiter(pages)
    pending = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            try:
                page = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(iterator))
            await asyncio.sleep(0)  # lets the next request go out now
            yield page
    finally:
        if not pending.done():
            pending.cancel()
        elif not pending.cancelled():
            pending.exception()  # consumed: the caller already stopped for its own reason


async def _stream(pages: AsyncIterator[Page], ctx: RunContext, on_page: Callable[[Page], None]) -> bool:
    """Consume one paged request; False when the paging skipped records (complete=False)."""
    seen: set[str] = set()
    total: int | None = None
    async for page in pages:
        total = page.total if page.total is not None else total
        refs = [ref for raw in page.records if isinstance(ref := raw.get("id") or raw.get("sourcedId"), str)]
        unique = set(refs)
        ctx.tally.duplicates += len(refs) - len(unique) + len(unique & seen)
        seen |= unique
        on_page(page)
    if total is not None and len(seen) < total:
        ctx.tally.note(
            f"paging returned {len(seen)} of {total} records (the upstream changed while paging); "
            "the cursor stays, the next run repeats"
        )
        return False
    return True


async def sync_roster(ctx: RunContext) -> None:
    cursor = ctx.cursor(ROSTER)
    buffer = Buffer()
    progress = Progress()
    users: dict[str, RosterStudent] = {}

    def on_page(page: Page) -> None:
        ctx.drift(ROSTER, page, RosterStudent)
        for raw in page.records:
            ctx.tally.fetched += 1
            try:
                user = RosterStudent.model_validate(raw)
            except ValidationError as exc:
                # The roster needs no consent: its entries are kept under no grant.
                ctx.quarantine(
                    buffer, progress, raw, _reason(exc), "dateLastModified", resource=ROSTER, grant_id=None
                )
                continue
            previous = users.get(user.sourced_id)
            if previous is None or previous.modified <= user.modified:
                users[user.sourced_id] = user
            progress.newest = max(filter(None, (progress.newest, user.modified)))

    complete = await _stream(
        ctx.clients.school_affairs.students(ctx.school_code, since=ctx.since_for(cursor)), ctx, on_page
    )

    def write(session: Session) -> None:
        ctx.save_quarantine(session, ROSTER, buffer.quarantine)
        homerooms = {
            (ctx.school_id, u.metadata.school_year, u.grade, u.metadata.homeroom)
            for u in users.values()
            if u.metadata.homeroom
        }
        # Homerooms are the roster's bookkeeping, not records the upstream sent: not counted.
        store.write(
            session=session,
            target=HOMEROOM_TARGET,
            rows=[dict(zip(HOMEROOM_TARGET.key, key, strict=True)) for key in sorted(homerooms)],
        )
        homeroom_ids = {
            (year, grade, name): hid
            for hid, year, grade, name in session.exec(
                select(Homeroom.id, Homeroom.school_year, Homeroom.grade, Homeroom.name).where(
                    Homeroom.school_id == ctx.school_id
                )
            )
        }
        rows = [
            {
                "school_id": ctx.school_id,
                "school_student_id": u.sourced_id,
                "homeroom_id": (
                    homeroom_ids.get((u.metadata.school_year, u.grade, u.metadata.homeroom))
                    if u.metadata.homeroom
                    else None
                ),
                "family_name": u.family_name,
                "given_name": u.given_name,
                "family_name_kana": u.metadata.kana_family_name,
                "given_name_kana": u.metadata.kana_given_name,
                "birth_date": u.birth_date,
                "sex": u.sex,
                "grade": u.grade,
                "enrolled_on": u.metadata.enrolled_on,
                "transferred_in": u.metadata.transferred_in,
                "left_on": u.metadata.left_on,
            }
            for u in users.values()
        ]
        ctx.tally.add(store.write(session=session, target=STUDENT_TARGET, rows=rows))
        ctx.resolve_quarantine(session, ROSTER, list(users))
        if complete:
            ctx.save_cursor(session, ROSTER, progress.next_position(cursor.position), 0)

    await ctx.db(write)


@cache
def _page_adapter(model: type[WireRecord]) -> TypeAdapter[list[WireRecord]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _by_first_day(
    students: list[int], first_day: dict[int, date | None]
) -> Iterable[tuple[list[int], date | None]]:
    """The children in chunks of at most STUDENTS_PER_QUERY that share the first day of data."""
    groups: dict[date | None, list[int]] = {}
    for sid in students:
        groups.setdefault(first_day[sid], []).append(sid)
    for day, group in groups.items():
        for start in range(0, len(group), STUDENTS_PER_QUERY):
            yield group[start : start + STUDENTS_PER_QUERY], day


async def sync_resource(ctx: RunContext, resource: Resource) -> None:
    allowed = {sid: scopes[resource.scope] for sid, scopes in ctx.allowed.items() if resource.scope in scopes}
    if not allowed:
        return  # no child of this school allows the category: nothing is asked for

    cursor = ctx.cursor(resource.name)
    since = ctx.since_for(cursor)
    numbers = {sid: number for number, sid in ctx.students.items()}
    fresh = sorted(sid for sid, grant in allowed.items() if since is None or grant > cursor.grant_watermark)
    known = sorted(set(allowed) - set(fresh))
    buffer = Buffer()
    progress = Progress()

    # The first day each child's consent covers, where the family chose one (None: all).
    first_day = {sid: ctx.data_from.get(grant) for sid, grant in allowed.items()}
    adapter = _page_adapter(resource.wire)
    # student number → (student id, grant id, first day covered or None)
    entitled: dict[str, tuple[int, int, date | None]] = {}
    entitled_stops = -1  # how many stopped grants `entitled` has taken out

    def permitted() -> dict[str, tuple[int, int, date | None]]:
        """The children whose records may be kept now; rebuilt when a grant stops."""
        nonlocal entitled_stops
        if entitled_stops != len(ctx.stopped):
            entitled_stops = len(ctx.stopped)
            entitled.clear()
            entitled.update(
                (numbers[sid], (sid, grant, first_day[sid]))
                for sid, grant in allowed.items()
                if sid not in ctx.stopped
            )
        return entitled

    def on_page(page: Page) -> None:
        ctx.drift(resource.name, page, resource.wire)
        ctx.tally.fetched += len(page.records)
        kept = permitted()
        try:
            # The whole page in one call (pydantic-core): the common case, no Python per field.
            records = adapter.validate_python(page.records)
        except ValidationError:
            split_page(page, kept)
            return
        for record in records:
            who = kept.get(record.student)
            if who is None:
                discard(record.student)
            elif who[2] is not None and record.first_day() < who[2]:
                ctx.tally.discarded += 1  # before the consent's data range
            else:
                add(record, who[0], who[1])

    def split_page(page: Page, kept: dict[str, tuple[int, int, date | None]]) -> None:
        """A page with a bad record, record by record. Consent first, validation second: a record
        of a child without consent is dropped unseen even when it is malformed, so not even
        quarantine keeps it. A record that names no child we know cannot be checked for consent
        and is not kept either."""
        for raw in page.records:
            student = raw.get("student")
            who = kept.get(student) if isinstance(student, str) else None
            if who is None:
                discard(student)
                continue
            try:
                record = resource.wire.model_validate(raw)
            except ValidationError as exc:
                ctx.quarantine(
                    buffer, progress, raw, _reason(exc), "updatedAt", resource=resource.name, grant_id=who[1]
                )
                continue
            if who[2] is not None and record.first_day() < who[2]:
                ctx.tally.discarded += 1
                continue
            add(record, who[0], who[1])

    def discard(student: object) -> None:
        ctx.tally.discarded += 1
        if ctx.source is Source.school_affairs and student not in ctx.students:
            ctx.tally.note(f"{resource.name}: a record named no child that was asked for; not kept")

    def add(record: WireRecord, student_id: int, grant_id: int) -> None:
        # Every valid record up to here was stored or deliberately discarded: the cursor may pass it.
        if progress.newest is None or record.modified > progress.newest:
            progress.newest = record.modified
        key = record.key(student_id)
        earlier = buffer.modified.get(key)
        if earlier is not None and earlier > record.modified:
            return  # an older version of a record already buffered (e.g. repeated across pages)
        buffer.modified[key] = record.modified
        buffer.refs.append(record.id)
        if record.status == "tobedeleted":
            buffer.rows.pop(key, None)
            buffer.deletes[key] = student_id
        else:
            buffer.deletes.pop(key, None)
            row = record.row(student_id)
            row["grant_id"] = grant_id
            buffer.rows[key] = row

    async def flush(final: bool) -> None:
        await ctx.settle()
        batch = buffer.take()
        complete = final and progress.complete
        position = progress.next_position(cursor.position) if complete else None
        watermark = max(allowed.values()) if complete else 0

        def write(session: Session) -> Written:
            policy.hold_grants(session=session, grant_ids={row["grant_id"] for row in batch.rows.values()})
            stopped = ctx.refresh_stopped(session)
            rows = [row for row in batch.rows.values() if row["student_id"] not in stopped]
            deletes = [key for key, sid in batch.deletes.items() if sid not in stopped]
            counts = store.write(
                session=session,
                target=resource.target,
                rows=rows,
                deleted_keys=deletes,
                stamp={"source": ctx.source, "sync_run_id": ctx.run_id, "fetched_at": utcnow()},
            )
            ctx.save_quarantine(session, resource.name, batch.quarantine)
            ctx.resolve_quarantine(session, resource.name, batch.refs)
            if complete:
                ctx.save_cursor(session, resource.name, position, watermark)
            return Written(counts, len(batch.rows) + len(batch.deletes) - len(rows) - len(deletes))

        ctx.write_behind(write)

    try:
        if ctx.source is Source.school_platform:
            # The platform pages whole schools and cannot be asked for named children: rows of
            # children without consent for this category arrive and are discarded in on_page
            # before anything is stored (counted as `discarded`). The category is not asked for
            # at all when no child of the school allows it (above). One child new to the
            # category means the school is read from the start; the others' rows then compare
            # as unchanged.
            pages = ctx.clients.school_platform.records(
                resource.name, ctx.school_code, since=None if fresh else since
            )
            progress.complete &= await _stream(_flushing(_ahead(pages), buffer, flush), ctx, on_page)
        else:
            # Children are asked for in groups that share a first day of data, so the request
            # names the consented range and nothing earlier is sent at all.
            for group, group_since in ((fresh, None), (known, since)):
                for chunk, data_from in _by_first_day(group, first_day):
                    await ctx.db(ctx.refresh_stopped)
                    asked = [numbers[sid] for sid in chunk if sid not in ctx.stopped]
                    if asked:
                        pages = ctx.clients.school_affairs.query(
                            resource.name, ctx.school_code, asked, since=group_since, data_from=data_from
                        )
                        progress.complete &= await _stream(_ahead(pages), ctx, on_page)
                    if len(buffer) >= BATCH_ROWS:
                        await flush(final=False)
    except UpstreamError as exc:
        progress.complete = False
        ctx.tally.note(f"{resource.name}: {exc.message}")
    await flush(final=True)


async def _flushing(
    pages: AsyncIterator[Page], buffer: Buffer, flush: Callable[[bool], Any]
) -> AsyncIterator[Page]:
    async for page in pages:
        yield page
        if len(buffer) >= BATCH_ROWS:
            await flush(False)


async def execute(ctx: RunContext) -> SyncStatus:
    """Run the sync of one claimed run to its end; the status it ended with."""

    def prepare(session: Session) -> None:
        ctx.load_school(session)
        ctx.load_checkpoints(session)

    await ctx.db(prepare)
    resources = RESOURCES[ctx.source]
    roster_ok = True
    if ctx.source is Source.school_affairs:
        try:
            await sync_roster(ctx)
        except UpstreamError as exc:
            roster_ok = False
            ctx.tally.note(f"{ROSTER}: {exc.message}")
    await ctx.db(ctx.load_students)

    def authorize(session: Session) -> None:
        ctx.authorize(session, (r.scope for r in resources))

    await ctx.db(authorize)
    try:
        for resource in resources:
            await sync_resource(ctx, resource)
    finally:
        await ctx.settle()
    if not ctx.tally.errors or all("schema drift" in e for e in ctx.tally.errors):
        return SyncStatus.succeeded if roster_ok else SyncStatus.partial
    stored = ctx.tally.inserted + ctx.tally.updated + ctx.tally.unchanged + ctx.tally.deleted
    return SyncStatus.partial if stored or ctx.tally.quarantined else SyncStatus.failed
