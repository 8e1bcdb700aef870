"""mlp: federated neural-network training on the four UCI heart-disease hospitals.

Correctness is checked against an independent numpy implementation of the same training
(full-batch local steps, where shuffling plays no part), and the pooled evaluation against
scikit-learn metrics on the pooled test rows; learning quality against thresholds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

import cardiobox.federated.tasks.mlp  # noqa: F401  (registers the task)
from cardiobox import metrics
from cardiobox.federated import Hub, RunError, TaskError, make_nodes, run
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.tasks.mlp import init_weights, predict_proba
from cardiobox.privacy import zcdp
from cardiobox.privacy.audit import AuditLog
from cardiobox.privacy.policy import SitePolicy

ROOT = Path(__file__).resolve().parents[3]
UCI = ROOT / "data" / "uci_heart_disease"
UCI_COLUMNS = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num"
HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
# Switzerland has one complete row without disease: it refuses (small cell) in every run.
KEPT = ("cleveland", "hungarian", "va")
X = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak"]
BASE = {"outcome": "disease", "covariates": X, "split_column": "split"}
POLICY = SitePolicy(min_sites=2)
DP_POLICY = SitePolicy(min_sites=2, budget={"rho": 100, "max_rho_per_release": 50})


# -- data -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """Each hospital's rows, with a 0/1 outcome and a stratified 66/34 train/test split."""
    rng = np.random.default_rng(0)
    out = {}
    for h in HOSPITALS:
        df = pd.read_csv(
            UCI / f"processed.{h}.data", header=None, names=UCI_COLUMNS.split(","), na_values="?"
        )
        df["disease"] = (df["num"] > 0).astype(int)
        df["sex_label"] = np.where(df["sex"] == 1, "male", "female")
        split = np.empty(len(df), dtype=object)
        for value in (0, 1):
            rows = rng.permutation(np.flatnonzero(df["disease"].to_numpy() == value))
            keep = round(0.66 * len(rows))
            split[rows[:keep]], split[rows[keep:]] = "train", "test"
        df["split"] = split
        out[h] = df
    return out


def write_sites(frames: dict[str, pd.DataFrame], folder: Path, **extra: pd.DataFrame) -> dict:
    """Fresh CSVs (and so fresh audit logs) for one test."""
    paths = {}
    for name, df in {**frames, **extra}.items():
        paths[name] = folder / f"{name}.csv"
        df.to_csv(paths[name], index=False, na_rep="")
    return paths


def rows(
    frames: dict[str, pd.DataFrame], hospital: str, part: str | None
) -> tuple[np.ndarray, np.ndarray]:
    df = frames[hospital]
    if part is not None:
        df = df[df["split"] == part]
    df = df[["disease", *X]].dropna()
    return df[X].to_numpy(float), df["disease"].to_numpy(float)


def pooled(frames: dict[str, pd.DataFrame], part: str | None, sites=KEPT) -> tuple[Any, Any]:
    parts = [rows(frames, h, part) for h in sites]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# -- an independent numpy implementation (one hidden layer, full-batch local steps) ----------------
def unpack(w: np.ndarray, p: int, h: int) -> tuple[np.ndarray, ...]:
    w1 = w[: h * p].reshape(h, p)
    b1 = w[h * p : h * p + h]
    w2 = w[h * p + h : h * p + 2 * h]
    return w1, b1, w2, w[-1]


def forward(w: np.ndarray, z: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w1, b1, w2, b2 = unpack(w, z.shape[1], h)
    a1 = z @ w1.T + b1
    hidden = np.maximum(a1, 0)
    return a1, hidden, hidden @ w2 + b2


def gradient(w: np.ndarray, z: np.ndarray, y: np.ndarray, h: int) -> np.ndarray:
    """Gradient of the mean binary cross-entropy."""
    w2 = unpack(w, z.shape[1], h)[2]
    a1, hidden, logit = forward(w, z, h)
    d_logit = (1 / (1 + np.exp(-logit)) - y) / len(y)
    d_a1 = np.outer(d_logit, w2) * (a1 > 0)
    return np.concatenate([(d_a1.T @ z).ravel(), d_a1.sum(0), hidden.T @ d_logit, [d_logit.sum()]])


def reference_training(sites, w0, h, params) -> np.ndarray:
    w = w0.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for _ in range(params["rounds"]):
        total, weight = np.zeros_like(w), 0.0
        for z, y in sites:
            local = w.copy()
            for _ in range(params.get("local_epochs", 1)):
                g = gradient(local, z, y, h)
                if params.get("strategy") == "fedprox":
                    g = g + params["mu"] * (local - w)
                local = local - params["lr"] * g
            total, weight = total + len(y) * local, weight + len(y)
        average = total / weight
        if params.get("strategy") == "fedadam":
            change = average - w
            m = 0.9 * m + 0.1 * change
            v = 0.99 * v + 0.01 * change**2
            w = w + params["server_lr"] * m / (np.sqrt(v) + 1e-3)
        else:
            w = average
    return w


def check_json(result: dict[str, Any]) -> None:
    json.dumps(result, allow_nan=False)  # plain JSON: no numpy scalars, no NaN


# -- learning and evaluation ----------------------------------------------------------------------
def test_fedavg_learns_and_evaluates_on_pooled_test_rows(frames, tmp_path: Path) -> None:
    tiny = frames["cleveland"].head(8)
    report = run("mlp", write_sites(frames, tmp_path, tiny=tiny), BASE, policy=POLICY)
    res = report.result
    assert res is not None
    check_json(res)
    assert res["sites"] == list(KEPT)
    assert "non-events" in report.refused["switzerland"]
    assert "small-cell" in report.refused["tiny"] and "training rows" in report.refused["tiny"]
    assert set(res["sites_refused"]) == {"switzerland", "tiny"}
    assert res["strategy"] == "fedavg" and res["rounds"] == 30 and res["dp"] is None
    assert res["evaluated_on"] == "test rows (split = 'test')"
    assert report.rounds == 32

    # The public standardisation is that of the pooled training rows.
    x_train, y_train = pooled(frames, "train")
    assert res["n_train"] == len(y_train)
    np.testing.assert_allclose(res["model"]["mean"], x_train.mean(0), rtol=1e-12)
    np.testing.assert_allclose(res["model"]["sd"], x_train.std(0, ddof=1), rtol=1e-9)
    model = res["model"]
    assert model["layers"] == [10, 16, 1] and len(model["weights"]) == 10 * 16 + 16 + 16 + 1

    # Pooled metrics equal those of the returned model on the pooled test rows.
    x_test, y_test = pooled(frames, "test")
    z = (x_test - np.array(model["mean"])) / np.array(model["sd"])
    prob = 1 / (1 + np.exp(-forward(np.array(model["weights"]), z, 16)[2]))
    np.testing.assert_allclose(predict_proba(model, x_test), prob, rtol=1e-12)
    glob = res["global"]
    assert glob["n"] == len(y_test)
    assert glob["accuracy"] == pytest.approx(np.mean((prob >= 0.5) == y_test), abs=1e-12)
    assert glob["brier"] == pytest.approx(brier_score_loss(y_test, prob), rel=1e-9)
    hist = metrics.score_histogram(y_test, prob, np.linspace(0, 1, 201))
    assert glob["auroc"] == pytest.approx(metrics.auroc_from_histograms(hist), rel=1e-12)
    assert glob["auroc"] == pytest.approx(roc_auc_score(y_test, prob), abs=0.005)
    assert glob["accuracy"] >= 0.75 and glob["auroc"] >= 0.8

    for h in KEPT:
        xs, ys = rows(frames, h, "test")
        ps = predict_proba(model, xs)
        site = res["per_site"][h]
        assert site["n"] == len(ys)
        assert site["auroc"] == pytest.approx(roc_auc_score(ys, ps), rel=1e-9)
        assert site["brier"] == pytest.approx(brier_score_loss(ys, ps), rel=1e-9)

    history = res["history"]
    assert [e["round"] for e in history] == list(range(1, 31))
    assert all(e["sites"] == list(KEPT) for e in history)
    losses = [e["loss"] for e in history]
    assert losses[0] == pytest.approx(np.log(2), abs=0.1) and losses[-1] < losses[0] - 0.15
    assert res["train_loss"] < losses[-1]


@pytest.mark.parametrize(
    ("settings", "h"),
    [
        ({"strategy": "fedavg", "local_epochs": 2, "lr": 0.5}, 4),
        ({"strategy": "fedprox", "local_epochs": 3, "lr": 0.5, "mu": 0.8}, 4),
        ({"strategy": "fedadam", "lr": 0.5, "server_lr": 0.05}, 3),
    ],
)
def test_matches_reference_training(frames, tmp_path: Path, settings, h: int) -> None:
    # Full-batch local steps (batch_size above every site's rows), no split: every step is
    # a plain gradient step, so an independent implementation must give the same weights.
    params = {
        "outcome": "disease",
        "covariates": X,
        "hidden": [h],
        "rounds": 4,
        "batch_size": 1000,
        "seed": 3,
        **settings,
    }
    res = run("mlp", write_sites(frames, tmp_path), params, policy=POLICY).result
    assert res is not None and res["evaluated_on"] == "training rows"
    x, _ = pooled(frames, None)
    mean, sd = x.mean(0), x.std(0, ddof=1)
    sites = [((xs - mean) / sd, ys) for xs, ys in (rows(frames, s, None) for s in KEPT)]
    w0 = init_weights([10, h, 1], 3)
    expected = reference_training(sites, w0, h, params)
    np.testing.assert_allclose(res["model"]["weights"], expected, rtol=1e-9, atol=1e-11)
    assert not np.allclose(expected, w0, atol=1e-3)


def test_init_weights_are_torch_linear_default() -> None:
    w = init_weights([10, 16, 1], 0)
    assert len(w) == 193
    assert np.all(np.abs(w[:176]) <= 1 / np.sqrt(10)) and np.all(np.abs(w[176:]) <= 1 / 4)
    np.testing.assert_array_equal(w, init_weights([10, 16, 1], 0))
    assert not np.array_equal(w, init_weights([10, 16, 1], 1))


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam"])
def test_fedprox_and_fedadam_learn(frames, tmp_path: Path, strategy: str) -> None:
    params = {**BASE, "strategy": strategy, "mu": 0.1}
    res = run("mlp", write_sites(frames, tmp_path), params, policy=POLICY).result
    assert res is not None and res["strategy"] == strategy
    assert res["global"]["accuracy"] >= 0.72 and res["global"]["auroc"] >= 0.8


def test_runs_are_deterministic(frames, tmp_path: Path) -> None:
    params = {**BASE, "rounds": 3}
    results = []
    for i, seed in enumerate((5, 5, 6)):
        folder = tmp_path / str(i)
        folder.mkdir()
        results.append(
            run("mlp", write_sites(frames, folder), {**params, "seed": seed}, policy=POLICY).result
        )
    first, again, other = results
    assert first["model"]["weights"] == again["model"]["weights"]
    assert first["global"] == again["global"] and first["history"] == again["history"]
    assert first["model"]["weights"] != other["model"]["weights"]


def test_bootstrap_zero_gives_no_intervals(frames, tmp_path: Path) -> None:
    params = {**BASE, "rounds": 1, "bootstrap": 0}
    res = run("mlp", write_sites(frames, tmp_path), params, policy=POLICY).result
    assert res["global"]["ci"] == {} and res["global"]["auroc"] is not None
    assert all(m is None or m["ci"] == {} for m in res["per_site"].values())


# -- privacy --------------------------------------------------------------------------------------
def test_dp_sgd_charges_what_it_declares_and_still_learns(frames, tmp_path: Path) -> None:
    sigma, batch, rounds = 0.5, 64, 10
    params = {
        **BASE,
        "rounds": rounds,
        "batch_size": batch,
        "lr": 0.2,
        "rho": 10,
        "dp_sgd": {"clip": 1.0, "noise_multiplier": sigma},
    }
    sites = write_sites(frames, tmp_path)
    report = run("mlp", sites, params, policy=DP_POLICY)
    res = report.result
    assert res is not None
    check_json(res)
    for h in KEPT:
        n = len(rows(frames, h, "train")[1])
        steps = int(np.ceil(n / batch))
        per_round = steps / (2 * sigma**2)
        assert report.rho[h] == pytest.approx(rounds * per_round)
        assert res["dp"]["rho_per_site"][h] == pytest.approx(rounds * per_round)
        log = AuditLog(sites[h].with_name(sites[h].name + ".cardiobox-audit.duckdb"))
        assert log.spent() == pytest.approx(rounds * per_round)
        charged = {e.round: e.rho for e in log.entries() if e.outcome == "released"}
        assert charged == {
            1: 0.0,
            **dict.fromkeys(range(2, rounds + 2), per_round),
            rounds + 2: 0.0,
        }
        tight = zcdp.dpsgd_epsilon(sigma, batch / n, rounds * steps, 1e-5)
        assert res["dp"]["epsilon_per_site"][h] == pytest.approx(tight, rel=1e-9)
        assert tight < zcdp.rho_to_eps(rounds * per_round, 1e-5)
    assert res["dp"]["delta"] == 1e-5
    assert res["dp"]["epsilon"] == max(res["dp"]["epsilon_per_site"].values())
    assert all(e["loss"] is None for e in res["history"]) and res["train_loss"] is None
    assert res["global"]["accuracy"] > 0.6


def test_dp_sgd_site_refuses_a_round_it_cannot_afford(frames, tmp_path: Path) -> None:
    # 64-row batches: Cleveland takes 4 steps a round (rho 8 at σ = 0.5), the others 3 and 2.
    params = {
        **BASE,
        "rounds": 1,
        "batch_size": 64,
        "rho": 7,
        "dp_sgd": {"clip": 1.0, "noise_multiplier": 0.5},
    }
    report = run("mlp", write_sites(frames, tmp_path), params, policy=DP_POLICY)
    assert "budget-exceeded" in report.refused["cleveland"]
    assert report.result is not None and report.result["sites"] == ["hungarian", "va"]
    assert report.rho == {"hungarian": 6.0, "va": 4.0}
    with pytest.raises(RunError, match="budget-exceeded"):
        run("mlp", write_sites(frames, tmp_path), {**params, "rho": 0.5}, policy=DP_POLICY)


def test_client_dp_noise_has_the_declared_scale(frames, tmp_path: Path) -> None:
    # With a negligible learning rate every change is noise: after R rounds each weight has
    # moved by N(0, R·(σ·clip)²/K) over K sites (the unweighted mean of the noised changes).
    sigma, clip, rounds = 1.0, 0.1, 4
    params = {
        **BASE,
        "hidden": [32],
        "rounds": rounds,
        "lr": 1e-9,
        "rho": 2,
        "client_dp": {"clip": clip, "noise_multiplier": sigma},
    }
    nodes = make_nodes(write_sites(frames, tmp_path), DP_POLICY, seed=11)
    report = run("mlp", nodes, params)
    res = report.result
    assert res is not None
    moved = np.array(res["model"]["weights"]) - init_weights([10, 32, 1], 0)
    expected = sigma * clip * np.sqrt(rounds / len(KEPT))
    assert len(moved) == 385
    assert np.std(moved) == pytest.approx(expected, rel=0.15)
    assert abs(np.mean(moved)) < 4 * expected / np.sqrt(len(moved))
    assert report.rho == dict.fromkeys(KEPT, rounds * 2 / sigma**2)
    assert res["dp"]["epsilon"] == pytest.approx(zcdp.rho_to_eps(rounds * 2 / sigma**2, 1e-5))


# -- sites that drop out and bad requests ---------------------------------------------------------
def test_site_down_mid_run_continues(frames, tmp_path: Path) -> None:
    transport = InProcessTransport(make_nodes(write_sites(frames, tmp_path), POLICY))

    def progress(round_no: int, _message: str) -> None:
        if round_no == 4:
            transport.down.add("hungarian")

    try:
        report = Hub(transport, progress=progress).run("mlp", {**BASE, "rounds": 5})
    finally:
        transport.close()
    res = report.result
    assert res is not None and res["sites"] == ["cleveland", "va"]
    assert "hungarian" in report.failed
    assert [e["sites"] for e in res["history"]] == [list(KEPT)] * 2 + [["cleveland", "va"]] * 3
    assert set(res["per_site"]) == {"cleveland", "va"}
    assert res["global"]["n"] == len(pooled(frames, "test", ("cleveland", "va"))[1])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"covariates": []}, "covariates: at least one covariate"),
        ({"covariates": ["age", "age"]}, "repeated: age"),
        ({"covariates": ["disease", "age"]}, "cannot also be a covariate"),
        ({"split_column": "age"}, "split column 'age'"),
        ({"hidden": [0]}, "between 1 and 4096 units"),
        ({"hidden": [4096, 4096]}, "at most 100,000"),
        ({"strategy": "sgd"}, "strategy"),
        ({"rounds": 0}, "rounds"),
        ({"lr": -1}, "lr"),
        ({"dp_sgd": {"clip": 1, "noise_multiplier": 1}}, "rho must be set"),
        ({"dp_sgd": {"clip": 0, "noise_multiplier": 1}, "rho": 1}, "dp_sgd.clip"),
        ({"rho": 0.5}, "needs dp_sgd or client_dp"),
        ({"epochs": 3}, "epochs"),
        ({"bootstrap": 1001}, "bootstrap"),
    ],
)
def test_bad_params_rejected_at_the_hub(frames, tmp_path: Path, change, needle: str) -> None:
    with pytest.raises(TaskError) as err:
        run("mlp", {"a": tmp_path / "a.csv"}, {**BASE, **change}, policy=POLICY)
    assert err.value.rule == "bad-params"
    assert needle in err.value.message


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"covariates": [*X[:-1], "agee"]}, ["no column 'agee'", "did you mean 'age'"]),
        ({"covariates": [*X, "sex_label"]}, ["covariate 'sex_label'", "string, not a number"]),
        ({"outcome": "num"}, ["outcome-not-binary", "'num' must be 0/1"]),
        ({"split_column": "sex_label"}, ["bad-split", "'train' or 'test'"]),
    ],
)
def test_bad_columns_fail_at_every_site(frames, tmp_path: Path, change, needles) -> None:
    with pytest.raises(RunError) as err:
        run("mlp", write_sites(frames, tmp_path), {**BASE, **change}, policy=POLICY)
    for needle in needles:
        assert needle in err.value.message


def test_a_site_with_a_bad_split_is_left_out(frames, tmp_path: Path) -> None:
    va = frames["va"].copy()
    va.loc[va.index[:3], "split"] = "validation"
    report = run(
        "mlp", write_sites({**frames, "va": va}, tmp_path), {**BASE, "rounds": 1}, policy=POLICY
    )
    assert "bad-split" in report.failed["va"] and "3 row(s)" in report.failed["va"]
    assert report.result is not None and report.result["sites"] == ["cleveland", "hungarian"]


def test_without_pytorch_the_task_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cardiobox.federated.tasks.mlp import MlpTask

    task = MlpTask()
    parsed = task.parse(BASE)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(TaskError, match="pip install 'cardiobox\\[ml\\]'") as err:
        task.start(parsed)
    assert err.value.rule == "missing-dependency"
