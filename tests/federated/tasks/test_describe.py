"""describe: pooled counts, moments, histograms and quantiles on public bins, against numpy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cardiobox.federated import Hub, RunError, TaskError, get_task, make_nodes, run
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import SiteContext
from cardiobox.federated.tasks.describe import histogram_quantiles, noise_sigmas
from cardiobox.privacy.policy import SitePolicy
from cardiobox.privacy.zcdp import gaussian_sigma

ROOT = Path(__file__).resolve().parents[3]
HF = ROOT / "data/heart_failure_clinical_records/heart_failure_clinical_records_dataset.csv"
UCI = ROOT / "data" / "uci_heart_disease"
UCI_COLUMNS = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num"
POLICY = SitePolicy(min_sites=2)
NAMES = ("north", "south", "west")
QUANTILES = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
# Age in bins that leave out its ends (40-95): values outside are clipped into the end bins.
PARAMS: dict[str, Any] = {
    "variables": ["age", "platelets", "serum_creatinine", "ejection_fraction", "anaemia"],
    "bins": {"age": [50, 55, 60, 65, 70, 80], "anaemia": [0, 0.5, 1]},
    "bounds": {
        "platelets": [0, 900_000],
        "serum_creatinine": [0, 10],
        "ejection_fraction": [10, 80],
    },
    "n_bins": 35,
    "quantiles": QUANTILES,
}


@pytest.fixture(scope="module")
def pooled() -> pd.DataFrame:
    return pd.read_csv(HF).assign(label=lambda f: "id " + f["age"].astype(str))


@pytest.fixture(scope="module")
def sites(pooled: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The records dealt round-robin to three sites (row i goes to site i % 3)."""
    folder = tmp_path_factory.mktemp("describe")
    paths = {}
    for i, name in enumerate(NAMES):
        paths[name] = folder / f"{name}.csv"
        pooled.iloc[i::3].to_csv(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def described(sites: dict[str, Path]) -> dict[str, Any]:
    report = run("describe", sites, PARAMS, POLICY)
    assert report.result is not None and report.sites == sorted(sites)
    return report.result


def edges_of(variable: str) -> np.ndarray:
    if variable in PARAMS["bins"]:
        return np.asarray(PARAMS["bins"][variable], dtype=float)
    lo, hi = PARAMS["bounds"][variable]
    return np.linspace(lo, hi, PARAMS["n_bins"] + 1)


def grouped_quantile(x: np.ndarray, edges: np.ndarray, q: float) -> float:
    """The value where the cumulative count, linear inside each bin, reaches q·n."""
    counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
    target, below = q * counts.sum(), 0
    for k, c in enumerate(counts):
        if c > 0 and below + c >= target:
            return float(edges[k] + (target - below) / c * (edges[k + 1] - edges[k]))
        below += c
    raise AssertionError("unreachable")


def assert_suppressed(shown: list[int | None], exact: np.ndarray, total: int) -> None:
    """Shown bins are exact, small ones hidden, and no single hidden bin is recoverable."""
    hidden = np.array([c is None for c in shown])
    np.testing.assert_array_equal(np.array(shown, dtype=object)[~hidden], exact[~hidden])
    assert np.all(hidden[exact < 10])
    assert hidden.sum() != 1
    assert exact.sum() == total


def test_moments_equal_numpy(described: dict[str, Any], pooled: pd.DataFrame) -> None:
    json.dumps(described, allow_nan=False)
    assert described["noisy"] is False and described["suppressed_below"] == 10
    for v in PARAMS["variables"]:
        x = pooled[v].to_numpy(float)
        stats = described["variables"][v]
        assert stats["n"] == x.size
        assert stats["mean"] == pytest.approx(np.mean(x), rel=1e-12, abs=1e-9)
        assert stats["sd"] == pytest.approx(np.std(x, ddof=1), rel=1e-12, abs=1e-9)
        assert stats["missing"] is None  # 0 missing: below 10, suppressed
        assert stats["noise_sd"] is None


def test_quantiles_and_histograms_on_public_bins(
    described: dict[str, Any], pooled: pd.DataFrame
) -> None:
    for v in PARAMS["variables"]:
        x, edges = pooled[v].to_numpy(float), edges_of(v)
        stats = described["variables"][v]
        np.testing.assert_array_equal(stats["histogram"]["edges"], edges)
        expected = [grouped_quantile(x, edges, q) for q in QUANTILES]
        assert list(stats["quantiles"]) == [f"{q:g}" for q in QUANTILES]
        np.testing.assert_allclose(list(stats["quantiles"].values()), expected, rtol=1e-12)
        exact, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
        assert_suppressed(stats["histogram"]["counts"], exact, x.size)
    # Ages below 50 and above 80 are counted in the end bins.
    age = pooled["age"].to_numpy()
    counts = described["variables"]["age"]["histogram"]["counts"]
    assert counts[0] == np.sum(age < 55) and counts[-1] == np.sum(age >= 70)
    assert described["variables"]["anaemia"]["histogram"]["counts"] == [
        int((pooled["anaemia"] == 0).sum()),
        int((pooled["anaemia"] == 1).sum()),
    ]


def test_histogram_quantiles_edge_cases() -> None:
    edges = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    counts = np.array([0.0, 4.0, 0.0, 4.0])
    q = histogram_quantiles(counts, edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    # q=0: lower edge of the first non-empty bin; rank 4 ends bin 1 exactly.
    assert q == [1.0, 1.5, 2.0, 3.5, 4.0]
    assert histogram_quantiles(np.zeros(4), edges, [0.5]) == [None]
    rng = np.random.default_rng(7)
    x = rng.gamma(2.0, 3.0, 500)
    e = np.linspace(0, 20, 41)
    hist, _ = np.histogram(np.clip(x, 0, 20), bins=e)
    probs = list(rng.uniform(0, 1, 25))
    np.testing.assert_allclose(
        histogram_quantiles(hist.astype(float), e, probs),
        [grouped_quantile(x, e, p) for p in probs],
    )


def test_missing_values_are_counted(tmp_path: Path) -> None:
    columns = UCI_COLUMNS.split(",")
    sites, frames = {}, []
    for h in ("cleveland", "hungarian", "switzerland", "va"):
        frame = pd.read_csv(UCI / f"processed.{h}.data", header=None, names=columns, na_values="?")
        sites[h] = tmp_path / f"{h}.csv"
        frame.to_csv(sites[h], index=False, na_rep="")
        frames.append(frame)
    uci = pd.concat(frames)
    params = {
        "variables": ["trestbps", "oldpeak"],
        "bounds": {"trestbps": [80, 200], "oldpeak": [-3, 7]},
    }
    result = run("describe", sites, params | {"where": "age >= 40"}, POLICY).result
    assert result is not None
    kept = uci[uci["age"] >= 40]
    for v in ("trestbps", "oldpeak"):
        stats = result["variables"][v]
        assert stats["missing"] == kept[v].isna().sum() >= 10
        assert stats["n"] == kept[v].notna().sum()
        assert stats["mean"] == pytest.approx(kept[v].mean(), rel=1e-12)
        assert stats["sd"] == pytest.approx(kept[v].std(ddof=1), rel=1e-12)


def test_small_site_refuses_and_the_run_goes_on(
    sites: dict[str, Path], pooled: pd.DataFrame, described: dict[str, Any], tmp_path: Path
) -> None:
    small = pooled.iloc[:20].copy()
    small.loc[small.index[5:], "platelets"] = np.nan  # 5 values of platelets: too few
    small.to_csv(tmp_path / "small.csv", index=False)
    report = run("describe", sites | {"small": tmp_path / "small.csv"}, PARAMS, POLICY)
    assert report.result is not None and report.sites == sorted(sites)
    assert "number of values of 'platelets' is below" in report.refused["small"]
    assert report.result["variables"] == described["variables"]


def test_a_site_down_is_left_out(sites: dict[str, Path], pooled: pd.DataFrame) -> None:
    transport = InProcessTransport(make_nodes(sites, POLICY))
    transport.down.add("south")
    try:
        report = Hub(transport).run("describe", PARAMS)
    finally:
        transport.close()
    assert report.result is not None and report.sites == ["north", "west"]
    assert "south" in report.failed
    kept = pooled[np.arange(len(pooled)) % 3 != 1]
    stats = report.result["variables"]["platelets"]
    assert stats["n"] == len(kept)
    assert stats["mean"] == pytest.approx(kept["platelets"].mean(), rel=1e-12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"variables": ["age"]}, "no public bins for 'age'.*plausible range"),
        ({"variables": ["age", "time"], "bins": {"age": [0, 1]}}, "no public bins for 'time'"),
        ({"variables": ["age"], "bins": {"age": [0, 1]}, "bounds": {"age": [0, 1]}}, "not both"),
        ({"variables": ["age"], "bins": {"age": [0, 2, 1]}}, "strictly increasing"),
        ({"variables": ["age"], "bins": {"age": [3]}}, "between 2"),
        ({"variables": ["age"], "bounds": {"age": [5, 1]}}, "low < high"),
        ({"variables": ["age"], "bounds": {"age": [0, 1], "sex": [0, 1]}}, "'sex', not in"),
        ({"variables": ["age"], "bounds": {"age": [0, 1]}, "quantiles": [1.5]}, r"\[0, 1\]"),
        ({"variables": ["age"], "bounds": {"age": [0, 1]}, "n_bins": 0}, "n_bins"),
        ({"variables": ["age", "age"], "bounds": {"age": [0, 1]}}, "repeats 'age'"),
        ({"variables": [], "bounds": {}}, "variables"),
        ({"variables": "age", "bounds": {"age": [0, 1]}}, "variables"),
    ],
)
def test_bad_params_are_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        get_task("describe").parse(params)


@pytest.mark.parametrize(
    ("variable", "message"), [("height", "no column 'height'"), ("label", "not a number")]
)
def test_bad_columns_fail_at_every_site(
    sites: dict[str, Path], variable: str, message: str
) -> None:
    with pytest.raises(RunError) as exc:
        run("describe", sites, {"variables": [variable], "bounds": {variable: [0, 1]}}, POLICY)
    assert set(exc.value.report.failed) == set(sites)
    assert all(message in why for why in exc.value.report.failed.values())


def test_noise_scale_at_a_site(pooled: pd.DataFrame) -> None:
    table = SiteTable(pa.Table.from_pandas(pooled))
    task = get_task("describe")
    params = task.parse({"variables": ["age"], "bounds": {"age": [40, 100]}, "n_bins": 2000})
    rho = 0.1
    exact = task.site(table, params, {}, SiteContext("a", POLICY, 0.0, np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    draws = [task.site(table, params, {}, SiteContext("a", POLICY, rho, rng)) for _ in range(200)]
    assert all(d.rho == rho for d in draws)
    # rho split over five quantities; the centred sums have sensitivity w = 30 and w² = 900.
    sigmas = noise_sigmas(np.array([40.0, 100.0]), rho / 5)
    assert sigmas["sum"] == gaussian_sigma(30.0, rho / 5)
    assert sigmas["sum_squares"] == gaussian_sigma(900.0, rho / 5)
    moments = np.array([d.secure["moments_0"] - exact.secure["moments_0"] for d in draws])
    expected = [sigmas[q] for q in ("n", "missing", "sum", "sum_squares")]
    np.testing.assert_allclose(moments.std(axis=0), expected, rtol=0.15)
    hist = draws[0].secure["histogram_0"] - exact.secure["histogram_0"]
    assert np.std(hist) == pytest.approx(sigmas["histogram"], rel=0.05)
    assert abs(np.mean(hist)) < 4 * sigmas["histogram"] / np.sqrt(hist.size)


def test_noisy_run_reports_its_noise(sites: dict[str, Path], pooled: pd.DataFrame) -> None:
    policy = SitePolicy(min_sites=2, budget={"rho": 2.0, "max_rho_per_release": 2.0})
    params = {"variables": ["age", "time"], "bounds": {"age": [40, 95], "time": [0, 300]}}
    report = run("describe", make_nodes(sites, policy, seed=5), params | {"rho": 2.0})
    result = report.result
    assert result is not None and result["noisy"] and report.rho == dict.fromkeys(sites, 2.0)
    json.dumps(result, allow_nan=False)
    for v, (lo, hi) in params["bounds"].items():
        stats = result["variables"][v]
        sigmas = noise_sigmas(np.array([lo, hi], dtype=float), 2.0 / 10)
        assert stats["noise_sd"] == pytest.approx({q: np.sqrt(3) * s for q, s in sigmas.items()})
        x = pooled[v].to_numpy(float)
        assert stats["mean"] == pytest.approx(
            np.mean(x), abs=5 * stats["noise_sd"]["sum"] / len(x) + 1
        )
        assert stats["sd"] == pytest.approx(np.std(x, ddof=1), rel=0.2)
        assert all(c is None or c >= 10 for c in stats["histogram"]["counts"])
        q = list(stats["quantiles"].values())
        assert q == sorted(q) and lo <= q[0] and q[-1] <= hi
