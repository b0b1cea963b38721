"""`tsunagu seed`: seeds once, refuses a seeded database without --force, fails in one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.core.db import get_engine, make_engine
from app.core.migrate import upgrade

ROOT = Path(__file__).resolve().parents[3]


def tsunagu(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_seed_against_a_bad_database_url_is_one_clear_line() -> None:
    result = tsunagu("seed", "--students", "10", env={"TSUNAGU_DATABASE_URL": "mysql://x@localhost/db"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "tsunagu: unsupported database 'mysql': use sqlite:/// or postgresql+psycopg://"
    ]


def test_seed_against_an_unreachable_database_is_one_clear_line() -> None:
    url = "postgresql+psycopg://tsunagu:s3cret@127.0.0.1:1/none?connect_timeout=2"
    result = tsunagu("seed", "--students", "10", env={"TSUNAGU_DATABASE_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "database error" in result.stderr and "s3cret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_seed_writes_a_summary_and_labels_then_refuses_a_second_time(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"TSUNAGU_DATABASE_URL": empty_database_url}
    unmigrated = tsunagu("seed", "--students", "20", env=env)
    assert unmigrated.returncode == 1 and "tsunagu db upgrade" in unmigrated.stderr

    engine = make_engine(empty_database_url)
    upgrade(engine)
    engine.dispose()
    labels = tmp_path / "labels.json"
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        first = CliRunner().invoke(cli, ["seed", "--students", "20", "--labels", str(labels)])
        assert first.exit_code == 0, first.output
        summary = json.loads(first.stdout)
        assert summary["students"] == 20 and summary["rows"]["student"] == 20
        assert json.loads(labels.read_text(encoding="utf-8"))["students"] == 20
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()

    again = tsunagu("seed", "--students", "20", env=env)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
