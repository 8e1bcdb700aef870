"""Small DuckDB helpers shared by the packages (no package-specific knowledge here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb


def sql_str(text: str) -> str:
    """Quote text as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


#: The SQL types a temporary table may have, and the pyarrow type factory of each (pyarrow is
#: imported only for large tables).
_ARROW_TYPES = {
    "VARCHAR": "string",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "BOOLEAN": "bool_",
}
_TYPES = tuple(_ARROW_TYPES)


def temp_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Create (or replace) the temporary table ``name`` holding ``rows``.

    Each column travels as one DuckDB list parameter, unnested in the query: not one INSERT
    per row (``executemany`` costs about 50 µs a row), and no Arrow or pandas frame (whose
    first use imports pandas, a third of a second) unless there are many rows.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection.
    name : str
        Table name (a trusted identifier).
    columns : sequence of (name, SQL type)
        Column names and types; the types are VARCHAR, INTEGER, BIGINT, DOUBLE or BOOLEAN.
    rows : sequence of sequences
        The rows, in column order.
    """
    for column, sql_type in columns:
        if sql_type not in _TYPES:
            raise ValueError(f"column {column!r}: type {sql_type!r} is not one of {_TYPES}")
    if len(rows) > _LIST_ROWS:
        _arrow_temp_table(con, name, columns, rows)
        return
    # unnest() of several lists in one SELECT zips them, row by row and in order.
    cols = ", ".join(f'unnest(${i + 1}::{t}[]) AS "{c}"' for i, (c, t) in enumerate(columns))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols}",
        [[row[i] for row in rows] for i in range(len(columns))],
    )


#: Above this many rows, an Arrow table converts the values faster than list parameters.
_LIST_ROWS = 20_000


def _arrow_temp_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
) -> None:
    import pyarrow as pa

    schema = pa.schema([(c, getattr(pa, _ARROW_TYPES[t])()) for c, t in columns])
    data = pa.table(
        {c: [row[i] for row in rows] for i, (c, _t) in enumerate(columns)}, schema=schema
    )
    view = f"__{name}_arrow"
    con.register(view, data)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)
