"""Encoding a table into the integer codes of its domain, and decoding codes back to a table.

``encode`` turns each column into codes ``0 .. size-1`` (see :mod:`cardiobox.synth.domain`):
NULL (and NaN) becomes MISSING; a value outside the domain (out of bounds, not a whole number
in an integer or date column, an unknown category, a date whose index is NULL) becomes
OUT_OF_RANGE and is counted in :attr:`Encoded.out_of_range` and in an
:class:`OutOfRangeWarning` — never clipped into a bin.

``decode`` samples a value for each code: uniformly inside a bin (whole numbers for integer
and date columns, a ``10**-decimals`` grid for numeric columns with ``decimals``), the category
itself, ``false``/``true``; MISSING and OUT_OF_RANGE both decode to NULL (the out-of-range
value itself is unknown, and inventing one inside the bounds would hide that it was there).
A date decodes to its index (decoded first) or origin plus the days.

Time to event: for a duration column with ``event: FLAG``, a row whose flag is known (any
value but NULL) always gets a duration. When the sampled duration code is MISSING or
OUT_OF_RANGE, a bin is drawn from the durations of the synthetic rows with the same flag
value (uniformly over the bins when there are none). This is post-processing of synthetic
codes: it costs no privacy. Durations are never negative (the domain requires bounds >= 0).

Both directions work column by column on whole arrays (numpy and pyarrow.compute), never row
by row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from cardiobox.synth.domain import (
    DERIVED_NOTE,
    PER_DAY,
    ColumnDomain,
    DerivedDomainWarning,
    Domain,
    DomainError,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_EPOCH = date(1970, 1, 1)


class OutOfRangeWarning(UserWarning):
    """Values outside the domain were coded OUT_OF_RANGE (see ``Encoded.out_of_range``)."""


@dataclass(frozen=True)
class Encoded:
    """A table as codes of its domain.

    Attributes
    ----------
    codes : numpy.ndarray of int64, shape (rows, columns)
        The codes, columns in domain order (column-major: each column contiguous).
    sizes : list of int
        Number of codes of each column.
    columns : list of str
        Column names, in domain order.
    out_of_range : dict
        Values coded OUT_OF_RANGE, per column (every column, zeros included).
    missing : dict
        NULL values coded MISSING, per column.
    """

    codes: IntArray
    sizes: list[int]
    columns: list[str]
    out_of_range: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self.codes.shape[0])

    def report(self) -> list[str]:
        """One line per column with values outside the domain (empty when there are none)."""
        return [
            f"{name}: {n} value{'s' if n != 1 else ''} outside the domain coded OUT_OF_RANGE"
            for name, n in self.out_of_range.items()
            if n
        ]


def encode(table: pa.Table, domain: Domain, *, warn: bool = True) -> Encoded:
    """Encode a table with its domain.

    Parameters
    ----------
    table : pyarrow.Table
        The data; its columns must be exactly the domain's (in any order).
    domain : Domain
        The public domain of the table.
    warn : bool
        Emit an :class:`OutOfRangeWarning` when values fall outside the domain (the counts are
        in ``Encoded.out_of_range`` either way). A domain derived from the data always emits a
        :class:`~cardiobox.synth.domain.DerivedDomainWarning`.

    Returns
    -------
    Encoded
        Codes in domain column order.

    Raises
    ------
    DomainError
        Naming the column for a table column missing from the domain, a domain column missing
        from the table, or a column whose Arrow type cannot hold the domain's values.
    """
    if domain.derived_from_data:  # the moment the drafted bounds would reach a model
        warnings.warn(
            DerivedDomainWarning(
                f"encoding with domain {domain.name!r}: {DERIVED_NOTE}", domain.name
            ),
            stacklevel=2,
        )
    names = table.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DomainError(f"the table repeats the columns {repeated}", rule="domain-columns")
    absent = [n for n in domain.names if n not in names]
    unknown = [n for n in names if n not in set(domain.names)]
    if absent or unknown:
        parts = []
        if unknown:
            parts.append(f"table columns not in domain {domain.name!r}: {unknown}")
        if absent:
            parts.append(f"domain columns not in the table: {absent}")
        raise DomainError("; ".join(parts), rule="domain-columns")
    # column-major: each column's codes contiguous (written once, read per marginal)
    codes = np.empty((len(domain.columns), table.num_rows), dtype=np.int64).T
    oor: dict[str, int] = {}
    missing: dict[str, int] = {}
    for j, col in enumerate(domain.columns):
        c = _encode_column(table, col)
        codes[:, j] = c
        oor[col.name] = int(np.count_nonzero(c == col.out_of_range_code))
        missing[col.name] = int(np.count_nonzero(c == col.missing_code))
    out = Encoded(codes, domain.sizes(), domain.names, oor, missing)
    if warn and any(oor.values()):
        warnings.warn(OutOfRangeWarning("; ".join(out.report())), stacklevel=2)
    return out


# -- encoding -----------------------------------------------------------------------------


def _plain(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column without dictionary encoding."""
    if pa.types.is_dictionary(arr.type):
        return arr.cast(arr.type.value_type)
    return arr


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _type_error(col: ColumnDomain, t: pa.DataType, hint: str = "") -> DomainError:
    return DomainError(
        f"column {col.name!r} is {t} in the table, which cannot hold the values of a "
        f"{col.kind} domain column{hint}",
        rule="domain-type",
    )


def _floats(arr: pa.ChunkedArray) -> tuple[FloatArray, BoolArray]:
    """(values with NaN where missing, missing mask) of a numeric column."""
    f = pc.cast(arr, pa.float64(), safe=False)
    if f.null_count:
        f = pc.fill_null(f, np.nan)
    x = np.asarray(f.to_numpy(zero_copy_only=False), dtype=np.float64)
    return x, np.isnan(x)  # NULL (now NaN) and NaN alike


def _epoch_days(arr: pa.ChunkedArray, col: ColumnDomain, what: str) -> tuple[FloatArray, BoolArray]:
    """(calendar days since 1970-01-01, missing mask) of a date or timestamp column."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            arr = pc.cast(arr, pa.date32())
        except pa.ArrowInvalid as exc:
            raise DomainError(
                f"{what} {col.name!r}: strings that are not ISO dates (YYYY-MM-DD): {exc}",
                rule="domain-type",
            ) from exc
    elif pa.types.is_timestamp(t) or pa.types.is_date64(t):
        arr = pc.cast(arr, pa.date32())  # the calendar day (timestamps: their own clock)
    elif not pa.types.is_date32(t):
        raise _type_error(col, t, f" ({what} needs dates or timestamps)")
    return _floats(pc.cast(arr, pa.int32()))


def _bin_codes(col: ColumnDomain, x: FloatArray, null: BoolArray) -> IntArray:
    lo, hi = col.value_range()
    with np.errstate(invalid="ignore"):
        ok = ~null & (x >= lo) & (x <= hi)
        if col.whole:
            ok &= x == np.floor(x)
    edges = col.bin_edges()
    code = np.searchsorted(edges, x, side="right") - 1
    np.clip(code, 0, col.levels - 1, out=code)
    out = np.where(ok, code, col.out_of_range_code)
    out[null] = col.missing_code
    return out.astype(np.int64, copy=False)


def _encode_column(table: pa.Table, col: ColumnDomain) -> IntArray:
    arr = _plain(table.column(col.name))
    t = arr.type
    if col.kind in ("numeric", "integer"):
        if not _is_number(t):
            raise _type_error(col, t)
        x, null = _floats(arr)
        return _bin_codes(col, x, null)
    if col.kind == "date":
        day, null = _epoch_days(arr, col, "date column")
        if col.origin is not None:
            x = day - float((col.origin - _EPOCH).days)
            return _bin_codes(col, x, null)
        assert col.index is not None
        base, base_null = _epoch_days(_plain(table.column(col.index)), col, "index of date column")
        codes = _bin_codes(col, day - base, null)
        codes[~null & base_null] = col.out_of_range_code  # a date with no index to count from
        return codes
    if col.kind == "boolean":
        if pa.types.is_boolean(t):
            x, null = _floats(pc.cast(arr, pa.int8()))
        elif _is_number(t):
            x, null = _floats(arr)
        else:
            raise _type_error(col, t, " (booleans need true/false or 0/1)")
        out = np.where(x == 0.0, 0, np.where(x == 1.0, 1, col.out_of_range_code))
        out[null] = col.missing_code
        return out.astype(np.int64, copy=False)
    return _categorical_codes(arr, col)


def _categorical_codes(arr: pa.ChunkedArray, col: ColumnDomain) -> IntArray:
    t = arr.type
    cats = col.categories or []
    if col.string_categories:
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise _type_error(
                col, t, " (its categories are strings; a string '1' never matches a number 1)"
            )
        values = pc.cast(arr, pa.string())
        value_set = pa.array(cats, pa.string())
        null = np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)
    else:
        if not _is_number(t):
            hint = (
                " (its categories are numbers; a string '1' never matches a number 1)"
                if not pa.types.is_boolean(t)
                else " (use kind: boolean for true/false)"
            )
            raise _type_error(col, t, hint)
        values = pc.cast(arr, pa.float64(), safe=False)
        value_set = pa.array([float(c) for c in cats], pa.float64())
        null = np.asarray(
            pc.is_null(values, nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool
        )
    found = pc.index_in(values, value_set=value_set)
    idx = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    out = np.where(idx >= 0, idx, col.out_of_range_code)
    out[null] = col.missing_code
    return out


# -- decoding -----------------------------------------------------------------------------


def decode(codes: npt.ArrayLike, domain: Domain, rng: np.random.Generator) -> pa.Table:
    """Decode codes to a table of the domain's columns.

    Parameters
    ----------
    codes : array of int, shape (rows, columns)
        Codes in domain column order (e.g. sampled from a fitted model).
    domain : Domain
        The domain the codes belong to.
    rng : numpy.random.Generator
        Source of randomness for the values inside bins.

    Returns
    -------
    pyarrow.Table
        Columns in domain order with their Arrow types (:meth:`Domain.arrow_type`).

    Raises
    ------
    DomainError
        When the matrix does not have one column per domain column, or a code is outside
        ``0 .. size-1`` (naming the column).
    """
    m = np.asarray(codes)
    if m.ndim != 2 or m.shape[1] != len(domain.columns):
        raise DomainError(
            f"codes must be a (rows, {len(domain.columns)}) matrix for domain "
            f"{domain.name!r}, not shape {m.shape}",
            rule="domain-codes",
        )
    if m.size and not np.issubdtype(m.dtype, np.integer):
        raise DomainError(f"codes must be integers, not {m.dtype}", rule="domain-codes")
    columns: list[IntArray] = []
    for j, col in enumerate(domain.columns):
        c = m[:, j].astype(np.int64, copy=False)
        if c.size and (c.min() < 0 or c.max() >= col.size):
            bad = int(c[(c < 0) | (c >= col.size)][0])
            raise DomainError(
                f"column {col.name!r}: code {bad} is outside 0..{col.size - 1}",
                rule="domain-codes",
            )
        columns.append(c)
    _repair_durations(columns, domain, rng)
    arrays: dict[str, pa.Array] = {}
    epochs: dict[str, tuple[IntArray, BoolArray, str]] = {}  # decoded dates, for their users
    for j in domain.decode_order():
        col = domain.columns[j]
        out_type = domain.arrow_type(col.name)
        if col.kind == "date":
            unit = _date_unit(out_type)
            value, valid = _decode_date(col, columns[j], rng, unit, epochs)
            epochs[col.name] = (value, valid, unit)
            arrays[col.name] = _date_array(value, valid, out_type)
        else:
            arrays[col.name] = _decode_plain(col, columns[j], rng).cast(out_type)
    return pa.table({c.name: arrays[c.name] for c in domain.columns})


def _repair_durations(columns: list[IntArray], domain: Domain, rng: np.random.Generator) -> None:
    """Give a duration to every row whose event flag is known (on a copy of its codes)."""
    for j, col in enumerate(domain.columns):
        if col.event is None:
            continue
        flag = domain.column(col.event)
        ev = columns[domain.position(col.event)]
        du = columns[j] = columns[j].copy()  # never write into the caller's matrix
        has = du < col.levels
        for level in range(flag.levels):
            need = (ev == level) & ~has
            n = int(np.count_nonzero(need))
            if not n:
                continue
            donors = du[(ev == level) & has]
            if donors.size == 0:
                donors = du[has]
            du[need] = (
                donors[rng.integers(donors.size, size=n)]
                if donors.size
                else rng.integers(col.levels, size=n)
            )


def _sample_bins(col: ColumnDomain, c: IntArray, rng: np.random.Generator) -> FloatArray:
    """A value inside bin ``c`` of each row (codes beyond the bins give bin 0; masked later)."""
    ci = np.where(c < col.levels, c, 0)
    u = rng.random(ci.size)
    edges = col.bin_edges()
    if col.whole or col.decimals is not None:
        a, b = col.lattice()
        lo, hi = a[ci], b[ci]
        points = lo + np.floor(u * (hi - lo + 1)).astype(np.int64)
        points = np.minimum(points, hi)
        scale = 10.0 ** (col.decimals or 0)
        grid = points / scale
        if col.whole:
            return grid.astype(np.float64)
        # a bin too narrow for the grid: a value anywhere inside it
        free = edges[ci] + u * (edges[ci + 1] - edges[ci])
        out: FloatArray = np.where(hi >= lo, grid, free)
        return out
    values: FloatArray = edges[ci] + u * (edges[ci + 1] - edges[ci])
    return values


def _decode_plain(col: ColumnDomain, c: IntArray, rng: np.random.Generator) -> pa.Array:
    valid = c < col.levels
    if col.kind == "boolean":
        return pa.array(c == 1, mask=~valid)
    if col.kind == "categorical":
        cats = col.categories or []
        if col.string_categories:
            values = pa.array(cats, pa.string())
        elif all(isinstance(x, int) for x in cats):
            values = pa.array(cats, pa.int64())
        else:
            values = pa.array([float(x) for x in cats], pa.float64())
        return pc.take(values, pa.array(np.where(valid, c, 0), mask=~valid))
    x = _sample_bins(col, c, rng)
    if col.kind == "integer":
        return pa.array(x.astype(np.int64), mask=~valid)
    return pa.array(x, mask=~valid)


def _date_unit(t: pa.DataType) -> str:
    return "date32" if pa.types.is_date32(t) else f"timestamp[{t.unit}]"


def _rescale(values: IntArray, from_unit: str, to_unit: str) -> IntArray:
    """Epoch values from one date unit to another (floor to the coarser unit)."""
    a, b = PER_DAY[from_unit], PER_DAY[to_unit]
    return values * (b // a) if b >= a else np.floor_divide(values, a // b)


def _decode_date(
    col: ColumnDomain,
    c: IntArray,
    rng: np.random.Generator,
    unit: str,
    epochs: dict[str, tuple[IntArray, BoolArray, str]],
) -> tuple[IntArray, BoolArray]:
    """(epoch values in ``unit``, valid mask) of a date column."""
    days = _sample_bins(col, c, rng).astype(np.int64)
    valid = c < col.levels
    if col.origin is not None:
        base = np.full(c.size, (col.origin - _EPOCH).days, dtype=np.int64)
        base = _rescale(base, "date32", unit)
    else:
        assert col.index is not None
        idx_value, idx_valid, idx_unit = epochs[col.index]
        base = _rescale(idx_value, idx_unit, unit)
        valid = valid & idx_valid
    return base + days * PER_DAY[unit], valid


def _date_array(value: IntArray, valid: BoolArray, out_type: pa.DataType) -> pa.Array:
    if pa.types.is_date32(out_type):
        return pa.array(value.astype(np.int32), type=pa.date32(), mask=~valid)
    return pa.array(value, type=out_type, mask=~valid)
