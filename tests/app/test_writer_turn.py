"""SQLiteWriterTurn: one writer at a time, across threads and across processes."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import get_settings
from app.core.db import SQLiteWriterTurn


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "tsunagu.db"
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def _taken_by_another_process(database: Path) -> bool:
    # A file opened apart is what another worker process holds: flock locks conflict between
    # open files, in one process as across processes.
    with (database.parent / f"{database.name}-writers").open("a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(other, fcntl.LOCK_UN)
        return False


def test_a_turn_excludes_other_processes_until_it_ends(database: Path) -> None:
    turn = SQLiteWriterTurn()
    with turn():
        assert _taken_by_another_process(database)
    assert not _taken_by_another_process(database)


def test_a_turn_excludes_other_threads_until_it_ends(database: Path) -> None:
    turn = SQLiteWriterTurn()
    entered = threading.Event()

    def write() -> None:
        with turn():
            entered.set()

    with turn():
        waiting = threading.Thread(target=write)
        waiting.start()
        # However slow the machine, the other thread cannot enter while this turn lasts.
        assert not entered.wait(timeout=0.2)
    waiting.join(timeout=60)
    assert entered.is_set()
