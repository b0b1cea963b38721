"""`tsunagu screen` end to end on a fresh database: catalog check, a run, an idempotent re-run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.core.db import get_engine, make_engine
from app.core.migrate import upgrade
from consent.scopes import Scope
from rules import engine as screening
from rules.models import Alert, ReviewCapacity, ScreeningRun
from tests.factories import make_grant, make_student
from tests.rules.factories import make_school_with_calendar, mark, school_days


@pytest.fixture
def fresh_url(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    engine = make_engine(empty_database_url)
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield empty_database_url
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


def test_check_lists_the_catalog() -> None:
    result = CliRunner().invoke(cli, ["screen", "check"])
    assert result.exit_code == 0 and "rules" in result.stdout


def test_screen_opens_alerts_once(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    with Session(engine) as session:
        school = make_school_with_calendar(session)
        child = make_student(session, school=school, enrolled_on=date(2025, 4, 7))
        mark(session, child, [d for d in school_days() if date(2025, 9, 22) <= d <= date(2025, 10, 1)])
        make_grant(session, student=child, scopes=[Scope.school_attendance])
        school_code, school_id = school.code, school.id
        session.commit()
    runner = CliRunner()
    first = runner.invoke(cli, ["screen", "--as-of", "2025-10-01"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["opened"] == 1
    again = runner.invoke(cli, ["screen", "--as-of", "2025-10-01", "--incremental"])
    assert json.loads(again.stdout)["opened"] == 0
    capacity = runner.invoke(cli, ["screen", "capacity", school_code, "--weekly", "4"])
    assert capacity.exit_code == 0, capacity.output
    with Session(engine) as session:
        assert len(session.exec(select(Alert)).all()) == 1
        assert len(session.exec(select(ScreeningRun)).all()) == 2
        setting = session.get(ReviewCapacity, school_id)
        assert setting is not None and setting.weekly_capacity == 4
    engine.dispose()


def test_a_second_run_while_one_is_under_way_is_refused(fresh_url: str) -> None:
    """Two runs at once would compare the same alerts: the second is refused at once, with a
    readable reason and nothing written, and runs once the first has finished."""
    database = make_engine(fresh_url)
    runner = CliRunner()
    with screening.one_run_at_a_time(database):  # another run, under way
        refused = runner.invoke(cli, ["screen", "--as-of", "2025-10-01"])
    assert refused.exit_code == 1
    assert "別のスクリーニングが実行中です" in refused.stderr and "Traceback" not in refused.output
    with Session(database) as session:
        assert session.exec(select(ScreeningRun)).all() == []
    after = runner.invoke(cli, ["screen", "--as-of", "2025-10-01"])
    assert after.exit_code == 0, after.output
    database.dispose()
