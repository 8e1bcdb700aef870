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

from cardiobox.synth.compress import DEFAULT_THRESHOLD, check_merge, compress_domain
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
# Most merged-component sizes remembered between rounds (each key holds a component's
# edges: a few kilobytes at most for a wide table).
_SIZER_MEMO_LIMIT = 50_000


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
    # Σ_w |c ∩ w| = Σ_{v ∈ c} (number of workload marginals holding v).
    holding: dict[int, int] = {}
    for w in workload:
        for v in set(w):
            holding[v] = holding.get(v, 0) + 1
    return {c: sum(holding[v] for v in c) for c in sorted(closure, key=lambda c: (len(c), c))}


def _check_workload(workload: Sequence[Sequence[int]] | None, d: int) -> list[Clique]:
    if workload is None:
        return list(itertools.combinations(range(d), 2)) if d > 1 else [(0,)]
    checked = sorted({tuple(sorted(check_clique(c, d))) for c in workload})
    if not checked:
        raise MechanismError("workload must name at least one marginal", "workload")
    return checked


class _SizeFilter:
    """Which candidates keep the model small; sizes are cached while the model's graph stays.

    A candidate inside a measured clique leaves the model as it is. Otherwise the model
    that :func:`~cardiobox.synth.pgm.estimate` would build with it is sized exactly, and
    it must fit the round's limit — or, for a candidate the current model already holds
    (the paper's "free" cliques), at least the hard cap. A round that measures a 1-way
    marginal or a clique measured before leaves the graph, hence every size, as it was;
    otherwise only the candidates that touch the changed part of the graph are re-sized
    (:class:`~cardiobox.synth.junction.ModelSizer`'s memo).
    """

    def __init__(self, sizes: tuple[int, ...], cap: int) -> None:
        self.sizes = sizes
        self.cap = cap
        self.memo: dict[tuple[int, tuple[int, ...], tuple[int, ...]], int] = {}
        self.sizer = ModelSizer(sizes, [], memo=self.memo)
        self.cache: dict[Clique, int] = {}

    def allowed(
        self,
        candidates: Sequence[Clique],
        measured: Sequence[Clique],
        model: MarginalModel,
        limit: float,
    ) -> list[Clique]:
        distinct = sorted(set(measured))
        if len(self.memo) > _SIZER_MEMO_LIMIT:
            self.memo.clear()
        sizer = ModelSizer(self.sizes, distinct, memo=self.memo)
        if sizer.graph != self.sizer.graph:
            self.sizer, self.cache = sizer, {}
        longest = max(len(c) for c in candidates)
        inside_measured = _subsets(distinct, longest)
        inside_model = _subsets(model.cliques, longest)
        allowed: list[Clique] = []
        for candidate in candidates:
            if candidate in inside_measured:
                allowed.append(candidate)
                continue
            free = candidate in inside_model
            if not free and table_cells(self.sizes, candidate) > limit:
                continue
            size = self.cache.get(candidate)
            if size is None:
                size = self.sizer.size_with(candidate)
                self.cache[candidate] = size
            if size <= limit or (free and size <= self.cap):
                allowed.append(candidate)
        return allowed


def _subsets(cliques: Sequence[Clique], longest: int) -> set[Clique]:
    """Every sorted subset of at most ``longest`` columns of one of the (sorted) cliques."""
    found: set[Clique] = set()
    for clique in cliques:
        for k in range(1, min(longest, len(clique)) + 1):
            found.update(itertools.combinations(clique, k))
    return found


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
    compress: str | None = None,
    compress_threshold: float = DEFAULT_THRESHOLD,
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
    compress : {"adjacent", "rare"} or None, default None
        Merge each column's sparsely used codes after measuring the 1-way marginals
        (:func:`cardiobox.synth.compress.compress_domain`; free: it reads only the noisy
        counts); the rounds then select and measure marginals over the merged codes. Off by
        default: AIM's first 1-way marginals carry the noise of a 1/T share of the budget,
        so the groups and their shares are rough and later rounds cannot refine them (on
        Cleveland at ε = 10 the 1-way TVD went from 0.043 to 0.072).
    compress_threshold : float, default DEFAULT_THRESHOLD
        A code (or run of codes) stays apart once its noisy count reaches this many σ.

    Returns
    -------
    MarginalModel
        ``mechanism="aim"``; ``steps`` lists every measurement and selection with its ρ;
        ``compression`` says which codes were merged (None when none was).

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
    CompressionError
        (a ``ValueError``) for an unknown ``compress`` or a ``compress_threshold`` that is
        not a finite number > 0.
    TypeError
        When ``rng`` is not a ``numpy.random.Generator``.
    """
    matrix, checked_sizes = check_codes(codes, sizes)
    budget = check_rho(rho) * (1.0 - BUDGET_MARGIN)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if compress is not None:
        check_merge(compress, compress_threshold)
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
    one_way = [c for c in weights if len(c) == 1 and checked_sizes[c[0]] <= max_model_size]
    if not one_way:
        raise MechanismError(
            f"no column of the workload has a table within max_model_size={max_model_size}",
            "model-size",
        )

    rho_measure = MEASURE_SHARE * budget / planned
    rho_select = (1.0 - MEASURE_SHARE) * budget / planned
    steps: list[Step] = []
    measurements: list[Measurement] = []
    for clique in one_way:
        m = measure(marginal_unchecked(matrix, checked_sizes, clique), clique, rho_measure, rng)
        measurements.append(m)
        steps.append(Step("measure", clique, rho_measure, float(m.sigma)))
    compression = None
    model_sizes = checked_sizes
    if compress is not None:
        compression, measurements = compress_domain(
            checked_sizes, measurements, compress, compress_threshold
        )
        matrix = compression.compress_codes(matrix)
        model_sizes = compression.compressed_sizes
    # The true marginals of the candidates that fit, over the (merged) codes the model uses.
    answers: dict[Clique, FloatArray] = {
        c: marginal_unchecked(matrix, model_sizes, c)
        for c in weights
        if (len(c) > 1 or c in one_way) and table_cells(model_sizes, c) <= max_model_size
    }
    candidates = list(answers)

    def record(clique: Clique, step_rho: float) -> Measurement:
        m = measure(answers[clique], clique, step_rho, rng)
        measurements.append(m)
        steps.append(Step("measure", clique, step_rho, float(m.sigma)))
        return m

    spent = math.fsum(s.rho for s in steps)
    model = estimate(model_sizes, measurements, iters=iters, max_clique_cells=max_model_size)
    size_filter = _SizeFilter(model_sizes, max_model_size)
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
            model_sizes,
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
        model_sizes,
        measurements,
        iters=final_iters,
        warm_start=model,
        max_clique_cells=max_model_size,
        mechanism="aim",
        steps=steps,
        compression=compression,
    )
