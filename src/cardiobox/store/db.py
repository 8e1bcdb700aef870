"""Small helpers over DuckDB results.

DuckDB 2 keeps a result open until it has been read to the end; reading one row with
``fetchone()`` leaves it open and blocks ``register()`` on the connection. These helpers read
results whole.
"""

from __future__ import annotations

from typing import Any

import duckdb


def one(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of a result (reading it to the end), or ``None``."""
    rows = result.fetchall()
    return rows[0] if rows else None


def scalar_int(result: duckdb.DuckDBPyConnection) -> int:
    """The first column of the first row as an int (0 when there is no row or it is NULL)."""
    row = one(result)
    return int(row[0]) if row and row[0] is not None else 0
