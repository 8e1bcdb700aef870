"""``describe``: count, mean, standard deviation, quantiles and histogram of numeric columns.

Quantiles come from histograms merged over the sites on PUBLIC bins: the request gives each
variable's bin edges (``bins``) or its range (``bounds`` with ``n_bins`` equal-width bins) —
from the data dictionary's plausible range, say — and never from the data, since bins drawn
from a site's values would release them. Values outside the bins are clipped into the end bins
and counted there.

Each site sends, per variable and by secure aggregation only: the number of values ``n``,
the number missing, Σ(x − c) and Σ(x − c)² about the centre ``c`` of the public range (for
numerical stability) and the histogram counts; in clear only its ``min_cell_count``. A site
with fewer than ``min_cell_count`` values of a variable refuses. The hub computes the mean,
the standard deviation (n − 1), quantiles by linear interpolation inside the bin holding the
target rank (n·q), and shows the histogram with bins below the largest declared minimum cell
count suppressed (and one more when a single suppressed bin could be recovered from ``n``).

With ``rho`` > 0 each site clips values to the range, splits ``rho`` equally over the five
quantities of each variable (n, missing, sum, sum of squares, histogram) and adds Gaussian
noise to each, with sensitivities under adding or removing one row: 1 for the counts and the
histogram, half the range width w for the centred sum and w² for the centred sum of squares.
The hub clips noisy counts at 0 and a noisy variance at 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import (
    Next,
    Result,
    RoundResult,
    SiteContext,
    SiteOutput,
    Task,
    TaskParams,
    register,
)
from cardiobox.federated.tasks.crosstab import (
    declared_min_cell,
    shown_counts,
    suppression_mask,
    table_lines,
)
from cardiobox.privacy.zcdp import gaussian_sigma

#: The released quantities of each variable, in the order of its ``moments`` vector, then
#: the histogram; under DP each gets an equal share of rho.
QUANTITIES = ("n", "missing", "sum", "sum_squares", "histogram")
#: The most bins one variable may have.
MAX_BINS = 10_000


class DescribeParams(TaskParams):
    """Parameters of ``describe``.

    Parameters
    ----------
    variables : list of str
        Number (or boolean) columns to describe.
    bins : dict of str to list of float, optional
        Public bin edges per variable (strictly increasing, at least two).
    bounds : dict of str to (float, float), optional
        Public range per variable, cut into ``n_bins`` equal-width bins.
    n_bins : int
        Bins of each range given by ``bounds`` (default 100).
    quantiles : list of float
        Probabilities in [0, 1] (default 0.25, 0.5, 0.75).

    Every variable needs its ``bins`` or its ``bounds`` (not both).
    """

    variables: list[str] = Field(min_length=1)
    bins: dict[str, list[float]] | None = None
    bounds: dict[str, tuple[float, float]] | None = None
    n_bins: int = Field(100, ge=1, le=MAX_BINS)
    quantiles: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75])

    @model_validator(mode="after")
    def _public_bins(self) -> DescribeParams:
        repeated = sorted({v for v in self.variables if self.variables.count(v) > 1})
        if repeated:
            raise ValueError(f"variables repeats {', '.join(map(repr, repeated))}")
        bins, bounds = self.bins or {}, self.bounds or {}
        for field, given in (("bins", bins), ("bounds", bounds)):
            extra = sorted(set(given) - set(self.variables))
            if extra:
                raise ValueError(
                    f"{field} given for {', '.join(map(repr, extra))}, not in variables"
                )
        both = sorted(set(bins) & set(bounds))
        if both:
            raise ValueError(f"give bins or bounds for {', '.join(map(repr, both))}, not both")
        missing = [v for v in self.variables if v not in bins and v not in bounds]
        if missing:
            names = ", ".join(map(repr, missing))
            raise ValueError(
                f"no public bins for {names}: give bins={{name: [edges]}} or "
                f"bounds={{name: [low, high]}} (with n_bins) for each variable, e.g. the data "
                "dictionary's plausible range; bins are never taken from the data"
            )
        for v, edges in bins.items():
            e = np.asarray(edges, dtype=np.float64)
            if e.size < 2 or e.size > MAX_BINS + 1:
                raise ValueError(f"bins of {v!r} need between 2 and {MAX_BINS + 1} edges")
            if not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
                raise ValueError(f"bins of {v!r} must be finite and strictly increasing")
        for v, (lo, hi) in bounds.items():
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"bounds of {v!r} must be finite with low < high, got {lo}, {hi}")
        bad = [q for q in self.quantiles if not 0 <= q <= 1]
        if bad:
            raise ValueError(f"quantiles must lie in [0, 1], got {bad}")
        return self

    def edges(self, variable: str) -> npt.NDArray[np.float64]:
        """The public bin edges of ``variable``."""
        if self.bins and variable in self.bins:
            return np.asarray(self.bins[variable], dtype=np.float64)
        assert self.bounds is not None  # the validator ensured one or the other
        lo, hi = self.bounds[variable]
        return np.linspace(lo, hi, self.n_bins + 1)


def noise_sigmas(edges: npt.NDArray[np.float64], rho: float) -> dict[str, float]:
    """σ of the noise on each released quantity of one variable, for its share ``rho``.

    Sensitivities under adding or removing one row whose value is clipped to the range:
    1 (n, missing, histogram), w (centred sum) and w² (centred sum of squares), with w half
    the range's width.
    """
    w = (edges[-1] - edges[0]) / 2.0
    sens = {"n": 1.0, "missing": 1.0, "sum": w, "sum_squares": w * w, "histogram": 1.0}
    return {q: gaussian_sigma(sens[q], rho) for q in QUANTITIES}


def histogram_quantiles(
    counts: npt.NDArray[np.float64], edges: npt.NDArray[np.float64], probs: list[float]
) -> list[float | None]:
    """Quantiles of grouped data: linear interpolation inside the bin holding rank n·q.

    The quantile q is the value at which the cumulative count, rising linearly across each
    bin, reaches n·q; for q = 0 it is the lower edge of the first non-empty bin. ``None`` for
    an empty histogram.
    """
    total = float(counts.sum())
    if total <= 0:
        return [None] * len(probs)
    cum = np.cumsum(counts)
    ranks = np.asarray(probs, dtype=np.float64) * total
    first = int(np.flatnonzero(counts > 0)[0])
    k = np.maximum(np.searchsorted(cum, ranks, side="left"), first)
    k = np.minimum(k, len(counts) - 1)
    before = np.where(k > 0, cum[k - 1], 0.0)
    width = np.where(counts[k] > 0, counts[k], 1.0)  # only a rank past the end lands on 0
    fraction = np.clip((ranks - before) / width, 0.0, 1.0)
    values = edges[k] + fraction * (edges[k + 1] - edges[k])
    return [float(v) for v in values]


class DescribeTask(Task[DescribeParams]):
    """Pooled descriptive statistics from secure sums and histograms on public bins."""

    name = "describe"
    params_model = DescribeParams
    uses_secure_sum = True
    max_rounds = 1

    def variables(self, params: DescribeParams) -> set[str]:
        """The described columns."""
        return set(params.variables)

    def site(
        self, table: SiteTable, params: DescribeParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Counts, centred moments and histogram counts per variable, to be summed."""
        x = table.numeric(params.variables, params.where, complete=False)
        secure: dict[str, npt.NDArray[np.float64]] = {}
        noisy = ctx.rho > 0
        share = ctx.rho / (len(QUANTITIES) * len(params.variables))
        for i, v in enumerate(params.variables):
            column = x[:, i]
            values = column[~np.isnan(column)]
            ctx.policy.check_cell(values.size, f"the number of values of {v!r}")
            edges = params.edges(v)
            lo, hi = edges[0], edges[-1]
            if noisy:
                values = np.clip(values, lo, hi)
            centred = values - (lo + hi) / 2.0
            moments = np.array(
                [values.size, column.size - values.size, centred.sum(), (centred**2).sum()]
            )
            bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
            hist = np.bincount(bins, minlength=edges.size - 1).astype(np.float64)
            if noisy:
                sig = noise_sigmas(edges, share)
                moments = moments + ctx.rng.normal(0.0, 1.0, 4) * np.array(
                    [sig[q] for q in QUANTITIES[:4]]
                )
                hist = hist + ctx.rng.normal(0.0, sig["histogram"], hist.size)
            secure[f"moments_{i}"] = moments
            secure[f"histogram_{i}"] = hist
        mechanism = "secure sums of counts, moments and histograms on public bins"
        if noisy:
            mechanism = (
                f"values clipped to the public range; Gaussian noise (rho={ctx.rho:g} split over "
                f"{len(QUANTITIES)} quantities × {len(params.variables)} variables); " + mechanism
            )
        return SiteOutput(
            values={"min_cell_count": ctx.policy.min_cell_count, "rho": ctx.rho},
            secure=secure,
            rho=ctx.rho,
            mechanism=mechanism,
        )

    def hub(
        self, params: DescribeParams, result: RoundResult, state: dict[str, Any]
    ) -> Next | Result:
        """Mean, sd, quantiles and the suppressed histogram of each variable."""
        min_cell = declared_min_cell(result.values)
        shares = [
            float(v.get("rho", 0.0) or 0.0) / (len(QUANTITIES) * len(params.variables))
            for v in result.values.values()
        ]
        noisy = any(s > 0 for s in shares)
        out: dict[str, Any] = {}
        for i, v in enumerate(params.variables):
            edges = params.edges(v)
            moments = result.sums[f"moments_{i}"]
            hist = result.sums[f"histogram_{i}"]
            noise_sd = None
            if noisy:
                hist = np.maximum(hist, 0.0)
                moments = np.concatenate([np.maximum(moments[:2], 0.0), moments[2:]])
                per_site = [noise_sigmas(edges, s) for s in shares if s > 0]
                noise_sd = {q: math.sqrt(sum(p[q] ** 2 for p in per_site)) for q in QUANTITIES}
            out[v] = self._variable(edges, moments, hist, params.quantiles, min_cell, noisy)
            out[v]["noise_sd"] = noise_sd
        return Result(
            {
                "variables": out,
                "quantiles": params.quantiles,
                "suppressed_below": min_cell,
                "noisy": noisy,
                "sites": result.sites,
                "sites_refused": result.refused,
                "sites_failed": result.failed,
            }
        )

    @staticmethod
    def _variable(
        edges: npt.NDArray[np.float64],
        moments: npt.NDArray[np.float64],
        hist: npt.NDArray[np.float64],
        quantiles: list[float],
        min_cell: int,
        noisy: bool,
    ) -> dict[str, Any]:
        n, missing, s1, s2 = (float(m) for m in moments)
        lo, hi = float(edges[0]), float(edges[-1])
        centre = (lo + hi) / 2.0
        mean = sd = None
        if n > 0:
            mean = centre + s1 / n
            if noisy:
                mean = min(max(mean, lo), hi)
        if n > 1:
            sd = math.sqrt(max((s2 - s1 * s1 / n) / (n - 1), 0.0))
        # The histogram and its total n form one line: a single hidden bin would be n minus
        # the others, so suppression_mask hides one more.
        line = np.append(hist, n)
        hidden = suppression_mask(line, min_cell, table_lines(1, line.size))
        shown = shown_counts(line, hidden)
        missing_shown = shown_counts(np.array([missing]), np.array([missing < min_cell]))[0]
        return {
            "n": shown[-1],
            "missing": missing_shown,
            "mean": mean,
            "sd": sd,
            "quantiles": {
                f"{q:g}": value
                for q, value in zip(
                    quantiles, histogram_quantiles(hist, edges, quantiles), strict=True
                )
            },
            "histogram": {"edges": edges.tolist(), "counts": shown[:-1]},
        }


register(DescribeTask())
