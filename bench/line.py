"""LINE benchmark: 100,000 recipients through the LINE stand-in; prints one JSON line.

    python bench/line.py [--recipients 100000] [--database-url URL] [--kills 3]

The stand-in runs in its own process on an ephemeral loopback port with its multicast limit
at 200 requests/s and no monthly quota. One universal notice is queued for every recipient
(200 multicasts of 500), then `tsunagu notify send` delivers it, twice over:

- `clean`: one sender from start to end;
- `killed`: the same on a fresh database and channel, but the sender is killed with SIGKILL at
  random moments while it is sending (three times), and started again each time.

Figures per run: achieved multicast rate as a share of the limit (accepted requests over the
span from the first to the last accepted request, measured by the stand-in), duplicates
(the same message delivered to the same person more than once), lost (recipients who never
got it), and wall times. Goals: share ≥ 0.9, duplicates 0, lost 0. In the `killed` run the
span includes each restart (a new process importing the service, a few seconds): its time is
given, and the share while a sender was up beside it. Loopback only, bounded in time (each
sender start has a deadline).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/consent.py is named like the consent package: keep this folder off the import path, and
# put the repository on it instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import fields  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import col  # noqa: E402

from app.core.config import Settings  # noqa: E402
from app.core.db import make_engine, session_scope  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from notify import outbox  # noqa: E402
from notify.models import LineAccount  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - a throw-away channel on loopback
LIMIT = 200
LEASE_SECONDS = 3
DEADLINE_SECONDS = 300


@contextmanager
def fresh_database(url: str | None, directory: Path) -> Iterator[str]:
    if url is None:
        yield f"sqlite:///{directory / f'line-{uuid.uuid4().hex[:8]}.db'}"
        return
    parsed = make_url(url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def stand_in() -> Iterator[str]:
    """The LINE stand-in in a process of its own, on a socket bound here to a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        **os.environ,
        "TSUNAGU_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        "LINE_STANDIN_WEBHOOK_URL": "http://127.0.0.1:9/",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "mocks.line.app:create_app",
            "--fd",
            str(sock.fileno()),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        pass_fds=[sock.fileno()],
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_control/config", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the LINE stand-in did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        sock.close()


def prepare(control: httpx.Client, database_url: str, recipients: int, marker: str) -> float:
    """A fresh channel with RECIPIENTS friends, and the notice queued for each; seconds taken."""
    control.post("/_control/reset").raise_for_status()
    control.patch(
        "/_control/config", json={"rate_limits": {"multicast": LIMIT}, "unlimited_quota": True}
    ).raise_for_status()
    user_ids = control.post(
        "/_control/users", json={"count": recipients, "friend": True}, timeout=120
    ).json()["user_ids"]
    engine = make_engine(database_url)
    upgrade(engine)
    started = time.monotonic()
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.execute(sa.insert(LineAccount), [{"line_user_id": u, "followed_at": now} for u in user_ids])
    with session_scope(engine) as session:
        account_ids = list(session.execute(sa.select(col(LineAccount.id))).scalars())
        outbox.enqueue(
            session=session,
            settings=Settings(notify_quiet_start_hour=0, notify_quiet_end_hour=0),
            account_ids=account_ids,
            messages=[
                {
                    "type": "text",
                    "text": f"【お知らせ】地域の相談先のご案内 {marker}\n\nお問い合わせ: こども家庭センター",
                }
            ],
            due=now,
        )
    engine.dispose()
    return time.monotonic() - started


def sender(database_url: str, line_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TSUNAGU_DATABASE_URL": database_url,
        "TSUNAGU_LINE_API_URL": line_url,
        "TSUNAGU_LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
        "TSUNAGU_LINE_MULTICAST_PER_SECOND": str(LIMIT),
        "TSUNAGU_UPSTREAM_TIMEOUT_SECONDS": "2",
        "TSUNAGU_NOTIFY_QUIET_START_HOUR": "0",
        "TSUNAGU_NOTIFY_QUIET_END_HOUR": "0",
        "TSUNAGU_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "notify", "send", "--lease", str(LEASE_SECONDS)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def accepted(control: httpx.Client) -> int:
    return int(control.get("/_control/counts").json().get("multicast:accepted", 0))


def answered(control: httpx.Client) -> int:
    """Multicasts accepted or answered 409 (a repeat of an accepted retry key)."""
    counts = control.get("/_control/counts").json()
    return int(counts.get("multicast:accepted", 0)) + int(counts.get("multicast:409", 0))


def run(
    control: httpx.Client, database_url: str, line_url: str, recipients: int, kills: int
) -> dict[str, Any]:
    marker = uuid.uuid4().hex[:8]
    enqueue_seconds = prepare(control, database_url, recipients, marker)
    batches = -(-recipients // outbox.MULTICAST_LIMIT)
    started = time.monotonic()
    killed = 0
    restarts: list[tuple[float, float]] = []  # from each kill to the next sender's first answer
    process = sender(database_url, line_url)
    while killed < kills:
        # Kill at a random point while it is sending: after a random number of accepted requests.
        target = min(batches - 1, accepted(control) + random.randint(5, max(6, batches // (kills + 1))))
        while accepted(control) < target and process.poll() is None:
            if time.monotonic() - started > DEADLINE_SECONDS:
                raise RuntimeError("benchmark deadline passed")
            time.sleep(0.005)
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed += 1
        down_at, before = time.time(), answered(control)  # the stand-in's clock: time.time()
        process = sender(database_url, line_url)
        while answered(control) == before and process.poll() is None:
            time.sleep(0.005)
        restarts.append((down_at, time.time()))
    code = process.wait(timeout=DEADLINE_SECONDS)
    seconds = time.monotonic() - started
    summary = control.get("/_control/summary", params={"contains": marker}, timeout=120).json()
    span = summary["accepted_span"].get("multicast", {"first": 0.0, "last": 0.0})
    requests = summary["counts"].get("multicast:accepted", 0)
    sending = span["last"] - span["first"]
    rate = (requests - 1) / sending if requests > 1 and sending > 0 else 0.0
    # Only the part of a restart inside the span counts: a sender started after the last
    # accepted request may find only repeats to send.
    down = sum(max(0.0, min(end, span["last"]) - max(start, span["first"])) for start, end in restarts)
    # With kills, the span includes each restart (a new process importing the service); the
    # share while a sender was up says what the sender itself achieves.
    rate_up = (requests - 1) / (sending - down) if requests > 1 and sending > down else 0.0
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        counts = outbox.counts_by_campaign(session=session)[None]
    statuses = {f.name: getattr(counts, f.name) for f in fields(counts) if getattr(counts, f.name)}
    engine.dispose()
    return {
        "kills": killed,
        "sender_exit": code,
        "enqueue_seconds": round(enqueue_seconds, 2),
        "send_seconds": round(seconds, 2),
        "multicast_requests": requests,
        "repeats_answered_409": summary["counts"].get("multicast:409", 0),
        "rate_limited_429": summary["counts"].get("multicast:429", 0),
        "achieved_per_second": round(rate, 1),
        "share_of_limit": round(rate / LIMIT, 3),
        "restart_seconds": round(down, 2),
        "share_of_limit_while_a_sender_was_up": round(rate_up / LIMIT, 3),
        "recipients_reached": summary["recipients"],
        "duplicates": summary["duplicates"],
        "lost": recipients - summary["recipients"],
        "outbox": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "bench": "line",
        "recipients": args.recipients,
        "multicast_limit_per_second": LIMIT,
        # The machine is shared: the 1-minute load average before and after, next to the figures.
        "load_average_before": round(os.getloadavg()[0], 2),
    }
    with (
        tempfile.TemporaryDirectory(prefix="tsunagu-line-") as directory,
        stand_in() as line_url,
        httpx.Client(base_url=line_url, timeout=30) as control,
    ):
        for name, kills in (("clean", 0), ("killed", args.kills)):
            with fresh_database(args.database_url, Path(directory)) as url:
                results[name] = run(control, url, line_url, args.recipients, kills)
        results["database"] = make_url(url).get_backend_name()
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    results["cpus"] = os.cpu_count()
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
