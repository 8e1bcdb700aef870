"""Federated evaluation of a binary classifier: pooled and per-site metrics with bootstrap CIs.

Each site scores its own evaluation rows and releases (:func:`evaluation_release`) only

- **in clear**, its own :func:`~cardiobox.metrics.classification_report` with percentile
  bootstrap intervals (:func:`~cardiobox.metrics.bootstrap_ci`), when its rows, events and
  non-events all reach its minimum cell count (``None`` otherwise);
- **summed over the sites** (secure aggregation), vectors from which the hub computes the
  pooled figures (:func:`pooled_evaluation`), none of them a row:

  ``eval_n``, ``eval_correct``, ``eval_sq_error``
      rows, correct classifications (p ≥ 0.5) and squared errors → accuracy and Brier score;
  ``eval_hist``
      per-class histograms of the predicted probability on ``bins`` equal bins over [0, 1]
      → AUROC (:func:`~cardiobox.metrics.auroc_from_histograms`), AUPRC
      (:func:`auprc_from_histograms`) and the ROC curve; both are exact up to the
      positive–negative pairs that share a bin, which count as ties;
  ``eval_logit_count``, ``eval_logit_sum``
      per-class counts and sums of logit(p) (p clipped to
      [:data:`~cardiobox.metrics.PROB_CLIP`, 1 − PROB_CLIP]) on :data:`LOGIT_BINS` equal bins
      over :data:`LOGIT_RANGE` (values outside land in the end bins) → the calibration slope
      and intercept, by logistic recalibration on the bins: each (class, bin) cell is one
      point at the cell's mean logit, weighted by its count. A binned approximation of
      :func:`~cardiobox.metrics.calibration` on the pooled rows: the fit sees the rows' logits
      only through their means within bins of width 0.03, which moves the slope and intercept
      by well under 1e-3 on realistic data;
  ``eval_curve``
      rows, Σp and events in :data:`CURVE_BINS` equal bins of p → the calibration curve;
  ``eval_boot_*``
      the Poisson bootstrap (below).

**Pooled bootstrap without rows.** For each of B replicates every site draws a Poisson(1)
weight per evaluation row and sends, summed, the weighted per-class histograms on
:data:`BOOTSTRAP_BINS` bins and the weighted row, correct and squared-error sums; the hub
computes each replicate's pooled AUROC, AUPRC, accuracy and Brier score and takes percentile
intervals. (Sampling each row Poisson(1) times at every site is the Poisson bootstrap of the
pooled rows.) The AUROC and AUPRC intervals are shifted by the difference between the
estimate on ``bins`` bins and on the coarser bootstrap bins, so they bracket the reported
estimate. The weights come from a generator seeded with a digest of the site's own labels and
predictions (and the public seed and site name): runs on the same data and model give the
same intervals, yet the hub cannot know the weights — with them, B replicate sums would be B
equations in the rows' cells, enough to solve for every row when B reaches the row count.

Pooled figures are ``None`` when the pooled evaluation rows are fewer than the largest minimum
cell count the sites declared; calibration-curve bins below it are left out, and the ROC
curve only has points whose steps hold at least that many rows.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit, logit

from cardiobox import metrics
from cardiobox.federated.task import RoundResult, SiteContext

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Probability at and above which a row is predicted positive.
THRESHOLD = 0.5
#: Bins of the logit histograms behind the pooled calibration slope and intercept.
LOGIT_BINS = 1000
#: Range of those bins: logit(p) in [−15, 15], p from about 3e-7 to 1 − 3e-7.
LOGIT_RANGE = (-15.0, 15.0)
#: Equal-width bins of p of the calibration curve.
CURVE_BINS = 10
#: Bins of p of the bootstrap replicates' histograms (coarser than ``bins``: B of them travel).
BOOTSTRAP_BINS = 100
#: Bootstrap replicates unless a task asks for another number.
DEFAULT_BOOTSTRAP = 200
#: The most bootstrap replicates a request may ask for (each adds 2 × 100 summed floats).
MAX_BOOTSTRAP = 1000
#: Two-sided level of the intervals unless a task asks for another.
DEFAULT_ALPHA = 0.05
#: The metrics that get bootstrap intervals.
CI_METRICS = ("auroc", "auprc", "accuracy", "brier")
#: Poisson weights drawn at once (rows × replicates), to bound a site's memory.
_CHUNK_CELLS = 1 << 22
#: Keys of ``global`` in the order they are reported.
GLOBAL_KEYS = (
    "n",
    "accuracy",
    "auroc",
    "auprc",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "ci",
    "roc",
    "calibration_curve",
)


# -- public bins ----------------------------------------------------------------------------------
def histogram_edges(bins: int) -> Array:
    """The public bin edges of the score histograms: ``bins`` equal bins over [0, 1]."""
    return np.linspace(0.0, 1.0, bins + 1)


def logit_edges() -> Array:
    """The public edges of the logit histograms: :data:`LOGIT_BINS` over :data:`LOGIT_RANGE`."""
    return np.linspace(*LOGIT_RANGE, LOGIT_BINS + 1)


def _bin_index(values: Array, edges: Array) -> IntArray:
    """Bins ``[e_i, e_{i+1})`` (the last closed; values outside land in the end bins)."""
    k = len(edges) - 1
    index: IntArray = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, k - 1)
    return index


def clipped_logit(prob: Array) -> Array:
    """logit(p) with p clipped to [PROB_CLIP, 1 − PROB_CLIP], as :func:`metrics.calibration`."""
    out: Array = logit(np.clip(prob, metrics.PROB_CLIP, 1 - metrics.PROB_CLIP))
    return out


# -- metrics from histograms ----------------------------------------------------------------------
def _auroc_batch(negatives: Array, positives: Array) -> Array:
    """AUROC of per-class histograms along the last axis (NaN where a class is empty)."""
    n_neg, n_pos = negatives.sum(axis=-1), positives.sum(axis=-1)
    below = np.cumsum(negatives, axis=-1) - negatives
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Array = np.sum(positives * (below + negatives / 2), axis=-1) / (n_pos * n_neg)
    return np.where((n_neg > 0) & (n_pos > 0), out, np.nan)


def _auprc_batch(negatives: Array, positives: Array) -> Array:
    """Average precision of per-class histograms along the last axis (NaN: a class empty)."""
    n_neg, n_pos = negatives.sum(axis=-1), positives.sum(axis=-1)
    # Thresholds from the highest bin down: a bin's rows are tied scores.
    gain = positives[..., ::-1]
    tp = np.cumsum(gain, axis=-1)
    flagged = tp + np.cumsum(negatives[..., ::-1], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(flagged > 0, tp / np.where(flagged > 0, flagged, 1.0), 0.0)
        out: Array = np.sum(gain * precision, axis=-1) / n_pos
    return np.where((n_neg > 0) & (n_pos > 0), out, np.nan)


def _as_histograms(hist: npt.ArrayLike) -> Array:
    counts = np.asarray(hist, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 2 or counts.shape[1] == 0:
        raise metrics.MetricInputError(
            f"hist must have shape (2, k), got {counts.shape}", rule="shape"
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise metrics.MetricInputError(
            "hist must hold finite, non-negative counts", rule="bad-counts"
        )
    return counts


def auprc_from_histograms(hist: npt.ArrayLike) -> float:
    """Average precision (area under the precision–recall curve) from per-class histograms.

    Parameters
    ----------
    hist : array_like of shape (2, k)
        Counts per bin of negatives (row 0) and positives (row 1), bins in increasing score
        order (e.g. summed over sites). Non-integer counts are allowed.

    Returns
    -------
    float
        ``Σ_k (R_k − R_{k−1}) P_k`` with each bin's lower edge as a threshold, highest first:
        scikit-learn's ``average_precision_score`` of rows whose score is their bin (rows in
        one bin count as tied), so exact when no bin holds two distinct scores.

    Raises
    ------
    UndefinedMetricError
        When either class has no count.
    MetricInputError
        For a histogram of another shape or with negative or non-finite counts.
    """
    counts = _as_histograms(hist)
    value = float(_auprc_batch(counts[0], counts[1]))
    if np.isnan(value):
        raise metrics.UndefinedMetricError(
            "auprc_from_histograms needs both classes, but one row of hist sums to 0",
            rule="one-class",
        )
    return value


def roc_points_from_histograms(
    hist: npt.ArrayLike, edges: npt.ArrayLike, min_step: int = 1
) -> list[dict[str, float | None]]:
    """ROC curve points from per-class histograms, each step holding ``min_step`` rows or more.

    Parameters
    ----------
    hist : array_like of shape (2, k)
        Counts per bin of negatives (row 0) and positives (row 1), bins in increasing order.
    edges : array_like of shape (k + 1,)
        The bins' edges; a point's ``threshold`` is the lower edge of the lowest bin it
        flags positive.
    min_step : int
        Consecutive bins are merged until the rows between two points reach this (the
        largest minimum cell count), so the curve shows no small count; the last point is
        always (1, 1).

    Returns
    -------
    list of dict
        ``{"fpr", "tpr", "threshold"}`` from ``(0, 0)`` (threshold ``None``) to ``(1, 1)``.

    Raises
    ------
    UndefinedMetricError
        When either class has no count.
    """
    counts = _as_histograms(hist)
    bounds = np.asarray(edges, dtype=np.float64)
    negatives, positives = counts[:, ::-1]  # highest bin first
    n_neg, n_pos = negatives.sum(), positives.sum()
    if n_neg == 0 or n_pos == 0:
        raise metrics.UndefinedMetricError(
            "the ROC curve needs both classes, but one row of hist sums to 0", rule="one-class"
        )
    fp, tp = np.cumsum(negatives), np.cumsum(positives)
    flagged = fp + tp
    keep: list[int] = []
    last = 0.0
    for i, total in enumerate(flagged.tolist()):  # one pass over bins, not rows
        if total - last >= max(min_step, 1):
            keep.append(i)
            last = total
    final = len(flagged) - 1
    if keep and keep[-1] != final:
        if flagged[final] - flagged[keep[-1]] < min_step:
            keep.pop()  # the tail is a small step: merge it into the last one
        keep.append(final)
    if not keep:
        keep = [final]
    lower = bounds[:-1][::-1]
    points: list[dict[str, float | None]] = [{"fpr": 0.0, "tpr": 0.0, "threshold": None}]
    points += [
        {"fpr": float(fp[i] / n_neg), "tpr": float(tp[i] / n_pos), "threshold": float(lower[i])}
        for i in keep
    ]
    return points


def _weighted_logistic(
    design: Array, y: Array, weight: Array, offset: Array, start: Array
) -> Array | None:
    """Weighted maximum-likelihood logistic regression by Newton steps (halved on overshoot)."""

    def loglik(beta: Array) -> float:
        eta = design @ beta + offset
        return float(np.sum(weight * (y * eta - np.logaddexp(0.0, eta))))

    beta, current = start.copy(), loglik(start)
    for _ in range(100):
        eta = design @ beta + offset
        mu = expit(eta)
        gradient = design.T @ (weight * (y - mu))
        hessian = design.T @ (design * (weight * mu * expit(-eta))[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return None
        scale = 1.0
        while True:
            candidate = beta + scale * step
            value = loglik(candidate)
            if value >= current - 1e-12 * abs(current) or scale < 1e-8:
                break
            scale /= 2
        beta, current = candidate, value
        if np.max(np.abs(scale * step)) <= 1e-10 * (1 + np.max(np.abs(beta))):
            return beta
    return None


def calibration_from_histograms(
    counts: npt.ArrayLike, logit_sums: npt.ArrayLike
) -> tuple[float | None, float | None]:
    """Calibration slope and intercept from per-class, per-bin counts and sums of logit(p).

    Parameters
    ----------
    counts : array_like of shape (2, k)
        Rows per logit bin of the negatives (row 0) and positives (row 1).
    logit_sums : array_like of shape (2, k)
        Sums of the clipped logit(p) of those rows.

    Returns
    -------
    tuple of (float or None, float or None)
        The slope of ``logit P = a + b·logit(p)`` and the intercept of
        ``logit P = a' + offset(logit p)`` fitted on one point per non-empty (class, bin) cell
        at the cell's mean logit, weighted by its rows: :func:`metrics.calibration` of rows
        whose logits are their cell means. ``None`` when a class is missing (both), or when
        the cells separate the classes (the slope).
    """
    n = np.asarray(counts, dtype=np.float64)
    sums = np.asarray(logit_sums, dtype=np.float64)
    cls, index = np.nonzero(n > 0)
    weight = n[cls, index]
    x = sums[cls, index] / weight
    y = cls.astype(np.float64)
    positive = y == 1
    if not positive.any() or positive.all():
        return None, None
    ones = np.ones((len(y), 1))
    fitted = _weighted_logistic(ones, y, weight, x, np.zeros(1))
    intercept = None if fitted is None else float(fitted[0])
    pos, neg = x[positive], x[~positive]
    slope = None
    if pos.min() < neg.max() and neg.min() < pos.max():  # else no finite maximum
        design = np.column_stack([np.ones(len(y)), x])
        fitted = _weighted_logistic(design, y, weight, np.zeros(len(y)), np.array([0.0, 1.0]))
        slope = None if fitted is None else float(fitted[1])
    return slope, intercept


# -- the site's release ---------------------------------------------------------------------------
def _entropy(y: Array, prob: Array, seed: int, site: str, purpose: bytes) -> int:
    """A 128-bit seed from the site's own evaluation data (secret from the hub) and ``seed``."""
    digest = hashlib.blake2b(digest_size=16, person=purpose[:16])
    digest.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(prob, dtype=np.float64).tobytes())
    digest.update(f"{seed}\x00{site}".encode())
    return int.from_bytes(digest.digest(), "little")


def _site_intervals(
    y: Array, prob: Array, replicates: int, alpha: float, seed: int
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of the site's own metrics (rows resampled at the site)."""
    if replicates == 0:
        return {}
    functions: dict[str, Callable[..., float]] = {
        "auroc": metrics.auroc,
        "auprc": metrics.auprc,
        "accuracy": metrics.accuracy,
        "brier": metrics.brier,
    }
    out: dict[str, list[float] | None] = {}
    for name in CI_METRICS:
        try:
            ci = metrics.bootstrap_ci(
                functions[name], y, prob, n_boot=replicates, alpha=alpha, seed=seed
            )
            out[name] = [ci.lower, ci.upper]
        except metrics.UndefinedMetricError:
            out[name] = None
    return out


def _bootstrap_sums(
    y: Array, prob: Array, replicates: int, rng: np.random.Generator
) -> dict[str, Array]:
    """Poisson-weighted histograms and sums of ``replicates`` bootstrap replicates."""
    n, k = len(y), BOOTSTRAP_BINS
    cells = 2 * k
    cell = _bin_index(prob, histogram_edges(k)) + k * (y == 1)
    correct = ((prob >= THRESHOLD) == (y == 1)).astype(np.float64)
    sq_error = (prob - y) ** 2
    hist = np.zeros((replicates, cells))
    weighted = np.zeros((3, replicates))
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, replicates, chunk):
        rows = min(chunk, replicates - start)
        weights = rng.poisson(1.0, size=(rows, n)).astype(np.float64)
        flat = (np.arange(rows)[:, None] * cells + cell[None, :]).ravel()
        hist[start : start + rows] = np.bincount(
            flat, weights=weights.ravel(), minlength=rows * cells
        ).reshape(rows, cells)
        weighted[:, start : start + rows] = [
            weights.sum(axis=1),
            weights @ correct,
            weights @ sq_error,
        ]
    return {
        "eval_boot_coarse": np.bincount(cell, minlength=cells).astype(np.float64),
        "eval_boot_hist": hist.ravel(),
        "eval_boot_n": weighted[0],
        "eval_boot_correct": weighted[1],
        "eval_boot_sq_error": weighted[2],
    }


def evaluation_release(
    y: Array,
    prob: Array,
    ctx: SiteContext,
    bins: int,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Array]]:
    """A site's evaluation of its predictions: clear values and vectors to sum.

    Parameters
    ----------
    y : numpy.ndarray
        The 0/1 outcome of the site's evaluation rows (may be empty).
    prob : numpy.ndarray
        The model's predicted probabilities for those rows, in [0, 1].
    ctx : SiteContext
        The site's name and policy (its minimum cell count decides whether its own metrics
        go out).
    bins : int
        Bins of the score histograms.
    bootstrap : int
        Bootstrap replicates (default 200); 0 for no intervals.
    alpha : float
        Intervals at level 1 − alpha (default 0.05).
    seed : int
        Public seed mixed into the bootstrap generators (default 0).

    Returns
    -------
    values : dict
        ``metrics``: :func:`cardiobox.metrics.classification_report` of the site's rows with
        ``n`` and ``ci`` (``{metric: [lower, upper] or None}``), or ``None`` when its rows,
        events or non-events are below the minimum cell count; ``min_cell_count``.
    secure : dict of str to numpy.ndarray
        The vectors to be summed over the sites (see the module docstring).
    """
    y = np.asarray(y, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    n = len(y)
    events = int(y.sum())
    mcc = ctx.policy.min_cell_count
    report: dict[str, Any] | None = None
    if min(n, events, n - events) >= mcc:
        report = dict(metrics.classification_report(y, prob))
        report["n"] = n
        site_seed = _entropy(y, prob, seed, ctx.site, b"cbx-site-ci")
        report["ci"] = _site_intervals(y, prob, bootstrap, alpha, site_seed)
    if n:
        hist = metrics.score_histogram(y, prob, histogram_edges(bins)).astype(np.float64)
    else:
        hist = np.zeros((2, bins))
    positive = y == 1
    logits = clipped_logit(prob)
    logit_cell = _bin_index(logits, logit_edges()) + LOGIT_BINS * positive
    curve_bin = np.searchsorted(histogram_edges(CURVE_BINS)[1:-1], prob, side="left")
    secure = {
        "eval_n": np.array([float(n)]),
        "eval_correct": np.array([float(np.sum((prob >= THRESHOLD) == positive))]),
        "eval_sq_error": np.array([float(np.sum((prob - y) ** 2))]),
        "eval_hist": hist.ravel(),
        "eval_logit_count": np.bincount(logit_cell, minlength=2 * LOGIT_BINS).astype(np.float64),
        "eval_logit_sum": np.bincount(logit_cell, weights=logits, minlength=2 * LOGIT_BINS),
        "eval_curve": np.concatenate(
            [
                np.bincount(curve_bin, minlength=CURVE_BINS).astype(np.float64),
                np.bincount(curve_bin, weights=prob, minlength=CURVE_BINS),
                np.bincount(curve_bin, weights=y, minlength=CURVE_BINS),
            ]
        ),
    }
    if bootstrap > 0:
        rng = np.random.default_rng(_entropy(y, prob, seed, ctx.site, b"cbx-pooled-boot"))
        secure.update(_bootstrap_sums(y, prob, bootstrap, rng))
    return {"metrics": report, "min_cell_count": mcc}, secure


# -- the hub's pooled figures ---------------------------------------------------------------------
def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _pooled_intervals(
    sums: dict[str, Array], estimates: dict[str, float | None], alpha: float
) -> dict[str, list[float] | None]:
    """Percentile intervals over the Poisson bootstrap replicates summed over the sites."""
    if "eval_boot_n" not in sums:
        return {}
    weight = sums["eval_boot_n"]
    replicates = len(weight)
    k = len(sums["eval_boot_coarse"]) // 2
    hist = np.maximum(sums["eval_boot_hist"].reshape(replicates, 2, k), 0.0)
    coarse = np.maximum(np.rint(sums["eval_boot_coarse"]).reshape(2, k), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "auroc": _auroc_batch(hist[:, 0], hist[:, 1]),
            "auprc": _auprc_batch(hist[:, 0], hist[:, 1]),
            "accuracy": np.where(weight > 0, sums["eval_boot_correct"] / weight, np.nan),
            "brier": np.where(weight > 0, sums["eval_boot_sq_error"] / weight, np.nan),
        }
    # The replicates see coarser bins than the estimate: move the interval by the difference.
    shift = {
        "auroc": float(_auroc_batch(coarse[0], coarse[1])),
        "auprc": float(_auprc_batch(coarse[0], coarse[1])),
    }
    out: dict[str, list[float] | None] = {}
    for name in CI_METRICS:
        estimate = estimates.get(name)
        used = values[name][np.isfinite(values[name])]
        if estimate is None or used.size < 2:
            out[name] = None
            continue
        lower, upper = np.quantile(used, [alpha / 2, 1 - alpha / 2])
        move = estimate - shift[name] if name in shift and np.isfinite(shift[name]) else 0.0
        out[name] = [float(np.clip(lower + move, 0, 1)), float(np.clip(upper + move, 0, 1))]
    return out


def _curve(sums: dict[str, Array], floor: int) -> list[dict[str, float]]:
    """Calibration-curve points of the bins holding at least ``floor`` pooled rows."""
    if "eval_curve" not in sums:
        return []
    n, total_p, total_y = sums["eval_curve"].reshape(3, CURVE_BINS)
    rows = np.rint(n)
    edges = histogram_edges(CURVE_BINS)
    return [
        {
            "bin_lower": float(edges[k]),
            "bin_upper": float(edges[k + 1]),
            "n": int(rows[k]),
            "mean_predicted": float(total_p[k] / n[k]),
            "observed": float(total_y[k] / n[k]),
        }
        for k in np.flatnonzero(rows >= max(floor, 1))
    ]


def empty_global() -> dict[str, Any]:
    """``global`` when nothing may be shown: every figure ``None``, no interval, no curve."""
    out: dict[str, Any] = dict.fromkeys(GLOBAL_KEYS)
    out.update(ci={}, roc=[], calibration_curve=[])
    return out


def pooled_evaluation(
    result: RoundResult, bins: int, *, alpha: float = DEFAULT_ALPHA
) -> dict[str, Any]:
    """Pooled and per-site metrics from a round of :func:`evaluation_release`.

    Parameters
    ----------
    result : RoundResult
        The evaluation round: each site's clear values and the summed vectors.
    bins : int
        Bins of the score histograms (as given to :func:`evaluation_release`).
    alpha : float
        Intervals at level 1 − alpha (default 0.05).

    Returns
    -------
    dict
        ``global``: pooled ``n``, ``accuracy``, ``auroc``, ``auprc``, ``brier``,
        ``calibration_slope``, ``calibration_intercept`` (``None`` where undefined),
        ``ci`` (``{metric: [lower, upper] or None}``, bootstrap percentile intervals),
        ``roc`` (points ``{fpr, tpr, threshold}``) and ``calibration_curve`` (points
        ``{bin_lower, bin_upper, n, mean_predicted, observed}``) — every figure ``None`` and
        no interval or curve when the pooled rows are fewer than the largest minimum cell
        count the sites declared; ``per_site``: each site's released metrics (``None`` where
        it withheld them).
    """
    sums = result.sums
    n = round(float(sums["eval_n"][0]))
    floor = max((int(v.get("min_cell_count", 1)) for v in result.values.values()), default=1)
    per_site = {s: result.values[s].get("metrics") for s in result.sites}
    if not (n >= floor and n > 0):
        return {"global": empty_global(), "per_site": per_site}
    hist = np.maximum(np.rint(sums["eval_hist"]).reshape(2, bins), 0.0)
    both = bool(hist[0].sum() > 0 and hist[1].sum() > 0)
    slope = intercept = None
    if "eval_logit_count" in sums:
        counts = np.maximum(np.rint(sums["eval_logit_count"]), 0.0).reshape(2, LOGIT_BINS)
        slope, intercept = calibration_from_histograms(
            counts, sums["eval_logit_sum"].reshape(2, LOGIT_BINS)
        )
    glob: dict[str, Any] = {
        "n": n,
        "accuracy": float(sums["eval_correct"][0]) / n,
        "auroc": _finite(float(_auroc_batch(hist[0], hist[1]))),
        "auprc": _finite(float(_auprc_batch(hist[0], hist[1]))),
        "brier": float(sums["eval_sq_error"][0]) / n,
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "ci": {},
        "roc": [],
        "calibration_curve": _curve(sums, floor),
    }
    glob["ci"] = _pooled_intervals(sums, glob, alpha)
    if both:
        with contextlib.suppress(metrics.UndefinedMetricError):
            glob["roc"] = roc_points_from_histograms(hist, histogram_edges(bins), floor)
    return {"global": glob, "per_site": per_site}
