"""Evaluation metrics for binary classifiers and survival models.

Used per site and pooled by federated learning runs, and by the synthetic-data utility report.
Everything is vectorised numpy (at most O(n log² n)), so each metric on ~100k rows takes well
under a second. A pooled AUROC that needs no shared rows goes through per-class
score histograms on public bin edges (:func:`score_histogram`, :func:`auroc_from_histograms`).

Reference implementations these functions reproduce: scikit-learn (``roc_auc_score``,
``average_precision_score``, ``brier_score_loss``, ``calibration_curve``), statsmodels (logistic
GLM for the calibration slope and intercept) and lifelines (``concordance_index``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit, logit
from scipy.stats import rankdata

from cardiobox.errors import CardioboxError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PROB_CLIP = 1e-12
"""Probabilities are clipped to ``[PROB_CLIP, 1 - PROB_CLIP]`` before taking their logit."""

_NEWTON_MAX_ITER = 100
_NEWTON_TOL = 1e-10
_BOOTSTRAP_CHUNK_CELLS = 1 << 22  # resampled indices held in memory at once (32 MiB of int64)


class MetricInputError(CardioboxError, ValueError):
    """Input a metric cannot use: wrong shape, mismatched lengths, NaN, values out of range."""


class UndefinedMetricError(MetricInputError):
    """A metric that does not exist on valid data, e.g. AUROC when one class is missing."""


# --- input validation -----------------------------------------------------------------------


def _vector(name: str, values: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as a finite, non-empty 1-D float array, or raise naming ``name``."""
    raw = np.asarray(values)
    if raw.dtype.kind not in "biuf":
        raise MetricInputError(f"{name} must be numeric, got dtype {raw.dtype}", rule="not-numeric")
    if raw.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D, got shape {raw.shape}", rule="not-1d")
    if raw.size == 0:
        raise MetricInputError(f"{name} must not be empty", rule="empty")
    array = raw.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise MetricInputError(
            f"{name} has {int(bad.sum())} NaN or infinite value(s), first at index "
            f"{int(np.flatnonzero(bad)[0])}",
            rule="not-finite",
        )
    return array


def _labels(name: str, values: npt.ArrayLike) -> BoolArray:
    """Return binary labels (0/1 or bool) as a boolean array, or raise naming ``name``."""
    array = _vector(name, values)
    bad = (array != 0) & (array != 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"{name} must hold only 0 and 1, found {array[first]!r} at index {first}",
            rule="not-binary",
        )
    labels: BoolArray = array == 1
    return labels


def _probabilities(name: str, values: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as a 1-D float array of probabilities in [0, 1]."""
    array = _vector(name, values)
    bad = (array < 0) | (array > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"{name} must lie in [0, 1], found {array[first]!r} at index {first}",
            rule="out-of-range",
        )
    return array


def _same_length(**arrays: npt.NDArray[Any]) -> int:
    """Return the common length of ``arrays``, or raise naming the lengths that differ."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise MetricInputError(f"arrays must have the same length: {listed}", rule="length")
    return next(iter(lengths.values()))


def _binary_inputs(
    y_true: npt.ArrayLike, values: npt.ArrayLike, name: str, *, probabilities: bool
) -> tuple[BoolArray, FloatArray]:
    """Validate labels and scores (or probabilities) of one binary-outcome metric."""
    y = _labels("y_true", y_true)
    x = _probabilities(name, values) if probabilities else _vector(name, values)
    _same_length(y_true=y, **{name: x})
    return y, x


def _class_counts(y: BoolArray, metric: str) -> tuple[int, int]:
    """Return (positives, negatives), or raise when ``metric`` needs both and one is missing."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        present = "1" if n_pos else "0"
        raise UndefinedMetricError(
            f"{metric} needs both classes in y_true, but every label is {present}",
            rule="one-class",
        )
    return n_pos, n_neg


# --- discrimination -------------------------------------------------------------------------


def _auroc(y: BoolArray, score: FloatArray) -> float:
    n_pos, n_neg = _class_counts(y, "auroc")
    # Mann-Whitney U with average ranks: a positive and a negative with the same score count 1/2.
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the ROC curve.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    score : array_like of shape (n,)
        Any finite score; higher means more likely positive.

    Returns
    -------
    float
        Probability that a random positive scores above a random negative, ties counting one
        half (as scikit-learn's ``roc_auc_score``).

    Raises
    ------
    UndefinedMetricError
        When ``y_true`` holds only one class.
    MetricInputError
        On bad shapes, lengths, labels or non-finite scores (both are ``ValueError``).
    """
    y, s = _binary_inputs(y_true, score, "score", probabilities=False)
    return _auroc(y, s)


def _binary_curve(y: BoolArray, score: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    """True and false positives at each distinct score, taken as threshold, highest first."""
    order = np.argsort(-score, kind="stable")
    sorted_score = score[order]
    # The last row of each run of equal scores closes that threshold.
    last = np.r_[np.flatnonzero(np.diff(sorted_score)), len(score) - 1]
    tps = np.cumsum(y[order], dtype=np.int64)[last]
    fps = (last + 1) - tps
    return tps, fps, sorted_score[last]


def _auprc(y: BoolArray, score: FloatArray) -> float:
    _class_counts(y, "auprc")
    tps, fps, _ = _binary_curve(y, score)
    precision = tps / (tps + fps)
    recall_gain = np.diff(tps, prepend=0) / tps[-1]
    return float(np.sum(recall_gain * precision))


def auprc(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the precision-recall curve, as average precision.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    score : array_like of shape (n,)
        Any finite score; higher means more likely positive.

    Returns
    -------
    float
        ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores as thresholds, highest first,
        equal to scikit-learn's ``average_precision_score`` (no interpolation).

    Raises
    ------
    UndefinedMetricError
        When ``y_true`` holds only one class (with only positives it would be a trivial 1).
    MetricInputError
        On bad shapes, lengths, labels or non-finite scores.
    """
    y, s = _binary_inputs(y_true, score, "score", probabilities=False)
    return _auprc(y, s)


# --- probability accuracy and calibration ---------------------------------------------------


def brier(y_true: npt.ArrayLike, prob: npt.ArrayLike) -> float:
    """Brier score: the mean squared difference between predicted probability and outcome.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    prob : array_like of shape (n,)
        Predicted probability of the outcome, in [0, 1].

    Returns
    -------
    float
        Between 0 (perfect) and 1; defined with one class too.
    """
    y, p = _binary_inputs(y_true, prob, "prob", probabilities=True)
    return float(np.mean((p - y) ** 2))


def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        raise MetricInputError(f"threshold must be a number, got {threshold!r}", rule="type")
    if not 0 <= threshold <= 1:
        raise MetricInputError(f"threshold must lie in [0, 1], got {threshold}", rule="range")
    return float(threshold)


def accuracy(y_true: npt.ArrayLike, prob: npt.ArrayLike, threshold: float = 0.5) -> float:
    """Share of rows classified correctly when ``prob >= threshold`` predicts a positive.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    prob : array_like of shape (n,)
        Predicted probability of the outcome, in [0, 1].
    threshold : float, default 0.5
        Probability at and above which a row is predicted positive (the convention of ROC
        thresholds), in [0, 1].

    Returns
    -------
    float
        Accuracy in [0, 1]; defined with one class too.
    """
    cut = _check_threshold(threshold)
    y, p = _binary_inputs(y_true, prob, "prob", probabilities=True)
    return float(np.mean((p >= cut) == y))


@dataclass(frozen=True)
class Calibration:
    """Logistic recalibration of predicted probabilities.

    Parameters
    ----------
    slope : float
        ``b`` in ``logit P(y=1) = a + b * logit(p)``; 1 is ideal, below 1 means predictions
        too extreme (overfitting).
    intercept : float
        Calibration-in-the-large ``a'`` in ``logit P(y=1) = a' + logit(p)`` (``logit(p)`` as
        offset); 0 is ideal, positive means risks underestimated on average.
    """

    slope: float
    intercept: float


def _clipped_logit(prob: FloatArray) -> FloatArray:
    result: FloatArray = logit(np.clip(prob, PROB_CLIP, 1 - PROB_CLIP))
    return result


def _log_likelihood(eta: FloatArray, y: FloatArray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _logistic_newton(
    design: FloatArray, y: FloatArray, offset: FloatArray, start: FloatArray
) -> FloatArray:
    """Maximum-likelihood logistic regression by Newton steps, halved when they overshoot."""
    beta = start.copy()
    loglik = _log_likelihood(design @ beta + offset, y)
    for _ in range(_NEWTON_MAX_ITER):
        mu = expit(design @ beta + offset)
        gradient = design.T @ (y - mu)
        hessian = design.T @ (design * (mu * (1 - mu))[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError as exc:
            raise UndefinedMetricError(
                "calibration fit has a singular information matrix", rule="singular"
            ) from exc
        scale = 1.0
        while True:
            candidate = beta + scale * step
            candidate_loglik = _log_likelihood(design @ candidate + offset, y)
            # Accept any step that does not lose likelihood beyond rounding noise.
            if candidate_loglik >= loglik - 1e-12 * abs(loglik) or scale < 1e-8:
                break
            scale /= 2
        beta, loglik = candidate, candidate_loglik
        if np.max(np.abs(scale * step)) <= _NEWTON_TOL * (1 + np.max(np.abs(beta))):
            return beta
    raise UndefinedMetricError(
        f"calibration fit did not converge in {_NEWTON_MAX_ITER} Newton steps",
        rule="no-convergence",
    )


def _calibration_intercept(y: BoolArray, logit_p: FloatArray) -> float:
    _class_counts(y, "calibration")
    ones = np.ones((len(y), 1))
    return float(_logistic_newton(ones, y.astype(np.float64), logit_p, np.zeros(1))[0])


def _calibration_slope(y: BoolArray, logit_p: FloatArray) -> float:
    _class_counts(y, "calibration")
    # In one dimension the maximum-likelihood fit exists exactly when the classes' ranges of
    # logit(p) overlap; otherwise (perfect or quasi-perfect separation, or one value of p)
    # the slope runs off to infinity.
    pos, neg = logit_p[y], logit_p[~y]
    if not (pos.min() < neg.max() and neg.min() < pos.max()):
        raise UndefinedMetricError(
            "calibration slope is undefined: prob separates the classes perfectly "
            "(or takes a single value), so the logistic fit has no finite maximum",
            rule="separation",
        )
    design = np.column_stack([np.ones(len(y)), logit_p])
    start = np.array([0.0, 1.0])  # the identity recalibration: a good first guess
    return float(_logistic_newton(design, y.astype(np.float64), np.zeros(len(y)), start)[1])


def calibration(y_true: npt.ArrayLike, prob: npt.ArrayLike) -> Calibration:
    """Calibration slope and intercept by logistic recalibration (Newton / IRLS).

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    prob : array_like of shape (n,)
        Predicted probability of the outcome, in [0, 1]; clipped to
        ``[PROB_CLIP, 1 - PROB_CLIP]`` before its logit is taken.

    Returns
    -------
    Calibration
        ``slope`` from ``logit P = a + b logit(p)`` and ``intercept`` from
        ``logit P = a' + offset(logit p)``, the same fits as a statsmodels binomial GLM.

    Raises
    ------
    UndefinedMetricError
        When ``y_true`` holds one class, or when ``prob`` separates the classes perfectly or
        is constant (no finite slope).
    """
    y, p = _binary_inputs(y_true, prob, "prob", probabilities=True)
    logit_p = _clipped_logit(p)
    return Calibration(
        slope=_calibration_slope(y, logit_p), intercept=_calibration_intercept(y, logit_p)
    )


# --- survival -------------------------------------------------------------------------------


def _count_earlier_greater(values: IntArray, counted: BoolArray) -> int:
    """Number of pairs ``i < j`` (positions) with ``counted[i]`` and ``values[i] > values[j]``.

    Bottom-up merge sort, one vectorised pass per level: at block size ``s`` every pair that
    straddles a left and a right half-block is counted once, by binary search of the right
    elements' values among the left half's sorted counted values. O(n log^2 n) in all.
    """
    n = len(values)
    span = int(values.max()) + 1
    position = np.arange(n, dtype=np.int64)
    total = 0
    size = 1
    while size < n:
        block = position // (2 * size)
        in_left = (position // size) % 2 == 0
        left = in_left & counted
        left_keys = np.sort(block[left] * span + values[left])
        right_block = block[~in_left]
        right_values = values[~in_left]
        above = np.searchsorted(left_keys, right_block * span + span, side="left")
        at_or_below = np.searchsorted(left_keys, right_block * span + right_values, side="right")
        total += int(np.sum(above - at_or_below))
        size *= 2
    return total


def concordance_counts(
    time: npt.ArrayLike, event: npt.ArrayLike, risk: npt.ArrayLike
) -> tuple[int, int, int]:
    """The pairs behind Harrell's concordance index: (concordant, tied in risk, comparable).

    Parameters
    ----------
    time : array_like of shape (n,)
        Follow-up time (event or censoring).
    event : array_like of shape (n,)
        1 (or True) when the event was observed at ``time``, 0 when censored.
    risk : array_like of shape (n,)
        Predicted risk; higher means shorter expected survival.

    Returns
    -------
    tuple of int
        Comparable pairs: subject ``i`` had the event and subject ``j`` left later, or was
        censored at the same time (censoring at ``t`` outlives an event at ``t``); two events
        at the same time are not comparable. Concordant: ``i`` has the higher risk; tied: the
        same risk. Sums of these counts over strata give the stratified index.
    """
    t = _vector("time", time)
    died = _labels("event", event)
    r = _vector("risk", risk)
    n = _same_length(time=t, event=died, risk=r)

    # Exit groups in time order; at one time, events come before censorings so that a
    # censoring at t is compared with events at t, and events at t not with each other.
    time_rank = np.unique(t, return_inverse=True)[1].astype(np.int64).ravel()
    group = 2 * time_rank + (~died).astype(np.int64)
    risk_rank = np.unique(r, return_inverse=True)[1].astype(np.int64).ravel()

    # Comparable pairs: for each event, every subject in a later exit group.
    sorted_group = np.sort(group)
    comparable = int(np.sum(n - np.searchsorted(sorted_group, group[died], side="right")))
    if comparable == 0:
        return 0, 0, 0

    # Concordant: an event in an earlier group with strictly higher risk. Ordering rows by
    # (group, risk) keeps same-group rows before j at risk <= risk_j, so they never count.
    order = np.lexsort((risk_rank, group))
    concordant = _count_earlier_greater(risk_rank[order], died[order])

    # Tied risk: an event in an earlier group with the same risk; keys sort by (risk, group).
    n_groups = int(group.max()) + 1
    event_keys = np.sort(risk_rank[died] * n_groups + group[died])
    same_risk_start = risk_rank * n_groups
    tied = int(
        np.sum(
            np.searchsorted(event_keys, same_risk_start + group, side="left")
            - np.searchsorted(event_keys, same_risk_start, side="left")
        )
    )
    return concordant, tied, comparable


def concordance_index(time: npt.ArrayLike, event: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Harrell's concordance index of a risk score for right-censored survival data.

    Parameters
    ----------
    time : array_like of shape (n,)
        Follow-up time (event or censoring).
    event : array_like of shape (n,)
        1 (or True) when the event was observed at ``time``, 0 when censored.
    risk : array_like of shape (n,)
        Predicted risk; higher means shorter expected survival.

    Returns
    -------
    float
        ``(concordant + tied_risk / 2) / comparable`` over the pairs of
        :func:`concordance_counts`. Equal to
        ``lifelines.utils.concordance_index(time, -risk, event)``.

    Raises
    ------
    UndefinedMetricError
        When no pair is comparable (no event before another subject's exit).
    """
    concordant, tied, comparable = concordance_counts(time, event, risk)
    if comparable == 0:
        raise UndefinedMetricError(
            "concordance_index has no comparable pairs: no event happens before another "
            "subject's time",
            rule="no-pairs",
        )
    return (concordant + tied / 2) / comparable


# --- summaries ------------------------------------------------------------------------------


def classification_report(y_true: npt.ArrayLike, prob: npt.ArrayLike) -> dict[str, float | None]:
    """All binary-outcome metrics of one set of predictions.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    prob : array_like of shape (n,)
        Predicted probability of the outcome, in [0, 1].

    Returns
    -------
    dict
        ``n``, ``prevalence``, ``auroc``, ``auprc``, ``brier``, ``accuracy`` (threshold 0.5),
        ``calibration_slope`` and ``calibration_intercept``. Never NaN: a metric that is
        undefined on this data is ``None`` (all four class-comparing ones with one class, the
        slope alone when ``prob`` separates the classes or is constant).
    """
    y, p = _binary_inputs(y_true, prob, "prob", probabilities=True)
    prevalence = float(np.mean(y))
    report: dict[str, float | None] = {
        "n": len(y),
        "prevalence": prevalence,
        "auroc": None,
        "auprc": None,
        "brier": float(np.mean((p - y) ** 2)),
        "accuracy": float(np.mean((p >= 0.5) == y)),
        "calibration_slope": None,
        "calibration_intercept": None,
    }
    if 0 < prevalence < 1:
        logit_p = _clipped_logit(p)
        report["auroc"] = _auroc(y, p)
        report["auprc"] = _auprc(y, p)
        report["calibration_intercept"] = _calibration_intercept(y, logit_p)
        with contextlib.suppress(UndefinedMetricError):  # the slope alone stays None
            report["calibration_slope"] = _calibration_slope(y, logit_p)
    return report


# --- bootstrap ------------------------------------------------------------------------------


class BootstrapCI(tuple[float, float, float]):
    """A percentile bootstrap interval: the tuple ``(estimate, lower, upper)``.

    Unpacks like a plain 3-tuple; also carries how many resamples were used and how many
    were skipped because the metric was undefined on them.

    Parameters
    ----------
    estimate : float
        The metric on the full data.
    lower, upper : float
        Percentile bounds of the metric over the used resamples.
    n_used : int
        Resamples on which the metric was defined.
    n_skipped : int
        Resamples skipped because the metric was undefined (e.g. one class drawn).
    """

    n_used: int
    n_skipped: int

    def __new__(
        cls, estimate: float, lower: float, upper: float, n_used: int, n_skipped: int
    ) -> BootstrapCI:
        """Build the interval from its three bounds and the resample counts."""
        interval = super().__new__(cls, (estimate, lower, upper))
        interval.n_used = n_used
        interval.n_skipped = n_skipped
        return interval

    def __getnewargs__(self) -> tuple[float, float, float, int, int]:
        return (self[0], self[1], self[2], self.n_used, self.n_skipped)

    @property
    def estimate(self) -> float:
        """The metric on the full data."""
        return self[0]

    @property
    def lower(self) -> float:
        """Lower percentile bound."""
        return self[1]

    @property
    def upper(self) -> float:
        """Upper percentile bound."""
        return self[2]

    def __repr__(self) -> str:
        return (
            f"BootstrapCI(estimate={self[0]!r}, lower={self[1]!r}, upper={self[2]!r}, "
            f"n_used={self.n_used}, n_skipped={self.n_skipped})"
        )


def _strata_rows(stratify: npt.ArrayLike | None, n: int) -> list[IntArray]:
    """Row indices of each stratum (one stratum holding every row when ``stratify`` is None)."""
    if stratify is None:
        return [np.arange(n, dtype=np.int64)]
    labels = np.asarray(stratify)
    if labels.ndim != 1 or len(labels) != n:
        raise MetricInputError(
            f"stratify must be 1-D with one label per row ({n}), got shape {labels.shape}",
            rule="length",
        )
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise MetricInputError("stratify must not contain NaN", rule="not-finite")
    inverse = np.unique(labels, return_inverse=True)[1].ravel()
    order = np.argsort(inverse, kind="stable").astype(np.int64)
    return np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: npt.ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    stratify: npt.ArrayLike | None = None,
) -> BootstrapCI:
    """Percentile bootstrap confidence interval of a metric.

    Parameters
    ----------
    metric : callable
        ``metric(*arrays) -> float``, e.g. :func:`auroc`. It signals that it is undefined
        on a resample by raising :class:`UndefinedMetricError` or returning NaN.
    *arrays : array_like
        The metric's inputs, with the same number of rows (axis 0); rows are resampled
        together, so row ``i`` of every array stays paired.
    n_boot : int, default 1000
        Number of resamples drawn.
    alpha : float, default 0.05
        Two-sided level: bounds are the ``alpha/2`` and ``1 - alpha/2`` quantiles.
    seed : int or None, default 0
        Seed of the random generator (``None`` for fresh entropy).
    stratify : array_like of shape (n,), optional
        Labels (e.g. ``y_true``); each resample draws with replacement within each label's
        rows, keeping the label counts, so class-comparing metrics stay defined.

    Returns
    -------
    BootstrapCI
        ``(estimate, lower, upper)`` with ``n_used`` and ``n_skipped`` attached.

    Raises
    ------
    UndefinedMetricError
        When the metric is undefined on the full data or on every resample.
    MetricInputError
        On bad parameters or arrays of different lengths.
    """
    if not arrays:
        raise MetricInputError("bootstrap_ci needs at least one array", rule="no-arrays")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise MetricInputError(f"n_boot must be a positive integer, got {n_boot!r}", rule="range")
    if not 0 < alpha < 1:
        raise MetricInputError(f"alpha must lie in (0, 1), got {alpha!r}", rule="range")
    data = [np.asarray(array) for array in arrays]
    for index, array in enumerate(data):
        if array.ndim == 0:
            raise MetricInputError(f"arrays[{index}] must have rows, got a scalar", rule="not-1d")
    n = _same_length(**{f"arrays[{index}]": array for index, array in enumerate(data)})

    estimate = float(metric(*data))
    strata = _strata_rows(stratify, n)
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // n)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        # One draw per chunk for all its resamples, stratum by stratum.
        indices = np.concatenate(
            [
                members[rng.integers(0, len(members), size=(rows, len(members)))]
                for members in strata
            ],
            axis=1,
        )
        for offset, resample in enumerate(indices):
            try:
                values[start + offset] = metric(*(array[resample] for array in data))
            except UndefinedMetricError:
                values[start + offset] = np.nan
    used = values[np.isfinite(values)]
    if used.size == 0:
        raise UndefinedMetricError(
            f"the metric was undefined on all {n_boot} resamples", rule="all-undefined"
        )
    lower, upper = np.quantile(used, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(estimate, float(lower), float(upper), int(used.size), n_boot - used.size)


# --- curves for plots -----------------------------------------------------------------------


def roc_curve_points(
    y_true: npt.ArrayLike, score: npt.ArrayLike, max_points: int = 200
) -> list[dict[str, float]]:
    """Points of the ROC curve, thinned for plotting.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool; both classes must be present.
    score : array_like of shape (n,)
        Any finite score; higher means more likely positive.
    max_points : int, default 200
        At most this many points are returned (at least 2).

    Returns
    -------
    list of dict
        ``{"fpr", "tpr", "threshold"}`` from ``(0, 0)`` (threshold ``inf``) to ``(1, 1)``,
        rows with ``score >= threshold`` predicted positive. Collinear points are dropped
        first (they do not change the curve); if more than ``max_points`` remain, points are
        kept at even steps of ``fpr + tpr`` along the curve.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise MetricInputError(
            f"max_points must be an integer of at least 2, got {max_points!r}", rule="range"
        )
    y, s = _binary_inputs(y_true, score, "score", probabilities=False)
    n_pos, n_neg = _class_counts(y, "roc_curve_points")
    tps, fps, cuts = _binary_curve(y, s)
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    thresholds = np.r_[np.inf, cuts]
    corner = np.r_[True, (np.diff(tps, 2) != 0) | (np.diff(fps, 2) != 0), True]
    tpr, fpr, thresholds = tps[corner] / n_pos, fps[corner] / n_neg, thresholds[corner]
    if len(tpr) > max_points:
        # fpr + tpr rises strictly along the curve, from 0 to 2.
        progress = fpr + tpr
        targets = np.linspace(0.0, progress[-1], max_points)
        keep = np.unique(np.searchsorted(progress, targets, side="left"))
        tpr, fpr, thresholds = tpr[keep], fpr[keep], thresholds[keep]
    return [
        {"fpr": float(f), "tpr": float(t), "threshold": float(c)}
        for f, t, c in zip(fpr, tpr, thresholds, strict=True)
    ]


def calibration_curve_points(
    y_true: npt.ArrayLike, prob: npt.ArrayLike, bins: int = 10
) -> list[dict[str, float]]:
    """Observed outcome rate against mean predicted probability in equal-width bins.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool.
    prob : array_like of shape (n,)
        Predicted probability of the outcome, in [0, 1].
    bins : int, default 10
        Number of equal-width bins on [0, 1]: public edges, never learned from the data.

    Returns
    -------
    list of dict
        One dict per non-empty bin, in order: ``bin_lower``, ``bin_upper``, ``n``,
        ``mean_predicted``, ``observed``. Bins are ``(lower, upper]`` (the first also holds
        0), as scikit-learn's ``calibration_curve(strategy="uniform")``.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise MetricInputError(f"bins must be a positive integer, got {bins!r}", rule="range")
    y, p = _binary_inputs(y_true, prob, "prob", probabilities=True)
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_index = np.searchsorted(edges[1:-1], p, side="left")
    counts = np.bincount(bin_index, minlength=bins)
    predicted = np.bincount(bin_index, weights=p, minlength=bins)
    observed = np.bincount(bin_index, weights=y.astype(np.float64), minlength=bins)
    return [
        {
            "bin_lower": float(edges[k]),
            "bin_upper": float(edges[k + 1]),
            "n": int(counts[k]),
            "mean_predicted": float(predicted[k] / counts[k]),
            "observed": float(observed[k] / counts[k]),
        }
        for k in np.flatnonzero(counts)
    ]


# --- pooled AUROC from per-site histograms --------------------------------------------------


def _edges(edges: npt.ArrayLike) -> FloatArray:
    array = _vector("edges", edges)
    if len(array) < 2 or not np.all(np.diff(array) > 0):
        raise MetricInputError(
            "edges must hold at least 2 strictly increasing values", rule="bad-edges"
        )
    return array


def score_histogram(
    y_true: npt.ArrayLike, score: npt.ArrayLike, edges: npt.ArrayLike
) -> npt.NDArray[np.int64]:
    """Counts of scores per bin, per class, on public bin edges.

    Sites release these aggregates instead of rows; the hub sums them and calls
    :func:`auroc_from_histograms`. Releasing them is a data release like any other count
    table: the site's privacy policy applies.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Binary outcome, 0/1 or bool (one class is allowed: a site may lack one).
    score : array_like of shape (n,)
        Scores, all within ``[edges[0], edges[-1]]``.
    edges : array_like of shape (k + 1,)
        Strictly increasing bin edges, agreed in advance (never derived from one site's data).
        Bins are ``[edges[i], edges[i+1])``, the last one closed, as ``numpy.histogram``.

    Returns
    -------
    numpy.ndarray of shape (2, k)
        Row 0 counts negatives, row 1 positives.

    Raises
    ------
    MetricInputError
        When a score falls outside the edges (it is never dropped silently).
    """
    y, s = _binary_inputs(y_true, score, "score", probabilities=False)
    bounds = _edges(edges)
    outside = (s < bounds[0]) | (s > bounds[-1])
    if outside.any():
        raise MetricInputError(
            f"score has {int(outside.sum())} value(s) outside the edges' range "
            f"[{bounds[0]}, {bounds[-1]}], first at index {int(np.flatnonzero(outside)[0])}",
            rule="out-of-range",
        )
    n_bins = len(bounds) - 1
    bin_index = np.minimum(np.searchsorted(bounds, s, side="right") - 1, n_bins - 1)
    counts = np.bincount(bin_index + n_bins * y, minlength=2 * n_bins)
    return counts.astype(np.int64).reshape(2, n_bins)


def auroc_from_histograms(hist: npt.ArrayLike) -> float:
    """AUROC from per-class score histograms (e.g. summed over sites).

    Parameters
    ----------
    hist : array_like of shape (2, k)
        Counts per bin of negatives (row 0) and positives (row 1), bins in increasing score
        order, as from :func:`score_histogram`. Non-negative; non-integer counts are allowed.

    Returns
    -------
    float
        AUROC with a positive and a negative in the same bin counting one half. Exact (equal
        to :func:`auroc` on the rows) when no bin holds two distinct scores, e.g. with the
        sorted distinct scores plus one edge above the largest as edges; otherwise off by at
        most half the share of positive-negative pairs that share a bin.

    Raises
    ------
    UndefinedMetricError
        When either class has no count.
    """
    counts = np.asarray(hist)
    if counts.dtype.kind not in "biuf":
        raise MetricInputError(
            f"hist must be numeric, got dtype {counts.dtype}", rule="not-numeric"
        )
    if counts.ndim != 2 or counts.shape[0] != 2 or counts.shape[1] == 0:
        raise MetricInputError(f"hist must have shape (2, k), got {counts.shape}", rule="shape")
    counts = counts.astype(np.float64)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise MetricInputError("hist must hold finite, non-negative counts", rule="bad-counts")
    negatives, positives = counts
    n_neg, n_pos = negatives.sum(), positives.sum()
    if n_neg == 0 or n_pos == 0:
        raise UndefinedMetricError(
            "auroc_from_histograms needs both classes, but one row of hist sums to 0",
            rule="one-class",
        )
    below = np.cumsum(negatives) - negatives
    return float(np.sum(positives * (below + negatives / 2)) / (n_pos * n_neg))
