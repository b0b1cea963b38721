"""Periodic clean-up of browser sessions: ended or timed-out rows are not kept."""

from __future__ import annotations

from huey import crontab

from app.core.db import session_scope
from app.core.jobs import huey
from app.sessions.service import purge_stale


@huey.periodic_task(crontab(minute="17"))
def purge_stale_sessions() -> int:
    with session_scope() as session:
        return purge_stale(session=session)
