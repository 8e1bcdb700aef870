"""``km``: Kaplan–Meier survival curves and the log-rank test on a shared public time grid.

The request gives the grid t_0 < t_1 < … < t_m (``grid``, or ``step`` and ``max_time`` for
0, step, 2·step, … ≤ max_time); it is public and never taken from the data. Each site counts,
per group, the events and the censorings in each interval (t_{j-1}, t_j] (the first interval
is (−∞, t_0]; rows after t_m form a last bucket), and sends these counts by secure
aggregation only. Every row passing the filter lands in exactly one slot (a bucket of a group,
or ``missing`` for a missing duration, event or group, or ``other`` for a group level not in
the table), so the vector has L2 sensitivity 1 under adding or removing a row.

The hub sums the grid tables and computes, per group, the number at risk at t_j,
n_j = N − (removed in earlier intervals), the survival S(t_j) = Π_{i≤j} (1 − d_i/n_i), the
Greenwood variance Σ d_i / (n_i (n_i − d_i)) and lifelines' default log(−log) confidence
interval, the median (the first grid time with S ≤ 0.5), and the log-rank test across groups
from the same tables. With a grid holding every distinct duration (every integer day for
integer-day durations) this is exactly the Kaplan–Meier estimator; on a coarser grid it is the
estimator of data whose times are rounded up to the grid (events and censorings of one interval
are all counted at its end, censorings still at risk there).

Group levels are given (``levels``) or found as in ``crosstab``: round 1 asks each site for
its levels held by at least ``min_cell_count`` rows. A site with fewer than
``min_cell_count`` rows or events refuses. Counts shown (numbers at risk, n, events per group)
below the largest declared minimum cell count are ``None``. With ``rho`` > 0 each site adds
Gaussian noise (sensitivity 1) to its slot counts; the hub clips them at 0 and each interval's
events at the number at risk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator
from scipy.stats import chi2, norm

from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import (
    Next,
    Result,
    RoundResult,
    SiteContext,
    SiteOutput,
    Task,
    TaskError,
    TaskParams,
    register,
)
from cardiobox.federated.tasks.crosstab import (
    Level,
    check_levels,
    count_noise_sd,
    grid_codes,
    levels_release,
    noisy_counts_release,
    payload_levels,
    read_level_codes,
    running_min_cell,
    union_levels,
)

#: The most points a time grid may have.
MAX_GRID = 100_000
#: The most counts one site may send (groups × 2 × (grid times + 1)).
MAX_SLOTS = 2_000_000
#: The group label when the request names no group column.
ALL = "all"


class KMParams(TaskParams):
    """Parameters of ``km``.

    Parameters
    ----------
    duration : str
        Number column: time from the start of follow-up to the event or censoring (≥ 0).
    event : str
        Number or boolean column: 1 (true) for an event, 0 (false) for censoring.
    group : str, optional
        Categorical column (string, boolean or integer codes) whose levels get one curve each
        and are compared by the log-rank test.
    levels : list, optional
        Public levels of ``group``, in the order wanted; found from the sites when absent.
    grid : list of float, optional
        The public time grid (strictly increasing).
    step, max_time : float, optional
        Instead of ``grid``: the grid 0, step, 2·step, … up to ``max_time``.
    alpha : float
        1 − the confidence level of the intervals (default 0.05).
    """

    duration: str
    event: str
    group: str | None = None
    levels: list[Level] | None = None
    grid: list[float] | None = None
    step: float | None = Field(None, gt=0)
    max_time: float | None = Field(None, gt=0)
    alpha: float = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _consistent(self) -> KMParams:
        named = [c for c in (self.duration, self.event, self.group) if c is not None]
        if len(set(named)) != len(named):
            raise ValueError("duration, event and group must be different columns")
        if self.levels is not None:
            if self.group is None:
                raise ValueError("levels are given but no group column")
            check_levels(self.levels, "levels")
        if self.grid is not None:
            if self.step is not None or self.max_time is not None:
                raise ValueError("give grid, or step and max_time, not both")
            g = np.asarray(self.grid, dtype=np.float64)
            if g.size < 1 or g.size > MAX_GRID:
                raise ValueError(f"grid needs between 1 and {MAX_GRID} times")
            if not np.all(np.isfinite(g)) or not np.all(np.diff(g) > 0):
                raise ValueError("grid must be finite and strictly increasing")
        elif self.step is None or self.max_time is None:
            raise ValueError(
                "no public time grid: give grid=[t0, t1, ...] or step and max_time (e.g. "
                "step=1, max_time=365 for daily times over a year); the grid is never taken "
                "from the data"
            )
        elif self.max_time / self.step >= MAX_GRID:
            raise ValueError(f"step and max_time give more than {MAX_GRID} grid times")
        return self

    def times(self) -> npt.NDArray[np.float64]:
        """The public time grid."""
        if self.grid is not None:
            return np.asarray(self.grid, dtype=np.float64)
        assert self.step is not None and self.max_time is not None
        count = math.floor(self.max_time / self.step * (1 + 1e-12)) + 1
        return np.arange(count, dtype=np.float64) * self.step

    def columns(self) -> list[str]:
        """Every column read."""
        return [self.duration, self.event] + ([self.group] if self.group else [])


def survival_curve(
    events: npt.NDArray[np.float64], removed: npt.NDArray[np.float64], total: float, z: float
) -> dict[str, npt.NDArray[np.float64]]:
    """Kaplan–Meier estimate with Greenwood variance and log(−log) interval from a grid table.

    Parameters
    ----------
    events : numpy.ndarray
        Events in each grid interval.
    removed : numpy.ndarray
        Events plus censorings in each grid interval.
    total : float
        Rows of the group (those after the last grid time included).
    z : float
        Normal quantile of the interval (1.96 for 95 %).

    Returns
    -------
    dict
        ``at_risk``, ``events`` (clipped at the numbers at risk), ``survival``, ``lower``,
        ``upper``, one value per grid time. As in lifelines, a Greenwood term with
        n_j = d_j is 0, and the interval is [1, 1] while S = 1.
    """
    at_risk = np.maximum(total - np.concatenate([[0.0], np.cumsum(removed)[:-1]]), 0.0)
    d = np.minimum(events, at_risk)
    safe_n = np.where(at_risk > 0, at_risk, 1.0)
    survival = np.cumprod(1.0 - d / safe_n)
    terms = np.where(at_risk > d, d / (safe_n * np.where(at_risk > d, at_risk - d, 1.0)), 0.0)
    greenwood = np.cumsum(terms)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.log(survival)
        spread = z * np.sqrt(greenwood) / v
        lower = np.exp(-np.exp(np.log(-v) - spread))
        upper = np.exp(-np.exp(np.log(-v) + spread))
    return {
        "at_risk": at_risk,
        "events": d,
        "survival": survival,
        "lower": np.nan_to_num(lower, nan=1.0),
        "upper": np.nan_to_num(upper, nan=1.0),
    }


def logrank(
    events: npt.NDArray[np.float64], at_risk: npt.NDArray[np.float64]
) -> dict[str, Any] | None:
    """Log-rank test across groups from per-group events and numbers at risk on a grid.

    Parameters
    ----------
    events, at_risk : numpy.ndarray
        Groups × grid times.

    Returns
    -------
    dict or None
        ``statistic``, ``dof`` (groups − 1), ``p``, and per group ``observed`` and
        ``expected`` events; ``None`` for fewer than two groups or a singular variance.
    """
    k = events.shape[0]
    if k < 2:
        return None
    d = events.sum(axis=0)
    n = at_risk.sum(axis=0)
    use = n > 0
    share = np.where(use, at_risk / np.where(use, n, 1.0), 0.0)
    expected = (share * d).sum(axis=1)
    observed = events.sum(axis=1)
    factor = np.where(n > 1, d * (n - d) / np.where(n > 1, n - 1, 1.0), 0.0)
    # V_gh = Σ_j factor_j (δ_gh share_gj − share_gj share_hj)
    cov = np.diag((factor * share).sum(axis=1)) - (factor * share) @ share.T
    diff = (observed - expected)[:-1]
    try:
        statistic = float(diff @ np.linalg.solve(cov[:-1, :-1], diff))
    except np.linalg.LinAlgError:
        return None
    return {
        "statistic": statistic,
        "dof": k - 1,
        "p": float(chi2.sf(statistic, k - 1)),
        "observed": observed.tolist(),
        "expected": expected.tolist(),
    }


def _check_slots(groups: int, times: int) -> None:
    if groups * 2 * (times + 1) > MAX_SLOTS:
        raise TaskError(
            f"{groups} groups on a grid of {times} times need {groups * 2 * (times + 1)} counts "
            f"per site; at most {MAX_SLOTS} are allowed (use fewer levels or a coarser grid)",
            rule="too-large",
        )


def _counts_or_none(values: npt.NDArray[np.float64], min_cell: int) -> list[int | None]:
    rounded = np.rint(values).astype(np.int64).tolist()
    return [int(v) if v >= min_cell else None for v in rounded]


class KMTask(Task[KMParams]):
    """Pooled Kaplan–Meier curves and log-rank test from summed grid tables."""

    name = "km"
    params_model = KMParams
    uses_secure_sum = True
    max_rounds = 2

    def variables(self, params: KMParams) -> set[str]:
        """Duration, event and group columns."""
        return set(params.columns())

    def start(self, params: KMParams) -> dict[str, Any]:
        """Ask for the group's levels when needed, else go straight to the counts."""
        if params.group is None:
            return {"phase": "counts", "levels": {}}
        if params.levels is None:
            return {"phase": "levels", "discover": [params.group]}
        levels = check_levels(params.levels, "levels")
        _check_slots(len(levels), params.times().size)
        return {"phase": "counts", "levels": {params.group: levels}}

    def site(
        self, table: SiteTable, params: KMParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Round 1: the group's common levels (clear). Then: the grid table (secure)."""
        x = table.numeric([params.duration, params.event], params.where, complete=False)
        duration, event = x[:, 0], x[:, 1]
        known = ~np.isnan(duration) & ~np.isnan(event)
        if np.any(duration[known] < 0):
            raise TaskError(f"column {params.duration!r} has negative durations", rule="bad-data")
        if not np.all((event[known] == 0) | (event[known] == 1)):
            raise TaskError(
                f"column {params.event!r} must be 0/1 (or boolean); it holds other values",
                rule="bad-data",
            )
        group: tuple[list[str], npt.NDArray[np.int64]] | None = None
        if params.group is not None:
            group = read_level_codes(table, params.group, params.where)
        ctx.policy.check_cell(int(known.sum()), "the number of rows with a duration and event")
        ctx.policy.check_cell(int(event[known].sum()), "the number of events")
        phase = payload.get("phase")
        if phase == "levels":
            if group is None or params.group is None:
                raise TaskError("the payload asks for levels but there is no group", "protocol")
            return levels_release({params.group: group}, ctx, "the group's levels")
        if phase != "counts":
            raise TaskError("the payload names no known phase", rule="protocol")
        grid = params.times()
        buckets = grid.size + 1
        if group is None:
            levels: list[str] = [ALL]
            codes = np.zeros(duration.size, dtype=np.int64)
        else:
            assert params.group is not None
            levels = payload_levels(payload, [params.group])[params.group]
            codes = grid_codes(*group, levels)  # len(levels): NULL, len(levels) + 1: other
        _check_slots(len(levels), grid.size)
        in_table = known & (codes < len(levels))
        # Slot of each row: (group, event or censoring, bucket), then missing, then other.
        bucket = np.searchsorted(grid, duration[in_table], side="left")
        slot = (codes[in_table] * 2 + event[in_table].astype(np.int64)) * buckets + bucket
        size = len(levels) * 2 * buckets
        counts = np.bincount(slot, minlength=size).astype(np.float64)
        other = int(np.count_nonzero(known & (codes == len(levels) + 1)))
        missing = int(duration.size - in_table.sum() - other)
        vector = np.concatenate([counts, [missing, other]])
        return noisy_counts_release(
            "table",
            vector,
            ctx,
            "secure sum of event and censoring counts on the public time grid",
        )

    def hub(self, params: KMParams, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """Union the group's levels (round 1), or compute the curves and the test."""
        min_cell = running_min_cell(result.values, state)
        if params.group is not None and params.levels is None and "levels" not in state:
            state["levels"] = union_levels(result.values, params.group)
            _check_slots(len(state["levels"]), params.times().size)
            return Next({"phase": "counts", "levels": {params.group: state["levels"]}})
        if params.group is None:
            levels = [ALL]
        elif params.levels is not None:
            levels = check_levels(params.levels, "levels")
        else:
            levels = state["levels"]
        return Result(self._curves(params, result, levels, min_cell))

    def _curves(
        self, params: KMParams, result: RoundResult, levels: list[str], min_cell: int
    ) -> dict[str, Any]:
        grid = params.times()
        vector = result.sums["table"]
        noise_sd = count_noise_sd(result.values)
        noisy = noise_sd is not None
        if noisy:
            vector = np.maximum(vector, 0.0)
        table = vector[:-2].reshape(len(levels), 2, grid.size + 1)
        missing, other = vector[-2:]
        z = float(norm.ppf(1 - params.alpha / 2))
        groups: dict[str, Any] = {}
        all_events, all_at_risk = [], []
        for g, label in enumerate(levels):
            censored, events = table[g, 0], table[g, 1]
            total = float(table[g].sum())
            curve = survival_curve(events[:-1], (events + censored)[:-1], total, z)
            all_events.append(curve["events"])
            all_at_risk.append(curve["at_risk"])
            below = np.flatnonzero(curve["survival"] <= 0.5)
            groups[label] = {
                "n": _counts_or_none(np.array([total]), min_cell)[0],
                "events": _counts_or_none(np.array([events.sum()]), min_cell)[0],
                "survival": curve["survival"].tolist(),
                "ci_lower": curve["lower"].tolist(),
                "ci_upper": curve["upper"].tolist(),
                "at_risk": _counts_or_none(curve["at_risk"], min_cell),
                "median": float(grid[below[0]]) if below.size else None,
            }
        test = logrank(np.array(all_events), np.array(all_at_risk))
        return {
            "times": grid.tolist(),
            "group": params.group,
            "groups": groups,
            "logrank": test,
            "alpha": params.alpha,
            "missing": _counts_or_none(np.array([missing]), min_cell)[0],
            "other_group": _counts_or_none(np.array([other]), min_cell)[0],
            "suppressed_below": min_cell,
            "noisy": noisy,
            "noise_sd": noise_sd,
            "sites": result.sites,
            "sites_refused": result.refused,
            "sites_failed": result.failed,
        }


register(KMTask())
