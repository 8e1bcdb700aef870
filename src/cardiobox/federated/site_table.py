"""A site's analysis table, as federated tasks read it.

The table is an Arrow table held in an in-memory DuckDB connection (from a CSV or Parquet
file, or extracted from a site store by a cohort definition and feature set). Tasks read
columns as numpy arrays, filtered by the request's ``where`` — parsed and checked by
:mod:`cardiobox.federated.where`, bound as parameters, never pasted in as raw SQL.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from cardiobox.errors import CardioboxError
from cardiobox.federated.where import check_columns, parse_where, to_sql

T = TypeVar("T")


class ColumnError(CardioboxError):
    """A task asked for a column the site table lacks, or of the wrong type."""


def type_family(t: pa.DataType) -> str:
    """``number``, ``boolean``, ``string``, ``date`` or ``other`` for an Arrow type."""
    if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t):
        return "number"
    if pat.is_boolean(t):
        return "boolean"
    if pat.is_string(t) or pat.is_large_string(t) or pat.is_dictionary(t):
        return "string"
    if pat.is_date(t) or pat.is_timestamp(t):
        return "date"
    return "other"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SiteTable:
    """An analysis table at a site.

    Parameters
    ----------
    table : pyarrow.Table
        The rows (one per patient or per admission).
    source : str
        Where it came from, for messages.
    """

    def __init__(self, table: pa.Table, source: str = "table"):
        self.table = table
        self.source = source
        self.families = {f.name: type_family(f.type) for f in table.schema}
        self._con = duckdb.connect()
        self._con.execute("SET enable_progress_bar = false")
        # Tasks read columns in separate queries and pair them row by row: keep the order.
        self._con.execute("SET preserve_insertion_order = true")
        self._con.register("site_table", table)
        self._numeric: dict[tuple[tuple[str, ...], str | None, bool], np.ndarray] = {}
        self._passed: set[tuple[str, str | None]] = set()  # checks passed: the table never changes
        self._derived: dict[Hashable, Any] = {}

    @property
    def num_rows(self) -> int:
        """Rows in the whole table."""
        return int(self.table.num_rows)

    def check(self, columns: Sequence[str], family: str | None = None) -> None:
        """Raise :class:`ColumnError` for a missing column, or one not of ``family``.

        ``family="number"`` accepts boolean columns too (read as 0 and 1).
        """
        for c in columns:
            if (c, family) in self._passed:
                continue
            if c not in self.families:
                close = difflib.get_close_matches(c, list(self.families), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ColumnError(
                    f"the site table ({self.source}) has no column {c!r}{hint}",
                    rule="unknown-column",
                )
            have = self.families[c]
            if family == "number" and have not in ("number", "boolean"):
                raise ColumnError(f"column {c!r} is {have}, not a number", rule="column-type")
            if family is not None and family != "number" and have != family:
                raise ColumnError(f"column {c!r} is {have}, not {family}", rule="column-type")
            self._passed.add((c, family))

    def _filter(self, where: str | None) -> tuple[str, list[object]]:
        if not where:
            return "TRUE", []
        expr = parse_where(where)
        check_columns(expr, self.families)
        return to_sql(expr)

    def count(self, where: str | None = None) -> int:
        """Rows that pass ``where``."""
        sql, params = self._filter(where)
        # fetchall: a half-read result would keep the connection busy for the next query
        rows = self._con.execute(
            f"SELECT count(*) FROM site_table WHERE ({sql}) IS TRUE", params
        ).fetchall()
        return int(rows[0][0])

    def numeric(
        self, columns: Sequence[str], where: str | None = None, complete: bool = True
    ) -> np.ndarray:
        """The columns as a float matrix (rows × columns), NULL as NaN.

        Parameters
        ----------
        columns : sequence of str
            Number or boolean columns (booleans read as 0 and 1).
        where : str, optional
            Row filter.
        complete : bool
            Keep only rows with a value in every column (default).
        """
        key = (tuple(columns), where, complete)
        if key not in self._numeric:  # the table never changes: iterative tasks reread it
            self._numeric[key] = self._read_numeric(columns, where, complete)
        return self._numeric[key].copy()

    def _read_numeric(
        self, columns: Sequence[str], where: str | None, complete: bool
    ) -> np.ndarray:
        self.check(columns, "number")
        sql, params = self._filter(where)
        cols = ", ".join(f"CAST({_ident(c)} AS DOUBLE) AS {_ident(c)}" for c in columns) or "1"
        cond = f"({sql}) IS TRUE"
        if complete and columns:
            cond += "".join(f" AND {_ident(c)} IS NOT NULL" for c in columns)
        arrow = self._con.sql(
            f"SELECT {cols} FROM site_table WHERE {cond}", params=params
        ).to_arrow_table()
        if not columns:
            return np.empty((arrow.num_rows, 0))
        return np.column_stack(
            [
                arrow.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
                for i in range(len(columns))
            ]
        )

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """A value computed from the table once per ``key`` and kept (the table never changes).

        Iterative tasks ask for the same rows every round. The value is shared: never modify
        it (keep arrays read-only).
        """
        if key not in self._derived:
            self._derived[key] = make()
        value: T = self._derived[key]
        return value

    def categories(self, column: str, where: str | None = None) -> np.ndarray:
        """One column as an array of strings (NULL as ``None``) for the rows passing ``where``."""
        self.check([column])
        sql, params = self._filter(where)
        arrow = self._con.sql(
            f"SELECT CAST({_ident(column)} AS VARCHAR) FROM site_table WHERE ({sql}) IS TRUE",
            params=params,
        ).to_arrow_table()
        return np.array(arrow.column(0).to_pylist(), dtype=object)

    def close(self) -> None:
        """Release the connection."""
        self._con.close()
