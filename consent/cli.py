"""`tsunagu clients …` and `tsunagu keys …`: what an administrator does for the consent server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.core.db import session_scope
from consent import clients, keys
from consent.scopes import Purpose, Scope

console = Console(stderr=True)
out = Console()
clients_cli = typer.Typer(help="OAuth クライアント / Registered OAuth clients.", no_args_is_help=True)
keys_cli = typer.Typer(help="署名鍵 / Signing keys for tokens and receipts.", no_args_is_help=True)


@clients_cli.command("add")
def clients_add(
    client_id: Annotated[str, typer.Argument(help="クライアントID / client id")],
    name: Annotated[str, typer.Option(help="名称 / display name")],
    organisation: Annotated[str, typer.Option(help="組織 / organisation shown to families")],
    redirect_uri: Annotated[list[str], typer.Option(help="リダイレクトURI (完全一致) / exact redirect URI")],
    scope: Annotated[list[Scope] | None, typer.Option(help="許可する項目 / allowed data scope")] = None,
    purpose: Annotated[list[Purpose] | None, typer.Option(help="許可する目的 / allowed purpose")] = None,
    require_par: Annotated[bool, typer.Option(help="PAR を必須にする / require pushed requests")] = False,
) -> None:
    """クライアントを登録する / Register a client; its secret is printed once."""
    with session_scope() as session:
        client, secret = clients.add_client(
            session=session,
            client_id=client_id,
            name=name,
            organisation=organisation,
            redirect_uris=redirect_uri,
            scopes=scope or list(Scope),
            purposes=purpose or list(Purpose),
            require_par=require_par,
        )
    out.print(f"client_id\t{client.client_id}")
    out.print(f"client_secret\t{secret}")
    console.print("この秘密は二度と表示されません / the secret is not shown again")


@clients_cli.command("list")
def clients_list() -> None:
    """クライアント一覧 / List clients (never their secrets)."""
    with session_scope() as session:
        for client in clients.list_clients(session=session):
            state = "active" if client.is_active else "disabled"
            par = " par-required" if client.require_par else ""
            out.print(
                f"{client.client_id}\t{state}{par}\t{client.organisation}\t{' '.join(client.redirect_uris)}"
            )


@clients_cli.command("disable")
def clients_disable(client_id: Annotated[str, typer.Argument(help="クライアントID / client id")]) -> None:
    """クライアントを無効にする / Disable a client at once."""
    with session_scope() as session:
        clients.disable_client(session=session, client_id=client_id)
    console.print(f"disabled {client_id}")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """署名鍵を更新する / Start signing with a new key; old public keys stay published."""
    with session_scope() as session:
        key = keys.rotate(session=session)
    console.print(f"signing with {key.kid}")
