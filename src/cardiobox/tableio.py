"""Reading and writing analysis tables (CSV, TSV, Parquet) as Arrow, with clear errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cardiobox.errors import InputError, Location

#: File suffixes read as tables.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def read_table(path: str | Path) -> pa.Table:
    """A CSV (header row), TSV or Parquet file as an Arrow table.

    Raises
    ------
    InputError
        For a missing file, an unsupported format or an unreadable file.
    """
    source = Path(path)
    if not source.exists():
        raise InputError("no such file", rule="missing-input", location=Location(file=str(source)))
    suffix = source.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unsupported table format {suffix!r} (use {', '.join(TABLE_SUFFIXES)})",
            rule="unsupported-format",
            location=Location(file=str(source)),
        )
    con = duckdb.connect()
    try:
        quoted = str(source).replace("'", "''")
        reader = "read_parquet" if suffix in (".parquet", ".pq") else "read_csv"
        options = "" if reader == "read_parquet" else ", header = true"
        return con.sql(f"SELECT * FROM {reader}('{quoted}'{options})").to_arrow_table()
    except duckdb.Error as exc:
        raise InputError(
            f"cannot read the table: {exc}", rule="unreadable", location=Location(file=str(source))
        ) from exc
    finally:
        con.close()


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write a table as Parquet (``.parquet``/``.pq``) or CSV (any other suffix)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        pq.write_table(table, out)
    else:
        pacsv.write_csv(table, out)
    return out
