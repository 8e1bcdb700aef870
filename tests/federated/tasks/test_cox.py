"""The federated Cox task against pooled stratified fits (lifelines, statsmodels).

End-to-end runs (real nodes, secure aggregation, audit logs) check the runtime plumbing; the
numerical cases drive the task's two halves directly (``drive``: the sums the hub would see,
without masks or audit log), which is the same arithmetic in milliseconds instead of seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from lifelines.utils.concordance import _concordance_summary_statistics
from statsmodels.duration.hazard_regression import PHReg

from cardiobox.federated import Hub, RunError, TaskError, get_task, make_nodes, run
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import Next, Result, RoundResult, SiteContext
from cardiobox.federated.tasks.cox import (
    MAX_HALVINGS,
    CoxParams,
    concordance_counts,
    partial_likelihood,
)
from cardiobox.privacy.policy import PolicyRefusal, SitePolicy

ROOT = Path(__file__).resolve().parents[3]
HF_CSV = (
    ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
)
COVARIATES = [
    "age",
    "ejection_fraction",
    "serum_creatinine",
    "serum_sodium",
    "anaemia",
    "high_blood_pressure",
]
PARAMS: dict[str, Any] = {"duration": "time", "event": "DEATH_EVENT", "covariates": COVARIATES}
POLICY = SitePolicy(min_sites=3)
#: lifelines run to the maximum (its default stopping rule halts a few 1e-7 short of it).
TIGHT = {"precision": 1e-13, "r_precision": 1e-16}


# -- data and references ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf() -> pd.DataFrame:
    return pd.read_csv(HF_CSV)


def mod3(n: int) -> np.ndarray:
    return np.array(["a", "b", "c"])[np.arange(n) % 3]


def uneven(n: int) -> np.ndarray:
    """50 / 100 / 149 rows."""
    i = np.arange(n) % 6
    return np.where(i == 0, "a", np.where(i < 3, "b", "c"))


def write_sites(df: pd.DataFrame, site: np.ndarray, folder: Path) -> dict[str, Path]:
    """One CSV per site label (rows keep their order)."""
    paths = {}
    for name in sorted(set(site)):
        paths[str(name)] = folder / f"{name}.csv"
        df[site == name].to_csv(paths[str(name)], index=False)
    return paths


def lifelines_fit(
    df: pd.DataFrame, site: np.ndarray, covariates: list[str], **kw: Any
) -> CoxPHFitter:
    """The pooled reference: lifelines stratified by site (Efron ties)."""
    fit_options = kw.pop("fit_options", None)
    pooled = df[[*covariates, "time", "DEATH_EVENT"]].assign(site=site)
    return CoxPHFitter(**kw).fit(
        pooled, "time", "DEATH_EVENT", strata=["site"], fit_options=fit_options
    )


def keyed(result: dict[str, Any], key: str, names: list[str]) -> np.ndarray:
    return np.array([result[key][c] for c in names])


def assert_equals_lifelines(result: dict[str, Any], ref: CoxPHFitter, tol: float) -> None:
    names = list(ref.params_.index)
    summary = ref.summary
    np.testing.assert_allclose(keyed(result, "coefficients", names), ref.params_, atol=tol)
    np.testing.assert_allclose(keyed(result, "std_errors", names), ref.standard_errors_, atol=tol)
    np.testing.assert_allclose(result["log_likelihood"], ref.log_likelihood_, atol=tol)
    np.testing.assert_allclose(
        keyed(result, "hazard_ratios", names), summary["exp(coef)"], rtol=tol
    )
    np.testing.assert_allclose(keyed(result, "z_values", names), summary["z"], atol=100 * tol)
    np.testing.assert_allclose(keyed(result, "p_values", names), summary["p"], atol=tol)
    np.testing.assert_allclose(
        keyed(result, "ci_lower", names), summary["coef lower 95%"], atol=tol
    )
    np.testing.assert_allclose(
        keyed(result, "ci_upper", names), summary["coef upper 95%"], atol=tol
    )


def tables(df: pd.DataFrame, site: np.ndarray) -> dict[str, SiteTable]:
    return {
        str(s): SiteTable(pa.Table.from_pandas(df[site == s], preserve_index=False), str(s))
        for s in sorted(set(site))
    }


def drive(
    sites: dict[str, SiteTable],
    raw: dict[str, Any],
    policy: SitePolicy = POLICY,
    leaves: tuple[int, str] | None = None,
) -> tuple[dict[str, Any], int]:
    """Run the task's halves without the runtime: (result, rounds).

    ``leaves=(k, site)`` drops that site from round ``k`` on, as the hub does with a site
    that stops answering.
    """
    task = get_task("cox")
    params = task.parse(raw)
    state: dict[str, Any] = {}
    payload = task.start(params)
    rng = np.random.default_rng(0)
    for round_no in range(1, task.max_rounds + 1):
        if leaves is not None and round_no == leaves[0]:
            sites = {s: t for s, t in sites.items() if s != leaves[1]}
        outs = {
            s: task.site(t, params, payload, SiteContext(s, policy, 0.0, rng))
            for s, t in sites.items()
        }
        names = next(iter(outs.values())).secure
        sums = {k: np.sum([np.ravel(o.secure[k]) for o in outs.values()], axis=0) for k in names}
        values = {s: o.values for s, o in outs.items()}
        step = task.hub(params, RoundResult(round_no, sorted(outs), values, sums), state)
        if isinstance(step, Result):
            return step.value, round_no
        assert isinstance(step, Next)
        payload = step.payload
    raise AssertionError("no result")


def tied_data(seed: int = 7, n: int = 600) -> pd.DataFrame:
    """Synthetic survival with heavy ties: integer times 1..6, three sites."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.binomial(1, 0.4, size=n).astype(float)
    latent = rng.exponential(np.exp(-(0.5 * x1 - 0.7 * x2)))
    time = np.minimum(np.ceil(latent * 3), 6.0)
    event = ((latent * 3 <= 6) & (rng.random(n) < 0.8)).astype(int)
    return pd.DataFrame({"time": time, "DEATH_EVENT": event, "x1": x1, "x2": x2})


# -- end to end on the runtime ------------------------------------------------------------------
@pytest.fixture(scope="module")
def mod3_run(hf: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    sites = write_sites(hf, mod3(len(hf)), tmp_path_factory.mktemp("cox_mod3"))
    report = run("cox", sites, PARAMS, policy=POLICY)
    assert report.result is not None
    return report.result


def test_equals_lifelines_stratified_by_site(hf: pd.DataFrame, mod3_run: dict[str, Any]) -> None:
    site = mod3(len(hf))
    assert_equals_lifelines(mod3_run, lifelines_fit(hf, site, COVARIATES), 1e-6)
    # Against a fully converged lifelines fit the agreement is to rounding.
    assert_equals_lifelines(mod3_run, lifelines_fit(hf, site, COVARIATES, fit_options=TIGHT), 1e-9)


def test_result_fields(hf: pd.DataFrame, mod3_run: dict[str, Any]) -> None:
    json.dumps(mod3_run)  # JSON-able: no numpy scalars
    assert mod3_run["per_site_n"] == {"a": 100, "b": 100, "c": 99}
    assert sum(mod3_run["per_site_events"].values()) == mod3_run["events"] == 96
    assert mod3_run["n"] == len(hf)
    assert mod3_run["sites"] == ["a", "b", "c"]
    assert mod3_run["converged"] is True and 3 <= mod3_run["iterations"] <= 10
    assert (mod3_run["ties"], mod3_run["strata"]) == ("efron", "site")
    assert "l2" not in mod3_run and 0.5 < mod3_run["concordance"] < 1


def test_heart_failure_times_are_tied(hf: pd.DataFrame) -> None:
    # So the comparisons with lifelines exercise Efron's correction: deaths share days.
    assert hf.loc[hf["DEATH_EVENT"] == 1, "time"].duplicated().sum() > 20


def test_uneven_sites_with_one_refusing_and_one_down(hf: pd.DataFrame, tmp_path: Path) -> None:
    # a/b/c: 50/100/149 rows. d: 20 extra rows with too few deaths (refuses: small cell).
    # e: a copy of a whose node is down. The fit is that of a, b and c.
    site = uneven(len(hf))
    extra = pd.concat([hf, hf.iloc[-20:], hf[site == "a"]], ignore_index=True)
    extra_site = np.concatenate([site, ["d"] * 20, ["e"] * int((site == "a").sum())])
    assert hf["DEATH_EVENT"].iloc[-20:].sum() < POLICY.min_cell_count
    transport = InProcessTransport(make_nodes(write_sites(extra, extra_site, tmp_path), POLICY))
    transport.down.add("e")
    try:
        report = Hub(transport).run("cox", PARAMS)
    finally:
        transport.close()
    result = report.result
    assert result is not None and result["sites"] == ["a", "b", "c"]
    assert "small-cell" in result["sites_refused"]["d"]
    assert "SiteDown" in result["sites_failed"]["e"]
    assert result["per_site_n"] == {"a": 50, "b": 100, "c": 149}
    assert_equals_lifelines(result, lifelines_fit(hf, site, COVARIATES), 1e-6)


def test_bad_columns_fail_at_the_sites_with_clear_messages(
    hf: pd.DataFrame, tmp_path: Path
) -> None:
    site = mod3(len(hf))
    df = hf.assign(ward=hf["age"] / 10)
    frames = {
        "a": df[site == "a"].drop(columns="ward"),  # no such column
        "b": df[site == "b"].assign(ward="icu"),  # a string column
        "c": df[site == "c"].assign(DEATH_EVENT=lambda d: d["DEATH_EVENT"] * 2),  # not 0/1
        "d": df[site == "a"].assign(time=lambda d: -d["time"]),  # negative durations
    }
    sites = {}
    for name, frame in frames.items():
        sites[name] = tmp_path / f"{name}.csv"
        frame.to_csv(sites[name], index=False)
    with pytest.raises(RunError) as err:
        run("cox", sites, {**PARAMS, "covariates": ["age", "ward"]}, policy=POLICY)
    failed = err.value.report.failed
    assert err.value.rule == "too-few-sites"
    assert "[unknown-column]" in failed["a"] and "no column 'ward'" in failed["a"]
    assert "column 'ward' is string, not a number" in failed["b"]
    assert "[bad-event]" in failed["c"] and "'DEATH_EVENT' must hold 0 or 1; found 2" in failed["c"]
    assert "[bad-duration]" in failed["d"] and "'time' must hold finite times ≥ 0" in failed["d"]


# -- the task's arithmetic (halves driven directly) ---------------------------------------------
def test_driver_agrees_with_the_runtime(hf: pd.DataFrame, mod3_run: dict[str, Any]) -> None:
    result, _ = drive(tables(hf, mod3(len(hf))), PARAMS)
    for key in ("coefficients", "std_errors"):
        np.testing.assert_allclose(
            keyed(result, key, COVARIATES), keyed(mod3_run, key, COVARIATES), atol=1e-9
        )


def test_a_site_leaving_mid_fit_restarts_on_the_others(hf: pd.DataFrame) -> None:
    site = np.array(["a", "b", "c", "d"])[np.arange(len(hf)) % 4]
    result, _ = drive(tables(hf, site), PARAMS, leaves=(3, "d"))
    assert result["sites"] == ["a", "b", "c"]
    keep = site != "d"
    assert_equals_lifelines(result, lifelines_fit(hf[keep], site[keep], COVARIATES), 1e-6)


def test_where_filters_rows_at_every_site(hf: pd.DataFrame) -> None:
    site = mod3(len(hf))
    params = {**PARAMS, "where": "age >= 55 AND serum_sodium > 130"}
    result, _ = drive(tables(hf, site), params)
    keep = ((hf["age"] >= 55) & (hf["serum_sodium"] > 130)).to_numpy()
    assert_equals_lifelines(result, lifelines_fit(hf[keep], site[keep], COVARIATES), 1e-6)
    assert result["n"] == int(keep.sum())


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_heavy_ties_equal_statsmodels_phreg(ties: str) -> None:
    df = tied_data()
    site = mod3(len(df))
    assert df.loc[df["DEATH_EVENT"] == 1, "time"].nunique() <= 6  # hundreds of tied events
    params = {**PARAMS, "covariates": ["x1", "x2"], "ties": ties}
    result, _ = drive(tables(df, site), params)
    assert result["ties"] == ties
    model = PHReg(df["time"], df[["x1", "x2"]], status=df["DEATH_EVENT"], strata=site, ties=ties)
    ref = model.fit(method="newton", tol=1e-12, maxiter=100)
    np.testing.assert_allclose(keyed(result, "coefficients", ["x1", "x2"]), ref.params, atol=1e-8)
    np.testing.assert_allclose(keyed(result, "std_errors", ["x1", "x2"]), ref.bse, atol=1e-8)
    assert result["log_likelihood"] == pytest.approx(model.loglike(ref.params), abs=1e-8)
    if ties == "efron":  # lifelines agrees too
        assert_equals_lifelines(result, lifelines_fit(df, site, ["x1", "x2"]), 1e-6)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_partial_likelihood_and_derivatives_equal_statsmodels(ties: str) -> None:
    df = tied_data(seed=3, n=300)
    x = df[["x1", "x2"]].to_numpy()
    time, event = df["time"].to_numpy(), df["DEATH_EVENT"].to_numpy().astype(float)
    strata = np.arange(len(df)) % 3
    model = PHReg(time, x, status=event, strata=strata, ties=ties)
    for beta in (np.zeros(2), np.array([0.4, -1.1]), np.array([-2.0, 3.0])):
        parts = [
            partial_likelihood(time[strata == s], event[strata == s], x[strata == s], beta, ties)
            for s in range(3)
        ]
        assert sum(p[0] for p in parts) == pytest.approx(model.loglike(beta), abs=1e-9)
        np.testing.assert_allclose(sum(p[1] for p in parts), model.score(beta), atol=1e-9)
        np.testing.assert_allclose(sum(p[2] for p in parts), model.hessian(beta), atol=1e-9)


def test_partial_likelihood_rejects_unknown_ties() -> None:
    with pytest.raises(ValueError, match="ties must be"):
        partial_likelihood(np.ones(3), np.ones(3), np.zeros((3, 1)), np.zeros(1), "exact")


def test_centering_within_a_site_changes_nothing() -> None:
    df = tied_data(seed=5, n=200)
    x = df[["x1", "x2"]].to_numpy()
    time, event = df["time"].to_numpy(), df["DEATH_EVENT"].to_numpy().astype(float)
    beta = np.array([0.7, -0.3])
    raw = partial_likelihood(time, event, x, beta)
    shifted = partial_likelihood(time, event, x - x.mean(axis=0) + 50.0, beta)
    for a, b in zip(raw, shifted, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_l2_penalty_follows_lifelines_penalizer(hf: pd.DataFrame) -> None:
    site = mod3(len(hf))
    result, _ = drive(tables(hf, site), {**PARAMS, "l2": 0.1})
    # lifelines' default stopping rule leaves its penalised fit ~5e-6 short of the maximum.
    ref = lifelines_fit(hf, site, COVARIATES, penalizer=0.1, fit_options=TIGHT)
    np.testing.assert_allclose(keyed(result, "coefficients", COVARIATES), ref.params_, atol=1e-8)
    np.testing.assert_allclose(
        keyed(result, "std_errors", COVARIATES), ref.standard_errors_, atol=1e-8
    )
    assert result["penalized_log_likelihood"] == pytest.approx(ref.log_likelihood_, abs=1e-8)
    assert result["l2"] == 0.1
    assert result["log_likelihood"] < lifelines_fit(hf, site, COVARIATES).log_likelihood_


def overshooting_data() -> pd.DataFrame:
    """Heavy-tailed covariate: the first full Newton step from 0 lowers the likelihood."""
    rng = np.random.default_rng(13)
    n = 180
    x = np.column_stack([rng.standard_t(1.5, size=n), rng.normal(size=n)])
    time = rng.exponential(np.exp(-2.5 * np.clip(x[:, 0], -3, 3) + 0.5 * x[:, 1]))
    event = (rng.random(n) < 0.6).astype(int)
    return pd.DataFrame({"time": time, "DEATH_EVENT": event, "x1": x[:, 0], "x2": x[:, 1]})


def test_step_halving_when_newton_overshoots() -> None:
    df = overshooting_data()
    site = mod3(len(df))
    x, t, e = df[["x1", "x2"]].to_numpy(), df["time"].to_numpy(), df["DEATH_EVENT"].to_numpy()

    def total(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        parts = [partial_likelihood(t[site == s], e[site == s], x[site == s], beta) for s in "abc"]
        return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)

    ll0, g0, h0 = total(np.zeros(2))
    assert total(np.linalg.solve(-h0, g0))[0] < ll0  # precondition: the full step overshoots
    result, rounds = drive(tables(df, site), {**PARAMS, "covariates": ["x1", "x2"]})
    assert rounds > result["iterations"] + 1  # some rounds evaluated halved steps
    model = PHReg(t, x, status=e, strata=site, ties="efron")
    ref = model.fit(method="newton", tol=1e-12, maxiter=200)
    np.testing.assert_allclose(keyed(result, "coefficients", ["x1", "x2"]), ref.params, atol=1e-7)
    np.testing.assert_allclose(keyed(result, "std_errors", ["x1", "x2"]), ref.bse, atol=1e-7)


def test_site_refuses_small_cells(hf: pd.DataFrame) -> None:
    task = get_task("cox")
    params = task.parse(PARAMS)
    ctx = SiteContext("a", SitePolicy(min_cell_count=10), 0.0, np.random.default_rng(0))
    late = hf.iloc[-40:]  # long follow-up: few deaths
    assert late["DEATH_EVENT"].sum() < 10
    table = tables(late, np.array(["a"] * len(late)))["a"]
    with pytest.raises(PolicyRefusal, match="number of events") as err:
        task.site(table, params, task.start(params), ctx)
    assert err.value.rule == "small-cell"
    early = hf.iloc[:40]  # deaths only: the censored count n - events would be a small cell
    table = tables(early, np.array(["a"] * len(early)))["a"]
    with pytest.raises(PolicyRefusal, match="censored rows"):
        task.site(table, params, task.start(params), ctx)


# -- failures of the fit ------------------------------------------------------------------------
def fake_round(loglik: float, grad: list[float], hess: list[float]) -> RoundResult:
    sums = {
        "loglik": np.array([loglik]),
        "gradient": np.array(grad),
        "hessian": np.array(hess),
        "n": np.array([100.0]),
        "events": np.array([30.0]),
    }
    values = {s: {"n": 50, "events": 15} for s in ["a", "b"]}
    return RoundResult(round=1, sites=["a", "b"], values=values, sums=sums)


def test_halving_gives_up_with_no_convergence() -> None:
    task = get_task("cox")
    params = task.parse({**PARAMS, "covariates": ["x"]})
    state: dict[str, Any] = {}
    first = task.hub(params, fake_round(-10.0, [1.0], [-1.0]), state)
    assert isinstance(first, Next) and first.payload == {"beta": [1.0]}
    betas = []
    with pytest.raises(TaskError, match="halvings") as err:
        for _ in range(MAX_HALVINGS + 1):
            step = task.hub(params, fake_round(-20.0, [1.0], [-1.0]), state)
            assert isinstance(step, Next)
            betas.append(step.payload["beta"][0])
    assert err.value.rule == "no-convergence"
    assert betas[:3] == [0.5, 0.25, 0.125] and len(betas) == MAX_HALVINGS


def test_collinear_covariates_are_singular() -> None:
    task = get_task("cox")
    params = task.parse({**PARAMS, "covariates": ["x", "y"]})
    with pytest.raises(TaskError, match="collinear") as err:
        task.hub(params, fake_round(-10.0, [1.0, 2.0], [-1.0, -2.0, -2.0, -4.0]), {})
    assert err.value.rule == "singular"


def test_max_iter_reached_is_no_convergence(hf: pd.DataFrame) -> None:
    with pytest.raises(TaskError, match="max_iter=1") as err:
        drive(tables(hf, mod3(len(hf))), {**PARAMS, "max_iter": 1})
    assert err.value.rule == "no-convergence"


@pytest.mark.parametrize(
    ("extra", "match"), [("age_copy", "collinear"), ("flat", "flat do not vary")]
)
def test_singular_hessian_from_data(hf: pd.DataFrame, extra: str, match: str) -> None:
    df = hf.assign(age_copy=hf["age"] * 2 + 1, flat=3.0)
    with pytest.raises(TaskError, match=match) as err:
        drive(tables(df, mod3(len(df))), {**PARAMS, "covariates": ["age", extra]})
    assert err.value.rule == "singular"


# -- parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"covariates": []}, "covariates: List should have at least 1 item"),
        ({"covariates": ["age", "age"]}, "covariates must be unique; repeated: age"),
        ({"covariates": ["age", "time"]}, "may not include the duration or event column: time"),
        ({"event": "time"}, "duration and event are the same column"),
        ({"ties": "exact"}, "ties: Input should be 'efron' or 'breslow'"),
        ({"max_iter": 0}, "parameter max_iter"),
        ({"tol": 0}, "parameter tol"),
        ({"alpha": 1.5}, "parameter alpha"),
        ({"l2": -1}, "parameter l2"),
        ({"penalizer": 0.1}, "penalizer: Extra inputs are not permitted"),
        ({"duration": None}, "parameter duration"),
    ],
)
def test_bad_params_are_refused_at_the_hub(change: dict[str, Any], match: str) -> None:
    with pytest.raises(TaskError, match=match) as err:
        run("cox", {}, {**PARAMS, **change})  # refused before any site is asked
    assert err.value.rule == "bad-params"
    assert "cox: parameter" in err.value.message


def test_dp_is_unsupported(hf: pd.DataFrame) -> None:
    with pytest.raises(TaskError, match="not supported") as err:
        run("cox", {}, {**PARAMS, "rho": 0.05})
    assert err.value.rule == "dp-unsupported"
    # A site whose policy adds noise by default (ctx.rho > 0) refuses to compute the task.
    task = get_task("cox")
    params = task.parse(PARAMS)
    table = tables(hf, mod3(len(hf)))["a"]
    ctx = SiteContext("a", POLICY, 0.05, np.random.default_rng(0))
    with pytest.raises(TaskError) as err:
        task.site(table, params, task.start(params), ctx)
    assert err.value.rule == "dp-unsupported"


def test_params_defaults_and_variables() -> None:
    params = CoxParams.model_validate(PARAMS)
    assert (params.ties, params.max_iter, params.tol, params.alpha, params.l2) == (
        "efron", 50, 1e-9, 0.05, 0.0,
    )  # fmt: skip
    assert get_task("cox").variables(params) == {"time", "DEATH_EVENT", *COVARIATES}


# -- concordance ----------------------------------------------------------------------------------
def lifelines_pairs(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[int, int, int]:
    """lifelines' (concordant, tied, comparable) pairs of a risk score (higher: shorter life)."""
    correct, tied, pairs = _concordance_summary_statistics(
        time.astype(float), -risk.astype(float), event.astype(bool)
    )
    return int(correct), int(tied), int(pairs)


def test_concordance_counts_equal_lifelines() -> None:
    df = tied_data(seed=11, n=400)  # tied times; rounded risks tie too
    risk = np.round(df["x1"].to_numpy() - df["x2"].to_numpy(), 1)
    time, event = df["time"].to_numpy(), df["DEATH_EVENT"].to_numpy()
    assert concordance_counts(time, event, risk) == lifelines_pairs(time, event, risk)
    assert concordance_counts(time[:1], event[:1], risk[:1]) == (0, 0, 0)
    assert concordance_counts(time, np.zeros(len(time)), risk) == (0, 0, 0)


def test_concordance_is_stratified_harrell_c(hf: pd.DataFrame, tmp_path: Path) -> None:
    site = uneven(len(hf))
    params = {**PARAMS, "concordance": True}
    report = run("cox", write_sites(hf, site, tmp_path), params, policy=POLICY)
    result = report.result
    assert result is not None
    json.dumps(result)
    beta = keyed(result, "coefficients", COVARIATES)
    totals = np.zeros(3, dtype=np.int64)
    for s in ("a", "b", "c"):
        part = hf[site == s]
        risk = part[COVARIATES].to_numpy(float) @ beta
        counts = lifelines_pairs(part["time"].to_numpy(), part["DEATH_EVENT"].to_numpy(), risk)
        totals += counts
        own = concordance_index(part["time"], -risk, part["DEATH_EVENT"])
        assert result["per_site_concordance"][s] == pytest.approx(own, abs=1e-12)
    expected = (totals[0] + totals[1] / 2) / totals[2]
    assert result["concordance"] == pytest.approx(expected, abs=1e-9)
    pairs = result["concordance_pairs"]
    assert (pairs["concordant"], pairs["tied_risk"], pairs["comparable"]) == tuple(totals)
    assert pairs["discordant"] == totals[2] - totals[0] - totals[1]
    assert result["concordance_sites"] == ["a", "b", "c"]
    assert 0.6 < result["concordance"] < 0.85


def test_concordance_after_a_discarded_polishing_step() -> None:
    # The polishing step meets rounding noise: the hub asks once more, at the converged β.
    task = get_task("cox")
    params = task.parse({**PARAMS, "covariates": ["x"], "concordance": True})
    state: dict[str, Any] = {}
    first = task.hub(params, fake_round(-10.0, [1e-6], [-1.0]), state)
    assert isinstance(first, Next) and first.payload["concordance"] is True
    again = task.hub(params, fake_round(-10.5, [0.0], [-1.0]), state)
    assert isinstance(again, Next) and again.payload == {"beta": [0.0], "concordance": True}
    last = fake_round(-10.0, [1e-6], [-1.0])
    last.sums["concordance"] = np.array([30.0, 4.0, 50.0])
    last.values = {"a": {"n": 50, "events": 15, "concordance": 0.7}, "b": {"n": 50}}
    done = task.hub(params, last, state)
    assert isinstance(done, Result)
    assert done.value["coefficients"] == {"x": 0.0}
    assert done.value["concordance"] == pytest.approx((30 + 2) / 50)
    assert done.value["per_site_concordance"] == {"a": 0.7, "b": None}
