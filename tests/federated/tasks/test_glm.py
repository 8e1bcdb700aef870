"""logreg and linreg against pooled statsmodels / scikit-learn fits on real data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression, Ridge

from cardiobox import metrics
from cardiobox.federated import Hub, RunError, TaskError, get_task, make_nodes, run
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.tasks.glm import INTERCEPT
from cardiobox.privacy.policy import Budget, SitePolicy

ROOT = Path(__file__).resolve().parents[3]
UCI = ROOT / "data" / "uci_heart_disease"
UCI_COLUMNS = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num"
HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
HEART_X = ["age", "sex", "trestbps", "chol", "thalach", "oldpeak", "exang", "cp"]
HF = ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
HF_X = ["age", "ejection_fraction", "serum_creatinine", "sex"]


# -- data -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def heart(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """UCI heart disease, one CSV per hospital ('?' left missing), with a 0/1 outcome added."""
    folder = tmp_path_factory.mktemp("uci")
    frames: dict[str, pd.DataFrame] = {}
    for h in HOSPITALS:
        df = pd.read_csv(
            UCI / f"processed.{h}.data", header=None, names=UCI_COLUMNS.split(","), na_values="?"
        )
        df["disease"] = (df["num"] > 0).astype(int)
        df["disease_flag"] = np.where(df["num"] > 0, "true", "false")
        df["sex_label"] = np.where(df["sex"] == 1, "male", "female")
        df["age_copy"] = df["age"] * 2.0 + 1.0
        df["over_55"] = (df["age"] > 55).astype(int)
        frames[h] = df
    return {"folder": folder, "frames": frames}


def heart_sites(heart: dict[str, Any], tmp_path: Path) -> dict[str, Path]:
    """Fresh CSVs (and so fresh audit logs) for one test."""
    paths = {}
    for h, df in heart["frames"].items():
        paths[h] = tmp_path / f"{h}.csv"
        df.to_csv(paths[h], index=False, na_rep="")
    return paths


def pooled_heart(heart: dict[str, Any], hospitals: tuple[str, ...], min_age: float = 0):
    df = pd.concat([heart["frames"][h] for h in hospitals])
    df = df[["disease", *HEART_X]].dropna()
    df = df[df["age"] >= min_age]
    return df["disease"].to_numpy(float), df[HEART_X].to_numpy(float)


@pytest.fixture(scope="module")
def failure() -> pd.DataFrame:
    df = pd.read_csv(HF)
    df["sodium_shifted"] = df["serum_sodium"] + 1e6
    return df


def failure_sites(failure: pd.DataFrame, tmp_path: Path, parts: int) -> dict[str, Path]:
    paths = {}
    for i, chunk in enumerate(np.array_split(np.arange(len(failure)), parts)):
        paths[f"site{i}"] = tmp_path / f"hf{i}.csv"
        failure.iloc[chunk].to_csv(paths[f"site{i}"], index=False)
    return paths


def keyed(result: dict[str, Any], field: str, names: list[str]) -> np.ndarray:
    return np.array([result[field][n] for n in names])


def assert_matches_logit(result: dict[str, Any], ref: Any, names: list[str]) -> None:
    np.testing.assert_allclose(
        keyed(result, "coefficients", names), ref.params, rtol=1e-8, atol=1e-9
    )
    np.testing.assert_allclose(keyed(result, "std_errors", names), ref.bse, rtol=1e-8)
    np.testing.assert_allclose(keyed(result, "z_values", names), ref.tvalues, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(keyed(result, "p_values", names), ref.pvalues, rtol=1e-6, atol=1e-12)
    ci = np.asarray(ref.conf_int())
    np.testing.assert_allclose(keyed(result, "ci_lower", names), ci[:, 0], rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(keyed(result, "ci_upper", names), ci[:, 1], rtol=1e-8, atol=1e-9)
    assert result["log_likelihood"] == pytest.approx(ref.llf, rel=1e-10)
    # statsmodels fits the null model iteratively; ours is closed form.
    assert result["null_log_likelihood"] == pytest.approx(ref.llnull, rel=1e-8)
    assert result["aic"] == pytest.approx(ref.aic, rel=1e-10)
    assert result["bic"] == pytest.approx(ref.bic, rel=1e-10)
    assert result["pseudo_r_squared"] == pytest.approx(ref.prsquared, rel=1e-8)
    assert result["llr_p_value"] == pytest.approx(ref.llr_pvalue, rel=1e-6, abs=1e-300)
    assert result["n"] == ref.nobs
    assert result["converged"] is True


LOGREG = {"outcome": "disease", "covariates": HEART_X}
FOUR = SitePolicy(min_sites=3, min_cell_count=5)


# -- logreg ---------------------------------------------------------------------------------------
def test_logreg_equals_pooled_logit(heart: dict[str, Any], tmp_path: Path) -> None:
    report = run("logreg", heart_sites(heart, tmp_path), LOGREG, policy=FOUR)
    res = report.result
    assert res is not None
    y, x = pooled_heart(heart, HOSPITALS)
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    assert_matches_logit(res, ref, [INTERCEPT, *HEART_X])
    assert res["sites"] == sorted(HOSPITALS)
    assert res["per_site_n"] == {"cleveland": 303, "hungarian": 270, "switzerland": 117, "va": 137}
    assert res["events"] == int(y.sum())
    assert res["deviance"] == pytest.approx(-2 * ref.llf, rel=1e-10)
    assert 3 <= res["iterations"] <= 10
    json.dumps(res, allow_nan=False)  # the CLI's contract: plain JSON
    np.testing.assert_allclose(res["covariance"], ref.cov_params(), rtol=1e-7, atol=1e-14)


def test_logreg_where_boolean_outcome_and_small_cell_site(
    heart: dict[str, Any], tmp_path: Path
) -> None:
    # Among patients of 50 and over, Switzerland has 6 complete rows without disease: below a
    # minimum cell count of 10, so it refuses and the fit is that of the other three.
    params = {**LOGREG, "outcome": "disease_flag", "where": "age >= 50"}
    policy = SitePolicy(min_sites=3, min_cell_count=10)
    report = run("logreg", heart_sites(heart, tmp_path), params, policy=policy)
    assert "small-cell" in report.refused["switzerland"]
    assert "non-events (disease_flag = 0)" in report.refused["switzerland"]
    res = report.result
    assert res is not None
    kept = ("cleveland", "hungarian", "va")
    assert res["sites"] == list(kept)
    assert "switzerland" in res["sites_refused"]
    y, x = pooled_heart(heart, kept, min_age=50)
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    assert_matches_logit(res, ref, [INTERCEPT, *HEART_X])


def test_logreg_site_down_mid_run_without_intercept(heart: dict[str, Any], tmp_path: Path) -> None:
    nodes = make_nodes(heart_sites(heart, tmp_path), FOUR)
    transport = InProcessTransport(nodes)

    def progress(round_no: int, _message: str) -> None:
        if round_no == 3:
            transport.down.add("hungarian")

    params = {**LOGREG, "intercept": False, "alpha": 0.1}
    try:
        report = Hub(transport, progress=progress).run("logreg", params)
    finally:
        transport.close()
    kept = ("cleveland", "switzerland", "va")
    res = report.result
    assert res is not None and res["sites"] == list(kept)
    assert INTERCEPT not in res["coefficients"]
    assert "hungarian" in report.failed
    y, x = pooled_heart(heart, kept)
    ref = sm.Logit(y, x).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(keyed(res, "coefficients", HEART_X), ref.params, rtol=1e-8)
    np.testing.assert_allclose(keyed(res, "std_errors", HEART_X), ref.bse, rtol=1e-8)
    ci = np.asarray(ref.conf_int(alpha=0.1))
    np.testing.assert_allclose(keyed(res, "ci_lower", HEART_X), ci[:, 0], rtol=1e-8)
    np.testing.assert_allclose(keyed(res, "ci_upper", HEART_X), ci[:, 1], rtol=1e-8)
    assert res["log_likelihood"] == pytest.approx(ref.llf, rel=1e-10)
    assert res["llr_p_value"] == pytest.approx(ref.llr_pvalue, rel=1e-6)


def test_logreg_ridge_equals_sklearn(heart: dict[str, Any], tmp_path: Path) -> None:
    # A tol finer than the sums resolve: the run stops when the steps stop shrinking.
    params = {**LOGREG, "l2": 5.0, "tol": 1e-30}
    res = run("logreg", heart_sites(heart, tmp_path), params, policy=FOUR).result
    assert res is not None
    y, x = pooled_heart(heart, HOSPITALS)
    ref = LogisticRegression(C=1 / 5.0, solver="newton-cholesky", tol=1e-12, max_iter=200)
    ref.fit(x, y)
    np.testing.assert_allclose(res["coefficients"][INTERCEPT], ref.intercept_[0], rtol=1e-9)
    np.testing.assert_allclose(keyed(res, "coefficients", HEART_X), ref.coef_[0], rtol=1e-9)
    # Standard errors from the penalised Hessian X'WX + l2·D at the estimate.
    xc = np.column_stack([np.ones(len(y)), x])
    mu = ref.predict_proba(x)[:, 1]
    hessian = xc.T @ (xc * (mu * (1 - mu))[:, None]) + np.diag([0.0] + [5.0] * len(HEART_X))
    se = np.sqrt(np.diag(np.linalg.inv(hessian)))
    np.testing.assert_allclose(keyed(res, "std_errors", [INTERCEPT, *HEART_X]), se, rtol=1e-6)
    assert res["converged"] is True and res["iterations"] < 50


def test_logreg_separation_and_collinearity(heart: dict[str, Any], tmp_path: Path) -> None:
    sites = heart_sites(heart, tmp_path)
    separated = {"outcome": "over_55", "covariates": ["age", "sex"], "max_iter": 5}
    with pytest.raises(TaskError) as err:
        run("logreg", sites, separated, policy=FOUR)
    assert err.value.rule in ("no-convergence", "singular")
    assert "separate" in err.value.message
    collinear = {"outcome": "disease", "covariates": ["age", "sex", "age_copy"]}
    with pytest.raises(TaskError) as err:
        run("logreg", sites, collinear, policy=FOUR)
    assert err.value.rule == "singular"
    assert "age, age_copy" in err.value.message and "sex" not in err.value.message


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"outcome": "disease", "covariates": []}, "at least one covariate"),
        ({"outcome": "disease", "covariates": ["age", "age"]}, "repeated: age"),
        ({"outcome": "disease", "covariates": ["disease", "age"]}, "cannot also be a covariate"),
        ({"outcome": "disease", "covariates": ["age"], "alpha": 1.5}, "alpha"),
        ({"outcome": "disease", "covariates": ["age"], "l2": -1}, "l2"),
        ({"outcome": "disease", "covariates": ["age"], "link": "probit"}, "link"),
        ({"outcome": "disease", "covariates": [INTERCEPT]}, "cannot be called"),
    ],
)
def test_bad_params_rejected(params: dict[str, Any], needle: str) -> None:
    for task in ("logreg", "linreg"):
        with pytest.raises(TaskError) as err:
            get_task(task).parse(params)
        assert err.value.rule == "bad-params"
        assert needle in str(err.value)


def test_bad_params_rejected_at_the_hub_before_any_site(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="logreg: parameter covariates: at least one"):
        run("logreg", {"a": tmp_path / "absent.csv"}, {"outcome": "y", "covariates": []})


@pytest.mark.parametrize(
    ("covariates", "outcome", "needles"),
    [
        (["age", "height"], "disease", ["unknown-column", "no column 'height'"]),
        (["age", "sex_label"], "disease", ["covariate 'sex_label'", "string, not a number"]),
        (["age", "sex"], "num", ["outcome-not-binary", "'num' must be 0/1"]),
    ],
)
def test_bad_columns_fail_at_every_site(
    heart: dict[str, Any], tmp_path: Path, covariates: list[str], outcome: str, needles: list[str]
) -> None:
    params = {"outcome": outcome, "covariates": covariates}
    with pytest.raises(RunError) as err:
        run("logreg", heart_sites(heart, tmp_path), params, policy=FOUR)
    for needle in needles:
        assert needle in str(err.value)


def test_dp_is_refused(heart: dict[str, Any], tmp_path: Path) -> None:
    sites = heart_sites(heart, tmp_path)
    for task in ("logreg", "linreg"):
        with pytest.raises(TaskError) as err:
            run(task, sites, {**LOGREG, "rho": 0.05}, policy=FOUR)
        assert err.value.rule == "dp-unsupported"
    # A site whose policy adds noise by default refuses to answer without it.
    budget = Budget(rho=1.0, max_rho_per_release=0.1, default_rho=0.05)
    noisy = SitePolicy(min_sites=3, min_cell_count=5, budget=budget)
    with pytest.raises(RunError, match="dp-unsupported"):
        run("logreg", sites, LOGREG, policy=noisy)


# -- linreg ---------------------------------------------------------------------------------------
LINREG = {"outcome": "serum_sodium", "covariates": HF_X}


def assert_matches_ols(result: dict[str, Any], ref: Any, names: list[str]) -> None:
    np.testing.assert_allclose(keyed(result, "coefficients", names), ref.params, rtol=1e-9)
    np.testing.assert_allclose(keyed(result, "std_errors", names), ref.bse, rtol=1e-9)
    np.testing.assert_allclose(keyed(result, "t_values", names), ref.tvalues, rtol=1e-9)
    np.testing.assert_allclose(keyed(result, "p_values", names), ref.pvalues, rtol=1e-7, atol=1e-14)
    ci = np.asarray(ref.conf_int())
    np.testing.assert_allclose(keyed(result, "ci_lower", names), ci[:, 0], rtol=1e-9)
    np.testing.assert_allclose(keyed(result, "ci_upper", names), ci[:, 1], rtol=1e-9)
    assert result["r_squared"] == pytest.approx(ref.rsquared, rel=1e-9)
    assert result["adj_r_squared"] == pytest.approx(ref.rsquared_adj, rel=1e-9)
    assert result["f_statistic"] == pytest.approx(ref.fvalue, rel=1e-9)
    assert result["f_p_value"] == pytest.approx(ref.f_pvalue, rel=1e-7)
    assert result["rss"] == pytest.approx(ref.ssr, rel=1e-10)
    assert result["sigma"] == pytest.approx(np.sqrt(ref.scale), rel=1e-10)
    assert result["log_likelihood"] == pytest.approx(ref.llf, rel=1e-10)
    assert result["aic"] == pytest.approx(ref.aic, rel=1e-10)
    assert result["bic"] == pytest.approx(ref.bic, rel=1e-10)
    assert result["df_resid"] == ref.df_resid
    assert result["n"] == ref.nobs


def test_linreg_equals_pooled_ols(failure: pd.DataFrame, tmp_path: Path) -> None:
    res = run("linreg", failure_sites(failure, tmp_path, 3), LINREG).result
    assert res is not None
    ref = sm.OLS(failure["serum_sodium"], sm.add_constant(failure[HF_X])).fit()
    assert_matches_ols(res, ref, [INTERCEPT, *HF_X])
    assert res["per_site_n"] == {"site0": 100, "site1": 100, "site2": 99}
    assert res["iterations"] == 2
    json.dumps(res, allow_nan=False)


def test_linreg_keeps_its_digits_on_a_shifted_outcome(
    failure: pd.DataFrame, tmp_path: Path
) -> None:
    # y = sodium + 10⁶: y'y ~ 3e14 against a residual sum of squares ~ 6e3, so the one-round
    # y'y − 2β'X'y + β'X'Xβ loses ~1e-5 of it and the normal equations ~1e-6 of β; the second
    # round (exact residuals, one refinement step) keeps both to ~1e-12.
    covariates = [*HF_X, "platelets"]
    params = {"outcome": "sodium_shifted", "covariates": covariates}
    res = run("linreg", failure_sites(failure, tmp_path, 3), params).result
    assert res is not None
    ref = sm.OLS(failure["sodium_shifted"], sm.add_constant(failure[covariates])).fit(method="qr")
    names = [INTERCEPT, *covariates]
    np.testing.assert_allclose(keyed(res, "coefficients", names), ref.params, rtol=1e-8)
    np.testing.assert_allclose(keyed(res, "std_errors", names), ref.bse, rtol=1e-8)
    assert res["rss"] == pytest.approx(ref.ssr, rel=1e-10)
    assert res["r_squared"] == pytest.approx(ref.rsquared, rel=1e-8)


def test_linreg_without_intercept(failure: pd.DataFrame, tmp_path: Path) -> None:
    params = {**LINREG, "intercept": False}
    res = run("linreg", failure_sites(failure, tmp_path, 3), params).result
    assert res is not None
    ref = sm.OLS(failure["serum_sodium"], failure[HF_X]).fit()
    assert_matches_ols(res, ref, HF_X)


def test_linreg_where_and_small_site(failure: pd.DataFrame, tmp_path: Path) -> None:
    sites = failure_sites(failure, tmp_path, 3)
    small = tmp_path / "small.csv"
    failure.iloc[:6].to_csv(small, index=False)  # 6 rows, all passing the filter: below 10
    params = {**LINREG, "where": "age >= 50 AND platelets > 150000"}
    report = run("linreg", {**sites, "small": small}, params)
    assert "small-cell" in report.refused["small"]
    res = report.result
    assert res is not None and res["sites"] == ["site0", "site1", "site2"]
    sub = failure[(failure["age"] >= 50) & (failure["platelets"] > 150000)]
    ref = sm.OLS(sub["serum_sodium"], sm.add_constant(sub[HF_X])).fit()
    assert_matches_ols(res, ref, [INTERCEPT, *HF_X])


def test_linreg_site_down_after_round_one_restarts(failure: pd.DataFrame, tmp_path: Path) -> None:
    nodes = make_nodes(failure_sites(failure, tmp_path, 4), SitePolicy(min_sites=3))
    transport = InProcessTransport(nodes)

    def progress(round_no: int, _message: str) -> None:
        if round_no == 2:
            transport.down.add("site1")

    try:
        report = Hub(transport, progress=progress).run("linreg", LINREG)
    finally:
        transport.close()
    res = report.result
    assert res is not None and res["sites"] == ["site0", "site2", "site3"]
    assert res["iterations"] == 4  # moments and residuals, then again without site1
    chunks = np.array_split(np.arange(len(failure)), 4)
    kept = failure.iloc[np.concatenate([chunks[0], chunks[2], chunks[3]])]
    ref = sm.OLS(kept["serum_sodium"], sm.add_constant(kept[HF_X])).fit()
    assert_matches_ols(res, ref, [INTERCEPT, *HF_X])


def test_linreg_ridge(failure: pd.DataFrame, tmp_path: Path) -> None:
    params = {**LINREG, "l2": 50.0}
    res = run("linreg", failure_sites(failure, tmp_path, 3), params).result
    assert res is not None
    x, y = failure[HF_X].to_numpy(float), failure["serum_sodium"].to_numpy(float)
    ref = Ridge(alpha=50.0).fit(x, y)
    assert res["coefficients"][INTERCEPT] == pytest.approx(ref.intercept_, rel=1e-9)
    np.testing.assert_allclose(keyed(res, "coefficients", HF_X), ref.coef_, rtol=1e-9)
    # Sandwich covariance σ²A⁻¹X'XA⁻¹ with A = X'X + l2·D.
    xc = np.column_stack([np.ones(len(y)), x])
    a_inv = np.linalg.inv(xc.T @ xc + np.diag([0.0] + [50.0] * len(HF_X)))
    beta = np.r_[ref.intercept_, ref.coef_]
    sigma2 = np.sum((y - xc @ beta) ** 2) / (len(y) - xc.shape[1])
    se = np.sqrt(np.diag(sigma2 * a_inv @ xc.T @ xc @ a_inv))
    np.testing.assert_allclose(keyed(res, "std_errors", [INTERCEPT, *HF_X]), se, rtol=1e-8)
    assert res["f_statistic"] is None


def test_linreg_collinear(heart: dict[str, Any], tmp_path: Path) -> None:
    params = {"outcome": "chol", "covariates": ["age", "age_copy", "sex"]}
    with pytest.raises(TaskError) as err:
        run("linreg", heart_sites(heart, tmp_path), params, policy=FOUR)
    assert err.value.rule == "singular"
    assert "age, age_copy" in err.value.message


# -- logreg evaluation ----------------------------------------------------------------------------
def split_sites(heart: dict[str, Any], tmp_path: Path) -> dict[str, Path]:
    """The hospitals' CSVs with a 'part' column: every third row is a test row."""
    paths = {}
    for h, df in heart["frames"].items():
        paths[h] = tmp_path / f"{h}.csv"
        part = np.where(np.arange(len(df)) % 3 == 0, "test", "train")
        df.assign(part=part).to_csv(paths[h], index=False, na_rep="")
    return paths


def split_rows(heart: dict[str, Any], hospitals: tuple[str, ...], part: str):
    frames = []
    for h in hospitals:
        df = heart["frames"][h]
        frames.append(df[np.where(np.arange(len(df)) % 3 == 0, "test", "train") == part])
    df = pd.concat(frames)[["disease", *HEART_X]].dropna()
    return df["disease"].to_numpy(float), df[HEART_X].to_numpy(float)


def test_logreg_evaluates_on_the_test_split(heart: dict[str, Any], tmp_path: Path) -> None:
    params = {**LOGREG, "split_column": "part", "bins": 1000, "bootstrap": 100}
    report = run("logreg", split_sites(heart, tmp_path), params, policy=FOUR)
    res = report.result
    assert res is not None
    json.dumps(res, allow_nan=False)
    # The fit is that of the pooled training rows; one more round evaluates it.
    y, x = split_rows(heart, HOSPITALS, "train")
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    assert_matches_logit(res, ref, [INTERCEPT, *HEART_X])
    assert report.rounds == res["iterations"] + 1
    evaluation = res["evaluation"]
    assert evaluation["evaluated_on"] == "test rows (part = 'test')"
    assert evaluation["sites"] == sorted(HOSPITALS)

    beta = keyed(res, "coefficients", [INTERCEPT, *HEART_X])
    y_test, x_test = split_rows(heart, HOSPITALS, "test")
    prob = 1 / (1 + np.exp(-(beta[0] + x_test @ beta[1:])))
    glob = evaluation["global"]
    assert glob["n"] == len(y_test)
    assert glob["auroc"] == pytest.approx(metrics.auroc(y_test, prob), abs=1e-3)
    assert glob["auprc"] == pytest.approx(metrics.auprc(y_test, prob), abs=1e-3)
    assert glob["brier"] == pytest.approx(metrics.brier(y_test, prob), rel=1e-9)
    assert glob["accuracy"] == pytest.approx(metrics.accuracy(y_test, prob), rel=1e-12)
    calibration = metrics.calibration(y_test, prob)
    assert glob["calibration_slope"] == pytest.approx(calibration.slope, abs=1e-3)
    assert glob["calibration_intercept"] == pytest.approx(calibration.intercept, abs=1e-3)
    assert all(lo < glob[m] < hi for m, (lo, hi) in glob["ci"].items())
    assert glob["roc"][-1]["fpr"] == 1.0 and glob["calibration_curve"]

    # Each site's own metrics, in clear only when its test rows are not small cells.
    for h in HOSPITALS:
        ys, xs = split_rows(heart, (h,), "test")
        site = evaluation["per_site"][h]
        if min(len(ys) - ys.sum(), ys.sum()) < FOUR.min_cell_count:
            assert site is None
            continue
        ps = 1 / (1 + np.exp(-(beta[0] + xs @ beta[1:])))
        assert site["n"] == len(ys)
        assert site["auroc"] == pytest.approx(metrics.auroc(ys, ps), rel=1e-9)
    assert evaluation["per_site"]["switzerland"] is None  # 3 test rows without disease


def test_logreg_evaluate_without_split_uses_the_training_rows(
    heart: dict[str, Any], tmp_path: Path
) -> None:
    params = {**LOGREG, "evaluate": True, "bootstrap": 0}
    res = run("logreg", heart_sites(heart, tmp_path), params, policy=FOUR).result
    assert res is not None
    evaluation = res["evaluation"]
    assert evaluation["evaluated_on"] == "training rows"
    assert evaluation["global"]["ci"] == {}
    y, x = pooled_heart(heart, HOSPITALS)
    beta = keyed(res, "coefficients", [INTERCEPT, *HEART_X])
    prob = 1 / (1 + np.exp(-(beta[0] + x @ beta[1:])))
    assert evaluation["global"]["auroc"] == pytest.approx(metrics.auroc(y, prob), abs=1e-3)
    with pytest.raises(TaskError, match="split column 'disease' cannot be"):
        get_task("logreg").parse({**LOGREG, "split_column": "disease"})
    with pytest.raises(TaskError, match="split_column"):
        get_task("linreg").parse({**LOGREG, "split_column": "part"})
