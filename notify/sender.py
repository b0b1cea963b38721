"""The sender: drains the outbox through LINE within the channel's rate limits and monthly quota.

Each round claims a few due batches (their claim is committed first), sends them with a few
requests in flight, paced by a token bucket per endpoint, and settles each answer in its own
short transaction. It stops, and says why, when the quota would run out, during quiet hours,
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
from app.core.errors import UpstreamError
from app.core.types import utcnow
from notify import outbox
from notify.deps import SessionFactory
from notify.line import Line, Outcome, Result
from notify.models import BatchKind

Progress = Callable[[int], None]


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


async def drain(
    *,
    sessions: SessionFactory,
    settings: Settings,
    lease: timedelta = timedelta(seconds=60),
    claim_size: int = 20,
    in_flight: int = 8,
    until_empty: bool = True,
    progress: Progress | None = None,
) -> Report:
    """Send what is due until nothing is left (or a stop reason), and report what happened."""
    report = Report()
    started = time.monotonic()
    pace = {
        BatchKind.multicast: Pace(settings.line_multicast_per_second),
        BatchKind.push: Pace(settings.line_push_per_second),
    }
    slots = asyncio.Semaphore(in_flight)

    def _claim() -> list[outbox.Claimed]:
        with sessions() as session:
            return outbox.claim(session=session, limit=claim_size, lease=lease)

    def _settle(claimed: outbox.Claimed, result: Result | None) -> None:
        with sessions() as session:
            if result is None:
                outbox.settle_empty(session=session, claimed=claimed)
            else:
                outbox.settle(session=session, claimed=claimed, result=result)

    def _lease_end() -> datetime | None:
        with sessions() as session:
            return outbox.next_lease_end(session=session)

    def _release(claimed: outbox.Claimed, reason: str) -> None:
        with sessions() as session:
            outbox.release(
                session=session,
                batch_id=claimed.batch_id,
                not_before=utcnow(),
                error=reason,
                count_attempt=False,
            )

    async with Line(settings) as line:
        try:
            quota = await line.quota_left()
        except UpstreamError:
            quota = None  # unknown: LINE's own 429 for the monthly limit will stop us instead

        async def send(claimed: outbox.Claimed) -> None:
            nonlocal quota
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
            await run_in_threadpool(_settle, claimed, result)
            if result.outcome in (Outcome.sent, Outcome.already_sent):
                report.batches_sent += 1
                report.recipients_sent += len(claimed.user_ids)
                report.already_accepted += result.outcome is Outcome.already_sent
                if progress:
                    progress(len(claimed.user_ids))
            elif result.outcome is Outcome.retry:
                report.retries += 1
            elif result.outcome is Outcome.refused:
                report.failed_batches += 1

        while report.stopped is None:
            if outbox.in_quiet_hours(utcnow(), settings):
                report.stopped = "quiet_hours"
                break
            claimed = await run_in_threadpool(_claim)
            if not claimed:
                # Batches claimed by a sender that may have died come back when their lease
                # ends; "until empty" means until those are settled too.
                lease_end = await run_in_threadpool(_lease_end)
                if until_empty and lease_end is None:
                    break
                wait = (lease_end - utcnow()).total_seconds() if lease_end else 1.0
                await asyncio.sleep(min(1.0, max(0.05, wait)))
                continue
            tasks = []
            for batch in claimed:
                if report.stopped is not None:
                    await run_in_threadpool(_release, batch, report.stopped)
                elif not batch.user_ids:
                    report.cancelled_batches += 1
                    await run_in_threadpool(_settle, batch, None)
                elif quota is not None and len(batch.user_ids) > quota:
                    report.stopped = "quota"
                    await run_in_threadpool(_release, batch, "quota")
                else:
                    if quota is not None:
                        quota -= len(batch.user_ids)
                    tasks.append(asyncio.create_task(send(batch)))
            await asyncio.gather(*tasks)
    report.seconds = round(time.monotonic() - started, 3)
    return report
