"""`tsunagu staff add|list|disable|seed-demo` on a real database, and demo accounts only in demo mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import make_engine
from app.core.errors import AppError
from app.core.migrate import upgrade
from app.roster.models import StaffRole
from app.staff import accounts
from tests.staff.conftest import Roster

ROOT = Path(__file__).resolve().parents[2]


def _tsunagu(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "staff", *args],
        cwd=ROOT,
        env={**os.environ, "TSUNAGU_DATABASE_URL": url, "TSUNAGU_MODE": "demo"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_add_list_disable(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO municipality (code, name) VALUES ('999992', 'テスト市')"))
        municipality_id = connection.execute(text("SELECT id FROM municipality")).scalar_one()
    engine.dispose()
    args = ["add", "admin1", "--role", "administrator", "--name", "管理 太郎", "--password-stdin"]
    short = _tsunagu(empty_database_url, *args, "--municipality", str(municipality_id), stdin="short\n")
    assert short.returncode == 1 and "Traceback" not in short.stderr
    added = _tsunagu(
        empty_database_url, *args, "--municipality", str(municipality_id), stdin="a long enough secret\n"
    )
    assert added.returncode == 0, added.stderr
    listed = _tsunagu(empty_database_url, "list")
    assert "admin1" in listed.stdout and "administrator" in listed.stdout and "argon2" not in listed.stdout
    disabled = _tsunagu(empty_database_url, "disable", "admin1")
    assert disabled.returncode == 0 and "ended 0 session" in disabled.stderr
    assert _tsunagu(empty_database_url, "disable", "nobody").returncode == 1


def test_a_role_must_fit_its_place(session: Session, roster: Roster) -> None:
    with pytest.raises(AppError, match="needs an existing --homeroom"):
        accounts.add(
            session=session,
            login="t-no-homeroom",
            display_name="x",
            role=StaffRole.homeroom_teacher,
            password="long enough password",
            school_id=roster.school.id,
        )
    with pytest.raises(AppError, match="not bound to a school"):
        accounts.add(
            session=session,
            login="t-cw-school",
            display_name="x",
            role=StaffRole.case_worker,
            password="long enough password",
            school_id=roster.school.id,
        )


def test_demo_accounts_exist_only_in_demo_mode(
    session: Session, roster: Roster, monkeypatch: pytest.MonkeyPatch, settings_env: None
) -> None:
    monkeypatch.setenv("TSUNAGU_MODE", "dev")
    get_settings.cache_clear()
    assert accounts.demo_accounts() == []
    with pytest.raises(AppError, match="only in demo mode"):
        accounts.seed_demo_accounts(session=session)
    monkeypatch.setenv("TSUNAGU_MODE", "demo")
    get_settings.cache_clear()
    seeded = accounts.seed_demo_accounts(session=session)
    assert {account.role for account in seeded} == set(StaffRole)
    throttle = accounts.SignInThrottle(accounts.sign_in_throttle().storage)
    for account in seeded:
        staff = accounts.authenticate(
            session=session, login=account.login, password=account.password, address="t", throttle=throttle
        )
        assert staff.role is account.role
