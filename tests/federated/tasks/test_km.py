"""km: Kaplan–Meier curves and the log-rank test against pooled lifelines on real data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test

from cardiobox.federated import Hub, RunError, TaskError, get_task, make_nodes, run
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import Result, RoundResult, SiteContext
from cardiobox.federated.tasks.km import logrank as grid_logrank
from cardiobox.privacy.policy import SitePolicy
from cardiobox.privacy.zcdp import gaussian_sigma

HF = (
    Path(__file__).resolve().parents[3]
    / "data/heart_failure_clinical_records/heart_failure_clinical_records_dataset.csv"
)
POLICY = SitePolicy(min_sites=2)
NAMES = ("north", "south", "west")
KM = {"duration": "time", "event": "DEATH_EVENT"}


@pytest.fixture(scope="module")
def pooled() -> pd.DataFrame:
    frame = pd.read_csv(HF)
    # A string group with a level too rare to be listed (4 rows) and a missing value (3 rows).
    frame["arm"] = np.where(frame["anaemia"] == 1, "anaemic", "not anaemic")
    frame.loc[[0, 3, 6, 9], "arm"] = "rare"
    frame.loc[[12, 15, 18], "arm"] = None
    frame["label"] = "day " + frame["time"].astype(str)
    return frame


@pytest.fixture(scope="module")
def sites(pooled: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The records dealt round-robin to three sites (row i goes to site i % 3)."""
    folder = tmp_path_factory.mktemp("km")
    paths = {}
    for i, name in enumerate(NAMES):
        paths[name] = folder / f"{name}.csv"
        pooled.iloc[i::3].to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def grid(pooled: pd.DataFrame) -> list[float]:
    return [float(t) for t in range(int(pooled["time"].max()) + 1)]


@pytest.fixture(scope="module")
def by_sex(sites: dict[str, Path], grid: list[float]) -> Any:
    return run("km", sites, KM | {"group": "sex", "grid": grid}, POLICY)


def kmf(frame: pd.DataFrame, grid: list[float]) -> KaplanMeierFitter:
    return KaplanMeierFitter().fit(frame["time"], frame["DEATH_EVENT"], timeline=grid)


def assert_curve_equals_lifelines(curve: dict[str, Any], ref: KaplanMeierFitter) -> None:
    np.testing.assert_allclose(curve["survival"], ref.survival_function_.iloc[:, 0], atol=1e-6)
    ci = ref.confidence_interval_.to_numpy()
    np.testing.assert_allclose(curve["ci_lower"], ci[:, 0], atol=1e-6)
    np.testing.assert_allclose(curve["ci_upper"], ci[:, 1], atol=1e-6)
    # lifelines counts at risk at observed times; between them it is the next one's.
    at_risk = ref.event_table["at_risk"].reindex(ref.timeline).bfill().fillna(0).to_numpy()
    shown = np.array([np.nan if a is None else a for a in curve["at_risk"]], dtype=float)
    np.testing.assert_array_equal(shown[~np.isnan(shown)], at_risk[~np.isnan(shown)])
    assert np.all(at_risk[np.isnan(shown)] < 10) and np.isnan(shown).any()


def test_pooled_curve_equals_lifelines(
    sites: dict[str, Path], pooled: pd.DataFrame, grid: list[float]
) -> None:
    report = run("km", sites, KM | {"step": 1, "max_time": grid[-1]}, POLICY)
    result = report.result
    assert result is not None and report.sites == sorted(sites) and report.rounds == 1
    json.dumps(result, allow_nan=False)
    assert result["times"] == grid
    curve = result["groups"]["all"]
    assert_curve_equals_lifelines(curve, kmf(pooled, grid))
    assert curve["n"] == len(pooled) and curve["events"] == int(pooled["DEATH_EVENT"].sum())
    assert curve["median"] is None  # the pooled curve stays above 0.5 (lifelines: inf)
    assert result["logrank"] is None and result["noisy"] is False


def test_groups_and_logrank_equal_lifelines(
    by_sex: Any, pooled: pd.DataFrame, grid: list[float]
) -> None:
    result = by_sex.result
    assert result is not None and by_sex.rounds == 2  # levels, then counts
    json.dumps(result, allow_nan=False)
    assert result["group"] == "sex" and list(result["groups"]) == ["0", "1"]
    for level in (0, 1):
        curve = result["groups"][str(level)]
        ref = kmf(pooled[pooled["sex"] == level], grid)
        assert_curve_equals_lifelines(curve, ref)
        median = ref.median_survival_time_
        assert curve["median"] == (None if np.isinf(median) else median)
    a, b = pooled[pooled["sex"] == 0], pooled[pooled["sex"] == 1]
    ref = logrank_test(a["time"], b["time"], a["DEATH_EVENT"], b["DEATH_EVENT"])
    assert result["logrank"]["statistic"] == pytest.approx(ref.test_statistic, abs=1e-6)
    assert result["logrank"]["p"] == pytest.approx(ref.p_value, abs=1e-6)
    assert result["logrank"]["dof"] == 1
    assert result["logrank"]["observed"] == [a["DEATH_EVENT"].sum(), b["DEATH_EVENT"].sum()]


def test_median_is_the_first_grid_time_at_or_below_half() -> None:
    frame = pd.DataFrame({"time": np.arange(1, 41), "DEATH_EVENT": np.ones(40, int)})
    task = get_task("km")
    params = task.parse(KM | {"step": 1, "max_time": 50})
    table = SiteTable(pa.Table.from_pandas(frame))
    ctx = SiteContext("a", POLICY, 0.0, np.random.default_rng(0))
    output = task.site(table, params, task.start(params), ctx)
    summed = RoundResult(1, ["a"], {"a": output.values}, output.secure)
    result = task.hub(params, summed, {})
    assert isinstance(result, Result)
    curve = result.value["groups"]["all"]
    ref = kmf(frame, [float(t) for t in range(51)])
    assert curve["median"] == ref.median_survival_time_ == 20.0
    assert_curve_equals_lifelines(curve, ref)


def test_three_group_logrank_equals_lifelines(pooled: pd.DataFrame) -> None:
    """The k-group test from grid tables, against lifelines' multivariate log-rank test."""
    groups = pd.cut(pooled["ejection_fraction"], [0, 30, 40, 100], labels=False)
    times = np.arange(pooled["time"].max() + 1.0)
    t, e = pooled["time"].to_numpy(), pooled["DEATH_EVENT"].to_numpy()
    events = np.array(
        [[np.sum((t == s) & (e == 1) & (groups == g)) for s in times] for g in range(3)]
    )
    at_risk = np.array([[np.sum((t >= s) & (groups == g)) for s in times] for g in range(3)])
    ours = grid_logrank(events.astype(float), at_risk.astype(float))
    ref = multivariate_logrank_test(pooled["time"], groups, pooled["DEATH_EVENT"])
    assert ours is not None and ours["dof"] == 2
    assert ours["statistic"] == pytest.approx(ref.test_statistic, abs=1e-6)
    assert ours["p"] == pytest.approx(ref.p_value, abs=1e-6)


def test_coarse_grid_gives_the_documented_bucketing(
    sites: dict[str, Path], pooled: pd.DataFrame
) -> None:
    coarse = [0.0, 30.0, 60.0, 120.0, 180.0, 240.0]
    result = run("km", sites, KM | {"grid": coarse}, POLICY).result
    assert result is not None
    # Events and censorings in (t_{j-1}, t_j] all count at t_j; at risk at t_j: every row with
    # a time above t_{j-1}; rows after the last grid time stay at risk throughout.
    t, e = pooled["time"].to_numpy(), pooled["DEATH_EVENT"].to_numpy()
    survival, s = [], 1.0
    for j, tj in enumerate(coarse):
        previous = coarse[j - 1] if j else -np.inf
        s *= 1 - np.sum((t > previous) & (t <= tj) & (e == 1)) / np.sum(t > previous)
        survival.append(s)
    curve = result["groups"]["all"]
    np.testing.assert_allclose(curve["survival"], survival, atol=1e-12)
    assert curve["at_risk"][:3] == [np.sum(t > p) for p in (-np.inf, 0.0, 30.0)]
    # ... which is not the Kaplan–Meier estimate read at the grid times.
    exact = kmf(pooled, coarse).survival_function_.iloc[:, 0].to_numpy()
    assert np.max(np.abs(np.array(survival) - exact)) > 1e-3


def test_small_sites_refuse_and_the_run_goes_on(
    sites: dict[str, Path], pooled: pd.DataFrame, grid: list[float], tmp_path: Path
) -> None:
    few_events = pooled.iloc[:40].assign(DEATH_EVENT=0)
    few_events.loc[few_events.index[:3], "DEATH_EVENT"] = 1
    few_events.to_csv(tmp_path / "small.csv", index=False)
    pooled.iloc[:6].to_csv(tmp_path / "tiny.csv", index=False)
    every = sites | {"small": tmp_path / "small.csv", "tiny": tmp_path / "tiny.csv"}
    report = run("km", every, KM | {"grid": grid}, POLICY)
    assert report.result is not None and report.sites == sorted(sites)
    assert "number of events is below" in report.refused["small"]
    assert "number of rows" in report.refused["tiny"]
    assert_curve_equals_lifelines(report.result["groups"]["all"], kmf(pooled, grid))


def test_a_site_down_is_left_out(
    sites: dict[str, Path], pooled: pd.DataFrame, grid: list[float]
) -> None:
    transport = InProcessTransport(make_nodes(sites, POLICY))
    transport.down.add("west")
    try:
        report = Hub(transport).run("km", KM | {"grid": grid})
    finally:
        transport.close()
    assert report.result is not None and report.sites == ["north", "south"]
    assert "west" in report.failed
    kept = pooled[np.arange(len(pooled)) % 3 != 2]
    assert_curve_equals_lifelines(report.result["groups"]["all"], kmf(kept, grid))


def test_given_levels_send_the_rest_to_other(
    sites: dict[str, Path], pooled: pd.DataFrame, grid: list[float]
) -> None:
    report = run("km", sites, KM | {"group": "sex", "levels": [1.0], "grid": grid}, POLICY)
    result = report.result
    assert result is not None and report.rounds == 1
    assert list(result["groups"]) == ["1"]
    assert result["other_group"] == int((pooled["sex"] == 0).sum())
    assert result["missing"] is None  # no row misses a value: 0 < 10, suppressed
    assert result["logrank"] is None
    assert_curve_equals_lifelines(result["groups"]["1"], kmf(pooled[pooled["sex"] == 1], grid))


def test_string_group_levels_are_found_at_the_sites(
    sites: dict[str, Path], pooled: pd.DataFrame, grid: list[float]
) -> None:
    result = run("km", sites, KM | {"group": "arm", "grid": grid}, POLICY).result
    assert result is not None
    assert list(result["groups"]) == ["anaemic", "not anaemic"]
    assert result["missing"] is None and result["other_group"] is None  # 3 and 4 rows
    a, b = (pooled[pooled["arm"] == v] for v in ("anaemic", "not anaemic"))
    ref = logrank_test(a["time"], b["time"], a["DEATH_EVENT"], b["DEATH_EVENT"])
    assert result["logrank"]["statistic"] == pytest.approx(ref.test_statistic, abs=1e-6)
    assert_curve_equals_lifelines(result["groups"]["anaemic"], kmf(a, grid))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (KM, "no public time grid"),
        (KM | {"step": 1}, "no public time grid"),
        (KM | {"grid": [0, 2, 1]}, "strictly increasing"),
        (KM | {"grid": [0, 1], "step": 1, "max_time": 2}, "not both"),
        (KM | {"step": 1e-4, "max_time": 1e3}, "more than"),
        (KM | {"grid": [1], "levels": [0]}, "no group"),
        (KM | {"grid": [1], "levels": [0, 0.5], "group": "sex"}, "not a whole number"),
        ({"duration": "time", "event": "time", "grid": [1]}, "different columns"),
        (KM | {"grid": [1], "alpha": 2}, "alpha"),
        (KM | {"grid": [1], "bins": 3}, "bins"),
        ({"duration": "time", "grid": [1]}, "event"),
    ],
)
def test_bad_params_are_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        get_task("km").parse(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"duration": "days", "event": "DEATH_EVENT"}, "no column 'days'"),
        ({"duration": "time", "event": "age"}, "must be 0/1"),
        ({"duration": "label", "event": "DEATH_EVENT"}, "'label' is string, not a number"),
    ],
)
def test_bad_columns_fail_at_every_site(
    sites: dict[str, Path], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunError) as exc:
        run("km", sites, params | {"grid": [0, 100, 200]}, POLICY)
    assert set(exc.value.report.failed) == set(sites)
    assert all(message in why for why in exc.value.report.failed.values())


def test_noise_scale_at_a_site(pooled: pd.DataFrame, grid: list[float]) -> None:
    table = SiteTable(pa.Table.from_pandas(pooled))
    task = get_task("km")
    params = task.parse(KM | {"grid": grid})
    payload = task.start(params)
    exact = task.site(
        table, params, payload, SiteContext("a", POLICY, 0.0, np.random.default_rng(0))
    )
    rho = 0.05
    noisy = task.site(
        table, params, payload, SiteContext("a", POLICY, rho, np.random.default_rng(1))
    )
    assert noisy.rho == rho and exact.rho == 0 and "Gaussian" in noisy.mechanism
    noise = noisy.secure["table"] - exact.secure["table"]
    sigma = gaussian_sigma(1.0, rho)
    assert noise.size == 2 * (len(grid) + 1) + 2  # events and censorings, missing, other
    assert np.std(noise) == pytest.approx(sigma, rel=0.1)
    assert abs(np.mean(noise)) < 4 * sigma / np.sqrt(noise.size)


def test_noisy_run_reports_its_noise(sites: dict[str, Path], pooled: pd.DataFrame) -> None:
    policy = SitePolicy(min_sites=2, budget={"rho": 1.0, "max_rho_per_release": 1.0})
    coarse = [0.0, 50.0, 100.0, 150.0, 200.0, 250.0]
    params = KM | {"grid": coarse, "group": "sex", "levels": [0, 1], "rho": 0.5}
    report = run("km", make_nodes(sites, policy, seed=3), params)
    result = report.result
    assert result is not None and result["noisy"] and report.rho == dict.fromkeys(sites, 0.5)
    json.dumps(result, allow_nan=False)
    assert result["noise_sd"] == pytest.approx(np.sqrt(3) * gaussian_sigma(1.0, 0.5))
    for level in (0, 1):
        s = np.array(result["groups"][str(level)]["survival"])
        assert np.all(np.diff(s) <= 0) and np.all((s >= 0) & (s <= 1))
        exact = kmf(pooled[pooled["sex"] == level], coarse).survival_function_.iloc[:, 0]
        np.testing.assert_allclose(s, exact, atol=0.1)


def test_noise_needs_public_levels(sites: dict[str, Path]) -> None:
    policy = SitePolicy(min_sites=2, budget={"rho": 1.0, "max_rho_per_release": 1.0})
    with pytest.raises(RunError) as exc:
        run("km", sites, KM | {"group": "sex", "grid": [0, 100], "rho": 0.5}, policy)
    assert all("levels" in why for why in exc.value.report.failed.values())


def test_a_table_too_large_is_refused_before_it_is_sent() -> None:
    task = get_task("km")
    params = task.parse(
        KM | {"group": "g", "levels": list(range(2000)), "step": 1, "max_time": 999}
    )
    with pytest.raises(TaskError, match="at most 2000000"):
        task.start(params)
