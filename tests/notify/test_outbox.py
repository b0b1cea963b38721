"""The outbox and the sender against the LINE stand-in: never twice, never lost, within limits.

These tests commit for real (the sender works in transactions of its own, from threads), so
they run on a database of their own, emptied before each test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import select

from app.core.config import Settings
from app.core.db import make_engine, session_scope
from app.core.deps import UnitOfWork
from app.core.migrate import upgrade
from notify import accounts, outbox, sender
from notify.models import (
    BatchStatus,
    Campaign,
    LineAccount,
    LinkNonce,
    Notification,
    NotificationBatch,
    NotificationStatus,
)
from tests.databases import fresh_database
from tests.line_standin import TOKEN, StandIn

ROOT = Path(__file__).resolve().parents[2]
NOTICE = [{"type": "text", "text": "【お知らせ】こども食堂が始まります\n\nお問い合わせ: こども家庭センター"}]


@pytest.fixture(scope="module")
def outbox_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(backend, tmp_path_factory.mktemp("outbox")) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture
def outbox_engine(outbox_url: str) -> Iterator[Engine]:
    engine = make_engine(outbox_url)
    with engine.begin() as connection:
        # Children first, so foreign keys never object.
        for table in (Notification, NotificationBatch, Campaign, LinkNonce, LineAccount):
            connection.execute(sa.delete(table))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(outbox_engine: Engine) -> UnitOfWork:
    return lambda: session_scope(outbox_engine)


def settings_for(standin: StandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "line_api_url": standin.url,
        "line_channel_access_token": TOKEN,
        "notify_quiet_start_hour": 0,
        "notify_quiet_end_hour": 0,  # no quiet hours unless a test asks for them
        "upstream_timeout_seconds": 5,
    }
    return Settings(**(values | overrides))


def followers(standin: StandIn, sessions: UnitOfWork, count: int) -> list[int]:
    """COUNT friends in the stand-in, each with a LineAccount row; their account ids."""
    user_ids = standin.control.post("/_control/users", json={"count": count, "friend": True}).json()[
        "user_ids"
    ]
    with sessions() as session:
        session.execute(
            sa.insert(LineAccount), [{"line_user_id": u, "followed_at": datetime.now(UTC)} for u in user_ids]
        )
    with sessions() as session:
        return list(session.exec(select(LineAccount.id).order_by(LineAccount.id)).all())  # type: ignore[arg-type]


def enqueue(
    sessions: UnitOfWork,
    settings: Settings,
    account_ids: list[int],
    messages: list[dict[str, Any]] = NOTICE,
) -> outbox.Queued:
    with sessions() as session:
        return outbox.enqueue(
            session=session,
            settings=settings,
            account_ids=account_ids,
            messages=messages,
            due=datetime.now(UTC),
        )


def drain(sessions: UnitOfWork, settings: Settings, **options: Any) -> sender.Report:
    return asyncio.run(sender.drain(sessions=sessions, settings=settings, **options))


def statuses(sessions: UnitOfWork) -> dict[str, int]:
    """Notifications per status, as staff see them (a sent batch's rows count as sent)."""
    with sessions() as session:
        campaigns = list(outbox.counts_by_campaign(session=session).values())
    totals = {f.name: sum(getattr(c, f.name) for c in campaigns) for f in fields(outbox.Counts)}
    return {status: number for status, number in totals.items() if number}


def delivered(standin: StandIn) -> dict[str, Any]:
    summary: dict[str, Any] = standin.control.get(
        "/_control/summary", params={"contains": "こども食堂"}
    ).json()
    return summary


def make_due_now(sessions: UnitOfWork) -> None:
    with sessions() as session:
        session.execute(
            sa.update(NotificationBatch).values(not_before=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_1200_followers_go_out_in_three_multicasts_once_each(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin)
    ids = followers(standin, sessions, 1200)
    queued = enqueue(sessions, settings, ids)
    assert (queued.queued, queued.batches) == (1200, 3)
    report = drain(sessions, settings)
    assert (report.requests, report.recipients_sent, report.stopped) == (3, 1200, None)
    assert statuses(sessions) == {"sent": 1200}
    summary = delivered(standin)
    assert (summary["recipients"], summary["duplicates"]) == (1200, 0)


def test_a_lost_answer_is_retried_with_the_same_key_and_counted_once(
    standin: StandIn, sessions: UnitOfWork
) -> None:
    settings = settings_for(standin)
    enqueue(sessions, settings, followers(standin, sessions, 3))
    standin.control.post("/_control/faults", json={"endpoint": "multicast", "kind": "accept_then_error"})
    first = drain(sessions, settings)
    assert (first.retries, first.recipients_sent) == (1, 0)
    assert delivered(standin)["recipients"] == 3  # LINE accepted it; we could not know
    make_due_now(sessions)
    second = drain(sessions, settings)
    assert (second.already_accepted, second.recipients_sent) == (1, 3)
    assert statuses(sessions) == {"sent": 3}
    assert delivered(standin)["duplicates"] == 0


def test_a_timeout_is_retried_and_409_counts_as_sent(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin, upstream_timeout_seconds=0.3)
    enqueue(sessions, settings, followers(standin, sessions, 2))
    standin.control.post(
        "/_control/faults", json={"endpoint": "multicast", "kind": "delay", "delay_seconds": 0.6}
    )
    assert drain(sessions, settings).retries == 1
    time.sleep(0.5)  # the slow request lands after the sender gave up on it
    make_due_now(sessions)
    assert drain(sessions, settings).already_accepted == 1
    assert delivered(standin)["duplicates"] == 0 and statuses(sessions) == {"sent": 2}


def test_a_sender_that_died_mid_request_is_taken_over_after_its_lease(
    standin: StandIn, sessions: UnitOfWork
) -> None:
    settings = settings_for(standin)
    enqueue(sessions, settings, followers(standin, sessions, 4))
    with sessions() as session:
        [claimed] = outbox.claim(session=session, limit=10, lease=timedelta(seconds=0))
    # The dead sender's request reached LINE before it died, and nothing was recorded.
    standin.control.post(
        "/v2/bot/message/multicast",
        headers={"authorization": f"Bearer {TOKEN}", "x-line-retry-key": claimed.retry_key},
        json={"to": claimed.user_ids, "messages": claimed.messages},
    ).raise_for_status()
    report = drain(sessions, settings)
    assert (report.already_accepted, report.recipients_sent) == (1, 4)
    assert delivered(standin)["duplicates"] == 0


def test_a_live_lease_is_left_alone(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin)
    enqueue(sessions, settings, followers(standin, sessions, 2))
    with sessions() as session:
        assert len(outbox.claim(session=session, limit=10, lease=timedelta(minutes=5))) == 1
        assert outbox.claim(session=session, limit=10, lease=timedelta(minutes=5)) == []


def test_the_monthly_quota_stops_sending_and_keeps_the_rest_queued(
    standin: StandIn, sessions: UnitOfWork
) -> None:
    settings = settings_for(standin)
    enqueue(sessions, settings, followers(standin, sessions, 1200))
    standin.control.patch("/_control/config", json={"monthly_quota": 700})
    report = drain(sessions, settings)
    assert (report.stopped, report.recipients_sent) == ("quota", 500)
    assert statuses(sessions) == {"sent": 500, "queued": 700}
    with sessions() as session:
        assert outbox.pending_recipients(session=session) == 700
        batches = session.exec(select(NotificationBatch.status, NotificationBatch.attempts)).all()
    assert sorted((str(s), a) for s, a in batches) == [("queued", 0), ("queued", 0), ("sent", 1)]


def test_rate_limited_requests_are_sent_again_later(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin, line_multicast_per_second=100)
    ids = followers(standin, sessions, 10)
    for account_id in ids:
        enqueue(sessions, settings, [account_id], [{"type": "text", "text": f"こども食堂 {account_id}"}])
    standin.control.patch("/_control/config", json={"rate_limits": {"multicast": 4}})
    report = drain(sessions, settings)
    assert report.rate_limited > 0 and report.recipients_sent == 10
    assert delivered(standin)["duplicates"] == 0


def test_blocking_unlinking_and_cancelling_stop_queued_rows(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin)
    ids = followers(standin, sessions, 3)
    with sessions() as session:
        outbox.enqueue(
            session=session,
            settings=settings,
            account_ids=ids,
            messages=NOTICE,
            due=datetime.now(UTC),
            needs_link=True,
        )
        first, second, _third = (session.get(LineAccount, i) for i in ids)
        assert first is not None and first.line_user_id is not None and second is not None
        accounts.forget(session=session, line_user_id=first.line_user_id)
        accounts.unlink(session=session, account=second)
    assert statuses(sessions) == {"cancelled": 2, "queued": 1}
    assert drain(sessions, settings).recipients_sent == 1
    assert delivered(standin)["recipients"] == 1


def test_leaving_after_the_send_leaves_what_was_sent_as_sent(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin)
    ids = followers(standin, sessions, 2)
    enqueue(sessions, settings, ids)
    assert drain(sessions, settings).recipients_sent == 2
    with sessions() as session:
        account = session.get(LineAccount, ids[0])
        assert account is not None and account.line_user_id is not None
        accounts.forget(session=session, line_user_id=account.line_user_id)
        assert outbox.pending_recipients(session=session) == 0
    assert statuses(sessions) == {"sent": 2}


def test_a_batch_whose_recipients_all_left_is_cancelled(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin)
    ids = followers(standin, sessions, 2)
    enqueue(sessions, settings, ids)
    with sessions() as session:
        for account_id in ids:
            account = session.get(LineAccount, account_id)
            assert account is not None and account.line_user_id is not None
            accounts.forget(session=session, line_user_id=account.line_user_id)
    report = drain(sessions, settings)
    assert (report.requests, report.cancelled_batches) == (0, 1)
    with sessions() as session:
        assert session.exec(select(NotificationBatch.status)).one() == BatchStatus.cancelled


def test_the_frequency_cap_skips_and_says_so(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin, notify_max_per_week=2)
    ids = followers(standin, sessions, 2)
    for _ in range(3):
        enqueue(sessions, settings, ids)
    with sessions() as session:
        skipped = session.exec(
            select(Notification).where(Notification.status == NotificationStatus.skipped)
        ).all()
    assert len(skipped) == 2 and {n.reason for n in skipped} == {"frequency cap"}


def test_quiet_hours_move_the_due_time_and_stop_the_sender(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin, notify_quiet_start_hour=21, notify_quiet_end_hour=7)
    at_night = datetime(2026, 11, 23, 22, 30, tzinfo=UTC) - timedelta(hours=9)  # 22:30 JST
    assert outbox.in_quiet_hours(at_night, settings)
    assert outbox.outside_quiet_hours(at_night, settings) == datetime(
        2026, 11, 23, 22, 0, tzinfo=UTC
    )  # 07:00 JST
    early = datetime(2026, 11, 24, 6, 59, tzinfo=UTC) - timedelta(hours=9)
    assert outbox.outside_quiet_hours(early, settings) == datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    noon = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert outbox.outside_quiet_hours(noon, settings) == noon
    always_quiet = settings_for(standin, notify_quiet_start_hour=0, notify_quiet_end_hour=23)
    enqueue(sessions, settings_for(standin), followers(standin, sessions, 1))
    if outbox.in_quiet_hours(datetime.now(UTC), always_quiet):
        assert drain(sessions, always_quiet).stopped == "quiet_hours"
        assert statuses(sessions) == {"queued": 1}


def test_the_cli_sends_and_reports(standin: StandIn, sessions: UnitOfWork, outbox_url: str) -> None:
    settings = settings_for(standin)
    enqueue(sessions, settings, followers(standin, sessions, 7))
    env = {
        "PATH": "/usr/bin:/bin",
        "TSUNAGU_DATABASE_URL": outbox_url,
        "TSUNAGU_LINE_API_URL": standin.url,
        "TSUNAGU_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        "TSUNAGU_NOTIFY_QUIET_START_HOUR": "0",
        "TSUNAGU_NOTIFY_QUIET_END_HOUR": "0",
    }
    sent = subprocess.run(
        [sys.executable, "-m", "app.cli", "notify", "send"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    assert orjson.loads(sent.stdout.strip().splitlines()[-1])["recipients_sent"] == 7
    shown = subprocess.run(
        [sys.executable, "-m", "app.cli", "notify", "status"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "送信待ち / waiting to be sent: 0" in shown.stderr


def test_retry_keys_are_fixed_when_queued(standin: StandIn, sessions: UnitOfWork) -> None:
    settings = settings_for(standin)
    enqueue(sessions, settings, followers(standin, sessions, 501))
    with sessions() as session:
        keys = session.exec(select(NotificationBatch.retry_key)).all()
    assert len(keys) == 2 and all(uuid.UUID(k).version == 4 for k in keys)
