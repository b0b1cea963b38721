"""Consent's periodic work: grants that reached their expiry are recorded as expired."""

from __future__ import annotations

from huey import crontab

from app.core.db import session_scope
from app.core.jobs import huey
from consent import service


@huey.periodic_task(crontab(minute="*"))
def expire_due_grants() -> int:
    """Every minute; a backlog is worked through in batches, one transaction each."""
    expired = 0
    while True:
        with session_scope() as session:
            done = service.expire_due(session=session)
        expired += done
        if done < service.EXPIRE_BATCH:
            return expired
