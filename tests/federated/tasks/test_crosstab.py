"""crosstab: pooled contingency tables with suppression and the chi-square test, on real data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import chi2_contingency

from cardiobox.federated import Hub, RunError, TaskError, get_task, make_nodes, run
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import SiteContext
from cardiobox.federated.tasks.crosstab import (
    MISSING,
    OTHER,
    level_key,
    sort_levels,
    suppression_mask,
    table_lines,
)
from cardiobox.privacy.policy import SitePolicy
from cardiobox.privacy.zcdp import gaussian_sigma

ROOT = Path(__file__).resolve().parents[3]
HF = ROOT / "data/heart_failure_clinical_records/heart_failure_clinical_records_dataset.csv"
UCI = ROOT / "data" / "uci_heart_disease"
UCI_COLUMNS = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num"
HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
POLICY = SitePolicy(min_sites=2)


# -- data -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """UCI heart disease, one CSV per hospital ('?' missing), with a string column 'ward'
    whose level 'icu' has 4 rows at every hospital (never listed: 16 rows in other)."""
    folder = tmp_path_factory.mktemp("uci")
    frames, paths = {}, {}
    for h in HOSPITALS:
        df = pd.read_csv(
            UCI / f"processed.{h}.data", header=None, names=UCI_COLUMNS.split(","), na_values="?"
        )
        df["ward"] = np.where(df["age"] >= 55, "cardiology", "internal medicine")
        df.loc[df.index[:4], "ward"] = "icu"
        df.loc[df.index[4:6], "ward"] = None
        frames[h], paths[h] = df, folder / f"{h}.csv"
        df.to_csv(paths[h], index=False, na_rep="")
    return {"frames": frames, "paths": paths}


@pytest.fixture(scope="module")
def failure() -> pd.DataFrame:
    frame = pd.read_csv(HF)
    return frame.assign(smoker=np.where(frame["smoking"] == 1, "true", "false"))


@pytest.fixture(scope="module")
def hf_sites(failure: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The records dealt round-robin to three sites; 'smoker' is read as a boolean column."""
    folder = tmp_path_factory.mktemp("hf")
    paths = {}
    for i, name in enumerate(("north", "south", "west")):
        paths[name] = folder / f"{name}.csv"
        failure.iloc[i::3].to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def thal_by_sex(uci: dict[str, Any]) -> Any:
    return run("crosstab", uci["paths"], {"row": "thal", "column": "sex"}, POLICY)


def labels(series: pd.Series, levels: list[str]) -> pd.Series:
    """Each value's label on the grid: its level, (missing) or (other)."""
    keys = series.map(
        lambda v: None if pd.isna(v) else level_key(v if isinstance(v, str) else float(v))
    )
    return keys.map(lambda k: MISSING if k is None else (k if k in levels else OTHER))


def reference(frames: dict[str, pd.DataFrame], row: str, col: str | None) -> tuple[list[str], ...]:
    """Union of the levels with ≥ 10 rows at some site, sorted as the task documents."""
    out = []
    for c in [row] + ([col] if col else []):
        common: set[str] = set()
        for df in frames.values():
            counts = df[c].dropna().map(lambda v: level_key(v if isinstance(v, str) else float(v)))
            common |= set(counts.value_counts()[lambda s: s >= 10].index)
        out.append(sort_levels(common))
    return tuple(out)


def assert_shown(shown: list[Any], exact: np.ndarray) -> None:
    """Shown cells are exact, cells < 10 hidden, no line with a single hidden cell."""
    cells = np.array(shown, dtype=object).reshape(exact.shape)
    hidden = np.vectorize(lambda c: c is None)(cells)
    np.testing.assert_array_equal(cells[~hidden].astype(int), exact[~hidden])
    assert np.all(hidden[exact < 10])
    assert all(np.count_nonzero(line) != 1 for line in list(hidden) + list(hidden.T))


# -- tables ---------------------------------------------------------------------------------------
def test_two_way_table_equals_pooled_counts(thal_by_sex: Any, uci: dict[str, Any]) -> None:
    result = thal_by_sex.result
    assert result is not None and thal_by_sex.rounds == 2 and thal_by_sex.sites == sorted(HOSPITALS)
    json.dumps(result, allow_nan=False)
    thal, sex = reference(uci["frames"], "thal", "sex")
    assert thal == ["3", "6", "7"] and sex == ["0", "1"]  # '3' common at some sites only
    assert result["row_levels"] == [*thal, MISSING, OTHER]
    assert result["column_levels"] == [*sex, MISSING, OTHER]
    pooled = pd.concat(uci["frames"].values())
    exact = pd.crosstab(labels(pooled["thal"], thal), labels(pooled["sex"], sex))
    exact = exact.reindex(index=result["row_levels"], columns=result["column_levels"], fill_value=0)
    full = np.zeros((6, 5), dtype=int)  # 5 row levels, 4 column levels, and the totals
    full[:5, :4] = exact.to_numpy()
    full[:5, 4] = full[:5, :4].sum(axis=1)
    full[5, :] = full[:5, :].sum(axis=0)
    shown = [
        [*row, total] for row, total in zip(result["counts"], result["row_totals"], strict=True)
    ]
    shown.append([*result["column_totals"], result["total"]])
    assert_shown(shown, full)
    assert result["total"] == len(pooled)
    assert result["counts"][4] == [None] * 4  # no row in (other)
    no_thal = pooled[pooled["thal"].isna()]
    assert result["counts"][3][:2] == [int((no_thal["sex"] == s).sum()) for s in (0, 1)]


def test_chi_square_is_scipy_on_the_unsuppressed_pooled_table(
    thal_by_sex: Any, uci: dict[str, Any]
) -> None:
    pooled = pd.concat(uci["frames"].values()).dropna(subset=["thal"])
    ref = chi2_contingency(pd.crosstab(pooled["thal"], pooled["sex"]).to_numpy())
    chi2 = thal_by_sex.result["chi2"]
    assert chi2["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert chi2["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert chi2["dof"] == 2 and chi2["correction"] is False
    assert "unsuppressed" in chi2["note"]


def test_one_way_table_with_rare_and_missing_levels(uci: dict[str, Any]) -> None:
    report = run("crosstab", uci["paths"], {"row": "ward"}, POLICY)
    result = report.result
    assert result is not None and result["column"] is None and result["chi2"] is None
    assert result["levels"] == ["cardiology", "internal medicine", MISSING, OTHER]
    pooled = pd.concat(uci["frames"].values())
    counts = pooled["ward"].value_counts()
    # 'icu' (4 rows per site) is never listed: its 16 rows are in (other). The 8 missing are
    # hidden, and so is (other), which would give them away as the total minus the rest.
    assert result["counts"] == [counts["cardiology"], counts["internal medicine"], None, None]
    assert result["total"] == len(pooled)


def test_given_levels_boolean_column_and_no_correction(
    hf_sites: dict[str, Path], failure: pd.DataFrame
) -> None:
    params = {
        "row": "smoker",
        "column": "DEATH_EVENT",
        "levels": {"smoker": [True, False], "DEATH_EVENT": [1, 0]},
        "correction": False,
    }
    report = run("crosstab", hf_sites, params, POLICY)
    result = report.result
    assert result is not None and report.rounds == 1  # levels given: no round to find them
    assert result["row_levels"] == ["true", "false", MISSING, OTHER]
    assert result["column_levels"] == ["1", "0", MISSING, OTHER]
    exact = pd.crosstab(failure["smoking"], failure["DEATH_EVENT"]).to_numpy()[::-1, ::-1]
    assert [row[:2] for row in result["counts"][:2]] == exact.tolist()
    assert result["row_totals"][:2] == exact.sum(axis=1).tolist()
    ref = chi2_contingency(exact, correction=False)
    assert result["chi2"]["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert result["chi2"]["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert result["chi2"]["correction"] is False


def test_small_site_refuses_and_the_run_goes_on(
    uci: dict[str, Any], thal_by_sex: Any, tmp_path: Path
) -> None:
    uci["frames"]["va"].iloc[:7].to_csv(tmp_path / "tiny.csv", index=False, na_rep="")
    sites = uci["paths"] | {"tiny": tmp_path / "tiny.csv"}
    report = run("crosstab", sites, {"row": "thal", "column": "sex"}, POLICY)
    assert report.result is not None and report.sites == sorted(HOSPITALS)
    assert "number of rows passing the filter is below" in report.refused["tiny"]
    for key in ("counts", "row_totals", "column_totals", "total", "chi2"):
        assert report.result[key] == thal_by_sex.result[key]


def test_a_site_down_is_left_out(hf_sites: dict[str, Path], failure: pd.DataFrame) -> None:
    transport = InProcessTransport(make_nodes(hf_sites, POLICY))
    transport.down.add("north")
    try:
        report = Hub(transport).run("crosstab", {"row": "sex", "column": "DEATH_EVENT"})
    finally:
        transport.close()
    assert report.result is not None and report.sites == ["south", "west"]
    assert "north" in report.failed
    kept = failure[np.arange(len(failure)) % 3 != 0]
    exact = pd.crosstab(kept["sex"], kept["DEATH_EVENT"]).to_numpy()
    assert [row[:2] for row in report.result["counts"][:2]] == exact.tolist()
    ref = chi2_contingency(exact)
    assert report.result["chi2"]["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert report.result["chi2"]["correction"] is True


# -- suppression ----------------------------------------------------------------------------------
def test_complementary_suppression_protects_every_line() -> None:
    counts = np.array([[50.0, 3.0, 40.0], [30.0, 25.0, 12.0], [20.0, 22.0, 35.0]])
    full = np.zeros((4, 4))
    full[:3, :3] = counts
    full[:3, 3] = counts.sum(axis=1)
    full[3, :] = full[:3, :].sum(axis=0)
    hidden = suppression_mask(full, 10, table_lines(4, 4))
    # 3 is hidden; its row hides 40 (the smallest shown), its column 22; 40's column then
    # hides 35 rather than 12, since 35 also closes row 2 (22 hidden): a rectangle of four.
    expected = np.zeros((4, 4), dtype=bool)
    expected[0, 1] = expected[0, 2] = expected[2, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(hidden, expected)
    for line in table_lines(4, 4):
        assert np.count_nonzero(hidden.ravel()[line]) != 1


def test_suppression_of_a_one_way_table_and_nothing_to_hide() -> None:
    line = np.array([30.0, 4.0, 50.0, 12.0, 96.0])  # counts, then their total
    hidden = suppression_mask(line[None, :], 10, table_lines(1, 5))
    assert hidden.ravel().tolist() == [False, True, False, True, False]
    assert not suppression_mask(np.full((3, 3), 20.0), 10, table_lines(3, 3)).any()


def test_levels_are_canonical_and_sorted() -> None:
    assert [level_key(v) for v in (True, False, 3, 3.0, "03")] == ["true", "false", "3", "3", "03"]
    assert sort_levels(["10", "9", "-1", "9"]) == ["-1", "9", "10"]
    assert sort_levels(["b", "a", "10", "9"]) == ["10", "9", "a", "b"]
    with pytest.raises(ValueError, match="whole number"):
        level_key(2.5)


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"column": "sex"}, "row"),
        ({"row": "sex", "column": "sex"}, "same column"),
        ({"row": "sex", "levels": {"cp": [1]}}, "neither row nor column"),
        ({"row": "sex", "levels": {"sex": []}}, "at least one level"),
        ({"row": "sex", "levels": {"sex": [1, 1.0]}}, "repeats level"),
        ({"row": "sex", "levels": {"sex": [0.5]}}, "not a whole number"),
        ({"row": "sex", "levels": {"sex": ["(missing)"]}}, "added by the task"),
        ({"row": "sex", "rows": "cp"}, "rows"),
    ],
)
def test_bad_params_are_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        get_task("crosstab").parse(params)


def test_a_table_too_large_is_refused_before_it_is_sent() -> None:
    task = get_task("crosstab")
    params = task.parse(
        {"row": "a", "column": "b", "levels": {"a": list(range(600)), "b": list(range(600))}}
    )
    with pytest.raises(TaskError, match="cells; at most"):
        task.start(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"row": "sex", "column": "blood_type"}, "no column 'blood_type'"),
        ({"row": "serum_creatinine"}, "'serum_creatinine' holds non-integer numbers"),
    ],
)
def test_bad_columns_fail_at_every_site(
    hf_sites: dict[str, Path], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunError) as exc:
        run("crosstab", hf_sites, params, POLICY)
    assert set(exc.value.report.failed) == set(hf_sites)
    assert all(message in why for why in exc.value.report.failed.values())


# -- differential privacy -------------------------------------------------------------------------
def test_noise_scale_at_a_site(failure: pd.DataFrame) -> None:
    table = SiteTable(pa.Table.from_pandas(failure))
    task = get_task("crosstab")
    days = list(range(int(failure["time"].max()) + 1))
    params = task.parse({"row": "time", "column": "sex", "levels": {"time": days, "sex": [0, 1]}})
    payload = task.start(params)
    assert payload["phase"] == "counts"
    exact = task.site(
        table, params, payload, SiteContext("a", POLICY, 0.0, np.random.default_rng(0))
    )
    rho = 0.05
    noisy = task.site(
        table, params, payload, SiteContext("a", POLICY, rho, np.random.default_rng(1))
    )
    noise = noisy.secure["counts"] - exact.secure["counts"]
    sigma = gaussian_sigma(1.0, rho)
    assert noisy.rho == rho and noise.size == (len(days) + 2) * 4
    assert np.std(noise) == pytest.approx(sigma, rel=0.06)
    assert abs(np.mean(noise)) < 4 * sigma / np.sqrt(noise.size)


def test_noisy_table_needs_levels_and_reports_its_noise(
    hf_sites: dict[str, Path], failure: pd.DataFrame
) -> None:
    policy = SitePolicy(min_sites=2, budget={"rho": 1.0, "max_rho_per_release": 0.5})
    nodes = make_nodes(hf_sites, policy, seed=11)
    with pytest.raises(RunError) as exc:
        run("crosstab", nodes, {"row": "sex", "column": "DEATH_EVENT", "rho": 0.5})
    assert all("must give levels" in why for why in exc.value.report.failed.values())
    params = {
        "row": "sex",
        "column": "DEATH_EVENT",
        "levels": {"sex": [0, 1], "DEATH_EVENT": [0, 1]},
    }
    report = run("crosstab", nodes, params | {"rho": 0.5})
    result = report.result
    assert result is not None and result["noisy"] and report.rho == dict.fromkeys(hf_sites, 0.5)
    json.dumps(result, allow_nan=False)
    assert result["noise_sd"] == pytest.approx(np.sqrt(3) * gaussian_sigma(1.0, 0.5))
    exact = pd.crosstab(failure["sex"], failure["DEATH_EVENT"]).to_numpy()
    noisy = np.array([row[:2] for row in result["counts"][:2]], dtype=float)
    assert np.all(np.abs(noisy - exact) <= 5 * result["noise_sd"] + 0.5)
    assert all(isinstance(c, int) or c is None for row in result["counts"] for c in row)
