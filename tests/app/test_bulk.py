"""app.core.bulk writes exactly what the ORM would, on each database, and refuses what it cannot write."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from app.core import bulk
from app.sessions.models import PrincipalKind, WebSession
from rules.models import RunKind, ScreeningRun

INSTANT = datetime(2025, 6, 2, 23, 45, 6, 789000, tzinfo=UTC)


def test_bulk_rows_read_back_like_orm_rows(session: Session) -> None:
    session.add(
        WebSession(
            token_hash="orm",
            principal_kind=PrincipalKind.staff,
            principal_id=1,
            csrf_token="c",
            created_at=INSTANT,
            last_seen_at=INSTANT,
        )
    )
    session.flush()
    count = bulk.insert(
        session.connection(),
        WebSession,
        {
            "token_hash": np.array(["bulk-1", "bulk-2"], dtype=object),
            "principal_kind": np.array(["guardian", "student"], dtype=object),
            "principal_id": np.array([2, 3]),
            "csrf_token": "c",  # one value for every row
            "created_at": np.array([INSTANT.replace(tzinfo=None)] * 2, dtype="datetime64[us]"),
            "ended_at": np.array([INSTANT.replace(tzinfo=None)] * 2, dtype="datetime64[us]"),
        },
        missing={"ended_at": np.array([False, True])},
    )
    assert count == 2
    stored = {row.token_hash: row for row in session.exec(select(WebSession))}
    for token in ("bulk-1", "bulk-2"):
        assert stored[token].created_at.replace(tzinfo=None) == INSTANT.replace(tzinfo=None)
        assert stored[token].last_seen_at is not None  # the model's default filled the column left out
    assert stored["bulk-1"].principal_kind is PrincipalKind.guardian
    assert stored["bulk-1"].ended_at is not None and stored["bulk-2"].ended_at is None
    # On SQLite the stored text must be SQLAlchemy's own format, or comparisons in SQL go wrong.
    text = (
        session.execute(sa.text("SELECT CAST(created_at AS TEXT) FROM web_session ORDER BY token_hash"))
        .scalars()
        .all()
    )
    assert len(set(text)) == 1
    later = session.exec(select(WebSession).where(WebSession.created_at >= INSTANT)).all()
    assert len(later) == 3


def test_bulk_refuses_what_it_cannot_write(session: Session) -> None:
    connection = session.connection()
    base = {"token_hash": np.array(["x"]), "principal_id": np.array([1]), "csrf_token": "c"}
    with pytest.raises(ValueError, match="values outside"):
        bulk.insert(connection, WebSession, {**base, "principal_kind": np.array(["robot"])})
    with pytest.raises(ValueError, match="no column"):
        bulk.insert(connection, WebSession, {**base, "principal_kind": np.array(["staff"]), "colour": "red"})
    with pytest.raises(ValueError, match="required"):
        bulk.insert(connection, WebSession, base)
    assert (
        bulk.insert(
            connection,
            WebSession,
            {k: np.array([]) for k in ("token_hash", "principal_id")}
            | {"csrf_token": "c", "principal_kind": np.array([])},
        )
        == 0
    )


def test_text_with_tabs_line_breaks_and_backslashes_reads_back_as_written(session: Session) -> None:
    # PostgreSQL's COPY text format gives these characters a meaning; they must arrive as data.
    tokens = ["tab\there", "line\nbreak\r", "back\\slash", "\\N"]
    bulk.insert(
        session.connection(),
        WebSession,
        {
            "token_hash": np.array(tokens, dtype=object),
            "principal_kind": np.array(["guardian"] * 4, dtype=object),
            "principal_id": np.arange(4),
            "csrf_token": "tab\tline\nback\\",
        },
    )
    stored = session.exec(select(WebSession).order_by(WebSession.principal_id)).all()  # type: ignore[arg-type]
    assert [row.token_hash for row in stored] == tokens
    assert {row.csrf_token for row in stored} == {"tab\tline\nback\\"}


def test_copy_text_of_repeated_instants_is_each_instant() -> None:
    tokyo = INSTANT.astimezone(ZoneInfo("Asia/Tokyo"))
    day = INSTANT.date()
    texts = bulk._copy_texts([INSTANT, tokyo, None, day, True, INSTANT], 6)
    assert [datetime.fromisoformat(texts[i]) for i in (0, 1, 5)] == [INSTANT] * 3
    assert texts[2:5] == ["\\N", day.isoformat(), "t"]


def test_json_with_tabs_line_breaks_backslashes_and_quotes_reads_back_as_written(session: Session) -> None:
    """PostgreSQL's COPY of JSON text doubles the JSON's own backslashes (its escapes), and
    nothing else: JSON text has no raw tab or line break."""
    summary = {"reason": 'tab\there "quoted"\nline\\N back\\slash', "値": ["雨", 1.5, None, True]}
    table: sa.Table = ScreeningRun.__table__  # type: ignore[attr-defined]
    columns: dict[str, object] = {
        "kind": RunKind.full.value,
        "status": "succeeded",
        "as_of": date(2026, 1, 29),
        "catalog_version": "v1",
        "started_at": INSTANT,
        "children_screened": 0,
        "alerts_opened": 0,
        "alerts_updated": 0,
        "alerts_cleared": 0,
        "signals_written": 0,
        "summary": [summary, {"plain": "text"}],
    }
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    bulk.copy(connection, table, columns, 2)
    stored = session.exec(select(ScreeningRun).order_by(ScreeningRun.id)).all()  # type: ignore[arg-type]
    assert [run.summary for run in stored] == [summary, {"plain": "text"}]
