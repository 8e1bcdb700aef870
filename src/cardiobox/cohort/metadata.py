"""The metadata JSON of an analysis table: every column described, aggregates only.

For each column: name, Arrow type, unit, description, the data-model variable it reads, its
value set, missing count and share, and a summary: for numbers count, mean, sd and the
quartiles; for categories and flags the count of each value. A count below ``min_cell`` is
not published (``"<10"``), and a numeric summary over fewer than ``min_cell`` values is
left out, so the metadata can leave the site.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cardiobox import __version__
from cardiobox.cohort.compile import Column

KEYS = {
    "row_id": "row number of the cohort (stable order: patient, index time)",
    "patient_id": "pseudonymised patient id of the site",
    "encounter_id": "index encounter (NULL when the index is not an encounter)",
    "index_time": "index time (local time of the site)",
}


def _count(n: int, min_cell: int) -> int | str:
    return n if n == 0 or n >= min_cell else f"<{min_cell}"


def _floats(valid: pa.ChunkedArray) -> np.ndarray:
    """Numbers without nulls as float64, read from the Arrow buffer.

    (``to_numpy`` would import pandas, half a second of every extraction in a new process.)
    """
    arr = pc.cast(valid.combine_chunks(), pa.float64())
    if not len(arr):
        return np.empty(0)
    return np.frombuffer(arr.buffers()[1], dtype=np.float64, count=len(arr), offset=arr.offset * 8)


def _summary(col: pa.ChunkedArray, min_cell: int) -> dict[str, Any]:
    t = col.type
    valid = col.drop_null()
    n = len(valid)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        if n < min_cell:
            return {"n": _count(n, min_cell), "suppressed": True}
        x = _floats(valid)
        distinct = np.unique(x)
        if len(distinct) <= 12:  # a coded number: counts per value
            return {
                "n": n,
                "counts": {
                    repr(float(v)).removesuffix(".0"): _count(int((x == v).sum()), min_cell)
                    for v in distinct
                },
            }
        q = np.quantile(x, [0.25, 0.5, 0.75])
        return {
            "n": n,
            "mean": round(float(x.mean()), 4),
            "sd": round(float(x.std(ddof=1)), 4) if n > 1 else None,
            "p25": round(float(q[0]), 4),
            "median": round(float(q[1]), 4),
            "p75": round(float(q[2]), 4),
        }
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        counts = pc.value_counts(valid).to_pylist()
        return {
            "n": _count(n, min_cell),
            "counts": {
                str(c["values"]): _count(int(c["counts"]), min_cell)
                for c in sorted(counts, key=lambda c: str(c["values"]))
            },
        }
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        # Dates are identifying: only the months covered, with counts.
        months = pc.strftime(valid, format="%Y-%m") if n else pa.array([], pa.string())
        counts = pc.value_counts(months).to_pylist() if n else []
        return {
            "n": _count(n, min_cell),
            "months": {
                str(c["values"]): _count(int(c["counts"]), min_cell)
                for c in sorted(counts, key=lambda c: str(c["values"]))
            },
        }
    return {"n": _count(n, min_cell)}


def describe_table(
    table: pa.Table, columns: list[Column], min_cell: int = 10, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata dict of an analysis table.

    Parameters
    ----------
    table : pyarrow.Table
        The analysis table.
    columns : list of Column
        What the compiler knows of each feature column.
    min_cell : int
        Smallest count published.
    extra : dict, optional
        Added at the top level (cohort, feature set, attrition...).
    """
    known = {c.name: c for c in columns}
    rows = table.num_rows
    out_cols = []
    for name in table.column_names:
        col = table.column(name)
        info = known.get(name)
        missing = col.null_count
        shown = _count(missing, min_cell)
        entry: dict[str, Any] = {
            "name": name,
            "type": str(col.type),
            "kind": info.kind if info else "key",
            "description": info.description if info else KEYS.get(name, ""),
            "unit": info.unit if info else None,
            "variable": info.variable if info else None,
            "value_set": info.value_set if info else None,
            "missing": shown,
            # the share of a suppressed count would give the count back (share x rows)
            "missing_share": round(missing / rows, 4) if rows and shown == missing else None,
        }
        if info is not None:  # keys (ids, times) are not summarised
            summary = _summary(col, min_cell)
            if shown != missing and isinstance(summary.get("n"), int):
                # n next to the row count would give the suppressed missing count back
                summary["n"] = f">{rows - min_cell}"
            entry["summary"] = summary
        out_cols.append(entry)
    extra = dict(extra or {})
    if "attrition" in extra:  # small counts of the attrition table are suppressed too
        extra["attrition"] = [
            {**a, "rows": _count(a["rows"], min_cell), "patients": _count(a["patients"], min_cell)}
            for a in extra["attrition"]
        ]
    return {
        "cardiobox_version": __version__,
        "rows": rows,
        "min_cell": min_cell,
        **extra,
        "columns": out_cols,
    }
