"""Background work of notify: every minute, send whatever notices have come due; every morning,
queue personalised information for the families who asked for it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from huey import crontab

from app.core.config import get_settings
from app.core.db import session_scope
from app.core.jobs import huey
from notify import personalised, sender


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("notify-send")
def send_due_notices() -> dict[str, Any]:
    # Several workers would be safe (rows are claimed), but one at a time keeps the pace honest.
    return asdict(asyncio.run(sender.drain(sessions=session_scope, settings=get_settings())))


# 00:30 UTC is 09:30 in Japan: after the nightly syncs, and outside the quiet hours.
@huey.periodic_task(crontab(hour="0", minute="30"))
@huey.lock_task("notify-personalise")
def queue_personalised_information() -> dict[str, Any]:
    with session_scope() as session:
        return asdict(personalised.plan(session=session, settings=get_settings()))
