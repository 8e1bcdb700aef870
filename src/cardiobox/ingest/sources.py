"""Sources: read a mapping's rows into the DuckDB table ``_src``.

``_src`` has a column ``_row`` (the line a row starts on in a text file, or its position in
other sources) and one VARCHAR column per source column, with the source's ``null_values`` already
turned into NULL. Rows that cannot be read at all (a CSV line with too many or too few fields)
are returned as :class:`BadRow` so the engine can quarantine them: every row is accounted for.
"""

from __future__ import annotations

import csv
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cardiobox.errors import InputError, Location
from cardiobox.ingest.mapping import Source, column_key
from cardiobox.ingest.text_files import (
    UNDEFINED_IN_1252,
    RecordLines,
    content_lines,
    first_line,
    record_lines,
    windows_1252_as_utf8,
    windows_bytes_in_latin_1,
)
from cardiobox.store.readers import newline_option


@dataclass
class BadRow:
    """A source row that could not be read, with where and why."""

    line: int
    message: str
    raw: str


@dataclass
class SourceInfo:
    """What was read."""

    path: str
    columns: list[str]
    rows: int
    bad_rows: list[BadRow] = field(default_factory=list)
    numbering: str = "line"  # "line": file lines; "row": 1-based row position


def quote(name: str) -> str:
    """Quote an identifier for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def resolve_path(source: Source, base: Path, override: str | Path | None) -> Path:
    """The file a source reads: ``--source`` if given, else its path relative to the mapping."""
    raw = Path(override) if override else Path(source.path or "")
    path = raw if raw.is_absolute() or override else base / raw
    if not path.is_file():
        raise InputError(
            f"source file not found: {path}",
            rule="missing-input",
            location=Location(file=str(path)),
        )
    return path


def _null_normalised(columns: list[str], nulls: list[str]) -> str:
    """Select-list of the columns with the source's null values turned into NULL."""
    values = ", ".join(_sql_literal(v) for v in nulls)
    return ", ".join(
        f"CASE WHEN trim({quote(c)}) IN ({values}) THEN NULL ELSE {quote(c)} END AS {quote(c)}"
        if nulls
        else quote(c)
        for c in columns
    )


def _normalise_nulls(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], nulls: list[str]
) -> None:
    cols = _null_normalised(columns, nulls)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _src AS SELECT _row, {cols} FROM {table}")
    con.execute("DROP TABLE IF EXISTS _src_read")


def _header(path: Path, delim: str, source: Source) -> list[str]:
    """The column names on the first line (a CSV header is one line)."""
    where = Location(file=str(path), line=1)
    try:
        line = first_line(path, source.encoding)
    except UnicodeError as exc:
        raise InputError(
            f"cannot read the header line as {source.encoding}: {exc}",
            rule="source-format",
            location=where,
        ) from exc
    if line.strip() == "" and line:
        raise InputError(
            "the first line is blank: the header must be the file's first line (or set "
            "header: false and list the columns under source.columns)",
            rule="source-format",
            location=where,
        )
    # no quote character: every quote is text
    quoting = {"quotechar": source.quote} if source.quote else {"quoting": csv.QUOTE_NONE}
    try:
        first = next(csv.reader([line], delimiter=delim, strict=True, **quoting), [])
    except csv.Error as exc:
        # An unclosed quote would run the header on over the whole file.
        raise InputError(
            f"cannot read the header line: {exc} (a quote {source.quote!r} that is not closed?)",
            rule="source-format",
            location=where,
        ) from exc
    if not first:
        raise InputError("the file is empty", rule="source-format", location=where)
    return [c.strip() for c in first]


def _check_distinct(names: list[str], path: Path) -> None:
    """Every header column needs its own name: expressions name columns.

    Compared as DuckDB compares names: ASCII letters without regard to case.
    """
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        key = column_key(name)
        if key in seen:
            raise InputError(
                f"the header names column {name!r} twice (columns {seen[key]} and {position}; "
                "names are compared regardless of case): give each column its own name, or "
                "list them under source.columns in the mapping",
                rule="source-columns",
                location=Location(file=str(path), line=1),
            )
        seen[key] = position


def _read_csv(con: duckdb.DuckDBPyConnection, source: Source, path: Path) -> SourceInfo:
    if source.encoding != "windows-1252":
        return _read_csv_file(con, source, path, path)
    with tempfile.TemporaryDirectory(prefix="cardiobox-") as folder:
        copy = windows_1252_as_utf8(path, Path(folder))
        try:
            info = _read_csv_file(con, source, path, copy)
        finally:
            for table in ("_src_rejects", "_src_rejects_scan"):  # they name the copy
                con.execute(f"DROP TABLE IF EXISTS {table}")
    # DuckDB's message would say that the copy is not UTF-8
    info.bad_rows = [
        dataclasses.replace(b, message=UNDEFINED_IN_1252)
        if b.message.startswith("invalid encoding")
        else b
        for b in info.bad_rows
    ]
    return info


def _read_csv_file(
    con: duckdb.DuckDBPyConnection, source: Source, path: Path, read: Path
) -> SourceInfo:
    """Read the CSV file ``path`` into ``_src``; DuckDB reads ``read`` (it or its UTF-8 copy).

    Errors and rows name ``path`` and the declared encoding.
    """
    delim = source.delimiter or ("\t" if source.format == "tsv" else ",")
    # what DuckDB reads: a windows-1252 file's copy is UTF-8
    as_read = source if read == path else source.model_copy(update={"encoding": "utf-8"})
    names = source.columns
    if source.header:
        file_columns = _header(path, delim, source)
        if not names:
            _check_distinct(file_columns, path)
        names = names or file_columns
        if len(names) != len(file_columns):
            raise InputError(
                f"the mapping names {len(names)} columns but the file has {len(file_columns)}",
                rule="source-columns",
                location=Location(file=str(path), line=1),
            )
    assert names is not None
    columns = "{" + ", ".join(f"{_sql_literal(n)}: 'VARCHAR'" for n in names) + "}"
    con.execute("DROP TABLE IF EXISTS _src_rejects")
    con.execute("DROP TABLE IF EXISTS _src_rejects_scan")
    header = 1 if source.header else 0
    try:
        # Numbered as if the k-th record were on the k-th line after the header; corrected
        # below when blank, rejected or multi-line records say otherwise.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _src AS
            SELECT row_number() OVER () + {header} AS _row,
                {_null_normalised(list(names), source.null_values)}
            FROM read_csv({_sql_literal(str(read))},
                header = {str(source.header).lower()}, delim = {_sql_literal(delim)},
                quote = {_sql_literal(source.quote)}, escape = {_sql_literal(source.quote)},
                encoding = {_sql_literal(as_read.encoding)}, columns = {columns},
                auto_detect = false, parallel = false, store_rejects = true,
                rejects_table = '_src_rejects', rejects_scan = '_src_rejects_scan',
                max_line_size = 16777216)"""
        )
    except duckdb.Error as exc:
        windows = windows_bytes_in_latin_1(path) if source.encoding == "latin-1" else None
        if windows is not None:
            raise windows from exc
        raise InputError(
            f"cannot read the file as {source.format.upper()} ({source.encoding}): "
            f"{str(exc).splitlines()[0]}",
            rule="source-format",
            location=Location(file=str(path)),
        ) from exc
    bad = [
        BadRow(int(line), f"{error_type.lower()}: {message}", _record_text(csv_line))
        for line, error_type, message, csv_line in con.execute(
            """SELECT line, first(error_type ORDER BY column_idx),
                   first(error_message ORDER BY column_idx), first(csv_line)
            FROM _src_rejects GROUP BY line ORDER BY line"""
        ).fetchall()
    ]
    # one pass over the bytes maps DuckDB's count of lines to the file's (UTF-16 excepted)
    mapped = len(source.quote) == 1 and len(delim) == 1 and as_read.encoding != "utf-16"
    lines = record_lines(read, source.quote, delim) if mapped else None
    tail = _unclosed_tail(as_read, read, lines)
    info = SourceInfo(str(path), list(names), 0, bad + ([tail] if tail else []))
    info.rows = int(con.execute("SELECT count(*) FROM _src").fetchall()[0][0])
    if lines is not None and _number_records(con, as_read, info, lines, tail):
        return info
    # a quote or delimiter of several characters, or UTF-16: count the file's lines instead
    if info.bad_rows or not _lines_as_numbered(con, as_read, read, info.rows):
        _number_lines(con, as_read, read, info, tail)
    return info


def _record_text(csv_line: str | None) -> str:
    """A rejected record's text, without line ends before it (DuckDB keeps some of those).

    After a blank line of a CRLF file, DuckDB gives the record ``x`` as line feed, carriage
    return, line feed, ``x``.
    """
    return (csv_line or "").lstrip("\r\n")


#: Characters of an unread tail kept in the quarantine (the file itself stays at the site).
_TAIL_KEPT = 65_536


def _unclosed_tail(source: Source, path: Path, lines: RecordLines | None) -> BadRow | None:
    """The rest of the file from a quoted field that is never closed, as one bad record.

    DuckDB's reader drops such a last record without a word (DuckDB 2.0.1): a quote left
    open runs on to the end of the file, so every line from its own is lost unless reported.
    """
    if lines is None or lines.unclosed is None:
        return None
    line, offset = lines.unclosed
    with path.open("rb") as fh:
        fh.seek(offset)
        text = fh.read(_TAIL_KEPT).decode(source.encoding, "replace")
    count = int(np.count_nonzero(content_lines(path) >= line))
    return BadRow(
        line,
        f"unclosed quote: a field opened with {source.quote} on this line is never closed: the "
        f"{count:,} lines from here to the end of the file are one unfinished record",
        text,
    )


def _lines_text(source: Source, path: Path) -> str:
    """A query of the file's lines: ``line`` (1-based) and ``raw`` (its text)."""
    return f"""SELECT row_number() OVER () AS line, raw FROM read_csv({_sql_literal(str(path))},
        columns = {{'raw': 'VARCHAR'}}, header = false, delim = chr(1), quote = '',
        escape = '', auto_detect = false, new_line = '{newline_option(path)}',
        strict_mode = false, parallel = false, encoding = {_sql_literal(source.encoding)},
        max_line_size = 16777216)"""


#: A line that holds a record (DuckDB's reader skips blank ones).
_NOT_BLANK = "raw IS NOT NULL AND NOT regexp_full_match(raw, '\\s*')"


def _lines_as_numbered(
    con: duckdb.DuckDBPyConnection, source: Source, path: Path, records: int
) -> bool:
    """True when the k-th record is on the k-th line after the header, as ``_src`` says.

    So it is when the non-blank lines after the header are exactly the lines 1..records after
    it (no blank line among them, no record over several lines), there being no rejected line.
    """
    header = 1 if source.header else 0
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE line > {header}), coalesce(max(line), 0)
        FROM ({_lines_text(source, path)}) WHERE {_NOT_BLANK}"""
    ).fetchall()[0]
    return int(row[0]) == records and (records == 0 or int(row[1]) == records + header)


def _number_lines(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    info: SourceInfo,
    tail: BadRow | None,
) -> None:
    """Give each accepted record of ``_src`` its line in the file (or its position).

    For the files :func:`_number_records` cannot map. DuckDB's reader skips blank lines and
    keeps rejected lines apart; the k-th accepted record is on the k-th line that is neither
    the header, blank, nor rejected; should that not add up (a quoted field over several
    lines), records are numbered by position. ``tail``: the record of an unclosed quote, whose
    lines run to the end of the file.
    """
    header = 1 if source.header else 0
    bad_lines = [b.line for b in info.bad_rows]
    end = tail.line if tail is not None else 1 << 62
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _lines AS
            SELECT row_number() OVER () AS k, line FROM (
                SELECT line FROM ({_lines_text(source, path)})
                WHERE {_NOT_BLANK} AND line > {header} AND line < {end}
                    AND line NOT IN (SELECT unnest(?))
                ORDER BY line
            )""",
            [bad_lines],
        )
    except duckdb.InvalidInputException:
        if source.encoding == "utf-16":  # two-byte line ends: not counted from the bytes
            raise
        # A byte the encoding does not allow stops the line reader (the CSV reader rejected
        # that record): the lines are counted from the bytes instead.
        lines = content_lines(path)
        keep = (lines > header) & (lines < end)
        lines = lines[keep & ~np.isin(lines, np.array(bad_lines, dtype=np.int64))]
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _lines AS
            SELECT unnest(?::BIGINT[]) AS k, unnest(?::BIGINT[]) AS line""",
            [list(range(1, lines.size + 1)), lines.tolist()],
        )
    candidates = con.execute("SELECT count(*) FROM _lines").fetchall()[0][0]
    if info.rows == candidates:
        _renumber(con, "_lines", header)
    else:
        info.numbering = "row"
        if header:
            con.execute(f"UPDATE _src SET _row = _row - {header}")
    con.execute("DROP TABLE IF EXISTS _lines")


def _renumber(con: duckdb.DuckDBPyConnection, lines: str, header: int) -> None:
    """Number ``_src``'s k-th record (``_row`` = k + header) by the line ``lines`` gives for k.

    ``lines`` is a table or view of ``k`` and ``line``.
    """
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _src_numbered AS
        SELECT l.line AS _row, r.* EXCLUDE (_row)
        FROM _src r JOIN {lines} l ON l.k = r._row - {header};
        DROP TABLE _src;
        ALTER TABLE _src_numbered RENAME TO _src"""
    )


def _number_records(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    info: SourceInfo,
    lines: RecordLines,
    tail: BadRow | None,
) -> bool:
    """Number records (``_src._row`` and the rejected ones) by the file line they start on.

    DuckDB counts lines as a CSV reader does (a line feed inside quotes ends none) and numbers
    rejected records by that count; :func:`~cardiobox.ingest.text_files.record_lines` maps it
    to the file's lines. ``_src`` is rewritten only when its numbers change (a quoted field
    over several lines, a blank or rejected line). Returns False, changing nothing, when the
    records do not add up. (The caller maps only files with a one-character quote and
    delimiter, not UTF-16.)
    """
    starts, filled = lines.starts, lines.filled
    header = 1 if source.header else 0
    counted = np.arange(1, starts.size + 1)
    rejected = np.array([b.line for b in info.bad_rows if b is not tail], dtype=np.int64)
    if rejected.size and (rejected.min() < 1 or rejected.max() > starts.size):
        return False
    end = tail.line if tail is not None else 1 << 62
    records = counted[filled & (counted > header) & (starts < end)]
    accepted = records[~np.isin(records, rejected)]
    if accepted.size != info.rows:
        return False
    first = starts[accepted - 1]
    # _src numbers the k-th accepted record k + header, right unless the lines say otherwise
    if not np.array_equal(first, np.arange(1 + header, accepted.size + 1 + header)):
        con.register("_lines_arrow", pa.table({"k": np.arange(1, first.size + 1), "line": first}))
        try:
            _renumber(con, "_lines_arrow", header)
        finally:
            con.unregister("_lines_arrow")
    info.bad_rows = [
        b if b is tail else dataclasses.replace(b, line=int(starts[b.line - 1]))
        for b in info.bad_rows
    ]
    return True


def _from_arrow(
    con: duckdb.DuckDBPyConnection, table: pa.Table, source: Source, path: str
) -> SourceInfo:
    names = [str(n) for n in table.column_names]
    table = table.cast(pa.schema([pa.field(n, pa.string()) for n in names]))
    con.register("_src_arrow", table)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _src_read AS "
        "SELECT row_number() OVER () AS _row, * FROM _src_arrow"
    )
    con.unregister("_src_arrow")
    _normalise_nulls(con, "_src_read", names, source.null_values)
    return SourceInfo(path, names, table.num_rows, [], numbering="row")


def _stringify(table: pa.Table) -> pa.Table:
    """Cast every column to text (numbers as they print, dates as ISO)."""
    cols = []
    for col in table.columns:
        cols.append(col.cast(pa.string()) if not pa.types.is_string(col.type) else col)
    return pa.table(cols, names=table.column_names)


def _read_parquet(con: duckdb.DuckDBPyConnection, source: Source, path: Path) -> SourceInfo:
    table = con.sql(f"SELECT * FROM read_parquet({_sql_literal(str(path))})").to_arrow_table()
    return _from_arrow(con, _stringify(table), source, str(path))


def _read_excel(con: duckdb.DuckDBPyConnection, source: Source, path: Path) -> SourceInfo:
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError("reading Excel needs openpyxl", rule="source-format") from exc
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    if source.sheet and source.sheet not in wb.sheetnames:
        raise InputError(
            f"no sheet {source.sheet!r}; the workbook has {wb.sheetnames}",
            rule="source-format",
            location=Location(file=str(path)),
        )
    ws = wb[source.sheet] if source.sheet else wb.worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    wb.close()
    if source.header:
        if not rows:
            raise InputError(
                "the sheet is empty", rule="source-format", location=Location(file=str(path))
            )
        names = source.columns or [str(c) for c in rows[0]]
        rows = rows[1:]
    else:
        names = list(source.columns or [])

    def text(v: Any) -> str | None:
        if v is None:
            return None
        if hasattr(v, "isoformat"):
            return str(v.isoformat())
        return str(v)

    data = {n: [text(r[i]) if i < len(r) else None for r in rows] for i, n in enumerate(names)}
    info = _from_arrow(con, pa.table(data), source, str(path))
    if source.header:
        con.execute("UPDATE _src SET _row = _row + 1")  # spreadsheet row numbers
        info.numbering = "line"
    return info


def _read_sql(con: duckdb.DuckDBPyConnection, source: Source) -> SourceInfo:
    try:
        import sqlalchemy
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError("reading SQL sources needs SQLAlchemy", rule="source-format") from exc
    assert source.url is not None and source.query is not None
    try:
        engine = sqlalchemy.create_engine(source.url)
        with engine.connect() as conn:
            result = conn.execute(sqlalchemy.text(source.query))
            names = list(result.keys())
            rows = result.fetchall()
        engine.dispose()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise InputError(
            f"the SQL source failed: {str(exc).splitlines()[0]}",
            rule="source-sql",
            location=Location(file=source.url),
        ) from exc
    data = {n: [None if r[i] is None else str(r[i]) for r in rows] for i, n in enumerate(names)}
    return _from_arrow(con, pa.table(data) if names else pa.table({}), source, source.url)


def load_source(
    con: duckdb.DuckDBPyConnection, source: Source, base: Path, override: str | Path | None
) -> SourceInfo:
    """Read a mapping's source into ``_src``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Where ``_src`` is created (a temporary table).
    source : Source
        The mapping's ``source`` section.
    base : Path
        The mapping file's folder (paths are relative to it).
    override : str or Path, optional
        ``--source``: a file to read instead of ``source.path``.

    Returns
    -------
    SourceInfo
    """
    if source.format == "sql":
        return _read_sql(con, source)
    path = resolve_path(source, base, override)
    if source.format in ("csv", "tsv"):
        return _read_csv(con, source, path)
    if source.format == "parquet":
        return _read_parquet(con, source, path)
    return _read_excel(con, source, path)
