"""Aggregates of a store that the catalogue needs beyond the quality package's measures.

Completeness and quantity distributions come from :mod:`cardiobox.quality` (the same
relations, the same numbers as the quality report); this module adds, as SQL over the same
workspace, the counts of coded and boolean answers, the patients' typical ages, the months
covered, the code systems in use, and coarse histograms regrouped from the quality
package's fine ones. Nothing here is suppressed yet: :mod:`cardiobox.catalogue.build`
applies the site's minimum cell count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cardiobox.cdm.dictionary import Variable
from cardiobox.quality.distributions import Bins, bins_for
from cardiobox.quality.tables import Workspace

#: Fine quality bins merged into one catalogue bin (10 linear bins, or one decade).
MERGE = 10
#: Data-model variables holding a patient's age, in order of preference.
AGE_VARIABLES = ("age_at_index", "recorded_age")


@dataclass(frozen=True)
class CoarseBin:
    """A catalogue histogram bin: ``lower <= value < upper`` (``None``: below/above range)."""

    lower: float | None
    upper: float | None
    count: int


def answer_counts(ws: Workspace) -> dict[str, list[tuple[str | None, str, int]]]:
    """Values per coded answer and per boolean value, by variable.

    Returns
    -------
    dict
        Variable id → ``[(system, code, values)]``; booleans as ``(None, "true"/"false", n)``.
    """
    ws.ensure(["q_coded_values", "q_measure", "q_vars"])
    out: dict[str, list[tuple[str | None, str, int]]] = {}
    rows = ws.con.execute(
        """SELECT variable, c.system, c.code, count(*) FROM (
            SELECT variable, unnest(codings) AS c FROM q_coded_values
        ) WHERE c.code IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT m.variable, NULL, lower(m.value_boolean::VARCHAR), count(*)
        FROM q_measure m JOIN q_vars v USING (variable)
        WHERE v.value_type = 'boolean' AND m.value_boolean IS NOT NULL AND NOT m.derived
        GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    for var, system, code, n in rows:
        out.setdefault(str(var), []).append((system, str(code), int(n)))
    return out


def typical_age_percentiles(ws: Workspace) -> tuple[int, float, float] | None:
    """Patients with an age, the 5th percentile of their first age and the 95th of their last.

    Returns ``None`` when no patient has an age.
    """
    ws.ensure(["q_measure"])
    names = ", ".join(f"'{v}'" for v in AGE_VARIABLES)
    row = ws.con.execute(
        f"""SELECT count(*), quantile_cont(first_age, 0.05), quantile_cont(last_age, 0.95)
        FROM (
            SELECT patient_id, min(qty) AS first_age, max(qty) AS last_age FROM q_measure
            WHERE variable IN ({names}) AND qty IS NOT NULL AND isfinite(qty) AND qty >= 0
            GROUP BY patient_id
        )"""
    ).fetchone()
    if row is None or not row[0]:
        return None
    return int(row[0]), float(row[1]), float(row[2])


def months_covered(ws: Workspace) -> tuple[str, str] | None:
    """The first and last month (``YYYY-MM``) with clinical activity of a stored patient."""
    ws.ensure(["q_events", "v_patient"])
    row = ws.con.execute(
        r"""SELECT min(left(date, 7)), max(left(date, 7)) FROM q_events
        WHERE activity AND regexp_matches(date, '^\d{4}-(0[1-9]|1[0-2])')
            AND patient_id IN (SELECT id FROM v_patient)"""
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return str(row[0]), str(row[1])


_CODING_PATHS = (
    "$.code.coding[*].system",
    "$.medication.concept.coding[*].system",
    "$.valueCodeableConcept.coding[*].system",
    "$.component[*].code.coding[*].system",
)


def systems_in_use(ws: Workspace) -> list[str]:
    """Code systems of the codings the store's resources carry (sorted)."""
    # One path at a time: DuckDB takes a wildcard path only alone.
    union = "\nUNION ALL\n".join(
        f"SELECT unnest(json_extract_string(resource, '{p}')) AS s FROM resources"
        for p in _CODING_PATHS
    )
    rows = ws.con.execute(
        f"SELECT DISTINCT s FROM ({union}) WHERE s IS NOT NULL ORDER BY s"
    ).fetchall()
    return [str(r[0]) for r in rows]


def store_counts(ws: Workspace) -> tuple[int, int]:
    """``(records, patients)``: stored resources, and stored Patients."""
    ws.ensure(["v_patient"])
    row = ws.con.execute(
        "SELECT (SELECT count(*) FROM resources), (SELECT count(*) FROM v_patient)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _group(b: Bins, fine: int) -> tuple[int, int]:
    """The fine-bin index range ``[start, stop)`` of the coarse bin holding bin ``fine``.

    Linear coarse bins start at multiples of ``MERGE * step`` (round edges whatever the
    range's start); log coarse bins are decades.
    """
    if b.scale == "linear":
        k0 = round(b.start / b.step)  # the first edge, in steps (start is a multiple of step)
        j = (k0 + fine) // MERGE
        return max(0, j * MERGE - k0), min(b.n, (j + 1) * MERGE - k0)
    offset = 1 if b.lo < b.floor else 0
    if fine < offset:  # the log scale's bin below its lowest decade stays alone
        return 0, 1
    start = offset + (fine - offset) // MERGE * MERGE
    return start, min(start + MERGE, b.n)


def coarse_histogram(v: Variable, log: bool, histogram: dict[str, Any] | None) -> list[CoarseBin]:
    """Merge a quality histogram's fine bins into about ten public bins.

    Linear bins are merged ten by ten (their edges stay round numbers), log bins decade by
    decade; the values outside the plausible range keep their own bins.

    Parameters
    ----------
    v : Variable
        The quantity variable.
    log : bool
        Whether the quality package bins it logarithmically.
    histogram : dict, optional
        The ``histogram`` of a :func:`cardiobox.quality.distributions.measure_distributions`
        entry (edges trimmed to the non-empty bins).

    Returns
    -------
    list of CoarseBin
        From the first to the last non-empty bin; empty without a histogram.
    """
    b = bins_for(v, log)
    if b is None or histogram is None:
        return []
    counts: dict[tuple[int, int], int] = {}
    edges: list[float] = histogram["edges"]
    if edges:
        first = min(range(b.n + 1), key=lambda i: abs(b.edges[i] - edges[0]))
        for i, n in enumerate(histogram["counts"]):
            key = _group(b, first + i)
            counts[key] = counts.get(key, 0) + int(n)
    keys = sorted(counts)
    if keys:  # every coarse bin between the first and the last, empty ones included
        start, stop = keys[0][0], keys[-1][1]
        keys, i = [], start
        while i < stop:
            keys.append(_group(b, i))
            i = keys[-1][1]
    out = []
    if histogram["below"]:
        out.append(CoarseBin(None, b.lo, int(histogram["below"])))
    out += [CoarseBin(b.edges[s], b.edges[e], counts.get((s, e), 0)) for s, e in keys]
    if histogram["above"]:
        out.append(CoarseBin(b.hi, None, int(histogram["above"])))
    return out


def floor_to(x: float, step: int) -> int:
    """``x`` rounded down to a multiple of ``step``."""
    return int(math.floor(x / step) * step)


def ceil_to(x: float, step: int) -> int:
    """``x`` rounded up to a multiple of ``step``."""
    return int(math.ceil(x / step) * step)
