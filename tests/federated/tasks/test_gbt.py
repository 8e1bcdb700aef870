"""gbt: federated histogram GBDT vs the pooled algorithm, scikit-learn and the privacy rules."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

import cardiobox.federated.tasks.gbt as gbt
from cardiobox.federated import RunError, TaskError, make_nodes, run
from cardiobox.federated.evaluation import GLOBAL_KEYS
from cardiobox.federated.hub import Hub
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.metrics import classification_report
from cardiobox.privacy.policy import SitePolicy

ROOT = Path(__file__).resolve().parents[3]
UCI = ROOT / "data" / "uci_heart_disease"
UCI_COLUMNS = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num"
HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
X = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak"]
POLICY = SitePolicy(min_sites=2)
# scikit-learn's HistGradientBoosting fixes its min_hessian_to_split at 1e-3.
BASE = {"outcome": "disease", "covariates": X, "split_column": "split", "min_child_weight": 1e-3}


# -- data -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """UCI heart disease per hospital, outcome num > 0, a per-site stratified 66/34 split."""
    rng = np.random.default_rng(7)
    out = {}
    for h in HOSPITALS:
        df = pd.read_csv(
            UCI / f"processed.{h}.data", header=None, names=UCI_COLUMNS.split(","), na_values="?"
        )
        df["disease"] = (df["num"] > 0).astype(int)
        split = np.empty(len(df), dtype=object)
        for value in (0, 1):
            rows = rng.permutation(np.flatnonzero(df["disease"].to_numpy() == value))
            cut = round(0.66 * len(rows))
            split[rows[:cut]], split[rows[cut:]] = "train", "test"
        df["split"] = split
        out[h] = df
    return out


def write_sites(frames: dict[str, pd.DataFrame], folder: Path) -> dict[str, Path]:
    paths = {}
    for name, df in frames.items():
        paths[name] = folder / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    return paths


def pooled(frames: dict[str, pd.DataFrame], part: str) -> pd.DataFrame:
    df = pd.concat(frames.values(), ignore_index=True)
    return df[df["split"] == part]


@pytest.fixture(scope="module")
def fitted(frames: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run on the four hospitals with the default 50 trees of depth 3."""
    return run("gbt", write_sites(frames, tmp_path_factory.mktemp("gbt")), BASE, policy=POLICY)


# -- correctness ------------------------------------------------------------------------------
def test_three_sites_give_the_trees_of_one_pooled_site(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    rows = pd.concat(frames.values(), ignore_index=True)
    params = {**BASE, "n_trees": 8, "max_depth": 3}
    (tmp_path / "three").mkdir()
    (tmp_path / "one").mkdir()
    three = write_sites({f"s{i}": rows.iloc[i::3] for i in range(3)}, tmp_path / "three")
    one = write_sites({"all": rows}, tmp_path / "one")
    split = run("gbt", three, params, policy=POLICY).result
    whole = run("gbt", one, params, policy=SitePolicy(min_sites=1), min_sites=1).result
    assert split["base_score"] == pytest.approx(whole["base_score"], abs=1e-12)
    for c in X:  # the grids come from pooled mean ± 4 sd (no bounds given)
        np.testing.assert_allclose(split["cut_points"][c], whole["cut_points"][c], rtol=1e-12)
    assert len(split["trees"]) == len(whole["trees"]) == 8
    for a, b in zip(split["trees"], whole["trees"], strict=True):
        for key in ("feature", "bin", "default_left", "left", "right", "n", "depth"):
            assert a[key] == b[key]
        np.testing.assert_allclose(a["value"], b["value"], rtol=0, atol=1e-9)
    x = rows[X].to_numpy(float)
    np.testing.assert_allclose(
        gbt.predict_margin(split, x), gbt.predict_margin(whole, x), rtol=0, atol=1e-9
    )
    for key in ("n", "accuracy", "auroc", "brier"):
        assert split["global"][key] == pytest.approx(whole["global"][key], abs=1e-9)
    for a, b in zip(split["history"], whole["history"], strict=True):
        assert a["train_logloss"] == pytest.approx(b["train_logloss"], abs=1e-9)


def test_equals_scikit_learn_histogram_boosting_on_the_pooled_bins(
    fitted: Any, frames: dict[str, pd.DataFrame]
) -> None:
    res = fitted.result
    train = pooled(frames, "train")
    x = train[X].to_numpy(float)
    # The federated cut points as scikit-learn's bins: one distinct value per bin.
    bins = gbt.bin_matrix(x, [np.asarray(res["cut_points"][c]) for c in X]).astype(float)
    bins[bins < 0] = np.nan
    ref = HistGradientBoostingClassifier(
        max_iter=50, learning_rate=0.1, max_depth=3, max_leaf_nodes=None,
        min_samples_leaf=res["min_cell_count"], l2_regularization=1.0,
        early_stopping=False, max_bins=255,
    ).fit(bins, train["disease"].to_numpy())  # fmt: skip
    assert res["base_score"] == pytest.approx(float(ref._baseline_prediction.ravel()[0]), 1e-12)
    # scikit-learn keeps gradients in float32, hence 1e-6 rather than 1e-12.
    np.testing.assert_allclose(
        gbt.predict_margin(res, x), ref.decision_function(bins), rtol=0, atol=1e-6
    )
    first = [n for n in ref._predictors[0][0].nodes if not n["is_leaf"]]
    ours = [f for f in res["trees"][0]["feature"] if f >= 0]
    assert sorted(int(n["feature_idx"]) for n in first) == sorted(ours)


def test_quality_and_metrics_on_four_hospitals(
    fitted: Any, frames: dict[str, pd.DataFrame]
) -> None:
    res = fitted.result
    assert res["n_trees"] == 50 and fitted.rounds == 2 + 50 * 3 + 1
    assert json.loads(json.dumps(res, allow_nan=False)) == res
    assert res["evaluated_on"].startswith("test rows")
    test = pooled(frames, "test")
    y = test["disease"].to_numpy()
    prob = gbt.predict_proba(res, test[X].to_numpy(float))
    glob = res["global"]
    assert glob["n"] == len(test) == 313
    assert glob["accuracy"] >= 0.75 and glob["auroc"] >= 0.8
    assert glob["accuracy"] == pytest.approx(np.mean((prob >= 0.5) == y), abs=1e-12)
    assert glob["brier"] == pytest.approx(np.mean((prob - y) ** 2), abs=1e-9)
    assert glob["auroc"] == pytest.approx(roc_auc_score(y, prob), abs=2e-3)
    # Switzerland's test rows hold fewer than 10 people without disease: no report of its own.
    assert res["per_site"]["switzerland"] is None
    for h in ("cleveland", "hungarian", "va"):
        df = frames[h][frames[h]["split"] == "test"]
        ref = classification_report(df["disease"], gbt.predict_proba(res, df[X].to_numpy(float)))
        own = res["per_site"][h]
        assert {k: own[k] for k in ref} == pytest.approx(ref, abs=1e-9)
        assert set(own["ci"]) == {"auroc", "auprc", "accuracy", "brier"}  # bootstrap intervals
    losses = [h["train_logloss"] for h in res["history"]]
    assert [h["trees"] for h in res["history"]] == list(range(51))
    assert all(b < a for a, b in itertools.pairwise(losses))  # boosting descends


def test_evaluation_is_the_shared_one_with_its_bootstrap(
    fitted: Any, frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    glob = fitted.result["global"]
    assert tuple(glob) == GLOBAL_KEYS
    assert set(glob["ci"]) == {"auroc", "auprc", "accuracy", "brier"}
    lower, upper = glob["ci"]["auroc"]
    assert lower <= glob["auroc"] <= upper
    assert glob["roc"][0] == {"fpr": 0.0, "tpr": 0.0, "threshold": None}
    assert glob["calibration_curve"] and glob["calibration_slope"] is not None
    params = {**BASE, "n_trees": 2, "max_depth": 2, "bootstrap": 0}
    res = run("gbt", write_sites(frames, tmp_path), params, policy=POLICY).result
    assert res["global"]["ci"] == {} and res["global"]["auroc"] is not None
    assert all(m is None or m["ci"] == {} for m in res["per_site"].values())


def test_node_counts_are_the_rows_reaching_them(
    fitted: Any, frames: dict[str, pd.DataFrame]
) -> None:
    res = fitted.result
    train = pooled(frames, "train")
    bins = gbt.bin_matrix(train[X].to_numpy(float), [np.asarray(res["cut_points"][c]) for c in X])
    for raw in res["trees"][:10]:
        tree = gbt.Tree.from_json(raw, len(X), res["n_bins"])
        reached = np.bincount(tree.route(bins, 3), minlength=len(raw["n"]))
        leaves = np.asarray(raw["feature"]) == gbt.LEAF
        assert reached[leaves].tolist() == np.asarray(raw["n"])[leaves].tolist()
        assert raw["n"][0] == len(train)


def test_public_bounds_skip_the_moments_round(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    df = pd.concat(frames.values())
    bounds = {c: [float(df[c].min()) - 1, float(df[c].max()) + 1] for c in X}
    params = {**BASE, "n_trees": 4, "max_depth": 2, "bounds": bounds}
    report = run("gbt", write_sites(frames, tmp_path), params, policy=POLICY)
    res = report.result
    levels = [max(1, max(t["depth"])) for t in res["trees"]]
    assert report.rounds == 1 + sum(levels) + 1
    for c in X:
        assert all(bounds[c][0] < v < bounds[c][1] for v in res["cut_points"][c])
    assert len(res["cut_points"]["sex"]) == 1  # a 0/1 covariate has one cut


def test_cut_points_at_pooled_quantiles() -> None:
    edges = gbt.fine_edges(0.0, 1024.0)
    uniform = np.ones(gbt.FINE_BINS)
    np.testing.assert_array_equal(gbt.cut_points_from_fine(uniform, edges, 4), [256, 512, 768])
    binary = np.zeros(gbt.FINE_BINS)
    binary[0], binary[-1] = 30, 70
    np.testing.assert_array_equal(gbt.cut_points_from_fine(binary, edges, 32), [1.0])
    assert gbt.cut_points_from_fine(np.zeros(gbt.FINE_BINS), edges, 8).size == 0


def test_missing_values_follow_the_learned_default() -> None:
    tree = {
        "feature": [0, -1, -1], "bin": [1, 0, 0], "default_left": [True, False, False],
        "left": [1, -1, -1], "right": [2, -1, -1], "value": [0.0, -1.0, 1.0],
    }  # fmt: skip
    model = {
        "covariates": ["a"], "cut_points": {"a": [1.0, 2.0]}, "base_score": 0.5,
        "n_bins": 4, "max_depth": 1, "trees": [tree],
    }  # fmt: skip
    margin = gbt.predict_margin(model, [[0.5], [1.99], [2.0], [np.nan]])
    np.testing.assert_array_equal(margin, [-0.5, -0.5, 1.5, -0.5])


# -- privacy ----------------------------------------------------------------------------------
def test_no_node_below_the_largest_min_cell_count(
    fitted: Any, frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    policies = {h: SitePolicy(min_sites=2, min_cell_count=10) for h in HOSPITALS}
    policies["va"] = SitePolicy(min_sites=2, min_cell_count=40)
    params = {**BASE, "n_trees": 5}
    res = run("gbt", write_sites(frames, tmp_path), params, policy=policies).result
    assert res["min_cell_count"] == 40
    for tree in res["trees"]:
        assert min(tree["n"]) >= 40
        for node, (left, right) in enumerate(zip(tree["left"], tree["right"], strict=True)):
            if left >= 0:
                assert tree["n"][left] + tree["n"][right] == tree["n"][node]
    # The rule binds: with cells of 10 the same trees have leaves of fewer than 40 people.
    assert min(min(t["n"]) for t in fitted.result["trees"][:5]) < 40


def test_small_site_refuses_and_a_site_down_is_dropped(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    sites = {**frames, "tiny": frames["cleveland"].head(12)}  # 8 training rows
    nodes = make_nodes(write_sites(sites, tmp_path), POLICY)
    transport = InProcessTransport(nodes)
    transport.down.add("switzerland")
    try:
        report = Hub(transport).run("gbt", {**BASE, "n_trees": 2, "max_depth": 2})
    finally:
        transport.close()
    assert report.result is not None
    assert report.result["sites"] == ["cleveland", "hungarian", "va"]
    assert "small-cell" in report.refused["tiny"]
    assert "switzerland" in report.failed


# -- bad requests -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"covariates": ["age", "disease"]}, "cannot also be a covariate"),
        ({"covariates": ["age", "age"]}, "repeated: age"),
        ({"bounds": {"weight": [0, 1]}}, "'weight', which is not a covariate"),
        ({"bounds": {"age": [50, 20]}}, "lo < hi"),
        ({"n_trees": 1000, "max_depth": 6}, "rounds"),
        ({"n_bins": 1}, "n_bins"),
        ({"split_column": "age"}, "split_column"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"colsample": 0.5}, "colsample"),
        ({"bootstrap": -1}, "bootstrap"),
    ],
)
def test_bad_params_are_refused_at_the_hub(change: dict[str, Any], message: str) -> None:
    from cardiobox.federated import get_task

    with pytest.raises(TaskError, match=message):
        get_task("gbt").parse({**BASE, **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"covariates": ["age", "cholesterol"]}, "no column 'cholesterol'"),
        ({"outcome": "num"}, "must be 0/1"),
        ({"split_column": "thal"}, "split_column: column 'thal' is number"),
    ],
)
def test_bad_columns_fail_at_every_site_with_the_reason(
    frames: dict[str, pd.DataFrame], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    params = {**BASE, **change}
    with pytest.raises(RunError, match=message):
        run("gbt", write_sites(frames, tmp_path), params, policy=POLICY)


def test_bad_split_values(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    # Requests with rho: tests/federated/tasks/test_gbt_dp.py.
    odd = {h: df.assign(split=df["split"].replace("test", "holdout")) for h, df in frames.items()}
    with pytest.raises(RunError, match="must be 'train' or 'test'"):
        run("gbt", write_sites(odd, tmp_path), BASE, policy=POLICY)
