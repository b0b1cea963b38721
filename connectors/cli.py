"""`tsunagu sync`: queue a sync of each school and source, run it with a progress bar."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.core.config import get_settings
from app.core.db import get_engine, session_scope
from app.sources.models import Source
from connectors import service
from connectors.models import SyncRun, SyncStatus

console = Console(stderr=True)
sync_cli = typer.Typer(
    help="上流システムとの同期 / Sync consented records from the school systems.",
    invoke_without_command=True,
)


@sync_cli.callback()
def sync(
    source: Annotated[
        list[Source] | None,
        typer.Option("--source", help="同期する上流 / upstream to sync (repeatable; default: all)"),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            help="この時刻以降の変更を読み直す / re-read changes since (ISO 8601, default: cursors)"
        ),
    ] = None,
    school: Annotated[
        list[str] | None, typer.Option("--school", help="学校コード / school code (repeatable; default: all)")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            help="並行ワーカー数 / workers side by side (PostgreSQL; default: TSUNAGU_SYNC_WORKERS)",
        ),
    ] = None,
) -> None:
    """同意された記録だけを取り込む / Fetch what families consented to, incrementally."""
    sources = [s for s in (source or service.SOURCES) if s in service.SOURCES]
    engine = get_engine()
    with session_scope(engine) as session:
        queued = service.enqueue(
            session=session, sources=sources, schools=school, since=since, requested_by="cli"
        )
    runs = asyncio.run(_work(len(queued), workers))
    _summary(runs)
    if any(run.status is SyncStatus.failed for run in runs):
        raise typer.Exit(1)


async def _work(total: int, workers: int | None) -> list[SyncRun]:
    settings = get_settings()
    engine = get_engine()
    with Progress(
        TextColumn("[bold]同期 / sync"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[records]:,} records"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("sync", total=total, records=0)
        fetched = 0

        def done(run: SyncRun) -> None:
            nonlocal fetched
            fetched += run.fetched
            progress.update(task, advance=1, records=fetched)

        return await service.work_together(
            engine=engine, settings=settings, name="cli", workers=workers, on_done=done
        )


def _summary(runs: list[SyncRun]) -> None:
    table = Table("run", "source", "school", "status", "fetched", "ins", "upd", "same", "quar", "disc", "s")
    for run in runs:
        table.add_row(
            str(run.id),
            run.source.value,
            run.partition,
            run.status.value,
            *(
                f"{n:,}"
                for n in (
                    run.fetched,
                    run.inserted,
                    run.updated,
                    run.unchanged,
                    run.quarantined,
                    run.discarded,
                )
            ),
            f"{run.duration_seconds or 0:.1f}",
        )
    console.print(table)
    for run in runs:
        for error in run.errors:
            console.print(f"  [yellow]run {run.id} ({run.source.value} {run.partition}): {error}[/yellow]")
