"""A draft domain read from a table: a starting point to review, NOT private.

``cardiobox synth domain TABLE --out DOMAIN.yaml`` calls :func:`draft_domain`. The draft takes
each column's minimum and maximum (rounded outward to round numbers) and every category it
sees, so it discloses those values: it is marked ``derived_from_data: true``, carries a note
saying so, starts its YAML with a warning, and warns each time it is loaded. Replace its
bounds and categories with public ones (the data dictionary, published documentation) before
fitting a synthesizer.

Rules per Arrow type:

* booleans → ``boolean``;
* numbers holding at most ``max_codes`` distinct whole values → ``categorical`` of those values
  (coded columns such as ``sex`` 0/1 or ``cp`` 1-4), with the column's own type;
* other integers → ``integer``, other numbers → ``numeric``, bounds rounded outward;
* strings with at most ``max_categories`` distinct values → ``categorical``; more are refused
  (identifiers or free text have no place in a synthetic table);
* dates and timestamps → ``date`` counted from 1 January of the first year seen.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cardiobox.synth.domain import DEFAULT_BINS, DERIVED_NOTE, Domain, DomainError


def nice_bounds(low: float, high: float, whole: bool = False) -> tuple[float, float]:
    """``[low, high]`` widened to multiples of a round step (a power of ten of the span).

    >>> nice_bounds(29, 77)
    (20.0, 80.0)
    >>> nice_bounds(-2.6, 6.2)
    (-3.0, 7.0)
    """
    span = high - low if high > low else (abs(low) or 1.0)  # one value: a step of its size
    step = 10.0 ** math.floor(math.log10(span))
    if whole:
        step = max(step, 1.0)
    digits = max(0, -math.floor(math.log10(step)))
    lo = round(math.floor(low / step) * step, digits)
    hi = round(math.ceil(high / step) * step, digits)
    if hi <= lo:
        hi = round(lo + step, digits)
    return lo, hi


def _dtype(t: pa.DataType) -> str | None:
    names = {
        pa.int8(): "int8",
        pa.int16(): "int16",
        pa.int32(): "int32",
        pa.int64(): "int64",
        pa.float32(): "float32",
        pa.float64(): "float64",
        pa.large_string(): "large_string",
    }
    return names.get(t)


def _number_column(name: str, arr: pa.ChunkedArray, bins: int, max_codes: int) -> dict[str, Any]:
    x = np.asarray(
        pc.drop_null(pc.cast(arr, pa.float64(), safe=False)).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise DomainError(
            f"column {name!r} holds no values to draft a domain from; give it by hand or drop it",
            rule="domain-draft",
        )
    values = np.unique(x)
    whole = bool(np.all(values == np.floor(values)))
    dtype = _dtype(arr.type)
    if whole and values.size <= max_codes:
        cats = [int(v) for v in values]
        out: dict[str, Any] = {"kind": "categorical", "categories": cats}
        if dtype is not None and dtype != "int64":
            out["dtype"] = dtype
        return out
    integer = pa.types.is_integer(arr.type)
    lo, hi = nice_bounds(float(values[0]), float(values[-1]), whole=integer)
    if integer:
        return {"kind": "integer", "bounds": [int(lo), int(hi)], "bins": bins}
    bounds = [int(v) if float(v).is_integer() else v for v in (lo, hi)]
    out = {"kind": "numeric", "bounds": bounds, "bins": bins}
    if dtype == "float32":
        out["dtype"] = dtype
    return out


def _date_column(name: str, arr: pa.ChunkedArray, bins: int) -> dict[str, Any]:
    t = arr.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        raise DomainError(
            f"column {name!r} has time zone {t.tz}; convert it to local time first",
            rule="domain-draft",
        )
    days = pc.drop_null(pc.cast(pc.cast(arr, pa.date32()), pa.int32()))
    if len(days) == 0:
        raise DomainError(
            f"column {name!r} holds no dates to draft a domain from; give it by hand or drop it",
            rule="domain-draft",
        )
    first = date.fromordinal(date(1970, 1, 1).toordinal() + int(pc.min(days).as_py()))
    last = date.fromordinal(date(1970, 1, 1).toordinal() + int(pc.max(days).as_py()))
    origin = date(first.year, 1, 1)
    end = (date(last.year, 12, 31) - origin).days
    out: dict[str, Any] = {"kind": "date", "origin": origin.isoformat(), "bounds": [0, end]}
    out["bins"] = bins
    if pa.types.is_timestamp(t):
        out["dtype"] = f"timestamp[{t.unit}]"
    return out


def _string_column(name: str, arr: pa.ChunkedArray, max_categories: int) -> dict[str, Any]:
    values = pc.drop_null(pc.unique(pc.cast(arr, pa.string())))
    if len(values) == 0:
        raise DomainError(
            f"column {name!r} holds no values to draft a domain from; give it by hand or drop it",
            rule="domain-draft",
        )
    if len(values) > max_categories:
        raise DomainError(
            f"column {name!r} has more than {max_categories} distinct strings (an identifier or "
            "free text?); drop it from the table or give its categories by hand",
            rule="domain-draft",
        )
    out: dict[str, Any] = {"kind": "categorical", "categories": sorted(values.to_pylist())}
    if pa.types.is_large_string(arr.type):
        out["dtype"] = "large_string"
    return out


def draft_domain(
    table: pa.Table,
    *,
    bins: int = DEFAULT_BINS,
    max_categories: int = 50,
    max_codes: int = 10,
    name: str = "draft",
) -> Domain:
    """Draft a domain from a table's values (NOT private: review it before use).

    Parameters
    ----------
    table : pyarrow.Table
        The data.
    bins : int
        Bins of numeric, integer and date columns (default 20).
    max_categories : int
        Most distinct strings a categorical column may have (default 50).
    max_codes : int
        Numeric columns with at most this many distinct whole values become categorical
        (default 10).
    name : str
        Name of the domain.

    Returns
    -------
    Domain
        Marked ``derived_from_data: true`` with a note saying why it is not private (a
        :class:`~cardiobox.synth.domain.DerivedDomainWarning` is emitted).

    Raises
    ------
    DomainError
        Naming the column, for an empty table, a column with no values, too many distinct
        strings, or a type with no domain kind.
    """
    if table.num_rows == 0:
        raise DomainError("the table is empty: nothing to draft a domain from", rule="domain-draft")
    columns: list[dict[str, Any]] = []
    for field in table.schema:
        arr = table.column(field.name)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        t = arr.type
        if pa.types.is_boolean(t):
            col: dict[str, Any] = {"kind": "boolean"}
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            col = _number_column(field.name, arr, bins, max_codes)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            col = _string_column(field.name, arr, max_categories)
        elif pa.types.is_date(t) or pa.types.is_timestamp(t):
            col = _date_column(field.name, arr, bins)
        else:
            raise DomainError(
                f"column {field.name!r} is {t}, which has no domain kind; drop or convert it",
                rule="domain-draft",
            )
        columns.append({"name": field.name, **col})
    return Domain.model_validate(
        {
            "name": name,
            "description": "drafted from a table: review before use",
            "derived_from_data": True,
            "note": DERIVED_NOTE,
            "columns": columns,
        }
    )
