"""``logreg`` and ``linreg``: exact federated logistic and linear regression.

Both fit on the pooled complete cases of every site (rows with the outcome and every
covariate present, filtered by ``where``) and give the same estimates, standard errors,
confidence intervals and p-values as a fit on the pooled rows (statsmodels ``Logit`` and
``OLS``), up to the 2^-40 resolution of secure aggregation. Sites release their row count in
clear (only when it reaches their minimum cell count) and everything else as sums over the
sites: no site's gradient, Hessian or cross-products are ever seen alone.

``logreg`` is Newton–Raphson (IRLS), one round per iteration, as in vantage6's federated GLM:
the hub sends β (zeros at first), each site returns X'(y−μ), X'WX and its log-likelihood at β,
and the hub steps β ← β + H⁻¹g until the largest step is below ``tol`` — or, for a ``tol`` finer
than the sums can resolve, until the steps stop shrinking once the Newton decrement g'H⁻¹g is
below 1e-12 (every coefficient within ~1e-6 standard errors of the optimum, and the next
Newton step would be another ~10⁶ times smaller). The result is reported at the β of the last
round, with the log-likelihood and the Hessian evaluated there (the converged β, as statsmodels
does); the last step, smaller than ``tol``, is not applied.

``linreg`` takes two rounds: the sites send X'X and X'y, the hub solves the normal equations;
then the hub sends that β and the sites send the residual sum of squares and X'(y−Xβ)
computed exactly on their rows, from which the hub refines β by one step (iterative
refinement, so the normal equations' loss of digits does not reach the result) and corrects
the residual sum of squares to the refined β exactly — never y'y − 2β'X'y + β'X'Xβ, which
cancels when y'y is large (for an outcome near 10⁶ it loses the fifth digit of the RSS).

With ``l2 > 0`` the non-intercept coefficients are shrunk by a ridge penalty: ``logreg``
maximises ℓ(β) − ½·l2·‖β‖² and reports standard errors from the penalised Hessian; ``linreg``
minimises ‖y−Xβ‖² + l2·‖β‖² (scikit-learn's ``Ridge(alpha=l2)``) with the sandwich covariance
σ²(X'X+l2·D)⁻¹X'X(X'X+l2·D)⁻¹. Inference on shrunken coefficients is biased towards zero; read
it as approximate. Differential privacy is not supported yet: a release with ρ > 0 is refused
with ``dp-unsupported``.

Both results (JSON) hold, keyed by term (``(intercept)`` first, then the covariates):
``coefficients``, ``std_errors``, ``ci_lower``, ``ci_upper``, ``p_values`` and ``z_values``
(``logreg``) or ``t_values`` (``linreg``); ``terms`` and ``covariance`` (a matrix in the order
of ``terms``); ``n``, ``sites``, ``per_site_n``, ``sites_refused``, ``sites_failed``,
``iterations`` (rounds), ``converged``, ``log_likelihood`` (of the data, without the penalty),
``deviance``, ``aic``, ``bic``, ``df_model``, ``df_resid``; for ``logreg`` also ``events``,
``null_log_likelihood``, ``null_deviance``, ``pseudo_r_squared`` (McFadden's), ``llr`` and
``llr_p_value``; for ``linreg`` also ``r_squared``, ``adj_r_squared``, ``sigma``, ``rss``,
``f_statistic`` and ``f_p_value`` (``None`` with ``l2``).

``logreg`` can also evaluate its fit (``evaluate``, or ``split_column`` to fit on the
``'train'`` rows and evaluate on the ``'test'`` rows): one more round, in which the sites score
their rows with the final β and release the aggregates of
:mod:`cardiobox.federated.evaluation` — pooled AUROC, AUPRC, accuracy, Brier score,
calibration slope and intercept with bootstrap intervals, ROC and calibration curves, and each
large-enough site's own metrics — under the result's ``evaluation``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.linalg
from pydantic import Field, model_validator
from scipy import stats
from scipy.special import expit, xlogy

from cardiobox.federated.evaluation import (
    DEFAULT_BOOTSTRAP,
    MAX_BOOTSTRAP,
    evaluation_release,
    pooled_evaluation,
)
from cardiobox.federated.learning import (
    SplitColumn,
    check_binary_outcome,
    check_number_columns,
    check_outcome_role,
    check_split_column,
    evaluated_on_split,
    row_filter,
)
from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import (
    Covariates,
    Next,
    Result,
    RoundResult,
    SiteContext,
    SiteOutput,
    Task,
    TaskError,
    TaskParams,
    payload_vector,
    refuse_dp,
    register,
)

Array = npt.NDArray[np.float64]

#: The key of the intercept in every per-term result.
INTERCEPT = "(intercept)"
#: The most Newton iterations ``logreg`` may be asked for.
MAX_ITER = 200
#: A summed matrix whose unit-diagonal form has an eigenvalue ratio below this is singular.
RCOND = 1e-12
#: Newton decrement (g'H⁻¹g) under which steps that stop shrinking mean convergence...
STALL_DECREMENT = 1e-12
#: ... when they are also this small relative to the largest coefficient.
STALL_STEP = 1e-8


class GlmParams(TaskParams):
    """Parameters of ``logreg`` and ``linreg``.

    Parameters
    ----------
    outcome : str
        The outcome column: 0/1 or boolean for ``logreg``, a number for ``linreg``.
    covariates : list of str
        Number or boolean columns (at least one, no repeats, not the outcome).
    intercept : bool
        Fit an intercept, reported as ``(intercept)`` (default true).
    max_iter : int
        The most Newton iterations (rounds) of ``logreg`` (default 50, at most 200).
    tol : float
        ``logreg`` stops when no coefficient moves by more than this (default 1e-10).
    alpha : float
        Confidence intervals are at level 1 − alpha (default 0.05).
    l2 : float
        Ridge penalty on the non-intercept coefficients (default 0: plain maximum likelihood
        or least squares).
    """

    outcome: str = Field(min_length=1)
    covariates: Covariates
    intercept: bool = True
    max_iter: int = Field(50, ge=1, le=MAX_ITER)
    tol: float = Field(1e-10, gt=0, allow_inf_nan=False)
    alpha: float = Field(0.05, gt=0, lt=1)
    l2: float = Field(0.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _terms(self) -> GlmParams:
        check_outcome_role(self.outcome, self.covariates)
        if self.intercept and INTERCEPT in self.covariates:
            raise ValueError(f"a covariate cannot be called {INTERCEPT!r} when intercept is true")
        return self


class LogRegParams(GlmParams):
    """Parameters of ``logreg``: those of :class:`GlmParams`, and the evaluation's.

    Parameters
    ----------
    split_column : str, optional
        A string column holding ``'train'`` or ``'test'`` in every row (after ``where``): fit
        on the ``'train'`` rows and evaluate on the ``'test'`` rows.
    evaluate : bool
        Evaluate the fitted model (default false; implied by ``split_column``). Without a
        split the evaluation runs on the training rows, and the result says so.
    bins : int
        Bins of the per-class score histograms on [0, 1] behind the pooled AUROC, AUPRC and
        ROC curve (default 200).
    bootstrap : int
        Bootstrap replicates of the metrics' intervals (default 200; 0 for none). The
        intervals are at the level 1 − ``alpha`` of the coefficients'.
    """

    split_column: SplitColumn = None
    evaluate: bool = False
    bins: int = Field(200, ge=2, le=10_000)
    bootstrap: int = Field(DEFAULT_BOOTSTRAP, ge=0, le=MAX_BOOTSTRAP)

    @property
    def evaluates(self) -> bool:
        """Whether the run ends with an evaluation round."""
        return self.evaluate or self.split_column is not None


# -- shared by both tasks -------------------------------------------------------------------------
def terms(params: GlmParams) -> list[str]:
    """The model's terms in order: ``(intercept)`` (when fitted) then the covariates."""
    return ([INTERCEPT] if params.intercept else []) + list(params.covariates)


def _penalty(params: GlmParams) -> Array:
    """The ridge penalty per term (the intercept is never penalised)."""
    weights = np.full(len(terms(params)), params.l2)
    if params.intercept:
        weights[0] = 0.0
    return weights


def _design(table: SiteTable, params: GlmParams, where: str | None) -> tuple[Array, Array]:
    """The site's complete cases passing ``where`` as (X with the intercept column, y).

    Read (and its columns checked) once per run's parameters and kept by the table (read-only):
    Newton's rounds reuse it.
    """
    key = ("glm-design", params.outcome, tuple(params.covariates), params.intercept, where)
    return table.derived(key, lambda: _read_design(table, params, where))


def _events(table: SiteTable, params: GlmParams, where: str | None, y: Array) -> int:
    """The events among the design's rows, once the outcome is checked to be 0/1 (kept)."""

    def count() -> int:
        check_binary_outcome(y, params.outcome)
        return int(y.sum())

    key = ("glm-events", params.outcome, tuple(params.covariates), params.intercept, where)
    return table.derived(key, count)


def _read_design(table: SiteTable, params: GlmParams, where: str | None) -> tuple[Array, Array]:
    check_number_columns(table, params.outcome, params.covariates)
    data = table.numeric([params.outcome, *params.covariates], where)
    y = np.ascontiguousarray(data[:, 0])
    x = data[:, 1:]
    if params.intercept:
        x = np.column_stack([np.ones(len(y)), x])
    x = np.ascontiguousarray(x)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


class SymmetricSolver:
    """Solves with a summed symmetric positive definite matrix (Hessian, X'X).

    The matrix is scaled to unit diagonal before the Cholesky factorisation, so covariates on
    very different scales (platelets in the 10⁵, creatinine near 1) neither hide collinearity
    nor fail the factorisation; a scaled matrix with an eigenvalue ratio below :data:`RCOND`
    is singular.

    Parameters
    ----------
    matrix : numpy.ndarray
        The p × p matrix.
    names : list of str
        The terms, to name the collinear ones in the error.
    what : str
        What the matrix is, for the error.

    Raises
    ------
    TaskError
        With rule ``singular``, naming the terms involved.
    """

    def __init__(self, matrix: Array, names: list[str], what: str):
        diag = np.diag(matrix)
        if not np.all(np.isfinite(matrix)) or np.any(~(diag > 0)):
            bad = [names[i] for i in np.flatnonzero(~(diag > 0))]
            raise TaskError(
                f"{what} is singular"
                + (f": {', '.join(bad)} carry no information in the pooled rows" if bad else ""),
                rule="singular",
            )
        self._scale = np.sqrt(diag)
        scaled = matrix / np.outer(self._scale, self._scale)
        values, vectors = np.linalg.eigh(scaled)
        try:
            if values[0] <= values[-1] * RCOND:
                raise np.linalg.LinAlgError("ill-conditioned")
            self._factor = scipy.linalg.cho_factor(scaled)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            involved = [names[i] for i in np.flatnonzero(np.abs(vectors[:, 0]) > 0.1)]
            raise TaskError(
                f"{what} is singular: {', '.join(involved)} are collinear in the pooled rows",
                rule="singular",
            ) from None

    def solve(self, b: Array) -> Array:
        """M⁻¹b for a vector b."""
        out: Array = scipy.linalg.cho_solve(self._factor, b / self._scale) / self._scale
        return out

    def inverse(self) -> Array:
        """M⁻¹ (for covariances)."""
        eye = np.eye(len(self._scale))
        inv: Array = scipy.linalg.cho_solve(self._factor, eye) / np.outer(self._scale, self._scale)
        return (inv + inv.T) / 2


def _keyed(names: list[str], values: Array) -> dict[str, float]:
    return {n: float(v) for n, v in zip(names, values, strict=True)}


def coefficient_table(
    names: list[str],
    beta: Array,
    cov: Array,
    alpha: float,
    df: float | None,
) -> dict[str, Any]:
    """Per-term estimates, standard errors, tests and Wald intervals, keyed by term.

    Parameters
    ----------
    names : list of str
        The terms.
    beta : numpy.ndarray
        The estimates.
    cov : numpy.ndarray
        Their covariance matrix.
    alpha : float
        Intervals at level 1 − alpha.
    df : float, optional
        Degrees of freedom of t-tests; ``None`` for z-tests.
    """
    se = np.sqrt(np.diag(cov))
    dist = stats.norm if df is None else stats.t(df)
    stat = beta / se
    q = float(dist.ppf(1 - alpha / 2))
    return {
        "terms": names,
        "coefficients": _keyed(names, beta),
        "std_errors": _keyed(names, se),
        "z_values" if df is None else "t_values": _keyed(names, stat),
        "p_values": _keyed(names, 2 * dist.sf(np.abs(stat))),
        "ci_lower": _keyed(names, beta - q * se),
        "ci_upper": _keyed(names, beta + q * se),
        "covariance": cov.tolist(),
    }


def _site_counts(result: RoundResult) -> tuple[int, dict[str, int]]:
    per_site = {s: int(result.values[s]["n"]) for s in result.sites}
    return sum(per_site.values()), per_site


def _common(params: GlmParams, result: RoundResult) -> dict[str, Any]:
    n, per_site = _site_counts(result)
    return {
        "outcome": params.outcome,
        "n": n,
        "sites": list(result.sites),
        "per_site_n": per_site,
        "alpha": params.alpha,
        "l2": params.l2,
        "sites_refused": dict(result.refused),
        "sites_failed": dict(result.failed),
    }


def _site_n(x: Array, ctx: SiteContext) -> dict[str, Any]:
    """The clear values of a round: the row count, once the policy allows it out."""
    n = len(x)
    ctx.policy.check_cell(n, "the number of complete rows (outcome and covariates present)")
    return {"n": n, "min_cell_count": ctx.policy.min_cell_count}


# -- logistic regression --------------------------------------------------------------------------
class LogRegTask(Task[LogRegParams]):
    """Exact federated logistic regression by Newton–Raphson on summed gradients and Hessians.

    Each round the site releases in clear its number of complete rows (refusing when it, its
    events or its non-events are below the minimum cell count) and, summed over the sites,
    the gradient X'(y−μ), the Hessian X'WX, the log-likelihood and the number of events at the
    hub's β. The hub raises :class:`TaskError` with rule ``no-convergence`` when ``max_iter``
    iterations do not converge (typically: the covariates separate the outcome) and
    ``singular`` when the Hessian is singular (collinear covariates). No DP noise yet: ρ > 0
    is refused (``dp-unsupported``).

    With ``split_column`` the fit uses the ``'train'`` rows; with it or ``evaluate``, one more
    round follows convergence: the hub sends the final β and the sites release the evaluation
    of their ``'test'`` rows (their training rows without a split) —
    :func:`~cardiobox.federated.evaluation.evaluation_release`. The result then holds
    ``evaluation``: ``evaluated_on``, ``sites``, ``global`` (pooled AUROC, AUPRC, accuracy,
    Brier score, calibration slope and intercept, bootstrap intervals, ROC and calibration
    curves) and ``per_site`` (each site's metrics, or ``None`` for small sites).
    """

    name = "logreg"
    params_model = LogRegParams
    uses_secure_sum = True
    max_rounds: ClassVar[int] = MAX_ITER + 1

    def variables(self, params: LogRegParams) -> set[str]:
        """The outcome, the covariates and the split column."""
        split = {params.split_column} if params.split_column else set()
        return {params.outcome, *params.covariates, *split}

    def start(self, params: LogRegParams) -> dict[str, Any]:
        """β = 0 (refusing DP requests before anything is computed)."""
        refuse_dp(self.name, params.rho)
        return {"beta": [0.0] * len(terms(params))}

    def site(
        self, table: SiteTable, params: LogRegParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Gradient, Hessian, log-likelihood and events at the hub's β, or the evaluation."""
        refuse_dp(self.name, ctx.rho)
        if params.split_column is not None:  # checked once: the table never changes
            split = params.split_column
            key = ("split-checked", split, params.where)
            table.derived(key, lambda: check_split_column(table, split, params.where))
        where = row_filter(params.where, params.split_column, "train")
        x, y = _design(table, params, where)
        beta = payload_vector(payload, "beta", x.shape[1])
        values = _site_n(x, ctx)
        events = _events(table, params, where, y)
        ctx.policy.check_cell(events, f"the number of events ({params.outcome} = 1)")
        ctx.policy.check_cell(len(y) - events, f"the number of non-events ({params.outcome} = 0)")
        phase = payload.get("phase", "fit")
        if phase == "evaluate":
            return self._evaluate(table, params, beta, ctx)
        if phase != "fit":
            raise TaskError(f"unknown logreg phase {phase!r} in the payload", rule="protocol")
        eta = x @ beta
        mu = expit(eta)
        # μ(1−μ) as expit(η)·expit(−η) keeps its digits when μ is near 1, and log(1+e^η) as
        # logaddexp never overflows.
        weights = mu * expit(-eta)
        loglik = float((y * eta - np.logaddexp(0.0, eta)).sum())
        return SiteOutput(
            values=values,
            secure={
                "gradient": x.T @ (y - mu),
                "hessian": (x.T @ (x * weights[:, None])).ravel(),
                "loglik": np.array([loglik]),
                "events": np.array([float(events)]),
            },
            mechanism="sums over sites (secure aggregation); row count suppressed below "
            f"{ctx.policy.min_cell_count}",
        )

    @staticmethod
    def _evaluate(
        table: SiteTable, params: LogRegParams, beta: Array, ctx: SiteContext
    ) -> SiteOutput:
        x, y = _design(table, params, row_filter(params.where, params.split_column, "test"))
        check_binary_outcome(y, params.outcome)
        prob = expit(x @ beta)
        values, secure = evaluation_release(
            y, prob, ctx, params.bins, bootstrap=params.bootstrap, alpha=params.alpha
        )
        return SiteOutput(
            values=values,
            secure=secure,
            mechanism="evaluation sums over sites (secure aggregation); the site's own metrics "
            f"only when its rows, events and non-events reach {ctx.policy.min_cell_count}",
        )

    def hub(
        self, params: LogRegParams, result: RoundResult, state: dict[str, Any]
    ) -> Next | Result:
        """One Newton step, the evaluation round, or the result."""
        if state.get("phase") == "evaluate":
            out: dict[str, Any] = state["result"]
            evaluation = pooled_evaluation(result, params.bins, alpha=params.alpha)
            out["evaluation"] = {
                "evaluated_on": evaluated_on_split(params.split_column),
                "sites": list(result.sites),
                **evaluation,
            }
            out.update(sites_refused=dict(result.refused), sites_failed=dict(result.failed))
            return Result(out)
        names = terms(params)
        p = len(names)
        beta = np.asarray(state.get("beta", [0.0] * p), dtype=np.float64)
        penalty = _penalty(params)
        hessian = result.sums["hessian"].reshape(p, p)
        hessian = (hessian + hessian.T) / 2 + np.diag(penalty)
        gradient = result.sums["gradient"] - penalty * beta
        iteration = int(state.get("iterations", 0)) + 1
        try:
            solver = SymmetricSolver(
                hessian, names, f"logreg: the summed Hessian (iteration {iteration})"
            )
        except TaskError as exc:
            if iteration == 1:
                raise
            # Past β = 0 the weights μ(1−μ) of separated rows vanish: say so.
            raise TaskError(
                f"{exc.message}, or the covariates separate the outcome (predict it perfectly) "
                "— drop or merge them, or set l2 > 0",
                rule=exc.rule,
            ) from None
        step = solver.solve(gradient)
        size = float(np.max(np.abs(step)))
        # g'H⁻¹g: twice the log-likelihood Newton expects to gain; ≈ Σ (step / SE)².
        decrement = float(step @ gradient)
        if not (math.isfinite(size) and math.isfinite(decrement)):
            raise TaskError(f"logreg diverged at iteration {iteration}", rule="no-convergence")
        # Once the gain is below STALL_DECREMENT, Newton's next step is ~10⁶ times smaller; one
        # that does not even halve, while tiny next to β, is the resolution of the sums (same
        # sites), not progress. (Under separation the gain vanishes too, but the steps stay
        # large: β diverges.)
        stalled = (
            state.get("sites") == result.sites
            and state.get("decrement", math.inf) < STALL_DECREMENT
            and size >= state["step"] / 2
            and size <= STALL_STEP * max(1.0, float(np.max(np.abs(beta))))
        )
        if size < params.tol or stalled:
            fitted = self._result(params, result, beta, solver, iteration)
            if not params.evaluates:
                return Result(fitted)
            state.update(phase="evaluate", result=fitted)
            return Next({"phase": "evaluate", "beta": beta.tolist()})
        if iteration >= params.max_iter:
            raise TaskError(
                f"logreg did not converge in {params.max_iter} iterations (last step "
                f"{size:.3g}, tol {params.tol:g}): the covariates may separate the outcome "
                "(predict it perfectly) — drop or merge them, raise max_iter, or set l2 > 0",
                rule="no-convergence",
            )
        state.update(
            beta=(beta + step).tolist(),
            step=size,
            decrement=decrement,
            sites=list(result.sites),
            iterations=iteration,
        )
        return Next({"beta": state["beta"]})

    @staticmethod
    def _result(
        params: GlmParams,
        result: RoundResult,
        beta: Array,
        solver: SymmetricSolver,
        iteration: int,
    ) -> dict[str, Any]:
        names = terms(params)
        out = _common(params, result)
        n = out["n"]
        p = len(names)
        events = round(float(result.sums["events"][0]))
        loglik = float(result.sums["loglik"][0])
        # The constant-only model has a closed form (statsmodels' llnull, with or without an
        # intercept in the model); every site has events and non-events, so 0 < events < n.
        rate = events / n
        null = float(xlogy(events, rate) + xlogy(n - events, 1 - rate))
        df_model = p - int(params.intercept)
        llr = 2 * (loglik - null)
        out.update(coefficient_table(names, beta, solver.inverse(), params.alpha, None))
        out.update(
            events=events,
            iterations=iteration,
            converged=True,
            log_likelihood=loglik,
            null_log_likelihood=null,
            deviance=-2 * loglik,
            null_deviance=-2 * null,
            aic=2 * p - 2 * loglik,
            bic=p * math.log(n) - 2 * loglik,
            pseudo_r_squared=1 - loglik / null,
            llr=llr,
            llr_p_value=float(stats.chi2.sf(llr, df_model)),
            df_model=df_model,
            df_resid=n - p,
        )
        return out


# -- linear regression ----------------------------------------------------------------------------
class LinRegTask(Task[GlmParams]):
    """Exact federated linear regression (ordinary least squares, or ridge with ``l2``).

    Round 1: the sites release, summed, X'X, X'y and Σy (and their row counts in clear, when
    they reach the minimum cell count); the hub solves the normal equations. Round 2: the hub
    sends β and the pooled mean of y; the sites release, summed, the residual sum of squares,
    X'(y−Xβ) and Σ(y−ȳ)². When the sites of round 2 are not those of round 1 (one dropped
    out), the hub starts again from round 1 with the others (``iterations`` counts the rounds:
    2, or 4 after such a restart). The hub raises :class:`TaskError` with rule ``singular``
    for collinear covariates, ``too-few-rows`` when the pooled rows do not outnumber the
    terms and ``perfect-fit`` when the residuals are all zero. No DP noise yet: ρ > 0 is
    refused (``dp-unsupported``).
    """

    name = "linreg"
    params_model = GlmParams
    uses_secure_sum = True
    max_rounds: ClassVar[int] = 20

    def variables(self, params: GlmParams) -> set[str]:
        """The outcome and the covariates."""
        return {params.outcome, *params.covariates}

    def start(self, params: GlmParams) -> dict[str, Any]:
        """Ask for the cross-products (refusing DP requests before anything is computed)."""
        refuse_dp(self.name, params.rho)
        return {"phase": "moments"}

    def site(
        self, table: SiteTable, params: GlmParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Cross-products (phase ``moments``) or residual sums at β (phase ``residuals``)."""
        refuse_dp(self.name, ctx.rho)
        x, y = _design(table, params, params.where)
        values = _site_n(x, ctx)
        mechanism = (
            "sums over sites (secure aggregation); row count suppressed below "
            f"{ctx.policy.min_cell_count}"
        )
        phase = payload.get("phase")
        if phase == "moments":
            secure = {"xtx": (x.T @ x).ravel(), "xty": x.T @ y, "sum_y": np.array([y.sum()])}
            return SiteOutput(values=values, secure=secure, mechanism=mechanism)
        if phase != "residuals":
            raise TaskError(f"unknown linreg phase {phase!r} in the payload", rule="protocol")
        beta = payload_vector(payload, "beta", x.shape[1])
        y_mean = payload.get("y_mean")
        if not isinstance(y_mean, int | float) or isinstance(y_mean, bool):
            raise TaskError("the payload's y_mean must be a number", rule="protocol")
        resid = y - x @ beta
        centred = y - float(y_mean)
        secure = {
            "rss": np.array([resid @ resid]),
            "xtr": x.T @ resid,
            "tss": np.array([centred @ centred]),
            "yty": np.array([y @ y]),
        }
        return SiteOutput(values=values, secure=secure, mechanism=mechanism)

    def hub(self, params: GlmParams, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """Solve the normal equations, then refine β and finish with the exact residuals."""
        names = terms(params)
        p = len(names)
        if "rss" not in result.sums or state.get("sites") != result.sites:
            if "xtx" not in result.sums:  # a site dropped out after round 1: start again
                state.clear()
                return Next(self.start(params))
            n, _ = _site_counts(result)
            if n <= p:
                raise TaskError(
                    f"linreg needs more pooled rows ({n}) than terms ({p})", rule="too-few-rows"
                )
            xtx = result.sums["xtx"].reshape(p, p)
            xtx = (xtx + xtx.T) / 2
            solver = SymmetricSolver(xtx + np.diag(_penalty(params)), names, "linreg: X'X")
            beta = solver.solve(result.sums["xty"])
            y_mean = float(result.sums["sum_y"][0]) / n
            state.update(sites=list(result.sites), xtx=xtx.tolist(), beta=beta.tolist())
            return Next({"phase": "residuals", "beta": beta.tolist(), "y_mean": y_mean})
        return Result(self._result(params, result, state))

    @staticmethod
    def _result(params: GlmParams, result: RoundResult, state: dict[str, Any]) -> dict[str, Any]:
        names = terms(params)
        p = len(names)
        out = _common(params, result)
        n = out["n"]
        penalty = _penalty(params)
        xtx = np.asarray(state["xtx"], dtype=np.float64)
        beta = np.asarray(state["beta"], dtype=np.float64)
        solver = SymmetricSolver(xtx + np.diag(penalty), names, "linreg: X'X")
        xtr = result.sums["xtr"]
        # One step of iterative refinement, and the residual sum of squares moved to the
        # refined β exactly: RSS(β+δ) = RSS(β) − 2δ'X'r + δ'X'Xδ.
        delta = solver.solve(xtr - penalty * beta)
        beta = beta + delta
        rss = float(result.sums["rss"][0] - 2 * delta @ xtr + delta @ xtx @ delta)
        df_resid = n - p
        if not rss > 0:
            raise TaskError("linreg: the covariates fit the outcome exactly", rule="perfect-fit")
        sigma2 = rss / df_resid
        inverse = solver.inverse()
        cov = sigma2 * (inverse if params.l2 == 0 else inverse @ xtx @ inverse)
        # As statsmodels: R² about the mean with an intercept, about zero without.
        tss = float(result.sums["tss"][0] if params.intercept else result.sums["yty"][0])
        df_model = p - int(params.intercept)
        r2 = 1 - rss / tss
        f_stat = ((tss - rss) / df_model) / sigma2
        loglik = -n / 2 * (math.log(2 * math.pi * rss / n) + 1)
        out.update(coefficient_table(names, beta, cov, params.alpha, df_resid))
        out.update(
            iterations=result.round,
            converged=True,
            r_squared=r2,
            adj_r_squared=1 - (n - int(params.intercept)) / df_resid * (1 - r2),
            sigma=math.sqrt(sigma2),
            rss=rss,
            deviance=rss,
            df_model=df_model,
            df_resid=df_resid,
            # The F test is that of least squares; it does not hold for ridge estimates.
            f_statistic=f_stat if params.l2 == 0 else None,
            f_p_value=float(stats.f.sf(f_stat, df_model, df_resid)) if params.l2 == 0 else None,
            log_likelihood=loglik,
            aic=2 * p - 2 * loglik,
            bic=p * math.log(n) - 2 * loglik,
        )
        return out


register(LogRegTask())
register(LinRegTask())
