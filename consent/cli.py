"""`tsunagu clients …` and `tsunagu keys …`: what an administrator does for the consent server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from app.core.db import session_scope
from consent import clients, keys, receipts
from consent.invitations import display, find_homeroom, issue, issue_for_homeroom
from consent.letters import render_letters
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
    jwks: Annotated[
        Path | None,
        typer.Option(help="公開鍵 (JWKS) のファイル: private_key_jwt で認証 / public keys: private_key_jwt"),
    ] = None,
) -> None:
    """クライアントを登録する / Register a client; its secret is printed once (none with --jwks)."""
    with session_scope() as session:
        secret: str | None = None
        if jwks is not None:
            client = clients.add_key_client(
                session=session,
                client_id=client_id,
                name=name,
                organisation=organisation,
                redirect_uris=redirect_uri,
                scopes=scope or list(Scope),
                purposes=purpose or list(Purpose),
                require_par=require_par,
                jwks=orjson.loads(jwks.read_bytes()),
            )
        else:
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
    if secret is None:
        out.print("token_endpoint_auth_method\tprivate_key_jwt")
        return
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


invitations_cli = typer.Typer(help="招待状 / Invitation letters for guardians.", no_args_is_help=True)


@invitations_cli.command("print")
def invitations_print(
    school: Annotated[str, typer.Option(help="学校コード / school code")],
    homeroom: Annotated[str, typer.Option(help="学級 / homeroom, e.g. 1年2組")],
    out: Annotated[Path, typer.Option(help="出力するPDF / the PDF to write")] = Path("var/invitations.pdf"),
    days: Annotated[int, typer.Option(min=1, max=90, help="有効日数 / days the codes stay valid")] = 30,
) -> None:
    """招待状を印刷用PDFにする / New codes for a homeroom as one A4 PDF (old codes stop working)."""
    with session_scope() as session:
        found_school, found_homeroom = find_homeroom(
            session=session, school_code=school, homeroom_name=homeroom
        )
        letters = issue_for_homeroom(
            session=session, school=found_school, homeroom=found_homeroom, valid_days=days
        )
        pdf = render_letters(letters)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pdf)
    console.print(f"wrote {len(letters)} letters to {out}")


receipt_cli = typer.Typer(help="同意の控え / Consent receipts.", no_args_is_help=True)


@receipt_cli.command("verify")
def receipt_verify(
    file: Annotated[Path, typer.Argument(help="控えのファイル (JWS) / the receipt file")],
    jwks: Annotated[
        Path | None,
        typer.Option(
            help="公開鍵 (JWKS) のファイル; 省略時はデータベース / a JWKS file; default: the database"
        ),
    ] = None,
) -> None:
    """同意の控えを検証する / Check a receipt's signature and print what was agreed (exit 1 if not)."""
    if jwks is not None:
        key_set = orjson.loads(jwks.read_bytes())
    else:
        with session_scope() as session:
            key_set = keys.jwks(session=session)
    try:
        terms = receipts.verify(file.read_text(encoding="utf-8"), jwks=key_set)
    except keys.SignatureInvalid as exc:
        console.print(f"[red]署名を確認できません / signature invalid: {exc}[/red]")
        raise typer.Exit(1) from exc
    out.print(orjson.dumps(terms, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    console.print("署名は有効です / signature valid")


@invitations_cli.command("student-code")
def invitations_student_code(
    student: Annotated[int, typer.Option(help="生徒の番号 (student.id) / the student's id")],
    days: Annotated[int, typer.Option(min=1, max=90, help="有効日数 / days the code stays valid")] = 14,
) -> None:
    """生徒用コードを発行する / A one-time code that opens the student's own page (/student/)."""
    with session_scope() as session:
        _row, code = issue(session=session, student_id=student, valid_days=days, for_student=True)
    out.print(display(code))
