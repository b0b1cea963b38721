"""`tsunagu notify …`: send what is due, see how notices are going, seed the demo directory."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.core.config import get_settings
from app.core.db import session_scope
from notify import campaigns, demo, outbox, personalised, sender

console = Console(stderr=True)
notify_cli = typer.Typer(
    help="LINE のお知らせ / LINE notices: the outbox and the directory.", no_args_is_help=True
)


@notify_cli.command("send")
def send(
    lease: Annotated[
        int, typer.Option(min=1, help="秒: 送信中の行を他の送信者に渡すまで / seconds a claim lasts")
    ] = 60,
    in_flight: Annotated[int, typer.Option(min=1, max=64, help="同時に送る要求数 / requests in flight")] = 32,
    follow: Annotated[
        bool, typer.Option("--follow", help="空になっても待ち続ける / keep waiting for more")
    ] = False,
) -> None:
    """送信待ちのお知らせを送る / Send what is due, within LINE's rate limits and monthly quota."""
    settings = get_settings()
    with session_scope() as session:
        pending = outbox.pending_recipients(session=session)
    columns = (TextColumn("送信 / sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("send", total=pending)
        report = asyncio.run(
            sender.drain(
                sessions=session_scope,
                settings=settings,
                lease=timedelta(seconds=lease),
                in_flight=in_flight,
                until_empty=not follow,
                progress=lambda sent: bar.advance(task, sent),
            )
        )
    print(json.dumps(asdict(report), ensure_ascii=False))
    if report.stopped == "quota":
        with session_scope() as session:
            left = outbox.pending_recipients(session=session)
        console.print(
            f"[red]今月の送信上限に達しました。{left} 人分が送信待ちのままです。"
            f" / Monthly quota reached: {left} recipients left queued.[/red]"
        )
        raise typer.Exit(2)
    if report.stopped == "quiet_hours":
        console.print("夜間（送信しない時間帯）のため止めました。 / Stopped: quiet hours.")


@notify_cli.command("status")
def status() -> None:
    """お知らせの送信状況 / How far each notice has gone: queued, sent, failed, cancelled, capped."""
    table = Table(
        "id", "お知らせ / notice", "状態 / state", "queued", "sent", "failed", "cancelled", "skipped"
    )
    with session_scope() as session:
        for campaign, counts in campaigns.overview(session=session):
            table.add_row(
                str(campaign.id),
                campaign.title,
                campaign.status.value,
                *(
                    str(getattr(counts, name))
                    for name in ("queued", "sent", "failed", "cancelled", "skipped")
                ),
            )
        personal = outbox.counts_by_campaign(session=session).get(None, outbox.Counts())
        table.add_row(
            "-",
            "個別のご案内 / personalised",
            "",
            *(str(getattr(personal, n)) for n in ("queued", "sent", "failed", "cancelled", "skipped")),
        )
        pending = outbox.pending_recipients(session=session)
    Console().print(table)
    console.print(f"送信待ち / waiting to be sent: {pending}")


@notify_cli.command("personalise")
def personalise() -> None:
    """個別のご案内を送信待ちにする / Queue personalised information for families who asked for it."""
    with session_scope() as session:
        planned = personalised.plan(session=session, settings=get_settings())
    print(json.dumps(asdict(planned), ensure_ascii=False))


@notify_cli.command("seed")
def seed() -> None:
    """デモ用の相談先を登録する / Fill an empty support-resource directory with demo entries."""
    with session_scope() as session:
        added = demo.seed_demo(session=session)
    console.print(f"相談先 / support resources added: {added}")
