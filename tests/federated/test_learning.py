"""The shared pieces of learning tasks: rows and splits, standardisation, evaluation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cardiobox import metrics
from cardiobox.federated.evaluation import auprc_from_histograms, roc_points_from_histograms
from cardiobox.federated.learning import (
    LearningParams,
    Standardisation,
    evaluated_on,
    evaluation_release,
    payload_vector,
    pooled_evaluation,
    pooled_standardisation,
    row_filter,
    site_rows,
    standardisation_sums,
)
from cardiobox.federated.site_table import ColumnError, SiteTable
from cardiobox.federated.task import RoundResult, SiteContext, TaskError
from cardiobox.privacy.policy import SitePolicy


def table(split: list[str | None] | None = None) -> SiteTable:
    n = 8
    columns = {
        "age": [50.0, 61, 70, None, 45, 58, 66, 72],
        "sex": [True, False, True, True, False, False, True, False],
        "y": [0, 1, 1, 0, 0, 1, 0, 1],
        "label": ["a"] * n,
        "split": split or ["train", "test"] * 4,
    }
    return SiteTable(pa.table(columns))


def params(**kw: object) -> LearningParams:
    return LearningParams.model_validate({"outcome": "y", "covariates": ["age", "sex"], **kw})


def ctx(min_cell_count: int = 3) -> SiteContext:
    return SiteContext("a", SitePolicy(min_cell_count=min_cell_count), 0.0, np.random.default_rng())


def test_rows_follow_the_split_and_where() -> None:
    t = table()
    x, y = site_rows(t, params(split_column="split"), "train")
    np.testing.assert_array_equal(x, [[50, 1], [70, 1], [45, 0], [66, 1]])
    np.testing.assert_array_equal(y, [0, 1, 0, 0])
    x, y = site_rows(t, params(split_column="split", where="age > 60"), "test")
    np.testing.assert_array_equal(y, [1, 1])  # 61 and 72; the missing age is not a complete case
    assert not x.flags.writeable
    assert site_rows(t, params(), "test")[0].shape == (7, 2)  # no split: every complete row
    assert row_filter("age > 1", "my split", "test") == "(age > 1) AND \"my split\" = 'test'"
    assert evaluated_on(params()) == "training rows"
    assert evaluated_on(params(split_column="split")) == "test rows (split = 'test')"


def test_bad_rows_are_named() -> None:
    with pytest.raises(TaskError, match="3 row\\(s\\) at this site") as err:
        site_rows(
            table(["train", "test", "tr", None, "x"] + ["train"] * 3),
            params(split_column="split"),
            "train",
        )
    assert err.value.rule == "bad-split"
    with pytest.raises(ColumnError, match="split_column 'age': column 'age' is number"):
        site_rows(table(), params(split_column="age", covariates=["sex"]), "train")
    with pytest.raises(ColumnError, match="covariate 'label': column 'label' is string"):
        site_rows(table(), params(covariates=["age", "label"]), "train")
    with pytest.raises(TaskError, match="outcome 'age' must be 0/1"):
        site_rows(table(), params(outcome="age", covariates=["sex"]), "train")


def test_params_are_checked() -> None:
    for bad, message in [
        ({"covariates": []}, "at least one covariate"),
        ({"covariates": ["age", "age"]}, "repeated: age"),
        ({"outcome": "age"}, "cannot also be a covariate"),
        ({"split_column": "y"}, "split column 'y' cannot be"),
    ]:
        with pytest.raises(ValueError, match=message):
            params(**bad)


def test_pooled_standardisation_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.normal([60, 250], [9, 40], size=(n, 2)) for n in (30, 41, 17)]
    sums = {
        k: sum(standardisation_sums(p)[k] for p in parts) for k in ("std_n", "std_sum", "std_sumsq")
    }
    std = pooled_standardisation(sums, ["age", "chol"])
    pooled = np.vstack(parts)
    assert std.n == 88
    np.testing.assert_allclose(std.mean, pooled.mean(0), rtol=1e-13)
    np.testing.assert_allclose(std.sd, pooled.std(0, ddof=1), rtol=1e-11)
    np.testing.assert_allclose(std.apply(pooled).std(0, ddof=1), [1, 1], rtol=1e-11)
    back = Standardisation.from_payload(std.to_payload(), 2)
    np.testing.assert_array_equal(back.sd, std.sd)
    flat = np.column_stack([pooled[:, 0], np.full(88, 3.0)])
    with pytest.raises(TaskError, match="covariate\\(s\\) b do not vary") as err:
        pooled_standardisation(standardisation_sums(flat), ["a", "b"])
    assert err.value.rule == "constant-covariate"


def test_payload_vectors_are_checked() -> None:
    assert payload_vector({"w": [1, 2.5]}, "w", 2).tolist() == [1.0, 2.5]
    for bad in (
        {"w": [1.0]},
        {"w": [1.0, "x"]},
        {"w": [1.0, True]},
        {},
        {"w": [1.0, float("nan")]},
    ):
        with pytest.raises(TaskError) as err:
            payload_vector(bad, "w", 2)
        assert err.value.rule == "protocol"


def test_evaluation_pools_and_withholds_small_sites() -> None:
    rng = np.random.default_rng(2)
    sites = {}
    for name, n in (("big", 120), ("small", 6), ("empty", 0)):
        y = (rng.random(n) < 0.4).astype(float)
        prob = np.clip(0.4 + 0.3 * (y - 0.4) + rng.normal(0, 0.2, n), 0, 1)
        sites[name] = (y, prob, *evaluation_release(y, prob, ctx(5), bins=50))
    assert sites["big"][2]["metrics"]["auroc"] == pytest.approx(
        roc_auc_score(sites["big"][0], sites["big"][1])
    )
    assert sites["small"][2]["metrics"] is None and sites["empty"][2]["metrics"] is None
    sums = {k: sum(s[3][k] for s in sites.values()) for k in sites["big"][3]}
    result = RoundResult(2, sorted(sites), {k: s[2] for k, s in sites.items()}, sums)
    out = pooled_evaluation(result, bins=50)
    y = np.concatenate([s[0] for s in sites.values()])
    prob = np.concatenate([s[1] for s in sites.values()])
    assert out["global"]["n"] == 126
    assert out["global"]["accuracy"] == pytest.approx(np.mean((prob >= 0.5) == y))
    assert out["global"]["brier"] == pytest.approx(np.mean((prob - y) ** 2))
    assert out["global"]["auroc"] == pytest.approx(roc_auc_score(y, prob), abs=0.02)
    assert out["per_site"]["small"] is None
    # Pooled test rows below the largest minimum cell count: nothing shown.
    tiny = RoundResult(
        2, ["small"], {"small": {**sites["small"][2], "min_cell_count": 10}}, sites["small"][3]
    )
    shown = pooled_evaluation(tiny, bins=50)["global"]
    assert {k: shown[k] for k in ("n", "accuracy", "auroc", "brier")} == dict.fromkeys(
        ("n", "accuracy", "auroc", "brier")
    )
    assert shown["auprc"] is None and shown["calibration_slope"] is None
    assert shown["ci"] == {} and shown["roc"] == [] and shown["calibration_curve"] == []


# -- pooled evaluation: AUPRC, calibration, curves, bootstrap intervals ---------------------------
def three_sites(
    bins: int, bootstrap: int = 200, extreme: bool = False, min_cell_count: int = 5
) -> tuple[np.ndarray, np.ndarray, dict[str, object], RoundResult]:
    """Three sites' releases of a logistic model's predictions, and the pooled rows."""
    rng = np.random.default_rng(3)
    ys, probs, values, secure = [], [], {}, []
    for name, n in (("a", 400), ("b", 250), ("c", 150)):
        x = rng.normal(size=n) * (4 if extreme else 1)
        y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 1.5 * x)))).astype(float)
        prob = 1 / (1 + np.exp(-(0.1 + 1.2 * x + rng.normal(0, 0.3, n))))
        site_ctx = SiteContext(name, SitePolicy(min_cell_count=min_cell_count), 0.0, rng)
        values[name], sums = evaluation_release(y, prob, site_ctx, bins, bootstrap=bootstrap)
        ys.append(y)
        probs.append(prob)
        secure.append(sums)
    total = {k: np.sum([s[k] for s in secure], axis=0) for k in secure[0]}
    return (
        np.concatenate(ys),
        np.concatenate(probs),
        values,
        RoundResult(2, ["a", "b", "c"], values, total),
    )


def test_pooled_auprc_equals_sklearn() -> None:
    y, prob, _, result = three_sites(bins=2000, bootstrap=0)
    glob = pooled_evaluation(result, bins=2000)["global"]
    assert glob["auprc"] == pytest.approx(average_precision_score(y, prob), abs=1e-3)
    assert glob["auroc"] == pytest.approx(roc_auc_score(y, prob), abs=1e-3)
    # On the bins themselves the histogram AUPRC is scikit-learn's to rounding.
    hist = metrics.score_histogram(y, prob, np.linspace(0, 1, 51))
    binned = np.minimum(np.floor(prob * 50), 49)
    assert auprc_from_histograms(hist) == pytest.approx(
        average_precision_score(y, binned), abs=1e-12
    )
    with pytest.raises(metrics.UndefinedMetricError):
        auprc_from_histograms(np.array([[0.0, 0.0], [1.0, 2.0]]))


@pytest.mark.parametrize("extreme", [False, True])
def test_pooled_calibration_equals_the_fit_on_pooled_rows(extreme: bool) -> None:
    # extreme: logits up to ±30, beyond the bins' range (they land in the end bins).
    y, prob, _, result = three_sites(bins=200, bootstrap=0, extreme=extreme)
    glob = pooled_evaluation(result, bins=200)["global"]
    ref = metrics.calibration(y, prob)
    assert glob["calibration_slope"] == pytest.approx(ref.slope, abs=1e-3)
    assert glob["calibration_intercept"] == pytest.approx(ref.intercept, abs=1e-3)
    curve = metrics.calibration_curve_points(y, prob, 10)
    assert [p["n"] for p in glob["calibration_curve"]] == [p["n"] for p in curve]
    for got, want in zip(glob["calibration_curve"], curve, strict=True):
        assert got == pytest.approx(want, rel=1e-9)


def test_pooled_roc_curve_keeps_steps_above_the_cell_floor() -> None:
    y, prob, _, result = three_sites(bins=200, bootstrap=0, min_cell_count=5)
    roc = pooled_evaluation(result, bins=200)["global"]["roc"]
    assert roc[0] == {"fpr": 0.0, "tpr": 0.0, "threshold": None}
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    fpr, tpr = np.array([p["fpr"] for p in roc]), np.array([p["tpr"] for p in roc])
    rows = np.diff(fpr) * np.sum(y == 0) + np.diff(tpr) * np.sum(y == 1)
    assert np.all(rows >= 5 - 1e-9)
    # At full resolution the area under the points is the histogram AUROC.
    hist = metrics.score_histogram(y, prob, np.linspace(0, 1, 201))
    full = roc_points_from_histograms(hist, np.linspace(0, 1, 201), 1)
    f, t = np.array([p["fpr"] for p in full]), np.array([p["tpr"] for p in full])
    area = float(np.sum(np.diff(f) * (t[1:] + t[:-1]) / 2))
    assert area == pytest.approx(metrics.auroc_from_histograms(hist), abs=1e-12)


def test_pooled_bootstrap_intervals_match_a_bootstrap_of_pooled_rows() -> None:
    y, prob, values, result = three_sites(bins=200, bootstrap=400)
    glob = pooled_evaluation(result, bins=200)["global"]
    functions = {
        "auroc": metrics.auroc,
        "auprc": metrics.auprc,
        "accuracy": metrics.accuracy,
        "brier": metrics.brier,
    }
    for name, metric in functions.items():
        low, high = glob["ci"][name]
        assert low < glob[name] < high, name
        ref = metrics.bootstrap_ci(metric, y, prob, n_boot=500, seed=1)
        assert (high - low) == pytest.approx(ref.upper - ref.lower, rel=0.3), name
    # Each site's own intervals, released with its metrics, bracket its estimates.
    site = values["a"]["metrics"]
    for name in functions:
        assert site["ci"][name][0] < site[name] < site["ci"][name][1]


def test_bootstrap_weights_are_reproducible_but_not_public() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(50) < 0.5).astype(float)
    prob = rng.random(50)

    def boot(site: str, labels: np.ndarray) -> np.ndarray:
        site_ctx = SiteContext(site, SitePolicy(min_cell_count=5), 0.0, np.random.default_rng())
        return evaluation_release(labels, prob, site_ctx, 20, bootstrap=10)[1]["eval_boot_n"]

    np.testing.assert_array_equal(boot("a", y), boot("a", y))
    assert not np.array_equal(boot("a", y), boot("b", y))
    # The weights depend on the site's labels, which the hub does not know.
    assert not np.array_equal(boot("a", y), boot("a", 1 - y))
    assert "eval_boot_n" not in evaluation_release(y, prob, ctx(5), 20, bootstrap=0)[1]
