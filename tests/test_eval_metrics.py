"""Evaluation metrics against scikit-learn, statsmodels, lifelines and hand-computed values."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm  # type: ignore[import-untyped]
from lifelines.utils import (  # type: ignore[import-untyped]
    concordance_index as lifelines_concordance_index,
)
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
    roc_curve,
)

from cardiobox import metrics
from cardiobox.errors import CardioboxError
from cardiobox.metrics import (
    PROB_CLIP,
    BootstrapCI,
    Calibration,
    MetricInputError,
    UndefinedMetricError,
    accuracy,
    auprc,
    auroc,
    auroc_from_histograms,
    bootstrap_ci,
    brier,
    calibration,
    calibration_curve_points,
    classification_report,
    concordance_index,
    roc_curve_points,
    score_histogram,
)


def binary_data(
    seed: int, n: int, *, ties: bool = False, strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities with some signal; ``ties`` rounds them to few distinct values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.uniform(size=n) < expit(strength * x)).astype(int)
    prob = expit(0.8 * x + 0.2)
    if ties:
        prob = np.round(prob, 1)
    return y, prob


# Data sets on which every class-comparing metric is compared to its reference library.
CASES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "continuous": binary_data(0, 500),
    "tied": binary_data(1, 400, ties=True),
    "all-same-score": (np.array([0, 1, 0, 1, 1, 0, 0]), np.full(7, 0.3)),
    "perfectly-separated": (np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.7, 0.9])),
    "reversed": (np.array([1, 1, 0, 0, 0]), np.array([0.1, 0.2, 0.3, 0.7, 0.9])),
    "rare-positive": (np.r_[np.zeros(30, int), 1], np.linspace(0.0, 1.0, 31)),
    "bool-labels": (np.array([True, False, True, False]), np.array([0.9, 0.1, 0.4, 0.4])),
}


# --- AUROC, AUPRC, Brier, accuracy ----------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_auroc_auprc_match_sklearn(case: str) -> None:
    y, score = CASES[case]
    assert auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert auprc(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_auroc_accepts_any_real_score_and_lists() -> None:
    y, prob = CASES["tied"]
    score = logit(prob) * 40 - 7  # monotone transform: same AUROC, values outside [0, 1]
    assert auroc(list(y), list(score)) == pytest.approx(roc_auc_score(y, prob), abs=1e-12)


def test_hand_computed_tiny_cases() -> None:
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])
    # Positive 0.35 beats one of two negatives, 0.8 beats both: 3 of 4 pairs.
    assert auroc(y, score) == pytest.approx(0.75)
    # Thresholds 0.8, 0.4, 0.35: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    assert auprc(y, score) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # A tie across classes counts one half.
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    assert auroc(CASES["perfectly-separated"][0], CASES["perfectly-separated"][1]) == 1.0
    assert auroc(CASES["reversed"][0], CASES["reversed"][1]) == 0.0
    assert brier([0, 1, 1], [0.2, 0.6, 1.0]) == pytest.approx((0.04 + 0.16 + 0) / 3)
    # prob >= threshold predicts positive: 0.5 is positive at the default threshold.
    assert accuracy([1, 0, 0, 1], [0.5, 0.49, 0.7, 0.1]) == 0.5
    assert accuracy([1, 0, 0, 1], [0.5, 0.49, 0.7, 0.1], threshold=0.45) == 0.25


@pytest.mark.parametrize("case", CASES)
def test_brier_and_accuracy_match_sklearn(case: str) -> None:
    y, prob = CASES[case]
    assert brier(y, prob) == pytest.approx(brier_score_loss(y, prob), abs=1e-15)
    for threshold in (0.3, 0.5, 0.7):
        expected = accuracy_score(y, prob >= threshold)
        assert accuracy(y, prob, threshold=threshold) == pytest.approx(expected, abs=1e-15)


def test_brier_and_accuracy_are_defined_with_one_class() -> None:
    assert brier([1, 1], [0.5, 1.0]) == pytest.approx(0.125)
    assert accuracy([0, 0, 0], [0.1, 0.6, 0.2]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", [auroc, auprc, calibration])
@pytest.mark.parametrize("label", [0, 1])
def test_class_comparing_metrics_need_both_classes(metric: Callable[..., Any], label: int) -> None:
    with pytest.raises(UndefinedMetricError, match="y_true") as caught:
        metric(np.full(5, label), np.linspace(0.1, 0.9, 5))
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, CardioboxError)


# --- calibration ----------------------------------------------------------------------------


def statsmodels_slope(y: np.ndarray, prob: np.ndarray) -> float:
    logit_p = logit(np.clip(prob, PROB_CLIP, 1 - PROB_CLIP))
    fit = sm.GLM(y.astype(float), sm.add_constant(logit_p), family=sm.families.Binomial())
    return float(fit.fit(tol=1e-12).params[1])


def statsmodels_intercept(y: np.ndarray, prob: np.ndarray) -> float:
    logit_p = logit(np.clip(prob, PROB_CLIP, 1 - PROB_CLIP))
    ones = np.ones((len(y), 1))
    fit = sm.GLM(y.astype(float), ones, family=sm.families.Binomial(), offset=logit_p)
    return float(fit.fit(tol=1e-12).params[0])


@pytest.mark.parametrize(
    ("seed", "true_intercept", "true_slope"),
    [(0, 0.0, 1.0), (1, 0.4, 0.5), (2, -1.0, 2.0), (3, -2.5, 0.8)],
)
def test_calibration_matches_statsmodels(
    seed: int, true_intercept: float, true_slope: float
) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    logit_p = rng.normal(-0.5, 1.5, size=n)
    y = (rng.uniform(size=n) < expit(true_intercept + true_slope * logit_p)).astype(int)
    prob = expit(logit_p)
    prob[:20] = 0.0  # clipped before the logit, in both implementations
    prob[20:40] = 1.0
    result = calibration(y, prob)
    slope, intercept = statsmodels_slope(y, prob), statsmodels_intercept(y, prob)
    assert isinstance(result, Calibration)
    assert result.slope == pytest.approx(slope, rel=1e-8, abs=1e-10)
    assert result.intercept == pytest.approx(intercept, rel=1e-8, abs=1e-10)


def test_calibration_on_tied_probabilities_matches_statsmodels() -> None:
    y, prob = CASES["tied"]
    slope, intercept = statsmodels_slope(y, prob), statsmodels_intercept(y, prob)
    result = calibration(y, prob)
    assert result.slope == pytest.approx(slope, rel=1e-8)
    assert result.intercept == pytest.approx(intercept, rel=1e-8)


def test_calibration_intercept_closed_form_for_constant_prob() -> None:
    # With one predicted value, the offset fit gives logit(observed rate) - logit(p).
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0])
    report = classification_report(y, np.full(8, 0.4))
    assert report["calibration_intercept"] == pytest.approx(logit(0.25) - logit(0.4))
    assert report["calibration_slope"] is None  # no spread in logit(p): no finite slope


@pytest.mark.parametrize(
    ("y", "prob"),
    [
        ([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.9]),  # complete separation
        ([1, 1, 0, 0], [0.1, 0.2, 0.7, 0.9]),  # reversed separation
        ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]),  # quasi-complete: one shared value at the border
        ([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]),  # constant prob
    ],
)
def test_calibration_slope_undefined_without_overlap(y: list[int], prob: list[float]) -> None:
    with pytest.raises(UndefinedMetricError, match="separates"):
        calibration(y, prob)


# --- concordance index ----------------------------------------------------------------------


def brute_force_concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C from its definition, one comparison matrix (small n only)."""
    earlier = time[:, None] < time[None, :]
    censored_same_time = (time[:, None] == time[None, :]) & (event[None, :] == 0)
    comparable = (event[:, None] == 1) & (earlier | censored_same_time)
    concordant = comparable & (risk[:, None] > risk[None, :])
    tied = comparable & (risk[:, None] == risk[None, :])
    return float((concordant.sum() + tied.sum() / 2) / comparable.sum())


def survival_data(seed: int, n: int, *, ties: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-0.7 * risk))
    event = (rng.uniform(size=n) < 0.6).astype(int)
    if ties:
        time, risk = np.round(time * 4), np.round(risk * 2)
    return time, event, risk


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_concordance_matches_lifelines_and_definition(seed: int, ties: bool) -> None:
    time, event, risk = survival_data(seed, 40 + 97 * seed, ties=ties)
    expected = lifelines_concordance_index(time, -risk, event)
    assert concordance_index(time, event, risk) == pytest.approx(expected, abs=1e-12)
    assert concordance_index(time, event, risk) == pytest.approx(
        brute_force_concordance(time, event, risk), abs=1e-12
    )


def test_concordance_larger_sample_with_many_ties_matches_lifelines() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    time = rng.integers(0, 30, n).astype(float)
    event = rng.integers(0, 2, n)
    risk = rng.integers(0, 12, n).astype(float) + 0.1 * (time < 10)
    expected = lifelines_concordance_index(time, -risk, event)
    assert concordance_index(time, event, risk) == pytest.approx(expected, abs=1e-12)


def test_concordance_hand_computed() -> None:
    time = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    event = np.array([1, 1, 0, 1, 0])
    risk = np.array([5.0, 3.0, 4.0, 3.0, 1.0])
    # Comparable pairs (event first): (0,1..4) four, (1,2) censored at the same time, (1,3),
    # (1,4), (3,4): eight. Concordant: all of 0's, (1,4), (3,4); tied risk: (1,3);
    # discordant: (1,2) since subject 2 outlived subject 1 with higher risk.
    assert concordance_index(time, event, risk) == pytest.approx((6 + 0.5) / 8)
    # Two events at the same time are not comparable.
    assert concordance_index([1.0, 1.0, 2.0], [1, 1, 0], [2.0, 1.0, 0.0]) == 1.0
    # A perfect and a reversed risk score.
    assert concordance_index([1.0, 2.0, 3.0], [1, 1, 1], [3.0, 2.0, 1.0]) == 1.0
    assert concordance_index([1.0, 2.0, 3.0], [1, 1, 1], [1.0, 2.0, 3.0]) == 0.0
    assert concordance_index([1.0, 2.0, 3.0], [1, 1, 1], [7.0, 7.0, 7.0]) == 0.5


@pytest.mark.parametrize(
    ("time", "event"),
    [([1.0, 2.0, 3.0], [0, 0, 0]), ([2.0, 2.0, 2.0], [1, 1, 1]), ([1.0, 2.0], [0, 1])],
)
def test_concordance_without_comparable_pairs(time: list[float], event: list[int]) -> None:
    with pytest.raises(UndefinedMetricError, match="no comparable pairs"):
        concordance_index(time, event, np.arange(len(time), dtype=float))


def test_count_earlier_greater_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 7, 64, 65, 200):
        values = rng.integers(0, 6, n).astype(np.int64)
        counted = rng.uniform(size=n) < 0.5
        pairs = np.triu(np.ones((n, n), dtype=bool), k=1)
        expected = int(np.sum(pairs & counted[:, None] & (values[:, None] > values[None, :])))
        assert metrics._count_earlier_greater(values, counted) == expected


# --- classification report ------------------------------------------------------------------

REPORT_KEYS = {
    "n",
    "prevalence",
    "auroc",
    "auprc",
    "brier",
    "accuracy",
    "calibration_slope",
    "calibration_intercept",
}


def test_classification_report_equals_the_single_metrics() -> None:
    y, prob = CASES["continuous"]
    report = classification_report(y, prob)
    fit = calibration(y, prob)
    assert set(report) == REPORT_KEYS
    assert report == {
        "n": 500,
        "prevalence": pytest.approx(y.mean()),
        "auroc": auroc(y, prob),
        "auprc": auprc(y, prob),
        "brier": brier(y, prob),
        "accuracy": accuracy(y, prob),
        "calibration_slope": fit.slope,
        "calibration_intercept": fit.intercept,
    }


@pytest.mark.parametrize("label", [0, 1])
def test_classification_report_with_one_class_has_none_not_nan(label: int) -> None:
    report = classification_report(np.full(4, label), [0.2, 0.4, 0.6, 0.8])
    assert set(report) == REPORT_KEYS
    assert report["prevalence"] == label
    for key in ("auroc", "auprc", "calibration_slope", "calibration_intercept"):
        assert report[key] is None
    assert all(value is None or math.isfinite(value) for value in report.values())


def test_classification_report_perfect_separation() -> None:
    y, prob = CASES["perfectly-separated"]
    report = classification_report(y, prob)
    assert report["auroc"] == 1.0 and report["auprc"] == 1.0
    assert report["calibration_slope"] is None
    expected = statsmodels_intercept(y, prob)
    assert report["calibration_intercept"] == pytest.approx(expected, rel=1e-8)


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_mean_interval_close_to_normal_theory() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(10.0, 2.0, size=400)
    estimate, lower, upper = bootstrap_ci(lambda v: float(np.mean(v)), values, n_boot=2000)
    half_width = 1.959964 * values.std() / math.sqrt(len(values))
    assert estimate == pytest.approx(values.mean())
    assert lower == pytest.approx(values.mean() - half_width, abs=0.04)
    assert upper == pytest.approx(values.mean() + half_width, abs=0.04)


def test_bootstrap_auroc_is_reproducible_and_brackets_estimate() -> None:
    y, prob = CASES["continuous"]
    first = bootstrap_ci(auroc, y, prob, n_boot=300, seed=5)
    again = bootstrap_ci(auroc, y, prob, n_boot=300, seed=5)
    other = bootstrap_ci(auroc, y, prob, n_boot=300, seed=6)
    assert isinstance(first, BootstrapCI) and isinstance(first, tuple) and len(first) == 3
    assert first == again and first != other
    assert first.estimate == auroc(y, prob)
    assert first.lower < first.estimate < first.upper
    assert (first.n_used, first.n_skipped) == (300, 0)
    assert pickle.loads(pickle.dumps(first)) == first
    # A narrower level gives a narrower interval from the same resamples.
    narrow = bootstrap_ci(auroc, y, prob, n_boot=300, seed=5, alpha=0.5)
    assert first.lower < narrow.lower < narrow.upper < first.upper


def test_bootstrap_resamples_rows_of_all_arrays_together() -> None:
    a = np.arange(50.0)
    pairs_intact = bootstrap_ci(lambda x, y: float(np.all(y == 2 * x)), a, 2 * a, n_boot=50, seed=1)
    assert tuple(pairs_intact) == (1.0, 1.0, 1.0)


def test_bootstrap_skips_and_counts_undefined_resamples() -> None:
    y = np.r_[np.zeros(14, int), 1]  # one positive: many resamples miss it
    score = np.linspace(0.0, 1.0, 15)
    result = bootstrap_ci(auroc, y, score, n_boot=200, seed=2)
    # P(the positive is not drawn) = (14/15)^15 ~ 0.355.
    assert 40 < result.n_skipped < 105
    assert result.n_used + result.n_skipped == 200
    assert (result.estimate, result.lower, result.upper) == (1.0, 1.0, 1.0)


def test_bootstrap_stratified_keeps_class_counts() -> None:
    y = np.r_[np.zeros(14, int), np.ones(3, int)]
    score = np.random.default_rng(0).uniform(size=17)
    prevalence = bootstrap_ci(lambda yy, _: float(yy.mean()), y, score, n_boot=100, stratify=y)
    assert tuple(prevalence) == pytest.approx((3 / 17, 3 / 17, 3 / 17))
    stratified = bootstrap_ci(auroc, y, score, n_boot=200, stratify=y)
    assert stratified.n_skipped == 0


def test_bootstrap_treats_nan_as_undefined_and_fails_when_all_are() -> None:
    nan_half = bootstrap_ci(
        lambda v: float("nan") if v.sum() % 2 else 1.0, np.arange(9), n_boot=100, seed=3
    )
    assert nan_half.n_used + nan_half.n_skipped == 100 and nan_half.n_skipped > 0
    original = np.arange(9)

    def only_on_original(v: np.ndarray) -> float:
        return 1.0 if np.array_equal(v, original) else float("nan")

    with pytest.raises(UndefinedMetricError, match="all 5 resamples"):
        bootstrap_ci(only_on_original, original, n_boot=5)


def test_bootstrap_propagates_undefined_full_data_metric() -> None:
    with pytest.raises(UndefinedMetricError, match="both classes"):
        bootstrap_ci(auroc, np.zeros(5, int), np.linspace(0, 1, 5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_boot": 0}, "n_boot"),
        ({"n_boot": 2.5}, "n_boot"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.2}, "alpha"),
        ({"stratify": [0, 1]}, "stratify"),
        ({"stratify": [0.0, 1.0, np.nan, 1.0, 0.0, 1.0]}, "stratify"),
    ],
)
def test_bootstrap_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(MetricInputError, match=match):
        bootstrap_ci(auroc, y, np.linspace(0, 1, 6), **kwargs)


def test_bootstrap_mismatched_lengths_and_no_arrays() -> None:
    with pytest.raises(MetricInputError, match=r"arrays\[1\] has 3"):
        bootstrap_ci(auroc, [0, 1, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricInputError, match="at least one array"):
        bootstrap_ci(auroc)


# --- curves ---------------------------------------------------------------------------------


def test_roc_curve_points_full_curve_is_sklearns() -> None:
    y, prob = CASES["tied"]
    points = roc_curve_points(y, prob, max_points=10_000)
    fpr, tpr, thresholds = roc_curve(y, prob, drop_intermediate=True)
    assert [p["fpr"] for p in points] == pytest.approx(fpr)
    assert [p["tpr"] for p in points] == pytest.approx(tpr)
    assert [p["threshold"] for p in points][1:] == pytest.approx(thresholds[1:])
    assert points[0]["threshold"] == math.inf
    area = np.trapezoid([p["tpr"] for p in points], [p["fpr"] for p in points])
    assert area == pytest.approx(auroc(y, prob), abs=1e-12)


def test_roc_curve_points_thinned() -> None:
    y, prob = binary_data(4, 5000)
    points = roc_curve_points(y, prob, max_points=60)
    fpr, tpr, _ = roc_curve(y, prob, drop_intermediate=False)
    full = set(zip(fpr.tolist(), tpr.tolist(), strict=True))
    assert 2 < len(points) <= 60
    assert all((p["fpr"], p["tpr"]) in full for p in points)
    assert (points[0]["fpr"], points[0]["tpr"]) == (0.0, 0.0)
    assert (points[-1]["fpr"], points[-1]["tpr"]) == (1.0, 1.0)
    fprs, tprs = [p["fpr"] for p in points], [p["tpr"] for p in points]
    assert np.all(np.diff(fprs) >= 0) and np.all(np.diff(tprs) >= 0)
    assert np.trapezoid(tprs, fprs) == pytest.approx(auroc(y, prob), abs=5e-3)


def test_roc_curve_points_errors() -> None:
    with pytest.raises(MetricInputError, match="max_points"):
        roc_curve_points([0, 1], [0.2, 0.8], max_points=1)
    with pytest.raises(UndefinedMetricError, match="both classes"):
        roc_curve_points([1, 1], [0.2, 0.8])


@pytest.mark.parametrize("bins", [1, 5, 10])
def test_calibration_curve_points_match_sklearn(bins: int) -> None:
    y, prob = binary_data(5, 700)
    prob = np.r_[prob, 0.0, 0.2, 0.5, 1.0]  # values on the edges land where sklearn puts them
    y = np.r_[y, 0, 1, 1, 1]
    points = calibration_curve_points(y, prob, bins=bins)
    observed, predicted = calibration_curve(y, prob, n_bins=bins, strategy="uniform")
    assert [p["observed"] for p in points] == pytest.approx(observed)
    assert [p["mean_predicted"] for p in points] == pytest.approx(predicted)
    assert sum(p["n"] for p in points) == len(y)
    assert all(p["bin_lower"] < p["mean_predicted"] <= p["bin_upper"] or p["n"] for p in points)


def test_calibration_curve_points_skip_empty_bins() -> None:
    points = calibration_curve_points([0, 1, 1], [0.05, 0.95, 0.91], bins=10)
    assert points == [
        {"bin_lower": 0.0, "bin_upper": 0.1, "n": 1, "mean_predicted": 0.05, "observed": 0.0},
        {
            "bin_lower": pytest.approx(0.9),
            "bin_upper": 1.0,
            "n": 2,
            "mean_predicted": pytest.approx(0.93),
            "observed": 1.0,
        },
    ]
    with pytest.raises(MetricInputError, match="bins"):
        calibration_curve_points([0, 1], [0.1, 0.9], bins=0)


# --- pooled AUROC from histograms -----------------------------------------------------------


def test_score_histogram_counts_per_class() -> None:
    y, prob = CASES["continuous"]
    edges = np.linspace(0.0, 1.0, 21)
    hist = score_histogram(y, prob, edges)
    assert hist.shape == (2, 20)
    assert hist.dtype == np.int64
    np.testing.assert_array_equal(hist[0], np.histogram(prob[y == 0], edges)[0])
    np.testing.assert_array_equal(hist[1], np.histogram(prob[y == 1], edges)[0])
    # One class is fine for a site; the last edge is inside the last bin.
    np.testing.assert_array_equal(
        score_histogram([1, 1, 1], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0]), [[0, 0], [1, 2]]
    )


def test_auroc_from_fine_histograms_close_to_sklearn() -> None:
    y, prob = binary_data(6, 3000)
    hist = score_histogram(y, prob, np.linspace(0.0, 1.0, 2001))
    assert auroc_from_histograms(hist) == pytest.approx(roc_auc_score(y, prob), abs=1e-3)


@pytest.mark.parametrize("case", ["continuous", "tied", "all-same-score", "perfectly-separated"])
def test_auroc_from_histograms_exact_on_distinct_score_edges(case: str) -> None:
    y, score = CASES[case]
    distinct = np.unique(score)
    edges = np.r_[distinct, distinct[-1] + 1.0]  # one bin per distinct score
    hist = score_histogram(y, score, edges)
    assert auroc_from_histograms(hist) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_pooled_auroc_from_summed_site_histograms() -> None:
    y, prob = CASES["tied"]
    edges = np.r_[np.unique(prob), 2.0]
    sites = np.array_split(np.arange(len(y)), 3)
    summed = sum(score_histogram(y[rows], prob[rows], edges) for rows in sites)
    assert auroc_from_histograms(summed) == pytest.approx(auroc(y, prob), abs=1e-12)
    # Coarse bins: within-bin pairs count one half, so the pooled value moves toward 0.5.
    coarse = score_histogram(y, prob, [0.0, 0.5, 1.0])
    assert auroc_from_histograms(coarse) < auroc(y, prob)
    # Non-integer (e.g. post-processed noisy) counts are accepted.
    assert auroc_from_histograms([[1.5, 0.5], [0.0, 2.0]]) == pytest.approx(
        (2.0 * (1.5 + 0.25)) / (2.0 * 2.0)
    )


@pytest.mark.parametrize(
    ("hist", "error", "match"),
    [
        ([[1, 2, 3]], MetricInputError, "shape"),
        ([[1, 2], [3, -1]], MetricInputError, "non-negative"),
        ([[1, np.nan], [3, 1]], MetricInputError, "finite"),
        ([["a", "b"], ["c", "d"]], MetricInputError, "numeric"),
        ([[0, 0], [3, 1]], UndefinedMetricError, "both classes"),
    ],
)
def test_auroc_from_histograms_bad_input(hist: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        auroc_from_histograms(hist)


@pytest.mark.parametrize(
    ("score", "edges", "match"),
    [
        ([0.1, 1.2], [0.0, 0.5, 1.0], "score has 1 value"),
        ([-0.1, 0.2], [0.0, 0.5, 1.0], "score has 1 value"),
        ([0.1, 0.2], [0.0, 0.5, 0.5], "edges"),
        ([0.1, 0.2], [0.0], "edges"),
        ([0.1, 0.2], [[0.0, 1.0]], "edges must be 1-D"),
    ],
)
def test_score_histogram_bad_input(score: list[float], edges: Any, match: str) -> None:
    with pytest.raises(MetricInputError, match=match):
        score_histogram([0, 1], score, edges)


# --- bad input ------------------------------------------------------------------------------

GOOD_Y = [0, 1, 0, 1]
GOOD_P = [0.2, 0.7, 0.4, 0.9]


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([[0, 1], [0, 1]], GOOD_P, "y_true must be 1-D"),
        (GOOD_Y, [[0.2, 0.7], [0.4, 0.9]], "must be 1-D"),
        ([], [], "y_true must not be empty"),
        ([0, 1, np.nan, 1], GOOD_P, "y_true has 1 NaN"),
        (GOOD_Y, [0.2, np.nan, 0.4, 0.9], "has 1 NaN or infinite value.*index 1"),
        (GOOD_Y, [0.2, 0.7, 0.4], "y_true has 4.*has 3"),
        ([0, 1, 2, 1], GOOD_P, "y_true must hold only 0 and 1.*index 2"),
        ([0, 1, -1, 1], GOOD_P, "y_true must hold only 0 and 1"),
        (["0", "1", "0", "1"], GOOD_P, "y_true must be numeric"),
        (GOOD_Y, ["a", "b", "c", "d"], "must be numeric"),
    ],
)
@pytest.mark.parametrize(
    "metric", [auroc, auprc, brier, accuracy, calibration, classification_report]
)
def test_bad_input_names_the_argument(
    metric: Callable[..., Any], y: Any, p: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        metric(y, p)


@pytest.mark.parametrize("metric", [brier, accuracy, calibration, classification_report])
@pytest.mark.parametrize("bad", [1.2, -0.1, math.inf])
def test_probabilities_must_lie_in_unit_interval(metric: Callable[..., Any], bad: float) -> None:
    with pytest.raises(MetricInputError, match="prob"):
        metric(GOOD_Y, [0.2, bad, 0.4, 0.9])


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.5", True])
def test_accuracy_bad_threshold(threshold: Any) -> None:
    with pytest.raises(MetricInputError, match="threshold"):
        accuracy(GOOD_Y, GOOD_P, threshold=threshold)


@pytest.mark.parametrize(
    ("time", "event", "risk", "match"),
    [
        ([1.0, np.nan, 2.0], [1, 0, 1], [0.1, 0.2, 0.3], "time has 1 NaN"),
        ([1.0, 2.0, 3.0], [1, 2, 1], [0.1, 0.2, 0.3], "event must hold only 0 and 1"),
        ([1.0, 2.0, 3.0], [1, 0, 1], [0.1, np.inf, 0.3], "risk has 1 NaN or infinite"),
        ([1.0, 2.0, 3.0], [1, 0], [0.1, 0.2, 0.3], "event has 2"),
        ([[1.0, 2.0, 3.0]], [1, 0, 1], [0.1, 0.2, 0.3], "time must be 1-D"),
    ],
)
def test_concordance_bad_input(time: Any, event: Any, risk: Any, match: str) -> None:
    with pytest.raises(MetricInputError, match=match):
        concordance_index(time, event, risk)
