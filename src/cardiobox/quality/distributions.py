"""Distributions of the quantity variables present in a store.

For every quantity variable with values in its canonical unit: count, mean, standard
deviation, minimum, 5/25/50/75/95th percentiles, maximum, and a histogram. The bins are
public metadata derived from the dictionary's plausible range, never from the data, so that
sites' histograms line up: about 100 equal bins with a round width, or, for skewed variables
listed under ``log_bins`` in checks.yaml, 10 bins per decade over the top six decades of the
range (with one bin for the values below them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cardiobox.cdm.dictionary import Variable
from cardiobox.duck import sql_str
from cardiobox.quality.tables import Workspace

#: Percentiles reported, as fractions.
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
_TARGET_BINS = 100
_PER_DECADE = 10
_DECADES = 6


@dataclass(frozen=True)
class Bins:
    """Histogram bins of one variable.

    Parameters
    ----------
    variable : str
        Variable id.
    scale : str
        ``linear`` or ``log``.
    lo, hi : float
        The dictionary's plausible range; values outside go to ``below`` / ``above``.
    edges : tuple of float
        Bin edges, ``len(edges) == n + 1``.
    start, step : float
        Linear bins: first edge and width.
    floor : float
        Log bins: the lowest log edge (bin 0 holds ``[lo, floor)``, when ``lo < floor``).
    """

    variable: str
    scale: str
    lo: float
    hi: float
    edges: tuple[float, ...]
    start: float = 0.0
    step: float = 1.0
    floor: float = 1.0

    @property
    def n(self) -> int:
        """Number of bins."""
        return len(self.edges) - 1


def nice_step(width: float, target: int = _TARGET_BINS) -> float:
    """A round bin width (1, 2, 2.5 or 5 times a power of ten) giving about ``target`` bins."""
    raw = width / target if width > 0 else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10.0 * power


def bins_for(v: Variable, log: bool) -> Bins | None:
    """The histogram bins of a quantity variable (``None`` when it has no range).

    Parameters
    ----------
    v : Variable
        A quantity variable of the dictionary.
    log : bool
        Logarithmic bins (for skewed, positive values).
    """
    if v.range is None:
        return None
    lo, hi = v.range
    if log and hi > 0:
        floor = max(lo, 10.0 ** (math.ceil(math.log10(hi)) - _DECADES))
        if floor <= 0:
            floor = 10.0 ** (math.ceil(math.log10(hi)) - _DECADES)
        n_log = max(1, math.ceil(round(math.log10(hi / floor) * _PER_DECADE, 9)))
        log_edges = [round(floor * 10 ** (k / _PER_DECADE), 12) for k in range(n_log + 1)]
        below = [lo] if lo < floor else []
        return Bins(v.id, "log", lo, hi, tuple(below + log_edges), floor=floor)
    step = nice_step(hi - lo)
    start = math.floor(lo / step + 1e-9) * step
    n = max(1, math.ceil((hi - start) / step - 1e-9))
    linear = tuple(round(start + k * step, 12) for k in range(n + 1))
    return Bins(v.id, "linear", lo, hi, linear, start=start, step=step)


def _index_sql(b: Bins) -> str:
    # Bin index of `qty`: -1 below the range, n above it.
    if b.scale == "linear":
        inner = f"least(floor((qty - {b.start!r}) / {b.step!r} + 1e-9)::INTEGER, {b.n - 1})"
    else:
        offset = 1 if b.lo < b.floor else 0
        inner = (
            f"CASE WHEN qty < {b.floor!r} THEN 0 ELSE {offset} + least(floor(log10(qty / "
            f"{b.floor!r}) * {_PER_DECADE} + 1e-9)::INTEGER, {b.n - 1 - offset}) END"
        )
    return f"CASE WHEN qty < {b.lo!r} THEN -1 WHEN qty > {b.hi!r} THEN {b.n} ELSE {inner} END"


def _stats_number(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return None if math.isnan(f) else round(f, 6)


def measure_distributions(ws: Workspace, log_bins: frozenset[str]) -> list[dict[str, Any]]:
    """Summary statistics and histograms of the quantity variables present in a store.

    Parameters
    ----------
    ws : Workspace
        The store's workspace.
    log_bins : frozenset of str
        Variables with logarithmic bins.

    Returns
    -------
    list of dict
        One entry per variable with values: ``variable``, ``name``, ``unit``, ``n``,
        ``mean``, ``sd``, ``min``, ``p05``, ``p25``, ``median``, ``p75``, ``p95``, ``max``,
        ``range`` and ``histogram`` (``scale``, ``edges``, ``counts``, ``below``,
        ``above``; edges trimmed to the bins from the first to the last non-empty one).
    """
    ws.ensure(["q_measure", "q_vars"])
    con = ws.con
    con.execute(
        """CREATE OR REPLACE TEMP TABLE q_values AS
        SELECT m.variable, m.qty FROM q_measure m JOIN q_vars v USING (variable)
        WHERE v.value_type = 'quantity' AND m.qty IS NOT NULL AND isfinite(m.qty)
            AND coalesce(m.unit_code, m.unit_text) = v.unit"""
    )
    q = ", ".join(repr(x) for x in QUANTILES)
    stats = con.execute(
        f"""SELECT variable, count(*), avg(qty), stddev_samp(qty), min(qty), max(qty),
            quantile_cont(qty, [{q}]) FROM q_values GROUP BY variable ORDER BY variable"""
    ).fetchall()
    present = {str(r[0]) for r in stats}
    bins = {
        v.id: b
        for v in ws.dictionary
        if v.id in present and (b := bins_for(v, v.id in log_bins)) is not None
    }
    counts: dict[str, dict[int, int]] = {}
    if bins:
        cases = "\n".join(
            f"WHEN {sql_str(var)} THEN {_index_sql(b)}" for var, b in sorted(bins.items())
        )
        for var, idx, n in con.execute(
            f"SELECT variable, CASE variable {cases} END AS idx, count(*) FROM q_values "
            f"WHERE variable IN ({', '.join(sql_str(v) for v in bins)}) GROUP BY ALL"
        ).fetchall():
            counts.setdefault(str(var), {})[int(idx)] = int(n)
    out = []
    for var, n, mean, sd, mn, mx, quant in stats:
        v = ws.dictionary[str(var)]
        entry: dict[str, Any] = {
            "variable": v.id,
            "name": v.name(),
            "unit": v.unit,
            "n": int(n),
            "mean": _stats_number(mean),
            "sd": _stats_number(sd),
            "min": _stats_number(mn),
            "p05": _stats_number(quant[0]),
            "p25": _stats_number(quant[1]),
            "median": _stats_number(quant[2]),
            "p75": _stats_number(quant[3]),
            "p95": _stats_number(quant[4]),
            "max": _stats_number(mx),
            "range": list(v.range) if v.range else None,
            "histogram": _histogram(bins.get(v.id), counts.get(v.id, {})),
        }
        out.append(entry)
    return out


def _histogram(b: Bins | None, counts: dict[int, int]) -> dict[str, Any] | None:
    if b is None:
        return None
    inside = [i for i in range(b.n) if counts.get(i)]
    first, last = (inside[0], inside[-1]) if inside else (0, -1)
    return {
        "scale": b.scale,
        "edges": list(b.edges[first : last + 2]) if inside else [],
        "counts": [counts.get(i, 0) for i in range(first, last + 1)],
        "below": counts.get(-1, 0),
        "above": counts.get(b.n, 0),
    }
