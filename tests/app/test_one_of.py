"""app.core.db.one_of selects exactly the rows whose column is one of the ids, on each database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from app.core.db import one_of


def test_one_of_finds_exactly_the_ids_given(session: Session) -> None:
    connection = session.connection()
    numbers = sa.Table("one_of_numbers", sa.MetaData(), sa.Column("n", sa.Integer), prefixes=["TEMPORARY"])
    numbers.create(connection)
    connection.execute(numbers.insert(), [{"n": n} for n in range(12_000)])
    wanted = [*range(3, 12_000, 2), 20_000]  # more than one SQLite IN list; one id absent

    conditions = one_of(connection.dialect, numbers.c.n, wanted)
    found = [
        n
        for condition in conditions
        for n in connection.execute(sa.select(numbers.c.n).where(condition)).scalars()
    ]

    assert sorted(found) == wanted[:-1]
    assert len(conditions) == (1 if connection.dialect.name == "postgresql" else 2)
    assert one_of(connection.dialect, numbers.c.n, []) == []
