"""`tsunagu staff …`: add, disable and list staff accounts; seed the demo's accounts."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.core.db import session_scope
from app.roster.models import StaffRole
from app.staff import accounts
from app.staff.access import MATRIX

console = Console(stderr=True)
staff_cli = typer.Typer(help="職員アカウント / Staff accounts.", no_args_is_help=True)


@staff_cli.command("add")
def add(
    login: Annotated[str, typer.Argument(help="ログインID / login")],
    role: Annotated[StaffRole, typer.Option(help="役割 / role")],
    name: Annotated[str, typer.Option(help="表示名 / display name")],
    school: Annotated[int | None, typer.Option(help="学校ID / school id (school roles)")] = None,
    homeroom: Annotated[int | None, typer.Option(help="学級ID / homeroom id (担任)")] = None,
    municipality: Annotated[int | None, typer.Option(help="自治体ID / municipality id")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="パスワードを標準入力から読む / read the password from stdin"),
    ] = False,
) -> None:
    """職員アカウントを作る / Create a staff account; the password is asked, never an argument."""
    password = input() if password_stdin else getpass.getpass("password: ")
    with session_scope() as session:
        staff = accounts.add(
            session=session,
            login=login,
            display_name=name,
            role=role,
            password=password,
            municipality_id=municipality,
            school_id=school,
            homeroom_id=homeroom,
        )
        console.print(f"added {staff.login} ({MATRIX[role].wording.ja}) id={staff.id}")


@staff_cli.command("disable")
def disable(login: Annotated[str, typer.Argument(help="ログインID / login")]) -> None:
    """アカウントを止め、すべての端末からサインアウトさせる / Disable and sign out everywhere."""
    with session_scope() as session:
        ended = accounts.disable(session=session, login=login)
    console.print(f"disabled {login}; ended {ended} session(s)")


@staff_cli.command("list")
def listing() -> None:
    """アカウントの一覧 / List staff accounts (no password hashes)."""
    table = Table("login", "role", "name", "school", "homeroom", "active")
    with session_scope() as session:
        for staff in accounts.listing(session=session):
            table.add_row(
                staff.login,
                staff.role.value,
                staff.display_name,
                str(staff.school_id or ""),
                str(staff.homeroom_id or ""),
                "yes" if staff.is_active else "no",
            )
    Console().print(table)


@staff_cli.command("seed-demo")
def seed_demo() -> None:
    """デモ用アカウントを作る（デモモードのみ） / Create one account per role (demo mode only)."""
    with session_scope() as session:
        for account in accounts.seed_demo_accounts(session=session):
            console.print(f"{account.login}\t{account.password}\t{MATRIX[account.role].wording.ja}")
