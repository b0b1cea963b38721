"""Background jobs: the worker loads every task module, and session clean-up removes only stale rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from app.core.types import utcnow
from app.sessions.models import PrincipalKind, WebSession
from app.sessions.service import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT, purge_stale
from app.worker import TASK_MODULES, load_tasks


def test_worker_loads_every_task_module() -> None:
    from app.core.jobs import huey

    load_tasks()
    names = {task.name for task in huey._registry.periodic_tasks}
    assert "purge_stale_sessions" in names
    assert TASK_MODULES


def test_purge_removes_ended_idle_and_expired_sessions_only(session: Session) -> None:
    now = utcnow()

    def web_session(token: str, **overrides: datetime) -> WebSession:
        row = WebSession(
            token_hash=token, principal_kind=PrincipalKind.guardian, principal_id=1, csrf_token="x"
        )
        for field, value in overrides.items():
            setattr(row, field, value)
        session.add(row)
        return row

    web_session("live")
    web_session("ended", ended_at=now)
    web_session("idle", last_seen_at=now - IDLE_TIMEOUT - timedelta(minutes=1))
    web_session(
        "expired",
        created_at=now - ABSOLUTE_TIMEOUT - timedelta(minutes=1),
        last_seen_at=now,
    )
    session.flush()
    assert purge_stale(session=session) == 3
    assert [row.token_hash for row in session.exec(select(WebSession))] == ["live"]
