"""The audit log: appends chain, the database refuses edits, and verify finds tampering in any chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.audit import service as audit
from app.audit.actors import Actor, ActorKind
from app.audit.models import AuditEntry, Outcome
from app.cli import cli
from app.core.config import get_settings
from app.core.db import get_engine, make_engine
from app.core.migrate import upgrade

STAFF = Actor(kind=ActorKind.staff, ref="staff:t.tanaka", organisation="加賀市立第一中学校", role="担任")


def _entry(student_id: int, action: str = audit.USE) -> audit.Entry:
    return audit.Entry(
        actor=STAFF,
        action=action,
        outcome=Outcome.allowed,
        student_id=student_id,
        scope="school.attendance",
        purpose="early_support",
        grant_id=7,
    )


def test_a_transactions_entries_form_one_run_of_one_chain(session: Session) -> None:
    audit.append(session=session, entry=_entry(1))
    audit.append_many(session=session, entries=[_entry(2), _entry(3)])
    written = audit.flush(session=session)
    (chain,) = {chain for chain, _seq in written}
    seqs = [seq for _chain, seq in written]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    entries = session.exec(
        select(AuditEntry)
        .where(AuditEntry.chain == chain, AuditEntry.seq >= seqs[0])
        .order_by(col(AuditEntry.seq))
    ).all()
    assert [e.student_id for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    assert audit.verify(session=session).ok


def test_entries_are_written_at_commit_and_dropped_on_rollback(session: Session) -> None:
    def count() -> int:
        return session.exec(select(sa.func.count()).select_from(AuditEntry)).one()

    before = count()
    audit.append(session=session, entry=_entry(1))
    assert session.execute(sa.select(sa.func.count()).select_from(AuditEntry)).scalar() == before
    session.commit()  # a savepoint in this fixture: the pending entry is written first
    assert count() == before + 1
    audit.append(session=session, entry=_entry(2))
    session.rollback()
    session.commit()
    assert count() == before + 1


def test_a_session_closed_without_commit_leaves_nothing_for_its_next_use(engine: Engine) -> None:
    reused = Session(engine)
    audit.append(session=reused, entry=_entry(1))
    reused.close()
    assert audit.flush(session=reused) == []
    reused.close()


def test_concurrent_transactions_use_several_chains(session: Session) -> None:
    chains = set()
    for n in range(40):
        audit.append(session=session, entry=_entry(n))
        chains |= {chain for chain, _seq in audit.flush(session=session)}
    assert len(chains) > 1
    assert audit.verify(session=session).ok


def test_uses_of_child_lists_only_allowed_uses_newest_first(session: Session) -> None:
    audit.append(session=session, entry=_entry(41))
    audit.append(session=session, entry=_entry(41, action="consent.revoked"))
    refused = audit.Entry(actor=STAFF, action=audit.USE, outcome=Outcome.refused, student_id=41)
    audit.append(session=session, entry=refused)
    audit.append(
        session=session,
        entry=audit.Entry(
            actor=STAFF,
            action=audit.USE,
            outcome=Outcome.allowed,
            student_id=41,
            scope="school.mood",
        ),
    )
    uses = audit.uses_of_child(session=session, student_id=41)
    assert [u.scope for u in uses] == ["school.mood", "school.attendance"]


@pytest.mark.parametrize("statement", ["UPDATE audit_entry SET actor_ref = 'x'", "DELETE FROM audit_entry"])
def test_database_refuses_update_and_delete(session: Session, statement: str) -> None:
    audit.append(session=session, entry=_entry(1))
    audit.flush(session=session)
    with pytest.raises(DatabaseError, match="append-only"), session.begin_nested():
        session.execute(sa.text(statement))


@pytest.fixture
def own_database(empty_database_url: str) -> Iterator[Engine]:
    """A database of its own: tampering tests have to bypass the append-only triggers. Five
    entries in one transaction (one chain), then others in other transactions."""
    engine = make_engine(empty_database_url)
    upgrade(engine)
    with Session(engine) as session:
        audit.append_many(session=session, entries=[_entry(n) for n in range(1, 6)])
        session.commit()
        for n in range(6, 30):
            audit.append(session=session, entry=_entry(n))
            session.commit()
    yield engine
    engine.dispose()


def _tamper(engine: Engine, statement: str, **params: int) -> None:
    """What someone with direct database access could do despite the triggers."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(sa.text("DROP TRIGGER IF EXISTS audit_entry_no_update"))
            connection.execute(sa.text("DROP TRIGGER IF EXISTS audit_entry_no_delete"))
        connection.execute(sa.text(statement), params)


def _verify(engine: Engine) -> audit.Verification:
    with Session(engine) as session:
        return audit.verify(session=session)


def _chain_of_first_five(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.text("SELECT chain FROM audit_entry WHERE student_id = 1")).scalar_one()
        )


@pytest.mark.parametrize(
    ("statement", "seq", "problem"),
    [
        ("UPDATE audit_entry SET scope = 'myna.benefits' WHERE chain = :chain AND seq = 3", 3, "changed"),
        ("UPDATE audit_entry SET at = '2020-01-01 00:00:00' WHERE chain = :chain AND seq = 2", 2, "changed"),
        ("DELETE FROM audit_entry WHERE chain = :chain AND seq = 2", 2, "removed"),
        # The newest entries of the chain: only its head still counts them.
        ("DELETE FROM audit_entry WHERE chain = :chain AND seq >= 5", 5, "removed"),
        # Renumbering after a deletion hides the gap; the chain still shows the break.
        (
            "DELETE FROM audit_entry WHERE chain = :chain AND seq = 2; "
            "UPDATE audit_entry SET seq = seq - 1 WHERE chain = :chain AND seq > 2",
            2,
            "reordered",
        ),
    ],
)
def test_verify_reports_first_tampered_entry(
    own_database: Engine, statement: str, seq: int, problem: str
) -> None:
    assert _verify(own_database).ok
    chain = _chain_of_first_five(own_database)
    for part in statement.split("; "):
        _tamper(own_database, part, chain=chain)
    result = _verify(own_database)
    assert not result.ok
    assert [(p.chain, p.seq, p.problem) for p in result.problems] == [(chain, seq, problem)]


def test_verify_reports_swapped_entries_as_reordered(own_database: Engine) -> None:
    # Swap two whole entries (content and hashes) between positions 2 and 3 of a chain.
    chain = _chain_of_first_five(own_database)
    for old, new in [(2, 100), (3, 2), (100, 3)]:
        _tamper(
            own_database,
            "UPDATE audit_entry SET seq = :new WHERE chain = :chain AND seq = :old",
            chain=chain,
            old=old,
            new=new,
        )
    result = _verify(own_database)
    assert [(p.chain, p.seq, p.problem) for p in result.problems] == [(chain, 2, "reordered")]


def test_verify_reports_an_entry_moved_to_another_chain(own_database: Engine) -> None:
    chain = _chain_of_first_five(own_database)
    elsewhere = chain % 16 + 1
    with own_database.connect() as connection:
        end = connection.execute(
            sa.text("SELECT count(*) FROM audit_entry WHERE chain = :chain"), {"chain": elsewhere}
        ).scalar_one()
    _tamper(
        own_database,
        "UPDATE audit_entry SET chain = :elsewhere, seq = :end WHERE chain = :chain AND seq = 5",
        elsewhere=elsewhere,
        end=end + 1,
        chain=chain,
    )
    result = _verify(own_database)
    assert sorted((p.chain, p.seq, p.problem) for p in result.problems) == sorted(
        [(chain, 5, "removed"), (elsewhere, end + 1, "reordered")]
    )


def test_cli_verify_exits_non_zero_on_tampering(
    own_database: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSUNAGU_DATABASE_URL", own_database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        runner = CliRunner()
        intact = runner.invoke(cli, ["audit", "verify"])
        assert intact.exit_code == 0, intact.output
        chain = _chain_of_first_five(own_database)
        _tamper(
            own_database,
            "UPDATE audit_entry SET actor_ref = 'x' WHERE chain = :chain AND seq = 4",
            chain=chain,
        )
        tampered = runner.invoke(cli, ["audit", "verify"])
        assert tampered.exit_code == 1
        assert f"chain {chain} entry 4 changed" in tampered.output
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_bulk_append_keeps_entries_and_the_chain(session: Session) -> None:
    at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    entries = [
        audit.Entry(actor=STAFF, action=audit.USE, outcome=Outcome.allowed, student_id=n, at=at)
        for n in range(5_000)
    ]
    audit.append_many(session=session, entries=entries)
    seqs = [seq for _chain, seq in audit.flush(session=session)]
    assert seqs == list(range(seqs[0], seqs[0] + 5_000))
    assert audit.verify(session=session).ok
