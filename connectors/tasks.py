"""The daily sync inside the service: queue every school's sync and work the queue."""

from __future__ import annotations

import asyncio

from huey import crontab

from app.core.config import get_settings
from app.core.db import get_engine, session_scope
from app.core.jobs import huey
from connectors import service


async def _work() -> int:
    runs = await service.work_together(engine=get_engine(), settings=get_settings(), name="daily")
    return len(runs)


# Early morning (Asia/Tokyo 05:30 = 20:30 UTC): yesterday's records are in, staff see them at 8.
@huey.periodic_task(crontab(hour="20", minute="30"))
def daily_sync() -> int:
    """Queue one run per (school, source) and work the queue; other workers may join in."""
    with session_scope() as session:
        service.enqueue(session=session, sources=service.SOURCES, requested_by="schedule")
    return asyncio.run(_work())
