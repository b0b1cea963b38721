"""The sender: drains the outbox through LINE within the channel's rate limits and monthly quota.

It claims a few due batches at a time (their claim is committed first), sends them with a few
requests in flight, paced by a token bucket per endpoint, and settles the answers in short
transactions, the three overlapping. It stops, and says why, when the quota would run out, during quiet hours,
or when the outbox is empty. Several senders may run at once; each claims different rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.deps import UnitOfWork
from app.core.errors import UpstreamError
from app.core.types import utcnow
from notify import outbox
from notify.line import Line, Outcome, Result
from notify.models import BatchKind

Progress = Callable[[int], None]
WRITE_GATHER_SECONDS = 0.02


class Pace:
    """Evenly spaced permits at RATE per second (a token bucket of depth one): bursts would only
    earn 429s from a platform that counts requests per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_at = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)

    def slow_down(self, seconds: float) -> None:
        self.next_at = max(self.next_at, time.monotonic() + seconds)


@dataclass
class Report:
    requests: int = 0
    batches_sent: int = 0
    recipients_sent: int = 0
    already_accepted: int = 0
    retries: int = 0
    rate_limited: int = 0
    failed_batches: int = 0
    cancelled_batches: int = 0
    stopped: str | None = None
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Done:
    """A claimed batch's end, waiting to be written: LINE's answer, an empty batch (no answer),
    or a batch given back unsent (`released` says why)."""

    claimed: outbox.Claimed
    result: Result | None = None
    released: str | None = None
    written: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


async def drain(
    *,
    sessions: UnitOfWork,
    settings: Settings,
    lease: timedelta = timedelta(seconds=60),
    claim_size: int = 32,
    in_flight: int = 32,
    until_empty: bool = True,
    progress: Progress | None = None,
) -> Report:
    """Send what is due until nothing is left (or a stop reason), and report what happened.

    Claiming, sending and settling overlap, so the pace never waits for the database: the next
    claim is taken while IN_FLIGHT claimed batches are still waiting or going out, and the answers
    that arrive together are settled together in one short transaction. IN_FLIGHT is what the
    rate needs: at 200 requests/s and a 100–150 ms answer (LINE from Japan; this machine's
    stand-in answers a 500-recipient multicast in about 50 ms) some 20–30 requests are under way.
    A batch counts as done only once its settlement is written; a sender killed before that
    leaves the batch to come back when its lease ends, and LINE answers its retry key with 409,
    which counts as sent.
    """
    report = Report()
    started = time.monotonic()
    pace = {
        BatchKind.multicast: Pace(settings.line_multicast_per_second),
        BatchKind.push: Pace(settings.line_push_per_second),
    }
    slots = asyncio.Semaphore(in_flight)
    to_write: asyncio.Queue[_Done | None] = asyncio.Queue()

    def _claim() -> list[outbox.Claimed]:
        with sessions() as session:
            return outbox.claim(session=session, limit=claim_size, lease=lease)

    def _lease_end() -> datetime | None:
        with sessions() as session:
            return outbox.next_lease_end(session=session)

    def _write(done: list[_Done]) -> None:
        with sessions() as session:
            for end in done:
                if end.released is not None:
                    outbox.release(
                        session=session,
                        batch_id=end.claimed.batch_id,
                        not_before=utcnow(),
                        error=end.released,
                        count_attempt=False,
                    )
                elif end.result is None:
                    outbox.settle_empty(session=session, claimed=end.claimed)
                else:
                    outbox.settle(session=session, claimed=end.claimed, result=end.result)

    def _count(end: _Done) -> None:
        """The report counts what is written, not what was merely answered."""
        if end.released is not None:
            return
        if end.result is None:
            report.cancelled_batches += 1
            return
        outcome = end.result.outcome
        if outcome in (Outcome.sent, Outcome.already_sent):
            report.batches_sent += 1
            report.recipients_sent += len(end.claimed.user_ids)
            report.already_accepted += outcome is Outcome.already_sent
            if progress:
                progress(len(end.claimed.user_ids))
        elif outcome is Outcome.retry:
            report.retries += 1
        elif outcome is Outcome.refused:
            report.failed_batches += 1

    async def writer() -> None:
        """Writes every end that has arrived in one transaction, then wakes their senders."""
        while (first := await to_write.get()) is not None:
            # Answers arrive every few milliseconds at full pace: waiting a moment for the
            # next ones turns a transaction per answer into one per handful.
            await asyncio.sleep(WRITE_GATHER_SECONDS)
            done = [first]
            stop = False
            while not to_write.empty():
                end = to_write.get_nowait()
                if end is None:
                    stop = True
                    break
                done.append(end)
            try:
                await run_in_threadpool(_write, done)
            except Exception as exc:
                for end in done:
                    end.written.set_exception(exc)
            else:
                for end in done:
                    _count(end)
                    end.written.set_result(None)
            if stop:
                return

    async def finish(end: _Done) -> None:
        await to_write.put(end)
        await end.written

    async with Line(settings) as line:
        try:
            quota = await line.quota_left()
        except UpstreamError:
            quota = None  # unknown: LINE's own 429 for the monthly limit will stop us instead

        async def send(claimed: outbox.Claimed) -> None:
            async with slots:
                await pace[claimed.kind].wait()
                if claimed.kind is BatchKind.multicast:
                    result = await line.multicast(
                        to=claimed.user_ids, messages=claimed.messages, retry_key=claimed.retry_key
                    )
                else:
                    result = await line.push(
                        to=claimed.user_ids[0], messages=claimed.messages, retry_key=claimed.retry_key
                    )
            report.requests += 1
            report.outcomes[result.outcome.value] = report.outcomes.get(result.outcome.value, 0) + 1
            if result.outcome is Outcome.rate_limited:
                report.rate_limited += 1
                pace[claimed.kind].slow_down(1.0)
            elif result.outcome is Outcome.quota_exhausted:
                report.stopped = "quota"
            await finish(_Done(claimed, result))

        def start(batch: outbox.Claimed) -> asyncio.Task[None]:
            nonlocal quota
            if report.stopped is not None:
                return asyncio.create_task(finish(_Done(batch, released=report.stopped)))
            if not batch.user_ids:
                return asyncio.create_task(finish(_Done(batch)))
            if quota is not None and len(batch.user_ids) > quota:
                report.stopped = "quota"
                return asyncio.create_task(finish(_Done(batch, released="quota")))
            if quota is not None:
                quota -= len(batch.user_ids)
            return asyncio.create_task(send(batch))

        writing = asyncio.create_task(writer())
        going: set[asyncio.Task[None]] = set()
        try:
            while report.stopped is None:
                if outbox.in_quiet_hours(utcnow(), settings):
                    report.stopped = "quiet_hours"
                    break
                # Claim again while a full set of requests can still be in flight, so the pace
                # never waits for the database.
                while len(going) > in_flight:
                    await _first_of(going)
                claimed = await run_in_threadpool(_claim)
                if not claimed:
                    if going:
                        await _first_of(going)
                        continue
                    # Batches claimed by a sender that may have died come back when their lease
                    # ends; "until empty" means until those are settled too.
                    lease_end = await run_in_threadpool(_lease_end)
                    if until_empty and lease_end is None:
                        break
                    wait = (lease_end - utcnow()).total_seconds() if lease_end else 1.0
                    await asyncio.sleep(min(1.0, max(0.05, wait)))
                    continue
                for batch in claimed:
                    task = start(batch)
                    going.add(task)
                    task.add_done_callback(going.discard)
            await asyncio.gather(*going)
        finally:
            await to_write.put(None)
            await writing
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _first_of(tasks: set[asyncio.Task[None]]) -> None:
    """Wait until one of TASKS ends, raising what it raised."""
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        task.result()
