"""Bulk insert of rows given column by column: the fastest path each database offers (and, on
SQLite, any one statement executed for many rows by the driver: `execute_many`).

SQLite: one `executemany` on the raw DBAPI connection inside the caller's transaction (the
statement is compiled once and every row is a bind, no ORM objects). PostgreSQL: `COPY … FROM
STDIN` through psycopg, which streams rows without a round trip per row, its text made column
by column (`copy`, which the audit log's appends use too).

Columns come as numpy arrays (or lists) of one length, or as one scalar for every row. The
table's SQLModel class names the columns, so no caller repeats a column list by hand:
- Date columns take `datetime64[D]`; DateTime columns take `datetime64[us]` in UTC;
- Enum columns take the members' string values;
- `missing` maps a column to a boolean mask of rows whose value is NULL (blank is not zero);
- a column left out gets the model's default, or NULL when the model has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy import Connection
from sqlmodel import SQLModel

ColumnValues = NDArray[Any] | Sequence[Any]


def insert(
    connection: Connection,
    table: type[SQLModel],
    columns: Mapping[str, ColumnValues | object],
    *,
    missing: Mapping[str, NDArray[np.bool_]] | None = None,
) -> int:
    """Insert the rows inside the connection's current transaction; return how many."""
    sa_table: sa.Table = table.__table__  # type: ignore[attr-defined]
    unknown = set(columns) - set(sa_table.c.keys())
    if unknown:
        raise ValueError(f"{sa_table.name} has no column {sorted(unknown)}")
    given = {**_defaults(table, sa_table, columns), **columns}
    lengths = {len(v) for v in given.values() if isinstance(v, np.ndarray | list | tuple)}
    if len(lengths) != 1:
        raise ValueError(f"{sa_table.name}: columns differ in length or none is an array: {lengths}")
    (count,) = lengths
    if count == 0:
        return 0
    names = list(given)
    dialect = connection.dialect
    values = [_db_values(sa_table.c[name], given[name], (missing or {}).get(name), dialect) for name in names]
    if dialect.name == "postgresql":
        copy(connection, sa_table, dict(zip(names, values, strict=True)), count)
        return count
    rows: Iterable[tuple[Any, ...]] = zip(
        *(v if isinstance(v, list) else repeat(v, count) for v in values), strict=False
    )
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa_table)
    column_list = ", ".join(preparer.quote(name) for name in names)
    placeholders = ", ".join("?" for _ in names)
    statement = f"INSERT INTO {target} ({column_list}) VALUES ({placeholders})"  # noqa: S608 - names from the model
    _driver_executemany(connection, statement, rows)
    return count


def copy(connection: Connection, table: sa.Table, columns: Mapping[str, object], count: int) -> None:
    """PostgreSQL: COPY COUNT rows into TABLE, each column a list of values as the driver takes
    them (or one value for every row), in the caller's transaction."""
    preparer = connection.dialect.identifier_preparer
    column_list = ", ".join(preparer.quote(name) for name in columns)
    statement = f"COPY {preparer.format_table(table)} ({column_list}) FROM STDIN"
    texts = [_copy_texts(values, count) for values in columns.values()]
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as stream:  # type: ignore[union-attr]
        for start in range(0, count, _COPY_ROWS):
            chunk = [column[start : start + _COPY_ROWS] for column in texts]
            stream.write("\n".join(map("\t".join, zip(*chunk, strict=True))) + "\n")


def execute_many(
    connection: Connection,
    statement: sa.Insert | sa.Update,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    same: Mapping[str, Any] | None = None,
) -> None:
    """SQLite: STATEMENT (its values bound by name) executed by the driver for every one of
    ROWS, with SAME bound alike for every row; each value made as its column of TABLE makes it
    (`bind_processor`), once for SAME. Through SQLAlchemy, building each row's parameters took
    twice as long as SQLite took to write the rows (a screening run's updates and its audit
    entries)."""
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    order = compiled.positiontup or ()
    processors = {name: table.c[name].type.bind_processor(dialect) for name in order if name in table.c}

    def made(name: str, value: Any) -> Any:
        process = processors.get(name)  # none for a name that is not a column (an update's id)
        return value if process is None or value is None else process(value)

    fixed = {name: made(name, value) for name, value in (same or {}).items()}
    parameters = [
        tuple(fixed[name] if name in fixed else made(name, row[name]) for name in order) for row in rows
    ]
    _driver_executemany(connection, str(compiled), parameters)


def _driver_executemany(connection: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """SQLite: STATEMENT for every one of ROWS by the driver itself, in the connection's transaction."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, rows)
    finally:
        cursor.close()


def insert_statement(table: sa.Table, names: Iterable[str]) -> sa.Insert:
    """An INSERT of the columns NAMES of TABLE, each bound by its name (for `execute_many`)."""
    return sa.insert(table).values({name: sa.bindparam(name) for name in names})


_COPY_ROWS = 50_000  # rows per write to the COPY stream: bounded memory, few calls
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_texts(values: object, count: int) -> list[str]:
    """One column in COPY's text format (NULL is \\N; backslash, tab and line breaks escaped).

    psycopg's write_row formats row by row in Python, most of a seed's time; here each column
    is turned into text at once and the rows are joined by str.join.
    """
    if not isinstance(values, list):
        return [_copy_text(values)] * count
    kinds = set(map(type, values))
    if kinds <= {int, float, type(None)}:
        return ["\\N" if v is None else str(v) for v in values]
    if kinds <= {str, type(None)}:  # dates, instants, enums, names: escaped only if they need it
        nulls = type(None) in kinds
        joined = "".join(v for v in values if v is not None) if nulls else "".join(values)
        if any(special in joined for special in "\\\t\n\r"):
            return ["\\N" if v is None else v.translate(_COPY_ESCAPES) for v in values]
        return ["\\N" if v is None else v for v in values] if nulls else values
    if kinds <= {datetime, date, bool, type(None)}:
        # Each distinct value made text once: a screening run's 250,000 audit entries share one
        # instant. (Equal instants in two zones become one text: every instant column is
        # timestamptz, which stores the instant, not the zone.)
        texts = {value: _copy_text(value) for value in set(values)}
        return [texts[v] for v in values]
    return [_copy_text(v) for v in values]


def _copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        # orjson: the stdlib encoder was most of the COPY of 14,000 alerts' and signals' facts.
        # JSON text has no raw tab or line break (they are escaped inside strings): only its own
        # backslashes need doubling, which a plain replace does faster than translate.
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return text.replace("\\", "\\\\") if "\\" in text else text
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _defaults(table: type[SQLModel], sa_table: sa.Table, given: Mapping[str, object]) -> dict[str, object]:
    """The model's default for each column the caller left out (one value for every row)."""
    defaults: dict[str, object] = {}
    for name, field in table.model_fields.items():
        if name in given or name not in sa_table.c:
            continue
        if field.is_required():
            raise ValueError(f"{sa_table.name}.{name} is required")
        default = field.get_default(call_default_factory=True)
        if default is not None:
            defaults[name] = default
    return defaults


def _db_values(
    column: sa.Column[Any], values: object, missing: NDArray[np.bool_] | None, dialect: Any
) -> Any:
    """A column's values as the DBAPI driver takes them: a list, or one scalar for every row."""
    if not isinstance(values, np.ndarray | list | tuple):
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        return processor(values) if processor is not None and values is not None else values
    array = np.asarray(values)
    column_type = column.type
    out: list[Any]
    if isinstance(column_type, sa.DateTime):
        out = _timestamps(array, postgresql=dialect.name == "postgresql")
    elif isinstance(column_type, sa.Date):
        out = _dates(array)
    elif isinstance(column_type, sa.Enum):
        out = array.tolist()
        allowed = set(column_type.enums)
        if not set(out) - {None} <= allowed:
            raise ValueError(f"{column.table.name}.{column.name}: values outside {sorted(allowed)}")
    elif isinstance(column_type, sa.Boolean):
        out = array.astype(bool).tolist()
    elif isinstance(column_type, sa.Integer):
        out = array.astype(np.int64).tolist()
    else:
        out = array.tolist()
    if missing is not None:
        for index in np.flatnonzero(missing).tolist():
            out[index] = None
    return out


def _dates(array: NDArray[Any]) -> list[str | None]:
    """Dates as ISO text. A school year spans a few hundred distinct days, so each day's text is
    made once and shared by every row that has it (much cheaper than formatting each row)."""
    days = array.astype("datetime64[D]").astype(np.int64)
    valid = ~np.isnat(array.astype("datetime64[D]"))
    if not valid.any():
        return [None] * len(days)  # every entry is a masked NULL
    low, high = int(days[valid].min()), int(days[valid].max())
    days = np.where(valid, days, low) - low
    text = np.datetime_as_string(np.arange(low, high + 1).astype("datetime64[D]"), unit="D")
    shared = np.array(text.tolist(), dtype=object)
    result: list[str | None] = shared[days].tolist()
    return result


def _timestamps(array: NDArray[Any], *, postgresql: bool) -> list[str | None]:
    """UTC instants as text: SQLAlchemy's SQLite storage format, or ISO 8601 with +00:00 for COPY."""
    text = np.datetime_as_string(array.astype("datetime64[us]"), unit="us")  # 2025-04-07T08:30:00.000000
    if postgresql:
        text = np.char.add(text, "+00:00")
    else:
        raw = text.astype("S26")
        raw.view(np.uint8).reshape(-1, 26)[:, 10] = ord(" ")  # SQLAlchemy's SQLite format has a space
        text = raw.astype("U26")
    result: list[str | None] = text.tolist()
    return result
