"""The `tsunagu` command line: run the demo, serve, migrate, seed, export the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.audit.cli import audit_cli
from app.core import serving
from app.core.config import Mode, get_settings
from app.core.db import get_engine, session_scope
from app.core.errors import AppError
from app.core.migrate import current_revision, downgrade, head_revision, pending_reason, upgrade
from app.staff import accounts as staff_accounts
from app.staff.cli import staff_cli
from connectors.cli import sync_cli
from consent.cli import clients_cli, invitations_cli, keys_cli, receipt_cli
from notify import demo as notify_demo
from notify.cli import notify_cli
from rules.cli import screen_cli

console = Console(stderr=True, soft_wrap=True)  # one message, one line, however narrow the terminal
cli = typer.Typer(
    help="つなぐ tsunagu — 本人同意に基づくこどもデータ連携 / consent-driven child data linkage.\n\n"
    "The database is chosen by TSUNAGU_DATABASE_URL for every command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="データベースの移行 / Database schema migrations.", no_args_is_help=True)
openapi_cli = typer.Typer(help="OpenAPI 文書 / The OpenAPI document.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(openapi_cli, name="openapi")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(clients_cli, name="clients")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(invitations_cli, name="invitations")
cli.add_typer(receipt_cli, name="receipt")
cli.add_typer(staff_cli, name="staff")
cli.add_typer(sync_cli, name="sync")
cli.add_typer(screen_cli, name="screen")
cli.add_typer(notify_cli, name="notify")

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
# The planted ground truth, written by `tsunagu seed` and by the demo's first start.
LABELS = Path("var/labels.json")


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="目標のリビジョン / target revision")] = "head",
) -> None:
    """スキーマを最新にする / Migrate the database up to REVISION (default: head)."""
    upgrade(get_engine(), revision)
    console.print(f"database at {current_revision(get_engine())}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="目標のリビジョン / target revision")] = "-1",
) -> None:
    """スキーマを戻す / Migrate the database down to REVISION (default: one step)."""
    downgrade(get_engine(), revision)
    console.print(f"database at {current_revision(get_engine())}")


@db_cli.command("check")
def db_check() -> None:
    """スキーマが最新か確認する / Exit 0 when the database is at head, else say why and exit 1."""
    reason = pending_reason(get_engine())
    if reason:
        console.print(f"[red]{reason}[/red]")
        raise typer.Exit(1)
    console.print(f"database at head ({head_revision()})")


@cli.command()
def seed(
    students: Annotated[int, typer.Option(min=1, max=250_000, help="生徒数 / number of students")] = 600,
    seed: Annotated[int, typer.Option(help="乱数の種 / RNG seed: same seed, same data")] = 20261123,
    force: Annotated[
        bool, typer.Option("--force", help="既存データを消して作り直す / wipe and reseed")
    ] = False,
    labels: Annotated[
        Path, typer.Option(help="正解ラベルの出力先 / where to write ground-truth labels")
    ] = LABELS,
) -> None:
    """デモデータを作る / Seed a fictional municipality with a school year of records."""
    from app.world.loader import load_world

    summary = load_world(
        get_engine(), students=students, seed=seed, force=force, labels_path=labels, progress=True
    )
    typer.echo(json.dumps(summary, ensure_ascii=False))  # one JSON line on stdout


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="待ち受けアドレス / bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="ポート / port")] = 8000,
    workers: Annotated[int, typer.Option(help="プロセス数 / worker processes")] = 1,
) -> None:
    """サービスを起動する / Serve the tsunagu web service."""
    reason = pending_reason(get_engine())
    if reason:
        raise AppError(reason)
    serving.serve(host=host, port=port, workers=workers)


@cli.command()
def worker(
    workers: Annotated[int, typer.Option(min=1, help="並列数 / worker threads")] = 2,
) -> None:
    """バックグラウンド処理を動かす / Run background and periodic jobs (sync, screening, LINE outbox)."""
    from app.worker import run_worker

    reason = pending_reason(get_engine())
    if reason:
        raise AppError(reason)
    run_worker(workers=workers)


@cli.command()
def run(
    host: Annotated[str, typer.Option(help="待ち受けアドレス / bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="ポート / port")] = 8000,
    students: Annotated[int, typer.Option(help="初回の生徒数 / students to seed if empty")] = 600,
) -> None:
    """デモを起動する / The demo: migrate, seed if empty, start the service and the stand-ins."""
    from app.world.loader import is_seeded, load_world

    engine = get_engine()
    upgrade(engine)
    first_day = not is_seeded(engine)
    if first_day:
        console.print("デモデータを作成しています / seeding the demo world …")
        # Roster, guardians and staff only: the records come in through consented sync below.
        # The planted ground truth as `tsunagu seed` writes it, for `tsunagu screen backtest`.
        load_world(
            engine,
            students=students,
            seed=DEMO_SEED,
            force=False,
            progress=True,
            records=False,
            labels_path=LABELS,
        )
    if get_settings().mode is Mode.demo:
        with session_scope(engine) as session:
            staff_accounts.seed_demo_accounts(session=session)
            notify_demo.seed_demo(session=session)
    # The stand-ins serve the same world the roster came from.
    os.environ.setdefault("TSUNAGU_DEMO_STUDENTS", str(students))
    os.environ.setdefault("TSUNAGU_DEMO_SEED", str(DEMO_SEED))
    if get_settings().mode is Mode.demo:
        # The phone simulator's test phone, on which staff preview a notice before scheduling it.
        os.environ.setdefault("TSUNAGU_NOTIFY_TEST_RECIPIENT", DEMO_TEST_PHONE)
        get_settings.cache_clear()
    stand_ins = _start_stand_ins(host)
    if first_day:
        _first_sync(engine)
    _children.append(_spawn("-m", "app.cli", "worker", "--workers", "2"))
    base = f"http://{host}:{port}"
    console.rule("つなぐ tsunagu demo")
    for label, url in [
        ("トップ / home", f"{base}/"),
        ("保護者 / guardian", f"{base}/guardian/"),
        ("職員 / staff console", f"{base}/staff/  (demo-school-leader / demo-school-leader …)"),
        ("公開ページ / transparency", f"{base}/transparency"),
        ("API (OpenAPI)", f"{base}/docs"),
        ("health", f"{base}/healthz  {base}/readyz"),
        *stand_ins,
    ]:
        console.print(f"  {label:<28} {url}")
    console.print("  Ctrl-C で終了 / Ctrl-C to stop")
    try:
        serve(host=host, port=port, workers=1)
    finally:
        for process in _children:
            process.terminate()


DEMO_SEED = 20261123
DEMO_TEST_PHONE = "U" + "7e57" * 8  # a fixed LINE user id: the simulator lists it as 市役所 テスト端末


def _first_sync(engine: Engine) -> None:
    """A share of the demo families consent; the first sync brings their children's records in."""
    from app.demo import first_sync, grant_demo_consents

    with session_scope(engine) as session:
        consenting = grant_demo_consents(session=session)
    console.print(f"同意したご家庭の児童生徒 / children with consent: {consenting}")
    runs = asyncio.run(first_sync(engine=engine, settings=get_settings()))
    fetched = sum(run.fetched for run in runs)
    stored = sum(run.inserted for run in runs)
    console.print(f"初回同期 / first sync: {len(runs)} runs, {fetched:,} records fetched, {stored:,} stored")


_children: list[subprocess.Popen[bytes]] = []
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _spawn(*args: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """A child process of our own interpreter, in the project root, with our environment."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        [sys.executable, *args], cwd=PROJECT_ROOT, stdout=stdout, env=os.environ.copy()
    )


def _start_stand_ins(host: str) -> list[tuple[str, str]]:
    """Start the upstream stand-ins (mocks/) in their own process; list their URLs.

    They run as a separate program so that nothing of the product imports them.
    """
    process = _spawn("-m", "mocks", "--host", host, "--print-urls", stdout=subprocess.PIPE)
    _children.append(process)
    urls: list[tuple[str, str]] = []
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode().strip()
        if line == "ready" or time.monotonic() > deadline:
            break
        label, _, url = line.partition("\t")
        urls.append((label, url))
    return urls


@openapi_cli.command("export")
def openapi_export(
    out: Annotated[Path, typer.Option(help="出力先 / output file")] = OPENAPI_PATH,
) -> None:
    """OpenAPI 文書を書き出す / Write the app's OpenAPI document to openapi/openapi.json."""
    from app.openapi import render_openapi

    out.write_text(render_openapi(), encoding="utf-8")
    console.print(f"wrote {out}")


def main() -> None:
    """Entry point: every known failure is one clear line and a non-zero exit, no traceback."""
    try:
        cli()
    except AppError as exc:
        console.print(f"[red]tsunagu: {exc.message}[/red]")
        sys.exit(1)
    except SQLAlchemyError as exc:
        first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        settings = get_settings()
        console.print(f"[red]tsunagu: database error ({_redact(settings.database_url)}): {first_line}[/red]")
        sys.exit(1)
    except ValidationError as exc:  # settings that fail validation, e.g. a default secret
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        console.print(f"[red]tsunagu: invalid settings: {problems}[/red]")
        sys.exit(1)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable TSUNAGU_DATABASE_URL>"


if __name__ == "__main__":
    main()
