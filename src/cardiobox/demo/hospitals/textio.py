"""Printing values the way a hospital prints them, and writing delimited text files.

All formatting is vectorised with pyarrow compute; a table is a dict of column name to a
pyarrow string array (nulls print as empty fields).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

TextTable = dict[str, pa.Array]


def numbers(values: NDArray[Any], decimals: int, decimal: str) -> pa.Array:
    """Numbers as text with at most ``decimals`` decimals (NaN prints as an empty field).

    Parameters
    ----------
    values : numpy.ndarray
        The numbers.
    decimals : int
        Decimals kept (trailing zeros are not printed: 1.10 prints as ``1.1``).
    decimal : str
        The decimal separator, ``"."`` or ``","``.
    """
    v = np.asarray(values, dtype=np.float64)
    mask = np.isnan(v)
    if decimals == 0:
        arr = pa.array(np.where(mask, 0, np.round(v)).astype(np.int64), mask=mask)
    else:
        arr = pa.array(np.where(mask, 0.0, np.round(v, decimals)), mask=mask)
    text = pc.cast(arr, pa.string())
    if decimal != ".":
        text = pc.replace_substring(text, ".", decimal)
    return text


def times(
    minutes: NDArray[np.int64], fmt: str, missing: NDArray[np.bool_] | None = None
) -> pa.Array:
    """Date-times (minutes since 1970-01-01, local clock) as text in strftime ``fmt``."""
    seconds = np.asarray(minutes, dtype=np.int64) * 60
    arr = pa.array(seconds.astype("datetime64[s]"), mask=missing)
    return pc.strftime(arr, format=fmt)


def labels(choices: Sequence[str], index: NDArray[np.int64]) -> pa.Array:
    """``choices[index]`` for every index; a negative index prints as an empty field."""
    idx = np.asarray(index, dtype=np.int64)
    mask = idx < 0
    taken = pa.array(list(choices), type=pa.string()).take(
        pa.array(np.where(mask, 0, idx), mask=mask)
    )
    return taken


def identifiers(numbers_: NDArray[np.int64], prefix: str, width: int) -> pa.Array:
    """Local identifiers: ``prefix`` + the number zero-padded to ``width`` digits."""
    text = pc.utf8_lpad(
        pc.cast(pa.array(np.asarray(numbers_, dtype=np.int64)), pa.string()),
        width=width,
        padding="0",
    )
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "") if prefix else text


def _quoted(column: pa.Array, delimiter: str) -> pa.Array:
    col = pc.fill_null(pc.cast(column, pa.string()), "")
    special = "[" + ("\\t" if delimiter == "\t" else delimiter) + '"\\r\\n]'
    needs = pc.match_substring_regex(col, special)
    escaped = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, escaped, col)


def write_delimited(
    path: Path,
    table: TextTable,
    delimiter: str,
    encoding: str = "utf-8",
    newline: str = "\n",
) -> int:
    """Write ``table`` as delimited text with a header; quote only the fields that need it.

    Parameters
    ----------
    path : Path
        The file to write.
    table : dict of str to pyarrow.Array
        Columns in order; every column has the same length.
    delimiter : str
        Field separator.
    encoding : str
        ``utf-8`` or ``latin-1``.
    newline : str
        Record terminator, LF or CRLF.

    Returns
    -------
    int
        The number of records written (not counting the header).
    """
    names = list(table)
    cols = [_quoted(table[n], delimiter) for n in names]
    n = len(cols[0]) if cols else 0
    header = delimiter.join(names)
    if n:
        lines = pc.binary_join_element_wise(*cols, delimiter)
        body = newline.join(lines.to_pylist())
        text = header + newline + body + newline
    else:
        text = header + newline
    path.write_bytes(text.encode(encoding))
    return n
