"""AIM: adaptive and iterative mechanism (McKenna, Mullins, Sheldon & Miklau 2022).

"AIM: An Adaptive and Iterative Mechanism for Differentially Private Synthetic Data"
(PVLDB 15(11)). The workload (default: every pair of columns) defines the candidates, its
downward closure, each weighted by how many workload columns it shares (Σ |c ∩ w|).
With T = 16·d rounds planned:

1. every 1-way marginal is measured with σ = sqrt(T / (2·0.9ρ));
2. each round picks a candidate with the exponential mechanism (ε = sqrt(8·0.1ρ/T)),
   scoring w·(‖x_c − x̂_c‖₁ − sqrt(2/π)·σ·cells(c)) — the error of the current model on it
   minus the error expected from measuring it, sensitivity max w — among the candidates
   that keep the model within ``max_model_size``·(ρ spent / ρ) cells (or that the model
   already holds), measures it, and re-estimates the model from a warm start;
3. when the re-estimated model moved on that marginal by less than the measurement's
   expected noise (‖Δ‖₁ ≤ sqrt(2/π)·σ·cells), σ halves and ε doubles (4× the ρ per round);
4. when less than two rounds' worth of budget is left, the last round spends all of it
   (0.9 on the measurement, 0.1 on the selection).

Every step's ρ is recorded; they add up to ρ·(1 − 1e-12) at most, never more than ρ.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cardiobox.synth.junction import ModelSizer
from cardiobox.synth.marginals import (
    BUDGET_MARGIN,
    FloatArray,
    Measurement,
    MechanismError,
    check_clique,
    check_codes,
    check_rho,
    exponential_mechanism,
    marginal_unchecked,
    measure,
    table_cells,
)
from cardiobox.synth.pgm import MarginalModel, Step, estimate

Clique = tuple[int, ...]

# Model size limit in cells (all clique tables together): 1 M float64 cells are 8 MB, and
# re-estimating such a model every round stays fast on a laptop.
DEFAULT_MAX_MODEL_SIZE = 1_000_000
# Rounds planned per column (the paper's T = 16·d).
ROUNDS_PER_COLUMN = 16
# Share of each round's budget spent on the measurement (the rest on the selection).
MEASURE_SHARE = 0.9


def candidate_weights(workload: Sequence[Clique]) -> dict[Clique, int]:
    """Downward closure of a workload with AIM's weights.

    Parameters
    ----------
    workload : sequence of tuple of int
        Marginals of interest (columns sorted).

    Returns
    -------
    dict
        Every non-empty subset of a workload marginal, mapped to Σ over the workload of the
        number of columns it shares with each marginal.
    """
    closure: set[Clique] = set()
    for clique in workload:
        for k in range(1, len(clique) + 1):
            closure.update(itertools.combinations(clique, k))
    return {
        c: sum(len(set(c) & set(w)) for w in workload)
        for c in sorted(closure, key=lambda c: (len(c), c))
    }


def _check_workload(workload: Sequence[Sequence[int]] | None, d: int) -> list[Clique]:
    if workload is None:
        return list(itertools.combinations(range(d), 2)) if d > 1 else [(0,)]
    checked = sorted({tuple(sorted(check_clique(c, d))) for c in workload})
    if not checked:
        raise MechanismError("workload must name at least one marginal", "workload")
    return checked


class _SizeFilter:
    """Which candidates keep the model small; sizes are cached while the measured set stays.

    A candidate inside a measured clique leaves the model as it is. Otherwise the model
    that :func:`~cardiobox.synth.pgm.estimate` would build with it is sized exactly, and
    it must fit the round's limit — or, for a candidate the current model already holds
    (the paper's "free" cliques), at least the hard cap.
    """

    def __init__(self, sizes: tuple[int, ...], cap: int) -> None:
        self.sizes = sizes
        self.cap = cap
        self.measured: list[Clique] = []
        self.sizer = ModelSizer(sizes, [])
        self.cache: dict[Clique, int] = {}

    def allowed(
        self,
        candidates: Sequence[Clique],
        measured: Sequence[Clique],
        model: MarginalModel,
        limit: float,
    ) -> list[Clique]:
        distinct = sorted(set(measured))
        if distinct != self.measured:
            self.measured, self.cache = distinct, {}
            self.sizer = ModelSizer(self.sizes, distinct)
        measured_sets = [set(c) for c in distinct]
        held = [set(c) for c in model.cliques]
        allowed: list[Clique] = []
        for candidate in candidates:
            columns = set(candidate)
            if any(columns <= m for m in measured_sets):
                allowed.append(candidate)
                continue
            free = any(columns <= c for c in held)
            if not free and table_cells(self.sizes, candidate) > limit:
                continue
            size = self.cache.get(candidate)
            if size is None:
                size = self.sizer.size_with(candidate)
                self.cache[candidate] = size
            if size <= limit or (free and size <= self.cap):
                allowed.append(candidate)
        return allowed


def fit_aim(
    codes: npt.ArrayLike,
    sizes: Sequence[int],
    rho: float,
    rng: np.random.Generator,
    *,
    workload: Sequence[Sequence[int]] | None = None,
    rounds: int | None = None,
    max_model_size: int = DEFAULT_MAX_MODEL_SIZE,
    iters: int = 30,
    final_iters: int = 1000,
) -> MarginalModel:
    """Fit AIM to coded data under ρ-zCDP.

    Parameters
    ----------
    codes : array_like of int, shape (n, d)
        The private data, column ``j`` coded ``0..sizes[j]-1``.
    sizes : sequence of int
        Number of codes of each column (public: from the domain).
    rho : float
        zCDP budget (> 0); the steps spend all of it (up to a relative 1e-12).
    rng : numpy.random.Generator
        Source of the noise and of the selections.
    workload : sequence of sequences of int, optional
        Marginals to preserve; default every pair of columns (pass triples for a 3-way
        workload).
    rounds : int, optional
        Rounds planned T (≥ d); default 16·d. Annealing usually ends the run earlier.
    max_model_size : int, default DEFAULT_MAX_MODEL_SIZE
        Most cells of all the model's clique tables together (reached as ρ is spent).
    iters : int, default 30
        Most optimiser iterations of each round's (warm-started) re-estimation; more did
        not improve the fidelity on Cleveland or on a 100,000-row table, only the time.
    final_iters : int, default 1000
        Most optimiser iterations of the final estimation.

    Returns
    -------
    MarginalModel
        ``mechanism="aim"``; ``steps`` lists every measurement and selection with its ρ.

    Raises
    ------
    CodesError
        (a ``ValueError``) for codes that do not match ``sizes`` or a workload marginal
        naming an unknown or repeated column.
    PrivacyParameterError
        (a ``ValueError``) for a ``rho`` that is not a finite number > 0.
    MechanismError
        (a ``ValueError``) for ``rounds`` < d, ``max_model_size`` < 1 or a workload none of
        whose columns fits ``max_model_size``.
    TypeError
        When ``rng`` is not a ``numpy.random.Generator``.
    """
    matrix, checked_sizes = check_codes(codes, sizes)
    budget = check_rho(rho) * (1.0 - BUDGET_MARGIN)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    d = len(checked_sizes)
    planned = ROUNDS_PER_COLUMN * d if rounds is None else rounds
    if isinstance(planned, bool) or not isinstance(planned, int) or planned < d:
        raise MechanismError(
            f"rounds must be an integer >= the number of columns {d}, got {rounds!r}", "rounds"
        )
    if (
        isinstance(max_model_size, bool)
        or not isinstance(max_model_size, int)
        or max_model_size < 1
    ):
        raise MechanismError(
            f"max_model_size must be an integer >= 1, got {max_model_size!r}", "model-size"
        )
    weights = candidate_weights(_check_workload(workload, d))
    candidates = list(weights)
    answers: dict[Clique, FloatArray] = {
        c: marginal_unchecked(matrix, checked_sizes, c)
        for c in candidates
        if table_cells(checked_sizes, c) <= max_model_size
    }
    candidates = [c for c in candidates if c in answers]
    if not any(len(c) == 1 for c in candidates):
        raise MechanismError(
            f"no column of the workload has a table within max_model_size={max_model_size}",
            "model-size",
        )

    rho_measure = MEASURE_SHARE * budget / planned
    rho_select = (1.0 - MEASURE_SHARE) * budget / planned
    steps: list[Step] = []
    measurements: list[Measurement] = []

    def record(clique: Clique, step_rho: float) -> Measurement:
        m = measure(answers[clique], clique, step_rho, rng)
        measurements.append(m)
        steps.append(Step("measure", clique, step_rho, m.sigma))
        return m

    for clique in (c for c in candidates if len(c) == 1):
        record(clique, rho_measure)
    spent = math.fsum(s.rho for s in steps)
    model = estimate(checked_sizes, measurements, iters=iters, max_clique_cells=max_model_size)
    size_filter = _SizeFilter(checked_sizes, max_model_size)
    last_round = False
    while not last_round:
        remaining = budget - spent
        if remaining < 2.0 * (rho_measure + rho_select):
            rho_measure = MEASURE_SHARE * remaining
            rho_select = remaining - rho_measure
            last_round = True
        spent += rho_measure + rho_select
        sigma = 1.0 / math.sqrt(2.0 * rho_measure)
        epsilon = math.sqrt(8.0 * rho_select)
        limit = max_model_size * spent / budget
        allowed = size_filter.allowed(candidates, [m.clique for m in measurements], model, limit)
        bias = math.sqrt(2.0 / math.pi) * sigma
        estimates = model.project_many(allowed)
        scores = np.array(
            [
                weights[c] * (np.abs(answers[c] - fitted).sum() - bias * answers[c].size)
                for c, fitted in zip(allowed, estimates, strict=True)
            ]
        )
        sensitivity = float(max(weights[c] for c in allowed))
        chosen = allowed[exponential_mechanism(scores, epsilon, sensitivity, rng)]
        steps.append(Step("select", chosen, rho_select, None))
        before = model.project(chosen)
        record(chosen, rho_measure)
        model = estimate(
            checked_sizes,
            measurements,
            iters=iters,
            warm_start=model,
            max_clique_cells=max_model_size,
        )
        moved = np.abs(model.project(chosen) - before).sum()
        if moved <= bias * before.size:
            rho_measure *= 4.0
            rho_select *= 4.0
    return estimate(
        checked_sizes,
        measurements,
        iters=final_iters,
        warm_start=model,
        max_clique_cells=max_model_size,
        mechanism="aim",
        steps=steps,
    )
