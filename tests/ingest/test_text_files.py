"""Text files whatever their bytes: first lines, line counts, windows-1252."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cardiobox.ingest.mapping import Source
from cardiobox.ingest.sources import _NOT_BLANK, _lines_text
from cardiobox.ingest.text_files import (
    content_lines,
    first_line,
    record_lines,
    windows_1252_as_utf8,
    windows_bytes_in_latin_1,
)


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1 << 26])
def test_content_lines_from_bytes(tmp_path: Path, chunk_bytes: int) -> None:
    """Lines counted from the bytes: those that hold more than spaces, wherever chunks end."""
    data = b"a;b\r\n\r\n  \n1;\xf1\n\t\x0c\n\x0b\nx\r\n\n2;3"
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    expected = [
        n
        for n, line in enumerate(data.split(b"\n"), start=1)
        if any(byte not in b"\t\n\x0c\r " for byte in line)
    ]
    assert content_lines(path, chunk_bytes).tolist() == expected == [1, 4, 6, 7, 9]
    path.write_bytes(data + b"\n")
    assert content_lines(path, chunk_bytes).tolist() == expected
    path.write_bytes(b"")
    assert content_lines(path, chunk_bytes).tolist() == []


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_content_lines_agree_with_the_line_reader(tmp_path: Path, end: bytes) -> None:
    """On a file both can read, the bytes give the lines that DuckDB's line reader gives."""
    lines = [b"a;b", b"", b"  ", b"1;2", b"\t", b"\x0b", b"x", b"", b"", b"2;3"]
    path = tmp_path / "f.csv"
    path.write_bytes(end.join(lines) + end)
    lines_query = _lines_text(Source(format="csv", path="f.csv"), path)
    query = f"SELECT line FROM ({lines_query}) WHERE {_NOT_BLANK}"
    read = [n for (n,) in duckdb.connect().execute(query + " ORDER BY line").fetchall()]
    assert content_lines(path).tolist() == read


def test_first_line_is_decoded_alone(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"\xef\xbb\xbfa;b\n1;\xf1\n")
    assert first_line(path, "utf-8") == "a;b\n"
    path.write_text("a;b\n1;2\n", encoding="utf-16")
    assert first_line(path, "utf-16") == "a;b\n"


def test_windows_1252_copy(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a;b\r\n\x80;\x93x\x94\r\n\x81;2\r\n")
    copy = windows_1252_as_utf8(path, tmp_path)
    assert copy.read_bytes() == "a;b\r\n€;“x”\r\n".encode() + b"\x81;2\r\n"


def test_windows_bytes_in_latin_1(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a;b\r\n\xe9;1\r\n2;\x93\r\n")
    error = windows_bytes_in_latin_1(path)
    assert error is not None and error.location.line == 3 and "0x93" in error.message
    path.write_bytes(b"a;b\n\xe9;1\n")
    assert windows_bytes_in_latin_1(path) is None


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 26])
def test_unclosed_quote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    import cardiobox.ingest.text_files as text_files

    monkeypatch.setattr(text_files, "CHUNK_BYTES", chunk)
    path = tmp_path / "f.csv"
    closed = b'a;b\r\n1;"x ""y"" z"\r\n2;12"\r\n"3\n4";5\r\n'  # escapes, a literal, a long field
    path.write_bytes(closed)
    assert record_lines(path, '"', ";").unclosed is None
    path.write_bytes(closed + b'6;"never\r\n7;8\r\n')
    assert record_lines(path, '"', ";").unclosed == (6, len(closed))
    path.write_bytes(b'"a;b\n1;2\n')
    assert record_lines(path, '"', ";").unclosed == (1, 0)
    path.write_bytes(b"")
    assert record_lines(path, '"', ";").unclosed is None


@pytest.mark.parametrize("order", ["utf-16-le", "utf-16-be"])
def test_first_line_of_utf16_is_decoded_alone(tmp_path: Path, order: str) -> None:
    path = tmp_path / "f.csv"
    bom = b"\xff\xfe" if order == "utf-16-le" else b"\xfe\xff"
    lone_surrogate = b"\x00\xd8" if order == "utf-16-le" else b"\xd8\x00"
    path.write_bytes(bom + "a;b\n1;".encode(order) + lone_surrogate + "\n".encode(order))
    assert first_line(path, "utf-16") == "a;b\n"


def test_record_lines_map_the_readers_count_to_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    # file lines: 1 header, 2-3 a record over two lines, 4 blank, 5, 6, 7-9 over three, 10, 11
    path.write_bytes(b'a;b;c\n1;"x\ny";3\n\n4;5\n6;7;8\n9;"p\n\nq";10\n11\n12;13;14\n')
    lines = record_lines(path, '"', ";")
    assert lines.starts.tolist() == [1, 2, 4, 5, 6, 7, 10, 11]
    assert lines.filled.tolist() == [True, True, False, True, True, True, True, True]
    assert lines.unclosed is None
