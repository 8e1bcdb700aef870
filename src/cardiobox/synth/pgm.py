"""Graphical-model estimation from noisy marginals (Private-PGM on numpy).

Given noisy marginals y_i over cliques C_i with noise scales σ_i, :func:`estimate` finds
the distribution p, scaled to a total N, that minimises

    L(μ) = ½ Σ_i ‖μ_{C_i} − y_i‖² / σ_i²,   μ = N·(marginals of p),

over the distributions that factor over a junction tree holding every C_i (McKenna,
Sheldon & Miklau 2019, "Graphical-model based estimation and inference for differential
privacy"). The parameters are log-potentials θ on the maximal cliques of a triangulation
of the measured cliques; entropic mirror descent on the marginal polytope moves
θ ← θ − a∇_μL and recomputes μ by belief propagation. The accelerated form used here
(Private-PGM's "interior gradient" variant) reaches the same optimum in a few times fewer
iterations than plain mirror descent.

The start is not the uniform model: every maximal clique gets an estimate of its marginal
(the measurement on that clique projected onto the simplex, else products of smaller ones,
raked to the pooled 1-way estimates) and θ is the decomposable model with those clique
marginals. For a tree whose cliques are all measured without noise that start is already
the answer; with noise it is close. A warm start from an earlier model uses that model's
exact marginals on the new cliques (its closest decomposable approximation in KL).

N is the inverse-variance weighted mean of the measurements' sums unless given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import sparse

from cardiobox.synth.compress import Compression
from cardiobox.synth.junction import JunctionTree, build_junction_tree, triangulate
from cardiobox.synth.marginals import (
    MAX_TABLE_CELLS,
    CodesError,
    Measurement,
    check_clique,
    check_sizes,
)
from cardiobox.synth.model import (
    MarginalModel,
    ModelError,
    ModelSizeError,
    Step,
    check_model_size,
)
from cardiobox.synth.propagation import Propagation, contract, decomposable_potentials

__all__ = [
    "MarginalModel",
    "ModelError",
    "ModelSizeError",
    "Step",
    "estimate",
    "estimate_total",
    "project_to_simplex",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Smallest count of a cell in a starting estimate, so that its logarithm is finite.
_START_FLOOR = 1e-2
# Sweeps of proportional fitting that make the starting clique tables agree on each column.
_RAKE_SWEEPS = 3


def _checked_measurements(
    sizes: tuple[int, ...], measurements: Sequence[Measurement]
) -> list[Measurement]:
    """Measurements with sorted cliques (values transposed to match), validated."""
    checked: list[Measurement] = []
    for i, m in enumerate(measurements):
        if not isinstance(m, Measurement):
            raise ModelError(f"measurements[{i}] must be a Measurement, got {type(m).__name__}")
        try:
            clique = check_clique(m.clique, len(sizes))
        except CodesError as error:
            raise ModelError(f"measurements[{i}]: {error.message}", "clique") from error
        values = np.asarray(m.values, dtype=np.float64)
        shape = tuple(sizes[v] for v in clique)
        if values.shape != shape:
            raise ModelError(
                f"measurements[{i}] over {clique} has shape {values.shape}, expected {shape}",
                "shape",
            )
        if not np.all(np.isfinite(values)):
            raise ModelError(f"measurements[{i}] holds non-finite values", "finite")
        sigma = np.asarray(m.sigma, dtype=np.float64)
        if sigma.ndim and sigma.shape != shape:
            raise ModelError(
                f"measurements[{i}] has sigma of shape {sigma.shape}, expected one number or "
                f"{shape}",
                "shape",
            )
        if not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
            raise ModelError(f"measurements[{i}] sigma must be > 0, got {m.sigma!r}", "sigma")
        order = np.argsort(clique)
        cell_sigma = float(sigma) if sigma.ndim == 0 else sigma.transpose(order)
        checked.append(Measurement(tuple(sorted(clique)), values.transpose(order), cell_sigma))
    return checked


def _cell_variances(m: Measurement) -> FloatArray:
    """Noise variance of every cell of a measurement, shaped like its values."""
    return np.broadcast_to(np.square(m.sigma), m.values.shape)


def estimate_total(measurements: Sequence[Measurement]) -> float:
    """Inverse-variance weighted estimate of the number of rows from noisy marginals.

    Parameters
    ----------
    measurements : sequence of Measurement
        Noisy marginals; each one's sum estimates N with variance Σσ² over its cells.

    Returns
    -------
    float
        The pooled estimate, at least 1 (1 when there are no measurements).
    """
    if not measurements:
        return 1.0
    precisions = np.array([1.0 / float(_cell_variances(m).sum()) for m in measurements])
    sums = np.array([float(m.values.sum()) for m in measurements])
    return max(1.0, float((precisions * sums).sum() / precisions.sum()))


def project_to_simplex(values: FloatArray, total: float) -> FloatArray:
    """Euclidean projection onto {x ≥ 0, Σx = total}: the closest non-negative counts.

    Parameters
    ----------
    values : numpy.ndarray of float
        Noisy counts (any shape).
    total : float
        Required sum (> 0).

    Returns
    -------
    numpy.ndarray of float64
        Same shape; the minimiser of ‖x − values‖₂ on the scaled simplex.
    """
    flat = values.ravel()
    ordered = np.sort(flat)[::-1]
    excess = (np.cumsum(ordered) - total) / np.arange(1, flat.size + 1)
    count = int(np.flatnonzero(ordered - excess > 0)[-1])
    projected: FloatArray = np.maximum(flat - excess[count], 0.0).reshape(values.shape)
    return projected


def _positive_estimate(values: FloatArray, total: float) -> FloatArray:
    counts = np.maximum(project_to_simplex(values, total), _START_FLOOR)
    normalised: FloatArray = counts / counts.sum()
    return normalised


def _starting_marginals(
    tree: JunctionTree, sizes: tuple[int, ...], measurements: Sequence[Measurement], total: float
) -> list[FloatArray]:
    """A rough estimate of every maximal clique's marginal (probabilities) from measurements."""
    one_way: list[FloatArray] = []
    for v in range(len(sizes)):
        precision, weighted = np.zeros(sizes[v]), np.zeros(sizes[v])
        for m in measurements:
            if v in m.clique:
                axes = tuple(a for a, u in enumerate(m.clique) if u != v)
                inverse_variance = 1.0 / _cell_variances(m).sum(axis=axes)
                weighted += inverse_variance * m.values.sum(axis=axes)
                precision += inverse_variance
        if precision.any():
            one_way.append(_positive_estimate(weighted / precision, total))
        else:
            one_way.append(np.full(sizes[v], 1.0 / sizes[v]))
    starts: list[FloatArray] = []
    for clique in tree.cliques:
        inside = [m for m in measurements if set(m.clique) <= set(clique)]
        covered: tuple[int, ...] = ()
        table = np.ones(())
        if inside:
            largest = max(len(m.clique) for m in inside)
            chosen = [m for m in inside if len(m.clique) == largest]
            first = max(chosen, key=lambda m: (m.values.size, -float(np.mean(m.sigma))))
            same = [m for m in inside if m.clique == first.clique]
            precisions = [1.0 / _cell_variances(m) for m in same]
            pooled = sum(p * m.values for p, m in zip(precisions, same, strict=True))
            covered = first.clique
            table = _positive_estimate(np.asarray(pooled) / sum(precisions), total)
        operands = [(covered, table)] + [((v,), one_way[v]) for v in clique if v not in covered]
        starts.append(_rake(contract(operands, clique), [one_way[v] for v in clique]))
    return starts


def _rake(table: FloatArray, one_way: Sequence[FloatArray]) -> FloatArray:
    """Iterative proportional fitting of a positive table to target 1-way margins."""
    for _ in range(_RAKE_SWEEPS):
        for axis, target in enumerate(one_way):
            others = tuple(a for a in range(table.ndim) if a != axis)
            current = table.sum(axis=others, keepdims=True)
            shape = [1] * table.ndim
            shape[axis] = target.size
            table = table * (target.reshape(shape) / current)
    return table


class _Layout:
    """All clique tables of a model laid end to end in one flat vector."""

    def __init__(self, shapes: Sequence[tuple[int, ...]]) -> None:
        self.shapes = list(shapes)
        sizes = [math.prod(shape) for shape in shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def views(self, flat: FloatArray) -> list[FloatArray]:
        return [
            flat[self.offsets[i] : self.offsets[i + 1]].reshape(shape)
            for i, shape in enumerate(self.shapes)
        ]

    def flatten(self, tables: Sequence[FloatArray]) -> FloatArray:
        return np.concatenate([t.ravel() for t in tables])


def _pooled(measurements: Sequence[Measurement]) -> list[Measurement]:
    """One measurement per clique: the inverse-variance mean of repeated ones.

    The loss changes by a constant only, so the optimum is the same, and each clique's
    cells are read once per evaluation instead of once per repetition.
    """
    groups: dict[tuple[int, ...], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(m.clique, []).append(m)
    pooled: list[Measurement] = []
    for clique, group in groups.items():
        precisions = [1.0 / _cell_variances(m) for m in group]
        values = sum(p * m.values for p, m in zip(precisions, group, strict=True))
        precision = sum(precisions)
        sigma = precision**-0.5
        pooled.append(Measurement(clique, np.asarray(values) / precision, sigma))
    return pooled


class _Objective:
    """L(μ) = ½ ‖Qμ − t‖² on the flat clique vector μ: Q a sparse weighted 0/1 projection.

    Each measurement reads the smallest model clique that holds it; a row of Q sums, with
    weight 1/σ, the clique cells that fall in one cell of the measured marginal, and t is
    y/σ. The optimiser works with the predictions Qμ, which are linear in μ.
    """

    def __init__(
        self, tree: JunctionTree, layout: _Layout, measurements: Sequence[Measurement]
    ) -> None:
        rows: list[IntArray] = []
        columns: list[IntArray] = []
        weights: list[FloatArray] = []
        targets: list[FloatArray] = []
        ratios: dict[int, float] = {}
        grids: dict[int, IntArray] = {}
        offset = 0
        for m in _pooled(measurements):
            holders = [i for i, c in enumerate(tree.cliques) if set(m.clique) <= set(c)]
            index = min(holders, key=lambda i: math.prod(layout.shapes[i]))
            clique = tree.cliques[index]
            shape = layout.shapes[index]
            if index not in grids:
                grids[index] = np.indices(shape).reshape(len(shape), -1)
            grid = grids[index]
            measured = np.ravel_multi_index(
                tuple(grid[clique.index(v)] for v in m.clique), m.values.shape
            )
            rows.append(offset + measured)
            columns.append(layout.offsets[index] + np.arange(grid.shape[1]))
            inverse_sigma = 1.0 / np.sqrt(_cell_variances(m)).ravel()
            weights.append(inverse_sigma[measured])
            targets.append(m.values.ravel() * inverse_sigma)
            ratios[index] = (
                ratios.get(index, 0.0)
                + grid.shape[1] / m.values.size * float(inverse_sigma.max()) ** 2
            )
            offset += m.values.size
        query = sparse.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))),
            shape=(offset, layout.size),
        )
        self._query = query
        self._query_t = query.T.tocsr()
        self._target = np.concatenate(targets)
        # Private-PGM's step-size scale: Σ (clique cells / marginal cells) / σ² per clique.
        self.lipschitz = max(ratios.values())

    def predict(self, mu: FloatArray) -> FloatArray:
        """Qμ."""
        predicted: FloatArray = self._query @ mu
        return predicted

    def residual(self, predicted: FloatArray) -> FloatArray:
        """Qμ − t, from the predictions."""
        difference: FloatArray = predicted - self._target
        return difference

    def gradient(self, residual: FloatArray) -> FloatArray:
        """∇L = Qᵀ(Qμ − t), from the residual."""
        gradient: FloatArray = self._query_t @ residual
        return gradient


def estimate(
    sizes: Sequence[int],
    measurements: Sequence[Measurement],
    total: float | None = None,
    *,
    iters: int = 1000,
    tol: float = 1e-4,
    warm_start: MarginalModel | None = None,
    max_clique_cells: int = MAX_TABLE_CELLS,
    mechanism: str = "pgm",
    steps: Sequence[Step] = (),
    compression: Compression | None = None,
) -> MarginalModel:
    """Fit the distribution whose marginals best match noisy measurements.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each column.
    measurements : sequence of Measurement
        Noisy marginals (any columns; the model's cliques are the maximal cliques of a
        triangulation of their union graph, plus every column on its own).
    total : float, optional
        Number of rows N; estimated from the measurements when omitted.
    iters : int, default 1000
        Most iterations of the optimiser.
    tol : float, default 1e-4
        Stop when the loss fell by less than ``tol`` × (1 + loss) per iteration on average
        over the last 10 iterations.
    warm_start : MarginalModel, optional
        An earlier model of the same columns to start from (AIM's re-estimation).
    max_clique_cells : int, default MAX_TABLE_CELLS
        Refuse models whose largest clique table has more cells.
    mechanism : str, default "pgm"
        Recorded in the model.
    steps : sequence of Step, default ()
        Recorded in the model (the privacy cost of the measurements).
    compression : Compression, optional
        How the domain's codes were merged into ``sizes`` (the measurements are over the
        merged codes); recorded in the model, which then answers and samples in the
        domain's codes.

    Returns
    -------
    MarginalModel
        The estimate.

    Raises
    ------
    ModelError
        (a ``ValueError``) for invalid measurements, ``iters`` < 0 or a bad ``total``.
    ModelSizeError
        When the model would need a clique table above ``max_clique_cells``.
    """
    checked_sizes = check_sizes(sizes)
    checked = _checked_measurements(checked_sizes, measurements)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ModelError(f"iters must be an integer >= 0, got {iters!r}", "count")
    if warm_start is not None and warm_start.sizes != checked_sizes:
        raise ModelError("warm_start describes other columns than sizes", "warm-start")
    if total is None:
        total = estimate_total(checked)
    elif not math.isfinite(total) or total <= 0:
        raise ModelError(f"total must be a finite number > 0, got {total!r}", "total")
    cliques = triangulate(checked_sizes, [m.clique for m in checked])
    check_model_size(checked_sizes, cliques, max_clique_cells)
    tree = build_junction_tree(cliques, len(checked_sizes))
    if warm_start is not None:
        starts = [warm_start.project(c) / warm_start.total for c in tree.cliques]
    else:
        starts = _starting_marginals(tree, checked_sizes, checked, total)
    potentials = decomposable_potentials(tree, starts)
    if checked and iters > 0:
        potentials = _accelerated_descent(
            tree, checked_sizes, checked, potentials, total, iters, tol
        )
    return MarginalModel(
        checked_sizes,
        tree.cliques,
        potentials,
        total,
        mechanism=mechanism,
        steps=steps,
        max_clique_cells=max_clique_cells,
        compression=compression,
    )


# Iterations over which the average improvement is compared with ``tol``.
_PATIENCE = 10
# Backtracking doublings of the smoothness estimate before an iteration gives up.
_BACKTRACKS = 60
# Each iteration first tries a slightly smaller smoothness (a longer step) than the last
# accepted one; 0.9 backtracks less often than halving for the same progress.
_SHRINK = 0.9


def _accelerated_descent(
    tree: JunctionTree,
    sizes: tuple[int, ...],
    measurements: Sequence[Measurement],
    potentials: list[FloatArray],
    total: float,
    iters: int,
    tol: float,
) -> list[FloatArray]:
    """Minimise the loss over the model's marginals by accelerated entropic mirror descent.

    This is the accelerated Bregman proximal gradient method (Tseng 2008; Private-PGM's
    "interior gradient" variant) with the Bregman divergence D(μ', μ) = N·KL(p'‖p) of the
    exponential family, so the mirror step is θ ← θ − a∇L (sum-product gives μ from θ).
    The extrapolated and averaged points x, y are mixtures of calibrated marginals, hence
    consistent. The smoothness constant is found by backtracking on
    L(x⁺) ≤ L(y) + ⟨∇L(y), x⁺ − y⟩ + λτ²D(z⁺, z), and the momentum restarts whenever the
    loss goes up (O'Donoghue & Candès 2015). The result is the decomposable model with
    the final averaged marginals.

    Losses and inner products only need the predictions Qμ, which mix like μ does, so
    each trial step costs one belief propagation and two sparse products.
    """
    layout = _Layout([tuple(sizes[v] for v in c) for c in tree.cliques])
    propagation = Propagation(tree, sizes)
    objective = _Objective(tree, layout, measurements)

    def calibrate(theta: FloatArray) -> tuple[FloatArray, float]:
        tables, log_z = propagation.marginals(layout.views(theta))
        mu: FloatArray = layout.flatten(tables)
        mu *= total
        return mu, log_z

    def half_square(residual: FloatArray) -> float:
        return 0.5 * float(residual @ residual)

    smoothness = objective.lipschitz
    theta_z = layout.flatten(potentials)
    z, log_z = calibrate(theta_z)
    x = z
    predicted_z = predicted_x = objective.predict(z)
    loss_x = half_square(objective.residual(predicted_x))
    weight = 0.0
    history = [loss_x]
    for _ in range(iters):
        smoothness *= _SHRINK
        for _ in range(_BACKTRACKS):
            a = (1.0 + math.sqrt(1.0 + 4.0 * smoothness * weight)) / (2.0 * smoothness)
            tau = a / (weight + a)
            residual_y = objective.residual(predicted_x + tau * (predicted_z - predicted_x))
            loss_y = half_square(residual_y)
            theta_new = theta_z - a * objective.gradient(residual_y)
            z_new, log_z_new = calibrate(theta_new)
            predicted_new = objective.predict(z_new)
            loss_new = half_square(
                objective.residual(predicted_x + tau * (predicted_new - predicted_x))
            )
            # ⟨∇L(y), v⟩ = ⟨Qy − t, Qv⟩; x⁺ − y = τ(z⁺ − z); N·KL(p_z⁺ ‖ p_z) from θ and log Z.
            linear = tau * float(residual_y @ (predicted_new - predicted_z))
            divergence = max(
                -a * float(residual_y @ predicted_new) - total * (log_z_new - log_z), 0.0
            )
            bound = loss_y + linear + smoothness * tau * tau * divergence
            if loss_new <= bound + 1e-12 * abs(loss_y):
                break
            smoothness *= 2.0
        if loss_new > loss_x:
            # Momentum overshot: restart from x, with no memory of earlier steps.
            theta_z = layout.flatten(decomposable_potentials(tree, layout.views(x / total)))
            z, log_z = calibrate(theta_z)
            predicted_z = objective.predict(z)
            weight = 0.0
        else:
            x = x + tau * (z_new - x)
            predicted_x = predicted_x + tau * (predicted_new - predicted_x)
            theta_z, z, log_z, predicted_z = theta_new, z_new, log_z_new, predicted_new
            loss_x = loss_new
            weight += a
        history.append(loss_x)
        if len(history) > _PATIENCE:
            mean_gain = (history[-_PATIENCE - 1] - loss_x) / _PATIENCE
            if mean_gain <= tol * (1.0 + loss_x):
                break
    return decomposable_potentials(tree, layout.views(x / total))
