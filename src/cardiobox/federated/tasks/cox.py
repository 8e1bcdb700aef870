"""``cox``: exact federated Cox proportional-hazards regression, stratified by site.

Each site is its own stratum, so the sum of the sites' partial log-likelihoods is exactly the
partial log-likelihood of the pooled model stratified by site. The hub maximises it by Newton
steps: in every round it sends the current coefficients, each site returns the gradient, the
Hessian and the value of its partial log-likelihood there (summed over the sites by secure
aggregation, never seen one site at a time), and the hub takes a Newton step — halved while
the log-likelihood would go down — until the Newton decrement falls below ``tol``. Standard
errors come from the inverse of the negative Hessian evaluated at the converged coefficients.
The result equals ``lifelines.CoxPHFitter().fit(pooled, duration, event, strata=["site"])``
(Efron ties) and statsmodels ``PHReg(..., strata=site, ties=...)`` (Efron or Breslow).

Each site centres its covariates on its own means and shifts the linear predictor by its
maximum before exponentiating: a shift that is constant within a stratum leaves the partial
likelihood, its gradient and its Hessian unchanged, so this is exact and keeps ``exp`` from
overflowing. In clear each site releases only its number of rows and of events (it refuses
when either, or the number of censored rows they imply, is below its minimum cell count).

With ``l2 > 0`` the objective is penalised as lifelines does: lifelines fits on covariates
standardised by their pooled standard deviation ``s`` and subtracts
``0.5 · l2 · N · Σ (s_j β_j)²`` (``N`` pooled rows); the sites then also send the sums of the
covariates and of their squares, from which the hub gets ``s``.

**Concordance** (``concordance: true``, the default). The round that evaluates the final
coefficients (the polishing step once the Newton decrement is below ``tol``, or one extra
round when that step is discarded) also asks each site to count, within its own rows and at
those coefficients, the pairs of Harrell's C: comparable, concordant and tied in risk
(risk = x·β; a pair is comparable when one subject's event comes before the other's exit, a
censoring at the same time counting as later). The counts are summed over the sites, so the
result's ``concordance`` = (concordant + ½·tied) / comparable is Harrell's C stratified by
site — lifelines' ``concordance_index`` computed within each site and pooled by pair counts —
with ``concordance_pairs``, ``concordance_sites`` and ``per_site_concordance`` (each site's
own C, released in clear: its rows, events and censored rows already reach its minimum cell
count).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

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
    register,
)
from cardiobox.metrics import concordance_counts

#: Times a Newton step may be halved before the fit gives up.
MAX_HALVINGS = 30
#: A trial point counts as no worse when its log-likelihood is within this relative slack
#: (secure aggregation sums are exact to about 1e-12, float64 sums to about 1e-16).
LL_SLACK = 1e-10
#: Smallest eigenvalue of the Hessian in correlation form below which it counts as singular.
SINGULAR_EIGENVALUE = 1e-10


class CoxParams(TaskParams):
    """Parameters of ``cox``.

    Parameters
    ----------
    duration : str
        Number column: time from the origin to the event or to censoring (≥ 0).
    event : str
        Number or boolean column: 1 when the event happened at ``duration``, 0 when censored.
    covariates : list of str
        Number or boolean columns of the linear predictor (non-empty, no repeats).
    ties : {"efron", "breslow"}
        How tied event times are handled (default ``"efron"``, as lifelines and R).
    max_iter : int
        The most Newton steps (default 50).
    tol : float
        Convergence when the Newton decrement ``g·(-H)⁻¹·g / 2`` falls below this
        (default 1e-9).
    alpha : float
        ``1 - alpha`` is the level of the confidence intervals (default 0.05).
    l2 : float
        Ridge penalty with lifelines' ``penalizer`` convention (``l1_ratio=0``); default 0.
    concordance : bool
        Also compute Harrell's C at the final coefficients, stratified by site, and each
        site's own (default true; see the module docstring).
    """

    duration: str
    event: str
    # min_length first: an empty list gets pydantic's own message, as cox always gave.
    covariates: Covariates = Field(min_length=1)
    ties: Literal["efron", "breslow"] = "efron"
    max_iter: int = Field(50, ge=1, le=200)
    tol: float = Field(1e-9, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    l2: float = Field(0.0, ge=0, allow_inf_nan=False)
    concordance: bool = True

    @model_validator(mode="after")
    def _distinct_roles(self) -> CoxParams:
        if self.duration == self.event:
            raise ValueError(f"duration and event are the same column {self.duration!r}")
        clash = [c for c in self.covariates if c in (self.duration, self.event)]
        if clash:
            raise ValueError(
                f"covariates may not include the duration or event column: {', '.join(clash)}"
            )
        return self


def partial_likelihood(
    time: np.ndarray,
    event: np.ndarray,
    x: np.ndarray,
    beta: np.ndarray,
    ties: str = "efron",
) -> tuple[float, np.ndarray, np.ndarray]:
    """Cox partial log-likelihood of one stratum, its gradient and its Hessian.

    Vectorised: rows are sorted by time once, the risk-set sums at each distinct event time
    are suffix sums, and the Hessian's risk-set term ``Σ_j a_j Σ_{T_i ≥ t_j} w_i x_i x_iᵀ`` is
    one weighted cross-product ``Xᵀ diag(w·A) X`` with ``A_i = Σ_{t_j ≤ T_i} a_j``.

    Parameters
    ----------
    time : numpy.ndarray
        Durations, shape ``(n,)``.
    event : numpy.ndarray
        1 for an event, 0 for censoring, shape ``(n,)``.
    x : numpy.ndarray
        Covariates, shape ``(n, p)``.
    beta : numpy.ndarray
        Coefficients, shape ``(p,)``.
    ties : {"efron", "breslow"}
        Handling of tied event times.

    Raises
    ------
    ValueError
        For another ``ties``.

    Returns
    -------
    tuple of (float, numpy.ndarray, numpy.ndarray)
        The log-likelihood, the gradient ``(p,)`` and the Hessian ``(p, p)``.
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', not {ties!r}")
    n, p = x.shape
    order = np.argsort(time, kind="stable")
    t, ev, xs = time[order], event[order] > 0.5, x[order]
    eta = xs @ beta
    eta = eta - eta.max() if n else eta  # a constant shift cancels in the partial likelihood
    w = np.exp(eta)
    ev_rows = np.flatnonzero(ev)
    if ev_rows.size == 0:
        return 0.0, np.zeros(p), np.zeros((p, p))
    t_ev, x_ev, w_ev = t[ev_rows], xs[ev_rows], w[ev_rows]
    uniq, starts, counts = np.unique(t_ev, return_index=True, return_counts=True)
    # Risk set of event time t_j: every row with T >= t_j, a suffix of the sorted rows.
    wx = w[:, None] * xs
    s0_rows = np.cumsum(w[::-1])[::-1]
    s1_rows = np.cumsum(wx[::-1], axis=0)[::-1]
    first = np.searchsorted(t, uniq, side="left")
    s0, s1 = s0_rows[first], s1_rows[first]
    # The events tied at t_j, and (Efron) the share l/d_j of them removed from the risk set.
    e0 = np.add.reduceat(w_ev, starts)
    e1 = np.add.reduceat(w_ev[:, None] * x_ev, starts, axis=0)
    group = np.repeat(np.arange(uniq.size), counts)
    if ties == "efron":
        frac = (np.arange(ev_rows.size) - starts[group]) / counts[group]
    else:
        frac = np.zeros(ev_rows.size)
    phi0 = s0[group] - frac * e0[group]
    inv = 1.0 / phi0
    jn = uniq.size
    a = np.bincount(group, inv, jn)
    b = np.bincount(group, frac * inv, jn)
    u = np.bincount(group, inv**2, jn)
    v = np.bincount(group, frac * inv**2, jn)
    r = np.bincount(group, frac**2 * inv**2, jn)
    loglik = float(eta[ev_rows].sum() - np.log(phi0).sum())
    grad = x_ev.sum(axis=0) - s1.T @ a + e1.T @ b
    cum_a = np.concatenate(([0.0], np.cumsum(a)))[np.searchsorted(uniq, t, side="right")]
    second = (xs * (w * cum_a)[:, None]).T @ xs - (x_ev * (w_ev * b[group])[:, None]).T @ x_ev
    mixed = s1.T @ (e1 * v[:, None])
    cross = s1.T @ (s1 * u[:, None]) - mixed - mixed.T + e1.T @ (e1 * r[:, None])
    hess = -(second - cross)
    return loglik, grad, (hess + hess.T) / 2


def _check_columns(time: np.ndarray, event: np.ndarray, params: CoxParams) -> None:
    if not np.all((event == 0) | (event == 1)):
        bad = np.unique(event[(event != 0) & (event != 1)])[:5]
        raise TaskError(
            f"cox: event column {params.event!r} must hold 0 or 1; found "
            f"{', '.join(f'{e:g}' for e in bad)}",
            rule="bad-event",
        )
    if not np.all(np.isfinite(time)) or np.any(time < 0):
        raise TaskError(
            f"cox: duration column {params.duration!r} must hold finite times ≥ 0",
            rule="bad-duration",
        )


class CoxTask(Task[CoxParams]):
    """Cox regression stratified by site, by Newton steps on summed derivatives."""

    name = "cox"
    params_model = CoxParams
    uses_secure_sum = True
    max_rounds = 500

    def parse(self, raw: dict[str, Any]) -> CoxParams:
        """Validate the parameters; refuse differential-privacy noise (not supported yet).

        Raises
        ------
        TaskError
            Naming the parameter and the problem (rule ``dp-unsupported`` for ``rho > 0``).
        """
        params: CoxParams = super().parse(raw)
        if params.rho:
            raise TaskError(
                "cox: parameter rho: differential-privacy noise is not supported by cox yet "
                "(use rho 0)",
                rule="dp-unsupported",
            )
        return params

    def variables(self, params: CoxParams) -> set[str]:
        """The duration, event and covariate columns."""
        return {params.duration, params.event, *params.covariates}

    def start(self, params: CoxParams) -> dict[str, Any]:
        """Round 1 evaluates the partial likelihood at β = 0."""
        return {"beta": [0.0] * len(params.covariates)}

    def site(
        self, table: SiteTable, params: CoxParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """The site's partial log-likelihood, gradient and Hessian at the payload's β.

        Raises
        ------
        TaskError
            For a noisy release (``dp-unsupported``), an event column not 0/1, negative or
            non-finite durations.
        PolicyRefusal
            When the rows, the events or the censored rows are fewer than the site's
            minimum cell count.
        """
        if ctx.rho > 0:
            raise TaskError(
                "cox: this site's policy asks for differential-privacy noise, which cox does "
                "not support yet",
                rule="dp-unsupported",
            )
        beta = payload_vector(payload, "beta", len(params.covariates))
        data = table.numeric([params.duration, params.event, *params.covariates], params.where)
        time, event, x = data[:, 0], data[:, 1], data[:, 2:]
        _check_columns(time, event, params)
        n, events = int(time.size), int(event.sum())
        ctx.policy.check_cell(n, "the number of complete rows")
        ctx.policy.check_cell(events, f"the number of events ({params.event} = 1)")
        ctx.policy.check_cell(n - events, f"the number of censored rows ({params.event} = 0)")
        loglik, grad, hess = partial_likelihood(time, event, x - x.mean(axis=0), beta, params.ties)
        if not (np.isfinite(loglik) and np.all(np.isfinite(hess)) and np.all(np.isfinite(grad))):
            raise TaskError(
                "cox: the partial likelihood overflowed at the requested coefficients "
                "(diverging fit: separation or monotone likelihood?)",
                rule="no-convergence",
            )
        secure = {
            "gradient": grad,
            "hessian": hess.ravel(),
            "loglik": np.array([loglik]),
            "n": np.array([float(n)]),
            "events": np.array([float(events)]),
        }
        if params.l2 > 0:
            secure["sum_x"] = x.sum(axis=0)
            secure["sum_x2"] = (x**2).sum(axis=0)
        values: dict[str, Any] = {
            "n": n,
            "events": events,
            "min_cell_count": ctx.policy.min_cell_count,
        }
        wanted = payload.get("concordance", False)
        if not isinstance(wanted, bool):
            raise TaskError("cox: the payload's concordance must be true or false", "protocol")
        if wanted:
            concordant, tied, comparable = concordance_counts(time, event, x @ beta)
            secure["concordance"] = np.array([concordant, tied, comparable], dtype=np.float64)
            values["concordance"] = (concordant + tied / 2) / comparable if comparable else None
        return SiteOutput(
            values=values,
            secure=secure,
            mechanism=(
                "secure sum of partial-likelihood derivatives; n and events in clear, refused "
                f"below {ctx.policy.min_cell_count}"
            ),
        )

    def hub(self, params: CoxParams, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """Accept the trial point or halve the step; then a Newton step or the result.

        Once the Newton decrement is below ``tol`` one more (polishing) step is taken, so the
        reported coefficients are within about ``tol`` squared of the maximum rather than
        within ``sqrt(tol)``; the Hessian for the standard errors is evaluated there.

        Raises
        ------
        TaskError
            ``singular`` for a singular Hessian (a covariate constant within every site, or
            collinear covariates); ``no-convergence`` after ``max_iter`` steps or when halving
            cannot raise the log-likelihood.
        """
        p = len(params.covariates)
        beta = np.asarray(state.get("trial", np.zeros(p)), dtype=np.float64)
        point = _evaluate(params, result, beta)
        current: dict[str, Any] | None = state.get("current")
        if state.get("finishing") and current is not None:
            # The extra round at the converged point: only its pair counts are new.
            keys = ("concordance", "concordance_sites", "per_site_concordance")
            final = {**current, **{k: point[k] for k in keys}}
            return Result(_result(params, result, final, state["iterations"]))
        if current is not None and current["sites"] == point["sites"]:
            slack = LL_SLACK * (1.0 + abs(current["objective"]))
            if not point["objective"] >= current["objective"] - slack:  # also catches NaN
                if state["polishing"]:  # already converged: the step only met rounding noise
                    if not params.concordance or current["concordance"] is not None:
                        return Result(_result(params, result, current, state["iterations"]))
                    # Count the concordance pairs at the converged point: one more round.
                    state["finishing"] = True
                    state["trial"] = current["beta"]
                    return Next({"beta": current["beta"].tolist(), "concordance": True})
                return self._halve(state)
            state["iterations"] += 1
            if state["polishing"]:
                _check_nonsingular(-point["hessian"], params.covariates)
                return Result(_result(params, result, point, state["iterations"]))
        elif current is not None:
            # A site dropped out: a new objective, so restart the search from this point.
            state["iterations"] += 1
        else:
            state["iterations"] = 0
        _check_nonsingular(-point["hessian"], params.covariates)
        step = np.linalg.solve(-point["hessian"], point["gradient"])
        decrement = float(point["gradient"] @ step) / 2
        state["polishing"] = decrement < params.tol
        if not state["polishing"] and state["iterations"] >= params.max_iter:
            raise TaskError(
                f"cox: no convergence in max_iter={params.max_iter} Newton steps (Newton "
                f"decrement {decrement:.3g} > tol={params.tol:g}); raise max_iter, or look "
                "for separation (a covariate that predicts the events perfectly)",
                rule="no-convergence",
            )
        point["step"] = step
        state["current"] = point
        state["halvings"] = 0
        state["trial"] = beta + step
        if state["polishing"] and params.concordance:  # likely the last round: count there
            return Next({"beta": state["trial"].tolist(), "concordance": True})
        return Next({"beta": state["trial"].tolist()})

    @staticmethod
    def _halve(state: dict[str, Any]) -> Next:
        """Retry the current Newton step at half the length of the last try."""
        state["halvings"] += 1
        if state["halvings"] > MAX_HALVINGS:
            raise TaskError(
                "cox: the log-likelihood does not increase along the Newton step even after "
                f"{MAX_HALVINGS} halvings",
                rule="no-convergence",
            )
        current = state["current"]
        state["trial"] = current["beta"] + current["step"] * 0.5 ** state["halvings"]
        return Next({"beta": state["trial"].tolist()})


def _evaluate(params: CoxParams, result: RoundResult, beta: np.ndarray) -> dict[str, Any]:
    """The (penalised) objective, gradient and Hessian at ``beta`` from the round's sums."""
    p = len(params.covariates)
    sums = result.sums
    loglik = float(sums["loglik"][0])
    grad = np.asarray(sums["gradient"], dtype=np.float64)
    hess = np.asarray(sums["hessian"], dtype=np.float64).reshape(p, p)
    hess = (hess + hess.T) / 2
    n_total = float(sums["n"][0])
    objective = loglik
    if params.l2 > 0:
        # lifelines' convention: penalty on standardised coefficients, times the pooled n.
        var = (sums["sum_x2"] - sums["sum_x"] ** 2 / n_total) / (n_total - 1)
        weight = params.l2 * n_total * np.maximum(var, 0.0)
        objective = loglik - 0.5 * float(weight @ beta**2)
        grad = grad - weight * beta
        hess = hess - np.diag(weight)
    return {
        "beta": beta,
        "loglik": loglik,
        "objective": objective,
        "gradient": grad,
        "hessian": hess,
        "n": round(n_total),
        "events": round(float(sums["events"][0])),
        "sites": sorted(result.sites),
        "per_site_n": {s: result.values[s].get("n") for s in result.sites},
        "per_site_events": {s: result.values[s].get("events") for s in result.sites},
        "concordance": sums["concordance"].copy() if "concordance" in sums else None,
        "concordance_sites": sorted(result.sites),
        "per_site_concordance": {s: result.values[s].get("concordance") for s in result.sites},
    }


def _check_nonsingular(neg_h: np.ndarray, covariates: list[str]) -> None:
    """Raise ``singular`` unless ``-H`` is positive definite (checked in correlation form)."""
    diag = np.diag(neg_h)
    flat = [c for c, d in zip(covariates, diag, strict=True) if not d > 0]
    if flat:
        raise TaskError(
            f"cox: singular Hessian: covariate(s) {', '.join(flat)} do not vary within any "
            "site's risk sets (a constant, or a site-level variable absorbed by the strata)",
            rule="singular",
        )
    scale = 1.0 / np.sqrt(diag)
    smallest = float(np.linalg.eigvalsh(neg_h * np.outer(scale, scale)).min())
    if not smallest > SINGULAR_EIGENVALUE:
        raise TaskError(
            "cox: singular Hessian: the covariates are collinear (within sites) — drop one "
            f"of {', '.join(covariates)} that is a combination of the others",
            rule="singular",
        )


def _result(
    params: CoxParams,
    result: RoundResult,
    point: dict[str, Any],
    iterations: int,
) -> dict[str, Any]:
    """The JSON-able result at the converged point."""
    names = params.covariates
    beta = point["beta"]
    se = np.sqrt(np.diag(np.linalg.inv(-point["hessian"])))
    z = beta / se
    crit = NormalDist().inv_cdf(1 - params.alpha / 2)

    def by_name(values: np.ndarray) -> dict[str, float]:
        return {c: float(v) for c, v in zip(names, values, strict=True)}

    out: dict[str, Any] = {
        "coefficients": by_name(beta),
        "std_errors": by_name(se),
        "hazard_ratios": by_name(np.exp(beta)),
        "ci_lower": by_name(beta - crit * se),
        "ci_upper": by_name(beta + crit * se),
        "z_values": by_name(z),
        "p_values": {
            c: math.erfc(abs(float(v)) / math.sqrt(2)) for c, v in zip(names, z, strict=True)
        },
        "alpha": params.alpha,
        "log_likelihood": point["loglik"],
        "n": point["n"],
        "events": point["events"],
        "per_site_n": {s: point["per_site_n"].get(s) for s in point["sites"]},
        "per_site_events": {s: point["per_site_events"].get(s) for s in point["sites"]},
        "iterations": iterations,
        "converged": True,
        "ties": params.ties,
        "strata": "site",
        "sites": point["sites"],
        "sites_refused": dict(result.refused),
        "sites_failed": dict(result.failed),
    }
    if params.concordance:
        out.update(_concordance(point))
    if params.l2 > 0:
        out["l2"] = params.l2
        out["penalized_log_likelihood"] = point["objective"]
    return out


def _concordance(point: dict[str, Any]) -> dict[str, Any]:
    """Harrell's C stratified by site from the summed pair counts, and each site's own."""
    counts = point.get("concordance")
    if counts is None:
        return {
            "concordance": None,
            "concordance_pairs": None,
            "concordance_sites": [],
            "per_site_concordance": {},
        }
    concordant, tied, comparable = (round(float(c)) for c in counts)
    sites = point["concordance_sites"]
    return {
        "concordance": (concordant + tied / 2) / comparable if comparable else None,
        "concordance_pairs": {
            "concordant": concordant,
            "discordant": comparable - concordant - tied,
            "tied_risk": tied,
            "comparable": comparable,
        },
        "concordance_sites": sites,
        "per_site_concordance": {s: point["per_site_concordance"].get(s) for s in sites},
    }


register(CoxTask())
