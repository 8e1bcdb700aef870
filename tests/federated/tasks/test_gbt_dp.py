"""gbt with differential privacy: the budget split, the noise, the ledger, the refusals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import cardiobox.federated.tasks.gbt as gbt
from cardiobox.federated import RunError, SiteNode, TaskError, get_task, make_nodes, run
from cardiobox.federated.node import read_table
from cardiobox.federated.task import SiteContext
from cardiobox.privacy import zcdp
from cardiobox.privacy.policy import SitePolicy

X = ["x1", "x2", "x3"]
BOUNDS = {c: [0.0, 10.0] for c in X}
BASE: dict[str, Any] = {
    "outcome": "y", "covariates": X, "split_column": "split", "bounds": BOUNDS,
    "n_trees": 6, "max_depth": 2, "n_bins": 16, "bootstrap": 0,
}  # fmt: skip
#: Releases of a BASE run: the base score and n_trees × max_depth levels.
RELEASES = 1 + 6 * 2


def policy(rho: float, per_release: float | None = None) -> SitePolicy:
    """Two sites at least; a budget of ``rho`` with releases up to ``per_release``."""
    budget = {"rho": rho, "max_rho_per_release": per_release or rho}
    return SitePolicy(min_sites=2, budget=budget)


def write_sites(folder: Path, rows: int = 1200) -> dict[str, Path]:
    """Three sites of a learnable table: y depends on x1 (monotone) and x2 (a bump)."""
    rng = np.random.default_rng(3)
    paths = {}
    for name in ("a", "b", "c"):
        x = rng.uniform(0, 10, (rows, 3))
        logit = 1.2 * (x[:, 0] - 5) - 0.8 * np.abs(x[:, 1] - 5) + 2
        df = pd.DataFrame(x, columns=X)
        df["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
        df["split"] = np.where(rng.random(rows) < 0.7, "train", "test")
        paths[name] = folder / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    return paths


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def nodes(folder: Path, site_policy: SitePolicy) -> list[SiteNode]:
    return make_nodes(write_sites(folder), site_policy, seed=11)


def test_noise_sigmas_are_the_closed_form_of_the_split() -> None:
    rho, p = 0.5, len(X)
    plan = gbt.dp_plan(p, 6, 2, rho)
    assert plan.releases == RELEASES
    assert plan.rho_per_release * RELEASES == pytest.approx(rho, rel=1e-15)
    # σ = Δ / sqrt(2ρ/R): Δ = 1 for (events, non-events), sqrt(p·(1 + 1/16)) for a level.
    assert plan.sigma_base == pytest.approx(math.sqrt(RELEASES / (2 * rho)), rel=1e-14)
    level = math.sqrt(p * 17 / 16 * RELEASES / (2 * rho))
    assert plan.sigma_level == pytest.approx(level, rel=1e-14)
    with pytest.raises(zcdp.PrivacyParameterError, match="rho"):
        gbt.dp_plan(p, 6, 2, 0.0)


def test_one_row_moves_a_level_by_at_most_the_sensitivity() -> None:
    params = get_task("gbt").parse({**BASE, "rho": 1.0})
    x = np.array([[1.0, 5.0, np.nan], [9.0, 2.0, 3.0], [4.0, np.nan, 7.0]])
    cuts = [gbt.uniform_cut_points(0.0, 10.0, 16).tolist()] * 3
    payload = {
        "phase": "grow", "base_score": 30.0, "cut_points": cuts, "trees": [], "open": [0],
        "tree": {"feature": [gbt.OPEN], "bin": [0], "default_left": [False], "left": [-1],
                 "right": [-1], "value": [0.0]},
    }  # fmt: skip
    exact = (0.0, rng(0))  # the noisy layout with σ = 0
    # p ≈ 1 for y = 0: g ≈ 1 and h ≈ 0, the extreme row of the logistic loss.
    y = np.array([0.0, 1.0, 0.0])
    whole = gbt._site_grow(params, payload, x, y, exact)
    bound = gbt.dp_plan(3, 6, 2, 1.0).sensitivity_level
    for row in range(3):
        keep = np.arange(3) != row
        rest = gbt._site_grow(params, payload, x[keep], y[keep], exact)
        moved = np.sqrt(sum(np.sum((whole[k] - rest[k]) ** 2) for k in whole))
        assert moved <= bound * (1 + 1e-12)
        if row == 0:
            assert moved == pytest.approx(bound, rel=1e-6)  # the bound is tight
    # (g, h) of any margin and label lies in the unit disc, so clipping changes nothing.
    margin = np.linspace(-40, 40, 8001)
    for label in (0.0, 1.0):
        g, h, _ = gbt._gradients(margin, np.full(margin.size, label))
        assert np.max(g**2 + h**2) <= 1 + 1e-12
        cg, ch = gbt.clip_gradients(g, h)
        np.testing.assert_allclose(cg, g, rtol=1e-12)
        np.testing.assert_allclose(ch, h, rtol=1e-12)


def test_the_release_carries_noise_of_that_sigma(tmp_path: Path) -> None:
    """Noisy minus exact histograms: mean 0 and the planned σ, on every cell."""
    paths = write_sites(tmp_path)
    table = read_table(paths["a"])
    task = get_task("gbt")
    params = task.parse({**BASE, "rho": 0.5})
    cuts = [gbt.uniform_cut_points(0.0, 10.0, 16).tolist()] * 3
    payload = {
        "phase": "grow", "base_score": 0.3, "cut_points": cuts, "trees": [], "open": [0],
        "tree": {"feature": [gbt.OPEN], "bin": [0], "default_left": [False], "left": [-1],
                 "right": [-1], "value": [0.0]},
    }  # fmt: skip
    site_policy = policy(10.0)
    noisy = task.site(table, params, payload, SiteContext("a", site_policy, 0.5, rng(1)))
    plan = gbt.dp_plan(3, 6, 2, 0.5)
    assert noisy.rho == pytest.approx(plan.rho_per_release)
    assert noisy.values["sigma"] == plan.sigma_level and noisy.values["rho_run"] == 0.5
    assert f"sigma={plan.sigma_level:.6g}" in noisy.mechanism
    assert set(noisy.secure) == {"grad", "hess", "count"}  # no loss, no row count
    exact = task.site(table, task.parse(BASE), payload, SiteContext("a", site_policy, 0.0, rng(1)))
    noise = np.concatenate(
        [
            noisy.secure["grad"] - exact.secure["grad"],
            noisy.secure["hess"] - exact.secure["hess"],
            noisy.secure["count"] - gbt.COUNT_SCALE * exact.secure["count"],
        ]
    )
    assert noise.size == 3 * 3 * 17
    # 153 draws: the sample sd is within 25% of σ (over 4 of its standard errors).
    assert np.std(noise) == pytest.approx(plan.sigma_level, rel=0.25)
    assert abs(np.mean(noise)) < 4 * plan.sigma_level / math.sqrt(noise.size)


def test_the_ledger_spends_exactly_the_requested_rho(tmp_path: Path) -> None:
    rho = 0.5
    # The run's rho is spent in shares: a budget of exactly rho is enough for the whole run.
    sites = nodes(tmp_path, policy(rho * (1 + 1e-9)))
    report = run("gbt", sites, {**BASE, "rho": rho})
    res = report.result
    assert res is not None
    assert all(max(t["depth"]) == 2 for t in res["trees"])  # every level released
    for node in sites:
        assert node.audit.spent() == pytest.approx(rho, rel=1e-12)
        assert report.rho[node.name] == pytest.approx(rho, rel=1e-12)
        charged = [e for e in node.audit.entries() if e.rho > 0]
        assert len(charged) == RELEASES
        assert all(e.rho == pytest.approx(rho / RELEASES, rel=1e-14) for e in charged)
        assert all("Gaussian noise (sigma=" in (e.reason or "") for e in charged)
    dp = res["dp"]
    assert dp["rho_per_site"] == dict.fromkeys(("a", "b", "c"), rho)
    assert dp["rho_spent_per_site"] == pytest.approx(dict.fromkeys(("a", "b", "c"), rho))
    assert dp["epsilon"] == zcdp.rho_to_eps(rho, 1e-5) and dp["delta"] == 1e-5
    plan = gbt.dp_plan(3, 6, 2, rho)
    assert dp["sigma"] == {"base_score": plan.sigma_base, "level": plan.sigma_level}
    assert dp["releases"] == RELEASES


def test_a_huge_rho_gives_the_trees_without_noise(tmp_path: Path) -> None:
    (tmp_path / "exact").mkdir()
    (tmp_path / "noisy").mkdir()
    exact = run("gbt", nodes(tmp_path / "exact", policy(0.0)), {**BASE, "binning": "uniform"})
    noisy = run("gbt", nodes(tmp_path / "noisy", policy(1e7, 1e6)), {**BASE, "rho": 1e6})
    a, b = exact.result, noisy.result
    assert a is not None and b is not None
    assert a["dp"] is None and b["binning"] == a["binning"] == "uniform"
    assert b["cut_points"] == a["cut_points"]
    assert b["base_score"] == pytest.approx(a["base_score"], abs=1e-4)
    for s, t in zip(a["trees"], b["trees"], strict=True):
        for key in ("feature", "bin", "default_left", "left", "right", "n", "depth"):
            assert s[key] == t[key]
        np.testing.assert_allclose(s["value"], t["value"], rtol=0, atol=1e-4)
    assert b["global"]["auroc"] == pytest.approx(a["global"]["auroc"], abs=1e-3)


def test_a_moderate_rho_still_learns(tmp_path: Path) -> None:
    rho = 0.5  # ε ≈ 4.6 at δ = 1e-5 for the whole run
    paths = write_sites(tmp_path)
    report = run("gbt", make_nodes(paths, policy(rho), seed=5), {**BASE, "rho": rho})
    res = report.result
    assert res is not None
    assert res["global"]["auroc"] > 0.7
    test = pd.concat(pd.read_csv(p) for p in paths.values())
    test = test[test["split"] == "test"]
    prob = gbt.predict_proba(res, test[X].to_numpy(float))
    assert roc_auc_score(test["y"], prob) == pytest.approx(res["global"]["auroc"], abs=5e-3)
    # The loss is not released with noise; the row count is a noisy one.
    assert all(h["train_logloss"] is None for h in res["history"])
    n_train = sum(int((pd.read_csv(p)["split"] == "train").sum()) for p in paths.values())
    plan = gbt.dp_plan(3, 6, 2, rho)
    assert abs(res["n_train"] - n_train) < 6 * plan.sigma_base * math.sqrt(2 * 3) + 1


def test_a_request_beyond_the_budget_is_refused_and_logged(tmp_path: Path) -> None:
    sites = nodes(tmp_path, policy(1.0, per_release=5.0))
    with pytest.raises(RunError) as exc:
        run("gbt", sites, {**BASE, "rho": 2.0})
    assert all("budget-exceeded" in why for why in exc.value.report.refused.values())
    for node in sites:
        assert node.audit.spent() == 0
        refused = [e for e in node.audit.entries() if e.outcome == "refused"]
        assert refused and refused[0].rule == "budget-exceeded"


def test_a_site_adding_noise_by_default_needs_the_runs_rho(tmp_path: Path) -> None:
    noisy_default = SitePolicy(
        min_sites=2, budget={"rho": 1.0, "max_rho_per_release": 0.1, "default_rho": 0.1}
    )
    with pytest.raises(RunError) as exc:
        run("gbt", nodes(tmp_path, noisy_default), BASE)
    assert all("noise-required" in why for why in exc.value.report.refused.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rho": 0}, "rho must be a finite number above 0"),
        ({"rho": -1.0}, "rho must be a finite number above 0"),
        ({"rho": math.nan}, "rho must be a finite number above 0"),
        ({"rho": math.inf}, "rho must be a finite number above 0"),
        ({"rho": 1.0, "binning": "quantile"}, "binning 'quantile'"),
        ({"rho": 1.0, "bounds": {"x1": [0, 10]}}, "rho needs public bounds .* x2, x3"),
        ({"binning": "uniform", "bounds": None}, "'uniform' needs public bounds"),
    ],
)
def test_bad_dp_params_are_refused_at_the_hub(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        get_task("gbt").parse({**BASE, **change})


def test_noisy_sums_give_finite_splits_and_leaves() -> None:
    params = get_task("gbt").parse({**BASE, "rho": 1.0, "min_child_weight": 0.0})
    n_cuts = np.array([15, 15, 15])
    r = np.random.default_rng(2)
    grad, hess = r.normal(0, 5, (3, 17)), r.normal(0, 5, (3, 17))  # noise alone: H < 0 too
    count = np.abs(r.normal(50, 5, (3, 17)))
    # Every child's H must reach 2 noise sds of its sum: pure noise never does, by far.
    assert gbt.best_split(grad, hess, count, n_cuts, params, 10, noise_sd=100.0) is None
    hess += 40.0
    split = gbt.best_split(grad, hess, count, n_cuts, params, 10, noise_sd=5.0)
    assert split is not None and math.isfinite(split.gain)
    cells = split.bin + 1 + int(split.default_left)
    assert split.left[1] >= 2 * 5.0 * math.sqrt(cells)
    assert split.right[1] >= 2 * 5.0 * math.sqrt(17 - cells)
    g, h, n = gbt._node_sums(grad, hess - 1000.0, count, noisy=True)
    assert h == 0.0 and n == round(float(count.sum(axis=1).mean()))
    assert math.isfinite(gbt.leaf_value(g, -3.0, params))
    assert gbt.leaf_value(2.0, -3.0, params) == gbt.leaf_value(2.0, 0.0, params)


def test_a_run_that_would_overrun_the_budget_left_is_refused(tmp_path: Path) -> None:
    rho = 0.5
    sites = nodes(tmp_path, policy(rho))
    run("gbt", sites, {**BASE, "rho": rho})  # spends the whole budget
    with pytest.raises(RunError) as exc:
        run("gbt", sites, {**BASE, "rho": rho})
    assert all("budget-exceeded" in why for why in exc.value.report.refused.values())
    for node in sites:
        assert node.audit.spent() == pytest.approx(rho, rel=1e-12)
