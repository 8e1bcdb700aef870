"""Reading text files whatever their bytes: first lines, line counts, quotes, windows-1252.

DuckDB's CSV reader decodes UTF-8, Latin-1 and UTF-16 itself. These helpers cover what it
cannot: a header decoded apart from the rest of the file, lines counted in a file that holds a
byte its encoding does not allow, the file line each of its records starts on (quoted values
span lines; DuckDB numbers rejected records by its own count) and a quote left open to the end
of the file (whose record DuckDB drops), windows-1252 files (read through a UTF-8 copy), and
the Windows bytes that DuckDB refuses in a file declared Latin-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cardiobox.errors import InputError, Location

#: Bytes read at a time.
CHUNK_BYTES = 1 << 26
#: Bytes of the spaces that leave a line blank (RE2's ``\s``: tab, line feed, form feed,
#: carriage return, space).
SPACE_BYTES = np.array([9, 10, 12, 13, 32], dtype=np.uint8)
#: The message for a record with a byte that windows-1252 leaves undefined.
UNDEFINED_IN_1252 = (
    "invalid encoding: a byte that windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90 or 0x9D)"
)


def first_line(path: Path, encoding: str) -> str:
    """The file's first line, decoded on its own: a bad byte further on is not its fault.

    Parameters
    ----------
    path : Path
        The file.
    encoding : str
        ``utf-8`` (a byte-order mark is dropped), ``latin-1``, ``windows-1252`` or ``utf-16``.

    Returns
    -------
    str
        The first line with its line end ("" for an empty file).

    Raises
    ------
    UnicodeDecodeError
        When the first line itself is not text in ``encoding``.
    """
    if encoding == "utf-16":  # a line feed is two bytes, in the byte order of the mark
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
        feed = b"\x00\n" if head.startswith(b"\xfe\xff") else b"\n\x00"
        at = next((i for i in range(0, len(head) - 1, 2) if head[i : i + 2] == feed), None)
        return head[: len(head) if at is None else at + 2].decode("utf-16")
    with path.open("rb") as fh:
        return fh.readline().decode("utf-8-sig" if encoding == "utf-8" else encoding)


def windows_1252_as_utf8(path: Path, folder: Path) -> Path:
    """A UTF-8 copy of a windows-1252 file, line for line (DuckDB reads no windows-1252).

    The five bytes that windows-1252 leaves undefined are copied as they are: they are not
    UTF-8 either, so the CSV reader rejects their records as it does a bad byte in a UTF-8
    file, and those rows are quarantined with their lines.

    Parameters
    ----------
    path : Path
        The windows-1252 file.
    folder : Path
        Where the copy is written (the caller deletes it).

    Returns
    -------
    Path
        The copy.
    """
    copy = folder / (path.stem + ".utf-8" + path.suffix)
    with path.open("rb") as src, copy.open("wb") as dst:
        while chunk := src.read(CHUNK_BYTES):  # one byte a character: chunks split nothing
            dst.write(chunk.decode("cp1252", "surrogateescape").encode("utf-8", "surrogateescape"))
    return copy


def windows_bytes_in_latin_1(path: Path) -> InputError | None:
    """The error for a Latin-1 file with a byte in 0x80-0x9F (DuckDB refuses them), if any.

    Such bytes are control codes in Latin-1 but letters and signs in windows-1252 (0x93 is a
    curly quote, 0x80 the euro sign): the file was most likely written by Windows.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    InputError or None
        ``source-format``, at the line of the first such byte; None when there is none.
    """
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            data = np.frombuffer(chunk, dtype=np.uint8)
            found = np.flatnonzero((data >= 0x80) & (data <= 0x9F))
            if found.size:
                at = int(found[0])
                line += int(np.count_nonzero(data[:at] == 10))
                return InputError(
                    f"byte 0x{data[at]:02X} is no Latin-1 text (Latin-1 leaves 0x80-0x9F to "
                    f"control codes); a file written by Windows is usually windows-1252: set "
                    f"the source's encoding to windows-1252",
                    rule="source-format",
                    location=Location(file=str(path), line=line),
                )
            line += int(np.count_nonzero(data == 10))
    return None


def content_lines(path: Path, chunk_bytes: int = CHUNK_BYTES) -> npt.NDArray[np.int64]:
    r"""The numbers (1-based) of a file's lines that are not blank, counted from its bytes.

    For a file that the line reader cannot decode (a byte its encoding does not allow, whose
    record the CSV reader rejected). A line ends at a line feed, in files with ``\n`` and
    ``\r\n`` line ends alike; the file is read in chunks, so memory stays bounded.

    Parameters
    ----------
    path : Path
        The file.
    chunk_bytes : int, default CHUNK_BYTES
        Bytes read at a time.

    Returns
    -------
    numpy.ndarray of int64
        The line numbers, ascending (blank: nothing but the bytes of :data:`SPACE_BYTES`).
    """
    found: list[npt.NDArray[np.int64]] = []
    line = 1  # the line that the next chunk starts in
    open_content = False  # that line already holds a byte other than a space
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            data = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(data == 10)
            content = ~np.isin(data, SPACE_BYTES)
            starts = np.concatenate(([0], ends + 1))
            # each segment: the rest of the open line, the lines ended in the chunk, then
            # the start of the line that the next chunk continues (empty at the chunk's end)
            has = np.zeros(starts.size, dtype=bool)
            inside = starts < data.size
            has[inside] = np.logical_or.reduceat(content, starts[inside])
            has[0] |= open_content
            numbers = line + np.arange(ends.size, dtype=np.int64)
            found.append(numbers[has[:-1]])
            line += ends.size
            open_content = bool(has[-1])
    if open_content:  # a last line without a line feed
        found.append(np.array([line], dtype=np.int64))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _positions(data: npt.NDArray[np.uint8], byte: int) -> npt.NDArray[np.int64]:
    """Positions of a byte in a (memory-mapped) file, found a chunk at a time."""
    found = [
        start + np.flatnonzero(data[start : start + CHUNK_BYTES] == byte)
        for start in range(0, data.size, CHUNK_BYTES)
    ]
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


def _quoted_fields(
    data: npt.NDArray[np.uint8], quote: int, delim: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Where each quoted field opens and closes (-1: never closed), as CSV readers see quotes.

    A quote opens a quoted field only at the start of a field (the file's start, or after the
    delimiter or a line feed, or one space after them, as DuckDB reads it); elsewhere it is an
    ordinary character. Inside a quoted field a doubled quote stands for one quote, and any
    other quote closes the field.
    """
    positions = _positions(data, quote)
    if positions.size == 0:
        return positions, positions
    before = data[np.maximum(positions - 1, 0)]
    two_before = data[np.maximum(positions - 2, 0)]
    # DuckDB also opens a quote after one space at a field's start ('a; "b"')
    after_space = (before == 32) & ((positions == 1) | (two_before == delim) | (two_before == 10))
    starts_field = (positions == 0) | (before == delim) | (before == 10) | after_space
    opens: list[int] = []
    closes: list[int] = []
    i = 0
    while i < positions.size:  # over the quotes only: none in most extracts
        at = int(positions[i])
        if len(opens) == len(closes):  # outside a quoted field
            if starts_field[i]:
                opens.append(at)
            i += 1
        elif i + 1 < positions.size and positions[i + 1] == at + 1:
            i += 2  # a doubled quote inside the field
        else:
            closes.append(at)
            i += 1
    if len(closes) < len(opens):
        closes.append(-1)
    return np.array(opens, dtype=np.int64), np.array(closes, dtype=np.int64)


def _mapped(path: Path) -> npt.NDArray[np.uint8] | None:
    """The file's bytes, memory-mapped (None when it is empty)."""
    return np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else None


@dataclass(frozen=True)
class RecordLines:
    """A file's lines as a CSV reader counts them (see :func:`record_lines`)."""

    #: For the k-th line as the reader counts them (k from 1), the file line it starts on.
    starts: npt.NDArray[np.int64]
    #: Whether that line holds anything (an empty line, or one holding only a carriage
    #: return, holds no record).
    filled: npt.NDArray[np.bool_]
    #: Where a quoted field that is never closed puts its record: the file line and that
    #: line's byte offset (None when every quoted field is closed).
    unclosed: tuple[int, int] | None


def record_lines(path: Path, quote: str, delim: str) -> RecordLines:
    """The file's lines as a CSV reader counts them: a feed inside quotes ends none.

    DuckDB numbers a rejected record by this count, so in a file whose quoted fields span
    lines it differs from the file's own line numbers; this gives, for each such line, the
    file line it starts on. A quoted field left open runs on to the end of the file.

    Parameters
    ----------
    path : Path
        The file (one byte a character for the quote and delimiter: UTF-8, Latin-1).
    quote, delim : str
        The quote and delimiter characters (one ASCII character each).

    Returns
    -------
    RecordLines
    """
    data = _mapped(path)
    if data is None:
        return RecordLines(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), None)
    feeds = _positions(data, 10)
    opens, closes = _quoted_fields(data, ord(quote), ord(delim))
    unclosed = None
    if closes.size and closes[-1] == -1:
        before = np.searchsorted(feeds, opens[-1])  # line feeds before the open quote
        unclosed = (1 + int(before), int(feeds[before - 1]) + 1 if before else 0)
    closes = np.where(closes == -1, data.size, closes)
    field = np.searchsorted(opens, feeds) - 1  # the last quoted field opened before each feed
    if opens.size:
        quoted = (field >= 0) & (feeds < closes[np.maximum(field, 0)])
    else:
        quoted = np.zeros(feeds.size, dtype=bool)
    breaks = feeds[~quoted]
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [data.size]))
    keep = starts < data.size  # no line after a final line feed
    starts, ends = starts[keep], ends[keep]
    length = ends - starts
    last = data[np.maximum(ends - 1, 0)]
    filled = (length > 1) | ((length == 1) & (last != 13))
    lines = np.searchsorted(feeds, starts).astype(np.int64) + 1
    return RecordLines(lines, filled, unclosed)
