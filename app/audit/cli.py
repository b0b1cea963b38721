"""`tsunagu audit …`: operators check that the audit log has not been tampered with."""

from __future__ import annotations

import typer
from rich.console import Console

from app.audit.service import verify
from app.core.db import session_scope

console = Console(stderr=True)
audit_cli = typer.Typer(help="監査ログ / The audit log.", no_args_is_help=True)


@audit_cli.command("verify")
def audit_verify() -> None:
    """監査ログの改ざんを検査する / Verify the hash chain; exit 1 on the first tampered entry."""
    with session_scope() as session:
        result = verify(session=session)
    if not result.ok:
        console.print(f"[red]{result.describe()}[/red]")
        raise typer.Exit(1)
    console.print(result.describe())
