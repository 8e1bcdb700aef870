"""MST: maximum-spanning-tree synthesizer (McKenna, Miklau & Sheldon 2021).

The winning mechanism of the 2018 NIST differential-privacy synthetic data challenge, as in
"Winning the NIST Contest: A scalable and general approach to differentially private
synthetic data" (J. Privacy and Confidentiality 11(3)). The budget ρ is split in thirds:

1. every 1-way marginal is measured with the Gaussian mechanism (ρ/3 shared equally);
2. a spanning tree over the columns is chosen edge by edge (Kruskal order) with the
   exponential mechanism, each pair scored by the L1 distance between its true 2-way
   marginal and the one predicted by the noisy 1-way marginals under independence
   (sensitivity 1); the d − 1 choices share ρ/3 (ε = sqrt(8ρ/3/(d−1)) each);
3. the chosen 2-way marginals are measured (ρ/3 shared equally);

and the model is estimated from all measurements by :func:`cardiobox.synth.pgm.estimate`.
Between steps 1 and 2, as in the paper, each column's sparsely used codes are merged
(:func:`cardiobox.synth.compress.compress_domain`, which sees only the noisy counts, so it
costs no privacy; by default into runs of adjacent codes each with a noisy count of at
least 3σ, rather than the paper's one bucket of every code below 3σ): steps 2 and 3 and
the estimation work on the merged codes, and the model expands a group back to its codes
when it answers or samples. The candidate pairs and the budget split are fixed from the
domain's sizes before anything is measured. With one column all of ρ measures its 1-way
marginal; when the tree is forced (every allowed pair must be in it, as with two
columns), no selection is paid for and ρ is halved between the two measurement steps.
Pairs whose table exceeds ``max_clique_cells`` are never candidates, so the tree may then
be a forest. The steps add up to ρ·(1 − 1e-12), never more than ρ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cardiobox.synth.compress import DEFAULT_THRESHOLD, check_merge, compress_domain
from cardiobox.synth.marginals import (
    BUDGET_MARGIN,
    MAX_TABLE_CELLS,
    IntArray,
    Measurement,
    check_codes,
    check_rho,
    exponential_mechanism,
    marginal_unchecked,
    measure,
    table_cells,
)
from cardiobox.synth.pgm import MarginalModel, Step, estimate, estimate_total, project_to_simplex


def _components(n: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Connected-component label of each of ``n`` nodes linked by ``pairs``."""
    labels = list(range(n))

    def find(x: int) -> int:
        while labels[x] != x:
            labels[x] = labels[labels[x]]
            x = labels[x]
        return x

    for a, b in pairs:
        labels[find(a)] = find(b)
    return [find(x) for x in range(n)]


def _independence_errors(
    codes: IntArray,
    sizes: tuple[int, ...],
    one_way: Sequence[Measurement],
    pairs: Sequence[tuple[int, int]],
) -> npt.NDArray[np.float64]:
    """L1 distance of each pair's true marginal from the noisy independent estimate."""
    total = estimate_total(one_way)
    probabilities = [project_to_simplex(m.values, total) / total for m in one_way]
    errors = np.empty(len(pairs))
    for k, (a, b) in enumerate(pairs):
        exact = marginal_unchecked(codes, sizes, (a, b))
        predicted = total * np.multiply.outer(probabilities[a], probabilities[b])
        errors[k] = np.abs(exact - predicted).sum()
    return errors


def _select_tree(
    errors: npt.NDArray[np.float64],
    pairs: Sequence[tuple[int, int]],
    n_columns: int,
    n_edges: int,
    rho: float,
    rng: np.random.Generator,
) -> tuple[list[tuple[int, int]], list[Step]]:
    """Kruskal with the exponential mechanism: ``n_edges`` choices at ρ/n_edges each."""
    step_rho = rho / n_edges
    epsilon = math.sqrt(8.0 * step_rho)
    first = np.array([a for a, _ in pairs])
    second = np.array([b for _, b in pairs])
    chosen: list[tuple[int, int]] = []
    steps: list[Step] = []
    for _ in range(n_edges):
        labels = np.asarray(_components(n_columns, chosen))
        open_pairs = np.flatnonzero(labels[first] != labels[second])
        pick = int(open_pairs[exponential_mechanism(errors[open_pairs], epsilon, 1.0, rng)])
        chosen.append(pairs[pick])
        steps.append(Step("select", pairs[pick], step_rho, None))
    return chosen, steps


def fit_mst(
    codes: npt.ArrayLike,
    sizes: Sequence[int],
    rho: float,
    rng: np.random.Generator,
    *,
    iters: int = 1000,
    max_clique_cells: int = MAX_TABLE_CELLS,
    compress: str | None = "adjacent",
    compress_threshold: float = DEFAULT_THRESHOLD,
) -> MarginalModel:
    """Fit MST to coded data under ρ-zCDP.

    Parameters
    ----------
    codes : array_like of int, shape (n, d)
        The private data, column ``j`` coded ``0..sizes[j]-1``.
    sizes : sequence of int
        Number of codes of each column (public: from the domain).
    rho : float
        zCDP budget (> 0); the model's steps spend it all (up to a relative 1e-12).
    rng : numpy.random.Generator
        Source of the noise and of the selections.
    iters : int, default 1000
        Most mirror-descent iterations of the final estimation.
    max_clique_cells : int, default MAX_TABLE_CELLS
        Pairs whose 2-way table is larger are never selected.
    compress : {"adjacent", "rare"} or None, default "adjacent"
        How each column's sparsely used codes are merged after the 1-way marginals are
        measured (:func:`cardiobox.synth.compress.compress_domain`); None: not at all.
    compress_threshold : float, default DEFAULT_THRESHOLD
        A code (or run of codes) stays apart once its noisy count reaches this many σ.

    Returns
    -------
    MarginalModel
        ``mechanism="mst"``; ``steps`` lists every measurement and selection with its ρ;
        ``compression`` says which codes were merged (None when none was).

    Raises
    ------
    CodesError
        (a ``ValueError``) for codes that do not match ``sizes``.
    PrivacyParameterError
        (a ``ValueError``) for a ``rho`` that is not a finite number > 0.
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
    pairs = [
        (a, b)
        for a in range(d)
        for b in range(a + 1, d)
        if table_cells(checked_sizes, (a, b)) <= max_clique_cells
    ]
    n_edges = d - len(set(_components(d, pairs)))
    if n_edges == 0:
        shares = (budget, 0.0, 0.0)
    elif len(pairs) == n_edges:  # every allowed pair is in the forest: nothing to choose
        shares = (budget / 2.0, 0.0, budget / 2.0)
    else:
        shares = (budget / 3.0, budget / 3.0, budget / 3.0)
    steps: list[Step] = []
    one_way: list[Measurement] = []
    for v in range(d):
        m = measure(marginal_unchecked(matrix, checked_sizes, (v,)), (v,), shares[0] / d, rng)
        one_way.append(m)
        steps.append(Step("measure", (v,), shares[0] / d, float(m.sigma)))
    compression = None
    model_sizes = checked_sizes
    if compress is not None:
        compression, one_way = compress_domain(checked_sizes, one_way, compress, compress_threshold)
        matrix = compression.compress_codes(matrix)
        model_sizes = compression.compressed_sizes
    if shares[1] > 0:
        errors = _independence_errors(matrix, model_sizes, one_way, pairs)
        edges, selections = _select_tree(errors, pairs, d, n_edges, shares[1], rng)
        steps.extend(selections)
    else:
        edges = pairs
    two_way: list[Measurement] = []
    for edge in edges:
        m = measure(marginal_unchecked(matrix, model_sizes, edge), edge, shares[2] / n_edges, rng)
        two_way.append(m)
        steps.append(Step("measure", edge, shares[2] / n_edges, float(m.sigma)))
    return estimate(
        model_sizes,
        one_way + two_way,
        iters=iters,
        max_clique_cells=max_clique_cells,
        mechanism="mst",
        steps=steps,
        compression=compression,
    )
