"""Every source format reads into the same rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cardiobox.errors import InputError
from cardiobox.ingest.mapping import Source
from cardiobox.ingest.sources import load_source

ROWS = [("p1", "4.1", "mmol/L"), ("p2", "NA", "mmol/L"), ("p3", "3.9", None)]


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute("SELECT * EXCLUDE (_row) FROM _src ORDER BY _row").fetchall()


EXPECTED = [("p1", "4.1", "mmol/L"), ("p2", None, "mmol/L"), ("p3", "3.9", None)]


def test_tsv_without_header(tmp_path: Path) -> None:
    f = tmp_path / "a.tsv"
    f.write_text("\n".join("\t".join(c or "" for c in r) for r in ROWS) + "\n")
    con = duckdb.connect()
    info = load_source(
        con,
        Source(
            format="tsv",
            path="a.tsv",
            header=False,
            columns=["id", "k", "u"],
            null_values=["", "NA"],
        ),
        tmp_path,
        None,
    )
    assert rows(con) == EXPECTED and info.rows == 3 and info.numbering == "line"


def test_parquet(tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {"id": ["p1", "p2", "p3"], "k": [4.1, None, 3.9], "u": ["mmol/L", "mmol/L", None]}
        ),
        tmp_path / "a.parquet",
    )
    con = duckdb.connect()
    load_source(con, Source(format="parquet", path="a.parquet"), tmp_path, None)
    assert rows(con) == EXPECTED


def test_excel(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Labs"
    ws.append(["id", "k", "u"])
    for r in ROWS:
        ws.append([r[0], float(r[1]) if r[1] not in (None, "NA") else r[1], r[2]])
    wb.save(tmp_path / "a.xlsx")
    con = duckdb.connect()
    info = load_source(
        con,
        Source(format="excel", path="a.xlsx", sheet="Labs", null_values=["", "NA"]),
        tmp_path,
        None,
    )
    assert rows(con) == EXPECTED
    assert [r[0] for r in con.execute("SELECT _row FROM _src ORDER BY 1").fetchall()] == [2, 3, 4]
    assert info.rows == 3
    with pytest.raises(InputError, match="no sheet"):
        load_source(con, Source(format="excel", path="a.xlsx", sheet="Nope"), tmp_path, None)


def test_sql_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "extract.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE labs (id TEXT, k REAL, u TEXT)")
        c.executemany(
            "INSERT INTO labs VALUES (?, ?, ?)",
            [("p1", 4.1, "mmol/L"), ("p2", None, "mmol/L"), ("p3", 3.9, None)],
        )
    con = duckdb.connect()
    load_source(
        con,
        Source(format="sql", url=f"sqlite:///{db}", query="SELECT id, k, u FROM labs ORDER BY id"),
        tmp_path,
        None,
    )
    assert rows(con) == EXPECTED
    with pytest.raises(InputError) as err:
        load_source(
            con,
            Source(format="sql", url=f"sqlite:///{db}", query="SELECT * FROM nope"),
            tmp_path,
            None,
        )
    assert err.value.rule == "source-sql"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="source file not found"):
        load_source(duckdb.connect(), Source(format="csv", path="none.csv"), tmp_path, None)


def test_header_column_count_mismatch(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="names 3 columns"):
        load_source(
            duckdb.connect(),
            Source(format="csv", path="a.csv", columns=["x", "y", "z"]),
            tmp_path,
            None,
        )


def csv_lines(
    tmp_path: Path, text: str, header: bool = True
) -> tuple[list[tuple[object, ...]], str]:
    """(_row, id) of every record read from ``text``, and how rows are numbered."""
    (tmp_path / "l.csv").write_text(text)
    con = duckdb.connect()
    source = Source(
        format="csv", path="l.csv", header=header, columns=None if header else ["id", "v"]
    )
    info = load_source(con, source, tmp_path, None)
    got = con.execute("SELECT _row, id FROM _src ORDER BY _row").fetchall()
    assert info.rows + len(info.bad_rows) == len(got) + len(info.bad_rows)
    return got, info.numbering


@pytest.mark.parametrize(
    ("text", "header", "expected"),
    [
        # one record a line: records are numbered by their line, header included
        ("id,v\na,1\nb,2\nc,3\n", True, [(2, "a"), (3, "b"), (4, "c")]),
        ("a,1\nb,2\n", False, [(1, "a"), (2, "b")]),
        # blank lines at the end change nothing; blank lines inside shift the records after
        ("id,v\na,1\nb,2\n\n\n", True, [(2, "a"), (3, "b")]),
        ("id,v\na,1\n\nb,2\n \nc,3\n", True, [(2, "a"), (4, "b"), (6, "c")]),
        ("a,1\n\nb,2\n", False, [(1, "a"), (3, "b")]),
        # a rejected line (too many fields) keeps its own number, and the others theirs
        ("id,v\na,1\nx,1,2\nb,2\n", True, [(2, "a"), (4, "b")]),
        ("id,v\n", True, []),
    ],
)
def test_records_are_numbered_by_line(
    tmp_path: Path, text: str, header: bool, expected: list[tuple[object, ...]]
) -> None:
    got, numbering = csv_lines(tmp_path, text, header)
    assert got == expected and numbering == "line"


def test_records_over_several_lines_are_numbered_by_their_first_line(tmp_path: Path) -> None:
    got, numbering = csv_lines(tmp_path, 'id,v\na,"1\n2"\nb,2\n')
    assert got == [(2, "a"), (4, "b")] and numbering == "line"


def test_rejected_records_after_one_over_several_lines(tmp_path: Path) -> None:
    """DuckDB counts a record over several lines as one line; rejects get their file lines."""
    text = 'id,v\na,"1\n2"\n\nx\nb,2\nc,"p\n\nq"\ny\nd,4\n'
    (tmp_path / "l.csv").write_text(text)
    con = duckdb.connect()
    info = load_source(con, Source(format="csv", path="l.csv"), tmp_path, None)
    got = con.execute("SELECT _row, id FROM _src ORDER BY _row").fetchall()
    assert got == [(2, "a"), (6, "b"), (7, "c"), (11, "d")] and info.numbering == "line"
    assert [(b.line, b.raw.strip()) for b in info.bad_rows] == [(5, "x"), (10, "y")]


@pytest.mark.parametrize(
    ("text", "rows", "rejected"),
    [
        # DuckDB opens a quote one space after a delimiter, too
        ('id;v\na; "x\ny"\nb;1\nx\nc;2\n', [(2, "a"), (4, "b"), (6, "c")], [5]),
        ('id;v\na;1\nb; "x\nc;2\n', [(2, "a")], [3]),  # never closed: one record to the end
        # a line of spaces is a record to DuckDB (here rejected), not a blank line
        ('id;v\na;"1\n2"\nb;2\n   \nc;3\n', [(2, "a"), (4, "b"), (6, "c")], [5]),
        ('id;v\na;"1\n2"\n   \nb;2\n', [(2, "a"), (5, "b")], [4]),
    ],
)
def test_records_by_their_first_line(
    tmp_path: Path, text: str, rows: list[tuple[int, str]], rejected: list[int]
) -> None:
    (tmp_path / "l.csv").write_text(text)
    con = duckdb.connect()
    info = load_source(con, Source(format="csv", path="l.csv", delimiter=";"), tmp_path, None)
    assert con.execute("SELECT _row, id FROM _src ORDER BY _row").fetchall() == rows
    assert [b.line for b in info.bad_rows] == rejected and info.numbering == "line"


def test_rejected_text_has_no_stray_line_end(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes(b"id;v\r\na;1\r\n\r\nx\r\n")
    info = load_source(
        duckdb.connect(), Source(format="csv", path="l.csv", delimiter=";"), tmp_path, None
    )
    assert [(b.line, b.raw) for b in info.bad_rows] == [(4, "x")]


def test_header_without_a_quote_character(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text('id;v\na;"1\nb;2\n')
    con = duckdb.connect()
    source = Source(format="csv", path="l.csv", delimiter=";", quote="")
    info = load_source(con, source, tmp_path, None)
    assert con.execute("SELECT _row, id, v FROM _src ORDER BY 1").fetchall() == [
        (2, "a", '"1'),
        (3, "b", "2"),
    ]
    assert info.bad_rows == []


def test_blank_first_line(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("\n\nid;v\na;1\n")
    with pytest.raises(InputError, match="first line is blank") as err:
        load_source(
            duckdb.connect(), Source(format="csv", path="l.csv", delimiter=";"), tmp_path, None
        )
    assert err.value.location.line == 1
