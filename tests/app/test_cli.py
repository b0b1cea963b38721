"""The CLI explains itself and fails with one clear line, never a traceback wall."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tsunagu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_is_bilingual() -> None:
    result = _tsunagu("--help")
    assert result.returncode == 0
    assert "本人同意" in result.stdout and "consent-driven" in result.stdout
    for command in ("run", "serve", "db", "seed", "openapi"):
        assert command in result.stdout


def test_unknown_database_scheme_is_one_clear_line() -> None:
    result = _tsunagu("db", "check", env={"TSUNAGU_DATABASE_URL": "mysql://x@localhost/db"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "unsupported database 'mysql'" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_unreachable_database_is_one_clear_line_without_password() -> None:
    url = "postgresql+psycopg://tsunagu:s3cret@127.0.0.1:1/none?connect_timeout=2"
    result = _tsunagu("db", "upgrade", env={"TSUNAGU_DATABASE_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "database error" in result.stderr
    assert "s3cret" not in result.stderr


def test_production_with_default_secret_refuses_to_start() -> None:
    result = _tsunagu("db", "check", env={"TSUNAGU_MODE": "production"})
    assert result.returncode == 1
    assert "production mode refuses default secrets" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_check_and_upgrade(empty_database_url: str) -> None:
    env = {"TSUNAGU_DATABASE_URL": empty_database_url}
    before = _tsunagu("db", "check", env=env)
    assert before.returncode == 1
    assert "tsunagu db upgrade" in before.stderr
    assert _tsunagu("db", "upgrade", env=env).returncode == 0
    after = _tsunagu("db", "check", env=env)
    assert after.returncode == 0, after.stderr
    assert _tsunagu("db", "downgrade", "base", env=env).returncode == 0
