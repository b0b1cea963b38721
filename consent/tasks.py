"""Consent's periodic work: grants that reached their expiry are recorded as expired, and data
kept longer than its grant's data life is deleted."""

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


@huey.periodic_task(crontab(hour="18", minute="0"))
def delete_past_data_life() -> int:
    """Daily at 03:00 JST (18:00 UTC), when no one is working; returns how many rows went."""
    with session_scope() as session:
        deleted = service.delete_past_data_life(session=session)
    return sum(sum(tables.values()) for tables in deleted.values())
