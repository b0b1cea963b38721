"""The CLI explains itself and fails with one clear line, never a traceback wall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import get_settings
from app.core.db import get_engine

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


class _NoProcess:
    def terminate(self) -> None:
        pass


def test_the_demo_writes_its_ground_truth_for_the_backtest(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` seeds the demo; `tsunagu screen backtest --labels var/labels.json` (README)
    then has the labels to measure against, as after `tsunagu seed`."""
    from app import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", empty_database_url)
    # What run() sets for the stand-ins (with setdefault), set here so that it is undone after.
    monkeypatch.setenv("TSUNAGU_DEMO_STUDENTS", "600")
    monkeypatch.setenv("TSUNAGU_DEMO_SEED", str(cli.DEMO_SEED))
    monkeypatch.setenv("TSUNAGU_NOTIFY_TEST_RECIPIENT", cli.DEMO_TEST_PHONE)
    get_settings.cache_clear()
    get_engine.cache_clear()
    # The stand-ins, the first sync through them, the worker and the server are not this test's.
    monkeypatch.setattr(cli, "_start_stand_ins", lambda host: [])
    monkeypatch.setattr(cli, "_first_sync", lambda engine: None)
    monkeypatch.setattr(cli, "_spawn", lambda *args, **kwargs: _NoProcess())
    monkeypatch.setattr(cli, "_children", [])
    monkeypatch.setattr(cli, "serve", lambda **kwargs: None)
    try:
        cli.run(host="127.0.0.1", port=8000, students=600)
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()

    written = json.loads((tmp_path / "var" / "labels.json").read_text(encoding="utf-8"))
    assert written["labels"] and {"student_id", "category"} <= written["labels"][0].keys()
