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
    # More ids than SQLite takes bound parameters (32,766), one of them absent.
    wanted = [*range(3, 12_000, 2), *range(12_000, 50_000), 60_000]

    def found(ids: list[int]) -> list[int]:
        conditions = one_of(connection.dialect, numbers.c.n, ids)
        assert len(conditions) == 1  # the ids as one parameter, on either database
        return sorted(connection.execute(sa.select(numbers.c.n).where(conditions[0])).scalars())

    assert found(wanted) == [n for n in wanted if n < 12_000]
    assert one_of(connection.dialect, numbers.c.n, []) == []
