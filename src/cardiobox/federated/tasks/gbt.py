"""``gbt``: federated gradient-boosted decision trees for a binary outcome (logistic loss).

Horizontal partition (every site holds whole rows), histogram-based split finding as in
SecureBoost / FedTree's horizontal GBDT and XGBoost's ``hist`` method: sites release, only
through the secure sum, per (node, feature, bin) sums of gradients g = p − y, Hessians
h = p(1 − p) and row counts; the hub sees those sums over all sites, never a site's rows,
its own histograms or a tree of its own. Splits maximise XGBoost's gain

    ½ [G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)] − γ

subject to H_L, H_R ≥ ``min_child_weight`` and, for privacy, at least the largest declared
``min_cell_count`` rows in each child, so no leaf (nor any node) describes fewer people than
any site allows. Leaves get −G/(H+λ) · ``learning_rate``. Since the sums are exact (2^-40
fixed point), the trees are those of the same algorithm run on the pooled rows: splitting the
same rows over more sites changes nothing beyond ~1e-12, and on the same bins they are
scikit-learn's ``HistGradientBoostingClassifier`` trees (up to its float32 gradients).

Rounds
------
1. ``moments`` (only when some covariate has no public ``bounds``): summed non-missing counts,
   Σx and Σx² per covariate; the hub puts that covariate's fine grid on the pooled
   mean ± 4 sd (minimum and maximum are single rows' values and never leave a site).
2. ``bins``: summed row and event counts and per-covariate histograms on a fine public grid of
   1024 equal bins (values outside it are clipped into the end bins). The hub derives up to
   ``n_bins`` − 1 cut points per covariate at the pooled quantiles (edges of the fine grid,
   public from then on) and the base score log(p / (1 − p)). With ``binning: uniform`` (the
   default with ``rho``) the cut points are the edges of ``n_bins`` equal-width bins on the
   public ``bounds`` and the sites send only their summed events and non-events.
3. ``grow``, one round per depth level of each tree: the hub sends the model (finished trees,
   the current tree with its open nodes); each site computes its margins, routes its rows to
   the open nodes and returns the summed G, H and count histograms. Children made at the last
   level are leaves at once (from the same sums), so a tree takes at most ``max_depth`` rounds.
4. ``evaluate``: each site scores its evaluation rows with the final model and releases the
   aggregates of :func:`~cardiobox.federated.evaluation.evaluation_release` (and, summed, the
   training loss of the final model): the hub's
   :func:`~cardiobox.federated.evaluation.pooled_evaluation` gives the pooled AUROC, AUPRC,
   accuracy, Brier score, calibration slope and intercept with bootstrap intervals, ROC and
   calibration curves, and each site's own metrics in clear — only when its evaluation rows,
   events and non-events all reach its ``min_cell_count`` (else ``None``); the same
   evaluation as ``mlp``'s.

So a run takes 1 (or 2) + ``n_trees`` · ``max_depth`` + 1 rounds at most: 152 with the
defaults and public bounds. A site's policy also caps the rounds it answers (``max_rounds``,
500 by default); the hub cannot know the sites' policies, so a request needing more rounds
fails at round 501 with the site's ``too-many-rounds`` refusal.

Rows and missing values: training uses the rows passing ``where`` (and ``split_column`` =
'train' when given) whose outcome is present; covariates may be missing. A missing value has
its own bin and every split learns a default direction for it (XGBoost's sparsity-aware
split): candidates send the missing rows left or right, and one more sends only them right
(split on missingness). When a node has no missing value of the split covariate, its missing
values go to the child with more rows. With ``split_column`` the metrics are on the 'test'
rows; without it on the training rows (optimistic; the result says so).

The model travels in every request (arrays per tree, see :func:`predict_margin`), so it
is kept small: at most 1000 trees of depth ≤ 6 (a site refuses requests beyond its
``max_message_bytes``, 8 MB by default: some 100 000 nodes). ``seed`` is recorded but unused:
there is no row or column subsampling, so equal inputs give equal trees (without ``rho``).

Differential privacy
--------------------
With ``rho`` (zCDP) each site spends at most ``rho`` on the whole run, by its own accounting
(:func:`dp_plan`): equal shares ρ/R over the R = 1 + ``n_trees`` · ``max_depth`` noisy releases
a run can make, fixed up front from the public parameters, each charged to the site's ledger
when released (a tree that stops before ``max_depth`` leaves its later shares unspent, so a
run spends ``rho`` exactly when every tree reaches ``max_depth``). Every covariate needs public
``bounds`` and the bins are equal-width on them (``binning: uniform``): quantiles of the pooled
data would need its histograms, outside the accounting. Each noisy number gets N(0, σ²) at the
site before the secure sum, σ = Δ / sqrt(2ρ/R) (the Gaussian mechanism is Δ²/(2σ²)-zCDP), with
Δ the L2 sensitivity of the release to adding or removing one row:

- **base score** (round ``bins``): the site's events and non-events. A row is one or the
  other: Δ = 1. The hub clamps each noisy sum at 1/2 and takes log(events / non-events);
  ``n_train`` is their noisy sum.
- **a tree level** (round ``grow``): per (open node, covariate, bin) the sums of g, h and the
  count × 1/4 (:data:`COUNT_SCALE`). The model in the payload is public (built from earlier
  noisy releases), so one row changes only its own terms, and it reaches one open node (or
  none) and there, per covariate, exactly one bin (the missing bin when missing): p cells of
  each array, p being the number of covariates. For the logistic loss g = p̂ − y and
  h = p̂(1 − p̂) satisfy g² + h² < 1: for y = 0, g² + h² = p̂²(1 + (1 − p̂)²), whose derivative
  2p̂(1 + (1 − p̂)(1 − 2p̂)) ≥ 2p̂(1 − 1/8) ≥ 0, so it rises to 1 at p̂ = 1 (y = 1 is the mirror
  image); each row's (g, h) is still scaled into the unit disc (:func:`clip_gradients`) so the
  bound holds whatever the rounding. Hence Δ² = p · (1 + (1/4)²) and Δ = sqrt(17p/16) — the
  sqrt(p(1 + 1/16)) of g ∈ [−1, 1] and h ∈ [0, 1/4] alone, the counts included for free by the
  joint bound.
- **leaf values** and node sizes are computed by the hub from the same noisy sums (the
  children's at the last level, the node's totals otherwise): post-processing, no release and
  no cost. So is every split.
- **evaluation** (round ``evaluate``): as ``mlp``'s, the aggregates of the evaluation rows
  carry no noise and cost no ρ — they are protected by the secure sum and the small-cell rules
  — and the training loss (``history``, an exact function of the training rows) is not
  released (``None``).

The hub handles noisy sums: counts are divided back by 1/4 and rounded; a node's G, H and size
are the means of its p per-covariate totals (independent noise, p times less variance); H is
clamped at 0; a child must hold at least the largest ``min_cell_count`` in noisy rows, reach
``min_child_weight`` and also :data:`DP_MIN_HESSIAN_SDS` noise standard deviations of its
summed H (σ_sum · sqrt(k) for a sum of k cells, σ_sum = sqrt(Σ_sites σ²)), so no leaf divides
by a sum of mostly noise; leaves get −G/(max(H, 0) + λ) · ``learning_rate``. The site's
policy applies as to any task: the request's ``rho`` must be within ``max_rho_per_release``
(compared as a whole, which is stricter than its shares need), before each release the budget
left must cover what the run may still spend (``rho`` less what its releases have charged:
:attr:`~cardiobox.federated.task.Task.rho_per_run`), and every release is logged with its
mechanism, σ and ρ. A site whose policy adds noise by default (``default_rho``) refuses a
request without ``rho`` (``noise-required``): gbt needs the run's budget, not a release's.
``rho`` must be finite and above 0 (absent: no noise).

The result: ``outcome``, ``covariates``, the model (``n_trees``, ``max_depth``,
``learning_rate``, ``n_bins``, ``seed``, ``base_score``, ``cut_points`` keyed by covariate,
``trees``; see :func:`predict_proba`), ``n_train``, ``min_cell_count`` (the largest the sites
declared), ``history`` (the pooled training log-loss after each number of trees), ``global``
(pooled ``n``, ``accuracy``, ``auroc``, ``auprc``, ``brier``, ``calibration_slope``,
``calibration_intercept``, ``ci`` — ``{metric: [lower, upper] or None}``, empty with
``bootstrap`` 0 — ``roc`` and ``calibration_curve``; every figure ``None`` and no interval or
curve when the pooled evaluation rows are fewer than that ``min_cell_count``), ``per_site``
(each site's own metrics with their ``ci``, or ``None``), ``evaluated_on``, ``sites``,
``binning``, ``dp`` (``None`` without ``rho``; else ``rho_per_site``, ``rho_spent_per_site``,
``epsilon`` at ``delta`` = 1e-5 by the tight conversion of the run's ρ
(:func:`~cardiobox.privacy.zcdp.rho_to_eps`), ``releases``, ``rho_per_release``, the
``sensitivity`` and per-site noise ``sigma`` of each release, ``base_score`` and ``level``),
``sites_refused`` and ``sites_failed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator
from scipy.special import expit

from cardiobox.federated.evaluation import evaluation_release, pooled_evaluation
from cardiobox.federated.learning import (
    LearningParams,
    Part,
    evaluated_on,
    learning_variables,
    site_rows,
)
from cardiobox.federated.site_table import ColumnError, SiteTable
from cardiobox.federated.task import (
    Next,
    Result,
    RoundResult,
    SiteContext,
    SiteOutput,
    Task,
    TaskError,
    register,
)
from cardiobox.federated.tasks.crosstab import running_min_cell
from cardiobox.privacy import zcdp
from cardiobox.privacy.policy import PolicyRefusal

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Bins of the fine public grid the cut points are chosen from.
FINE_BINS = 1024
#: Without public bounds, the fine grid spans the pooled mean ± this many standard deviations.
GRID_SDS = 4.0
#: Limits that keep the model (sent in every request) and the rounds bounded.
MAX_TREES = 1000
MAX_DEPTH = 6
MAX_ROUNDS = 5000
#: The most histogram cells (nodes × covariates × bins) one grow round may ask for.
MAX_CELLS = 200_000
#: Gains within this share of the parent's score tie (the sums are exact only to ~1e-12);
#: ties go to the first candidate in (covariate, missing right before left, bin) order.
TIE = 1e-9
#: ``feature`` codes of nodes that are not splits.
LEAF = -1
OPEN = -2
#: The arrays of a tree that sites need to route rows.
TREE_KEYS = ("feature", "bin", "default_left", "left", "right", "value")
#: With ``rho``, counts enter a level's release multiplied by this (the bound of a Hessian), so
#: they add only 1/16 per covariate to its squared sensitivity; the hub divides them back.
COUNT_SCALE = 0.25
#: With ``rho``, a child's noisy summed Hessian must reach this many standard deviations of
#: its noise (besides ``min_child_weight``), so no leaf value divides by a sum of mostly noise.
DP_MIN_HESSIAN_SDS = 2.0
#: δ of the (ε, δ) reported for runs with ``rho``.
DELTA = 1e-5


class GbtParams(LearningParams):
    """Parameters of ``gbt``.

    ``outcome``, ``covariates`` (here they may be missing), ``split_column``, ``bins`` and
    ``bootstrap`` (of the evaluation) are those of
    :class:`~cardiobox.federated.learning.LearningParams`; ``seed`` is recorded with the
    result, but the algorithm has no randomness.

    Parameters
    ----------
    n_trees : int
        Boosting rounds (trees; default 50, at most 1000).
    max_depth : int
        Depth of each tree in edges (default 3, at most 6).
    learning_rate : float
        Shrinkage of every leaf value (default 0.1, in (0, 1]).
    reg_lambda : float
        L2 penalty λ on leaf weights (default 1).
    gamma : float
        Minimum gain γ of a split (default 0).
    min_child_weight : float
        Minimum summed Hessian in each child of a split (default 1).
    n_bins : int
        Bins per covariate for split finding: up to ``n_bins`` − 1 quantile cut points
        (default 32, from 2 to 256).
    bounds : dict of str to [lo, hi], optional
        Public ranges of covariates (e.g. from the data dictionary) for the fine grid; those
        not given use the pooled mean ± 4 sd (one more round).
    binning : {"quantile", "uniform"}, optional
        Cut points at the pooled quantiles of the covariates (``quantile``, the default without
        ``rho``) or ``n_bins`` equal-width bins on the public ``bounds`` (``uniform``, the
        default and the only choice with ``rho``; needs ``bounds`` for every covariate).
    rho : float, optional
        Differential privacy: the zCDP budget each site spends on the **whole run** (> 0,
        finite), in equal shares over its noisy releases (:func:`dp_plan`). Without it the
        sums are exact.
    """

    n_trees: int = Field(50, ge=1, le=MAX_TREES)
    max_depth: int = Field(3, ge=1, le=MAX_DEPTH)
    learning_rate: float = Field(0.1, gt=0, le=1, allow_inf_nan=False)
    reg_lambda: float = Field(1.0, ge=0, allow_inf_nan=False)
    gamma: float = Field(0.0, ge=0, allow_inf_nan=False)
    min_child_weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    n_bins: int = Field(32, ge=2, le=256)
    bounds: dict[str, tuple[float, float]] | None = None
    binning: Literal["quantile", "uniform"] | None = None

    @property
    def uniform(self) -> bool:
        """Whether the cut points are equal-width bins on the public bounds."""
        return self.binning == "uniform" or (self.binning is None and self.rho is not None)

    @model_validator(mode="after")
    def _consistent(self) -> GbtParams:
        for name, (lo, hi) in (self.bounds or {}).items():
            if name not in self.covariates:
                raise ValueError(f"bounds names {name!r}, which is not a covariate")
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"bounds of {name!r} must be finite with lo < hi, got {lo, hi}")
        if self.rho is not None:
            if not (math.isfinite(self.rho) and self.rho > 0):
                raise ValueError(
                    f"rho must be a finite number above 0 (the zCDP budget each site spends on "
                    f"the whole run), got {self.rho}; leave it out for a run without noise"
                )
            if self.binning == "quantile":
                raise ValueError(
                    "binning 'quantile' needs the pooled covariate histograms, which rho does "
                    "not cover: use binning 'uniform' (the default with rho)"
                )
        unbounded = [c for c in self.covariates if c not in (self.bounds or {})]
        if self.uniform and unbounded:
            why = "rho needs" if self.rho is not None else "binning 'uniform' needs"
            raise ValueError(
                f"{why} public bounds for every covariate (the bins are cut on them, never on "
                f"the data); missing: {', '.join(unbounded)}"
            )
        rounds = 3 + self.n_trees * self.max_depth
        if rounds > MAX_ROUNDS:
            raise ValueError(
                f"n_trees × max_depth = {self.n_trees * self.max_depth} needs up to {rounds} "
                f"rounds; gbt allows {MAX_ROUNDS}"
            )
        cells = 2 ** (self.max_depth - 1) * len(self.covariates) * (self.n_bins + 1)
        if cells > MAX_CELLS:
            raise ValueError(
                f"a round would sum {cells} histogram cells (2^(max_depth−1) nodes × "
                f"covariates × (n_bins+1)); at most {MAX_CELLS}: lower max_depth or n_bins"
            )
        return self


# -- shared helpers ---------------------------------------------------------------------------
def _protocol(message: str) -> TaskError:
    return TaskError(f"gbt: {message}", rule="protocol")


def fine_edges(lo: float, hi: float) -> FloatArray:
    """The :data:`FINE_BINS` + 1 edges of a covariate's fine public grid on [lo, hi]."""
    return np.linspace(lo, hi, FINE_BINS + 1)


def bin_matrix(x: FloatArray, cut_points: list[FloatArray]) -> IntArray:
    """Bin index of every value (−1 for missing): bin ``b`` holds cuts[b−1] ≤ x < cuts[b]."""
    out = np.empty(x.shape, dtype=np.int64)
    for j, cuts in enumerate(cut_points):  # one pass per covariate, vectorised over rows
        col = x[:, j]
        out[:, j] = np.where(np.isnan(col), -1, np.searchsorted(cuts, col, side="right"))
    return out


def cut_points_from_fine(fine: FloatArray, edges: FloatArray, n_bins: int) -> FloatArray:
    """Cut points at the pooled quantiles i / ``n_bins`` of one covariate's fine histogram.

    Each cut is the upper edge of the fine bin where the cumulative count reaches the
    quantile; repeats and cuts with no row above them are dropped, so every bin between two
    cuts holds rows of the pooled data.
    """
    counts = np.rint(fine)
    total = float(counts.sum())
    if total <= 0:
        return np.zeros(0)
    cum = np.cumsum(counts)
    at = np.unique(np.searchsorted(cum, total * np.arange(1, n_bins) / n_bins, side="left"))
    at = at[cum[at] < total]
    cuts: FloatArray = edges[at + 1]
    return cuts


def uniform_cut_points(lo: float, hi: float, n_bins: int) -> FloatArray:
    """The ``n_bins`` − 1 interior edges of ``n_bins`` equal-width bins on [lo, hi]."""
    cuts: FloatArray = np.linspace(lo, hi, n_bins + 1)[1:-1]
    return cuts


@dataclass(frozen=True)
class DpPlan:
    """How a site spends the run's ρ: equal shares over the most noisy releases a run makes.

    Parameters
    ----------
    rho : float
        The run's zCDP budget at the site.
    releases : int
        1 (events and non-events, for the base score) + ``n_trees`` · ``max_depth`` (one per
        tree level); a tree that stops early leaves its later shares unspent.
    rho_per_release : float
        ``rho`` / ``releases``.
    sensitivity_base, sensitivity_level : float
        L2 sensitivities (one row added or removed) of the base-score release, 1, and of a
        level's histograms, sqrt(17·p/16) for p covariates (see the module docstring).
    sigma_base, sigma_level : float
        Standard deviations of the Gaussian noise on each released number:
        sensitivity / sqrt(2 · ``rho_per_release``).
    """

    rho: float
    releases: int
    rho_per_release: float
    sensitivity_base: float
    sensitivity_level: float
    sigma_base: float
    sigma_level: float


def dp_plan(n_covariates: int, n_trees: int, max_depth: int, rho: float) -> DpPlan:
    """Split a site's ρ for the run over its releases, from the public parameters alone.

    Parameters
    ----------
    n_covariates, n_trees, max_depth : int
        The request's number of covariates, trees and levels per tree.
    rho : float
        The run's zCDP budget at the site (> 0).

    Returns
    -------
    DpPlan
        Shares, sensitivities and noise scales.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``rho`` is not a finite number above 0.
    """
    releases = 1 + n_trees * max_depth
    share = zcdp.compose(rho) / releases
    level = math.sqrt(n_covariates * (1.0 + COUNT_SCALE**2))
    return DpPlan(
        rho=float(rho),
        releases=releases,
        rho_per_release=share,
        sensitivity_base=1.0,
        sensitivity_level=level,
        sigma_base=zcdp.gaussian_sigma(1.0, share),
        sigma_level=zcdp.gaussian_sigma(level, share),
    )


def clip_gradients(grad: FloatArray, hess: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Scale each row's (g, h) into the unit disc, g² + h² ≤ 1 (bounds its DP contribution).

    For the logistic loss the pairs already lie in it (module docstring); the clip makes the
    bound hold whatever the rounding.
    """
    scale = 1.0 / np.maximum(np.hypot(grad, hess), 1.0)
    return grad * scale, hess * scale


@dataclass(frozen=True)
class Tree:
    """One tree as arrays over its nodes (node 0 is the root; children follow parents).

    ``feature`` is the covariate index of a split, :data:`LEAF` or :data:`OPEN`; a row goes
    left when its bin is ≤ ``bin`` (or, missing, when ``default_left``).
    """

    feature: IntArray
    bin: IntArray
    default_left: BoolArray
    left: IntArray
    right: IntArray
    value: FloatArray

    @staticmethod
    def from_json(raw: Any, n_features: int, n_bins: int, allow_open: bool = False) -> Tree:
        """Parse and check a tree from a payload or a result (a site trusts no shape).

        Raises
        ------
        TaskError
            With rule ``protocol`` for a malformed tree.
        """
        if not isinstance(raw, Mapping) or any(not isinstance(raw.get(k), list) for k in TREE_KEYS):
            raise _protocol(f"a tree must be an object of lists {', '.join(TREE_KEYS)}")
        sizes = {len(raw[k]) for k in TREE_KEYS}
        if len(sizes) != 1 or sizes == {0}:
            raise _protocol("a tree's lists must be non-empty and of one length")
        try:
            ints = {
                k: np.asarray(raw[k], dtype=np.int64) for k in ("feature", "bin", "left", "right")
            }
            value = np.asarray(raw["value"], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise _protocol("a tree holds a value of the wrong type") from None
        default_left = np.asarray(raw["default_left"])
        if default_left.dtype != np.bool_ or any(
            isinstance(v, float) for k in ("feature", "bin", "left", "right") for v in raw[k]
        ):
            raise _protocol("a tree's default_left must be booleans and its indices integers")
        feature = ints["feature"]
        m = len(feature)
        inner = feature >= 0
        lowest = OPEN if allow_open else LEAF
        index = np.arange(m)
        ok = (
            np.all((feature >= lowest) & (feature < n_features))
            and np.all(np.isfinite(value))
            and np.all((ints["bin"][inner] >= 0) & (ints["bin"][inner] < n_bins))
            and np.all((ints["left"][inner] > index[inner]) & (ints["left"][inner] < m))
            and np.all((ints["right"][inner] > index[inner]) & (ints["right"][inner] < m))
        )
        if not ok:
            raise _protocol("a tree has an unknown covariate, bin or child index")
        return Tree(feature, ints["bin"], default_left, ints["left"], ints["right"], value)

    def route(self, bins: IntArray, max_depth: int) -> IntArray:
        """The node (leaf or open) each row reaches; vectorised over rows, one step a level."""
        rows = np.arange(len(bins))
        node = np.zeros(len(bins), dtype=np.int64)
        for _ in range(max_depth + 1):
            feature = self.feature[node]
            inner = feature >= 0
            if not inner.any():
                return node
            b = bins[rows, np.where(inner, feature, 0)]
            go_left = np.where(b < 0, self.default_left[node], b <= self.bin[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        raise _protocol(f"a tree is deeper than max_depth = {max_depth}")


def _margins(base: float, trees: list[Tree], bins: IntArray, max_depth: int) -> FloatArray:
    margin = np.full(len(bins), base)
    for tree in trees:
        margin += tree.value[tree.route(bins, max_depth)]
    return margin


def _cut_points(raw: Any, n_features: int, n_bins: int) -> list[FloatArray]:
    if not isinstance(raw, list) or len(raw) != n_features:
        raise _protocol(f"cut_points must be a list of {n_features} lists")
    out = []
    for cuts in raw:
        if not isinstance(cuts, list) or len(cuts) > n_bins - 1:
            raise _protocol(f"each covariate has at most {n_bins - 1} cut points")
        try:
            arr = np.asarray(cuts, dtype=np.float64)
        except (TypeError, ValueError):
            raise _protocol("cut points must be numbers") from None
        if not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
            raise _protocol("cut points must be finite and increasing")
        out.append(arr)
    return out


def _number(value: Any, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _protocol(f"the payload's {what} must be a finite number")
    return float(value)


def _model(
    model: Mapping[str, Any], n_features: int, n_bins: int
) -> tuple[float, list[FloatArray], list[Tree]]:
    """Base score, cut points and finished trees of a payload or a result."""
    trees = model.get("trees")
    if not isinstance(trees, list):
        raise _protocol("trees must be a list")
    return (
        _number(model.get("base_score"), "base_score"),
        _cut_points(model.get("cut_points"), n_features, n_bins),
        [Tree.from_json(t, n_features, n_bins) for t in trees],
    )


def predict_margin(model: Mapping[str, Any], x: npt.ArrayLike) -> FloatArray:
    """Log-odds of the outcome under a fitted ``gbt`` model.

    Parameters
    ----------
    model : mapping
        A ``gbt`` result (``covariates``, ``cut_points`` keyed by covariate, ``base_score``,
        ``n_bins``, ``max_depth``, ``trees``).
    x : array_like of shape (n, p)
        Rows with the covariates in ``model["covariates"]`` order; NaN for missing.

    Returns
    -------
    numpy.ndarray of shape (n,)
        ``base_score`` plus the leaf values the rows reach in every tree.
    """
    covariates = list(model["covariates"])
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(covariates):
        raise ValueError(f"x must have shape (n, {len(covariates)}), got {data.shape}")
    n_bins = int(model["n_bins"])
    cuts = model["cut_points"]
    raw = {**model, "cut_points": [cuts[c] for c in covariates]}
    base, cut_points, trees = _model(raw, len(covariates), n_bins)
    return _margins(base, trees, bin_matrix(data, cut_points), int(model["max_depth"]))


def predict_proba(model: Mapping[str, Any], x: npt.ArrayLike) -> FloatArray:
    """Probability of the outcome under a fitted ``gbt`` model (see :func:`predict_margin`)."""
    prob: FloatArray = expit(predict_margin(model, x))
    return prob


# -- split finding ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """The best split of a node and its children's sums."""

    feature: int
    bin: int
    default_left: bool
    gain: float
    left: tuple[float, float, int]
    right: tuple[float, float, int]


def best_split(
    grad: FloatArray,
    hess: FloatArray,
    count: FloatArray,
    n_cuts: IntArray,
    params: GbtParams,
    min_cell: int,
    noise_sd: float = 0.0,
) -> Split | None:
    """The split of one node with the largest gain, or ``None`` when no split is allowed.

    Parameters
    ----------
    grad, hess, count : numpy.ndarray of shape (p, n_bins + 1)
        The node's summed histograms per covariate; the last column is the missing bin.
    n_cuts : numpy.ndarray of shape (p,)
        Cut points per covariate (bins 0..n_cuts hold values).
    params : GbtParams
        λ, γ and ``min_child_weight``.
    min_cell : int
        Rows each child must hold.
    noise_sd : float
        Standard deviation of the noise on each summed Hessian cell (0: exact sums). With
        noise, the node's G and H are the means of the covariates' totals (independent
        noise), and a child's H must also reach :data:`DP_MIN_HESSIAN_SDS` times the noise sd
        of its sum over k cells, ``noise_sd`` · sqrt(k).
    """
    n_bins = grad.shape[1] - 1
    count = np.rint(count)
    lam = params.reg_lambda
    totals = [a.sum(axis=1, keepdims=True) for a in (grad, hess, count)]
    if noise_sd > 0:
        g_node, h_node = float(totals[0].mean()), max(float(totals[1].mean()), 0.0)
    else:
        g_node, h_node = float(grad[0].sum()), float(hess[0].sum())
    # Candidates (covariate, direction, bin): direction 0 sends missing values right (bins
    # 0..n_cuts, the last splitting on missingness alone), direction 1 left (0..n_cuts−1).
    t = np.arange(n_bins)[None, None, :]
    valid = np.concatenate(
        [t <= n_cuts[:, None, None], t < n_cuts[:, None, None]], axis=1
    )  # (p, 2, n_bins)
    sides = []
    for a, total in zip((grad, hess, count), totals, strict=True):
        cum = np.cumsum(a[:, :n_bins], axis=1)
        left = np.stack([cum, cum + a[:, n_bins : n_bins + 1]], axis=1)
        sides.append((left, total[:, :, None] - left))
    (gl, gr), (hl, hr), (cl, cr) = sides
    valid &= (cl >= min_cell) & (cr >= min_cell)
    min_left: float | FloatArray = params.min_child_weight
    min_right: float | FloatArray = params.min_child_weight
    if noise_sd > 0:
        # The left child sums bins 0..t (and the missing bin in direction 1); the right the rest.
        cells = t + 1 + np.arange(2)[None, :, None]
        floor = DP_MIN_HESSIAN_SDS * noise_sd
        min_left = np.maximum(params.min_child_weight, floor * np.sqrt(cells))
        min_right = np.maximum(params.min_child_weight, floor * np.sqrt(n_bins + 1 - cells))
    valid &= (hl >= min_left) & (hr >= min_right)
    parent = g_node**2 / (h_node + lam) if h_node + lam > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = 0.5 * (gl**2 / (hl + lam) + gr**2 / (hr + lam) - parent) - params.gamma
    tol = TIE * (1.0 + abs(parent))
    valid &= np.isfinite(gain) & (gain > tol)
    if not valid.any():
        return None
    best = float(gain[valid].max())
    f, direction, b = np.unravel_index(np.flatnonzero(valid & (gain >= best - tol))[0], gain.shape)
    missing = count[f, n_bins]
    default_left = (
        bool(direction == 1) if missing > 0 else bool(cl[f, direction, b] >= cr[f, direction, b])
    )
    return Split(
        feature=int(f),
        bin=int(b),
        default_left=default_left,
        gain=float(gain[f, direction, b]),
        left=(float(gl[f, direction, b]), float(hl[f, direction, b]), int(cl[f, direction, b])),
        right=(float(gr[f, direction, b]), float(hr[f, direction, b]), int(cr[f, direction, b])),
    )


def leaf_value(g: float, h: float, params: GbtParams) -> float:
    """−G / (H + λ) · learning_rate (0 when H + λ is 0; a noisy H is clamped at 0 first)."""
    denominator = max(h, 0.0) + params.reg_lambda
    return -g / denominator * params.learning_rate if denominator > 0 else 0.0


# -- the site half ----------------------------------------------------------------------------
def _check_split_type(table: SiteTable, params: GbtParams) -> None:
    """A split column of the wrong type, named as gbt always has (``split_column: ...``)."""
    if params.split_column is None:
        return
    try:
        table.check([params.split_column], "string")
    except ColumnError as exc:
        raise ColumnError(f"split_column: {exc.message}", rule=exc.rule) from None


def _rows(table: SiteTable, params: GbtParams, part: Part) -> tuple[FloatArray, FloatArray]:
    """(covariates with NaN for missing, outcome) of the rows of ``part`` with an outcome."""
    _check_split_type(table, params)
    return site_rows(table, params, part, complete=False)


def _gradients(margin: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray, float]:
    """g = p − y, h = p(1 − p) and the summed log-loss at the margins."""
    prob = expit(margin)
    # p(1−p) as expit(m)·expit(−m) keeps its digits when p is near 1.
    hess = prob * expit(-margin)
    loss = float(np.sum(np.logaddexp(0.0, margin) - y * margin))
    return prob - y, hess, loss


def _histograms(
    bins: IntArray, slot: IntArray, n_open: int, n_bins: int, weights: list[FloatArray]
) -> list[FloatArray]:
    """Per (open node, covariate, bin) sums of each weight; one ``bincount`` each."""
    rows = slot >= 0
    p = bins.shape[1]
    width = n_bins + 1
    b = bins[rows]
    cell = (slot[rows, None] * p + np.arange(p)[None, :]) * width + np.where(b < 0, n_bins, b)
    size = n_open * p * width
    flat = cell.ravel()
    return [
        np.bincount(flat, weights=np.repeat(w[rows], p), minlength=size).astype(np.float64)
        for w in weights
    ]


def _site_grow(
    params: GbtParams,
    payload: Mapping[str, Any],
    x: FloatArray,
    y: FloatArray,
    noise: tuple[float, np.random.Generator] | None = None,
) -> dict[str, FloatArray]:
    """The open nodes' G, H and count histograms (and the loss), or noised ones alone.

    With ``noise`` (σ, generator): (g, h) clipped to the unit disc, counts × :data:`COUNT_SCALE`
    and N(0, σ²) on every cell.
    """
    p = len(params.covariates)
    base, cut_points, trees = _model(payload, p, params.n_bins)
    if len(trees) >= params.n_trees:
        raise _protocol(f"the model already has {len(trees)} trees of {params.n_trees}")
    tree = Tree.from_json(payload.get("tree"), p, params.n_bins, allow_open=True)
    open_nodes = payload.get("open")
    is_open = tree.feature == OPEN
    if (
        not isinstance(open_nodes, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in open_nodes)
        or sorted(open_nodes) != np.flatnonzero(is_open).tolist()
    ):
        raise _protocol("open must list the current tree's open nodes")
    bins = bin_matrix(x, cut_points)
    grad, hess, loss = _gradients(_margins(base, trees, bins, params.max_depth), y)
    position = np.full(len(tree.feature), -1, dtype=np.int64)
    position[np.asarray(open_nodes, dtype=np.int64)] = np.arange(len(open_nodes))
    slot = position[tree.route(bins, params.max_depth)]
    if noise is None:
        g, h, c = _histograms(
            bins, slot, len(open_nodes), params.n_bins, [grad, hess, np.ones(len(y))]
        )
        return {"grad": g, "hess": h, "count": c, "loss": np.array([loss])}
    sigma, rng = noise
    grad, hess = clip_gradients(grad, hess)
    weights = [grad, hess, np.full(len(y), COUNT_SCALE)]
    sums = _histograms(bins, slot, len(open_nodes), params.n_bins, weights)
    g, h, c = (a + rng.normal(0.0, sigma, a.size) for a in sums)
    return {"grad": g, "hess": h, "count": c}


def _site_evaluate(
    params: GbtParams,
    payload: Mapping[str, Any],
    train: tuple[FloatArray, FloatArray],
    test: tuple[FloatArray, FloatArray],
    ctx: SiteContext,
) -> tuple[dict[str, Any], dict[str, FloatArray]]:
    """The evaluation of the test rows (clear values, sums) and the final training loss."""
    p = len(params.covariates)
    base, cut_points, trees = _model(payload, p, params.n_bins)
    _, _, train_loss = _gradients(
        _margins(base, trees, bin_matrix(train[0], cut_points), params.max_depth), train[1]
    )
    x, y = test
    prob = expit(_margins(base, trees, bin_matrix(x, cut_points), params.max_depth))
    values, secure = evaluation_release(y, prob, ctx, params.bins, bootstrap=params.bootstrap)
    secure["loss"] = np.array([train_loss])
    return values, secure


def _node_sums(
    grad: FloatArray, hess: FloatArray, count: FloatArray, noisy: bool
) -> tuple[float, float, int]:
    """A node's G, H and rows from its (p, n_bins + 1) histograms.

    Exact sums: covariate 0's totals (every covariate's are the same). Noisy ones: the mean of
    the p totals, whose noise is independent (p times less variance); H and rows clamped at 0.
    """
    if not noisy:
        return float(grad[0].sum()), float(hess[0].sum()), round(float(count[0].sum()))
    g, h, c = (float(a.sum(axis=1).mean()) for a in (grad, hess, count))
    return g, max(h, 0.0), max(round(c), 0)


def _check_two_classes(params: GbtParams, n: int, events: int) -> None:
    if events == 0 or events == n:
        raise TaskError(
            f"gbt: the outcome {params.outcome!r} takes one value on all {n} pooled training rows",
            rule="one-class",
        )


# -- the task ---------------------------------------------------------------------------------
class GbtTask(Task[GbtParams]):
    """Federated gradient-boosted trees on summed gradient histograms (see the module doc).

    Sites release in clear only their ``min_cell_count`` (with ``rho``, also each release's ρ
    and σ; in the last round, their own metrics when large enough); everything else goes
    through the secure sum. A site with fewer training rows than its ``min_cell_count``
    refuses.
    """

    name = "gbt"
    params_model = GbtParams
    uses_secure_sum = True
    max_rounds: ClassVar[int] = MAX_ROUNDS
    rho_per_run: ClassVar[bool] = True

    def variables(self, params: GbtParams) -> set[str]:
        """The outcome, the covariates and the split column."""
        return learning_variables(params)

    def start(self, params: GbtParams) -> dict[str, Any]:
        """Moments for the grids, or (all bounded) fine histograms; uniform: the base score."""
        if params.uniform:
            return {"phase": "bins"}
        bounds = params.bounds or {}
        if all(c in bounds for c in params.covariates):
            return {"phase": "bins", "grid": [list(bounds[c]) for c in params.covariates]}
        return {"phase": "moments"}

    def site(
        self, table: SiteTable, params: GbtParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Moments, fine histograms, gradient histograms or evaluation sums, by ``phase``.

        Raises
        ------
        PolicyRefusal
            With rule ``noise-required`` when the site's policy adds noise by default but the
            request names no ``rho`` for the run.
        """
        if ctx.rho > 0 and params.rho is None:
            raise PolicyRefusal(
                f"this site adds noise by default (rho={ctx.rho:g} a release), but gbt spends "
                "its rho over the whole run: ask with rho (and bounds for every covariate)",
                rule="noise-required",
            )
        plan = None
        if ctx.rho > 0:
            plan = dp_plan(len(params.covariates), params.n_trees, params.max_depth, ctx.rho)
        x, y = _rows(table, params, "train")
        ctx.policy.check_cell(len(y), "the number of training rows (outcome present)")
        values: dict[str, Any] = {"min_cell_count": ctx.policy.min_cell_count}
        phase = payload.get("phase")
        sigma = 0.0
        if phase == "moments" and not params.uniform:
            present = ~np.isnan(x)
            filled = np.where(present, x, 0.0)
            secure = {
                "n": present.sum(axis=0).astype(np.float64),
                "sum": filled.sum(axis=0),
                "sum_sq": (filled**2).sum(axis=0),
            }
        elif phase == "bins" and params.uniform:
            events = float(y.sum())
            secure = {"events": np.array([events]), "nonevents": np.array([len(y) - events])}
            if plan is not None:
                sigma = plan.sigma_base
                secure = {k: v + ctx.rng.normal(0.0, sigma, 1) for k, v in secure.items()}
        elif phase == "bins":
            secure = {
                "rows": np.array([float(len(y))]),
                "events": np.array([float(y.sum())]),
                "fine": self._fine(payload, x).ravel(),
            }
        elif phase == "grow":
            sigma = plan.sigma_level if plan is not None else 0.0
            secure = _site_grow(params, payload, x, y, (sigma, ctx.rng) if sigma else None)
            if plan is None:
                secure["rows"] = np.array([float(len(y))])
        elif phase == "evaluate":
            test = _rows(table, params, "test") if params.split_column else (x, y)
            evaluation, secure = _site_evaluate(params, payload, (x, y), test, ctx)
            values.update(evaluation)
            if plan is not None:  # an exact training loss would escape the accounting
                del secure["loss"]
            else:
                secure["rows"] = np.array([float(len(y))])
        else:
            raise _protocol(f"unknown phase {phase!r} in the payload (binning {params.binning})")
        mechanism = (
            "sums over sites (secure aggregation); own metrics only when the "
            f"evaluation rows, events and non-events reach {ctx.policy.min_cell_count}"
        )
        if plan is None or not sigma:
            return SiteOutput(values=values, secure=secure, mechanism=mechanism)
        base = phase == "bins"
        values.update(rho=plan.rho_per_release, sigma=sigma, rho_run=plan.rho)
        what = (
            "events and non-events"
            if base
            else "G, H and count histograms (each row's (g, h) clipped to the unit disc, "
            f"counts × {COUNT_SCALE:g})"
        )
        sensitivity = plan.sensitivity_base if base else plan.sensitivity_level
        return SiteOutput(
            values=values,
            secure=secure,
            rho=plan.rho_per_release,
            mechanism=f"{what} with Gaussian noise (sigma={sigma:.6g}, L2 sensitivity "
            f"{sensitivity:.6g}, rho={plan.rho_per_release:.6g}: 1 of {plan.releases} equal "
            f"shares of the run's rho={plan.rho:g}), summed over sites (secure aggregation)",
        )

    @staticmethod
    def _fine(payload: Mapping[str, Any], x: FloatArray) -> FloatArray:
        grid = payload.get("grid")
        p = x.shape[1]
        if not isinstance(grid, list) or len(grid) != p:
            raise _protocol(f"grid must be a list of {p} [lo, hi] pairs")
        out = np.zeros((p, FINE_BINS))
        for j, pair in enumerate(grid):
            if not isinstance(pair, list) or len(pair) != 2:
                raise _protocol("each grid entry must be [lo, hi]")
            lo, hi = _number(pair[0], "grid"), _number(pair[1], "grid")
            if not lo < hi:
                raise _protocol("each grid entry must have lo < hi")
            col = x[:, j][~np.isnan(x[:, j])]
            # Interior edges only: values outside [lo, hi] land in the end bins.
            index = np.searchsorted(fine_edges(lo, hi)[1:-1], col, side="right")
            out[j] = np.bincount(index, minlength=FINE_BINS)
        return out

    # -- hub --------------------------------------------------------------------------------
    def hub(self, params: GbtParams, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """Grids → cut points and base score → one tree level per round → metrics."""
        running_min_cell(result.values, state)
        for site in result.sites:  # each site's charge for this round's release
            spent = state.setdefault("rho_spent", {})
            spent[site] = spent.get(site, 0.0) + float(result.values[site].get("rho", 0.0))
            if "rho_run" in result.values[site]:
                state.setdefault("rho_run", {})[site] = float(result.values[site]["rho_run"])
        sums = result.sums
        if "sum_sq" in sums:
            return Next(self._grids(params, sums, state))
        if "fine" in sums or "nonevents" in sums:
            return Next(self._bins(params, sums, state))
        if "grad" in sums:
            return self._grow(params, result, state)
        if "eval_hist" in sums:
            return Result(self._result(params, result, state))
        raise _protocol("the round's sums match no phase")

    @staticmethod
    def _grids(
        params: GbtParams, sums: dict[str, FloatArray], state: dict[str, Any]
    ) -> dict[str, Any]:
        bounds = params.bounds or {}
        grid = []
        for j, c in enumerate(params.covariates):
            if c in bounds:
                grid.append(list(bounds[c]))
                continue
            n = float(sums["n"][j])
            mean = float(sums["sum"][j]) / n if n > 0 else 0.0
            var = max(float(sums["sum_sq"][j]) / n - mean**2, 0.0) if n > 0 else 0.0
            sd = math.sqrt(var)
            # A constant covariate gets a grid of width 1: one bin holds it, so no cut.
            half = GRID_SDS * sd if sd > 1e-12 * (1.0 + abs(mean)) else 0.5
            grid.append([mean - half, mean + half])
        state["grid"] = grid
        return {"phase": "bins", "grid": grid}

    def _bins(
        self, params: GbtParams, sums: dict[str, FloatArray], state: dict[str, Any]
    ) -> dict[str, Any]:
        if params.uniform:
            assert params.bounds is not None  # the validator ensured every covariate's
            grid = [list(params.bounds[c]) for c in params.covariates]
            cuts = [uniform_cut_points(lo, hi, params.n_bins).tolist() for lo, hi in grid]
            events, nonevents = float(sums["events"][0]), float(sums["nonevents"][0])
            if params.rho is not None:  # noisy: no count below 1/2, no one-class check
                events, nonevents = max(events, 0.5), max(nonevents, 0.5)
                base, n = math.log(events / nonevents), round(events + nonevents)
            else:
                n, e = round(events + nonevents), round(events)
                _check_two_classes(params, n, e)
                base = math.log(e / (n - e))
        else:
            grid = state.get("grid") or self.start(params)["grid"]
            n = round(float(sums["rows"][0]))
            e = round(float(sums["events"][0]))
            _check_two_classes(params, n, e)
            fine = sums["fine"].reshape(len(params.covariates), FINE_BINS)
            cuts = [
                cut_points_from_fine(fine[j], fine_edges(lo, hi), params.n_bins).tolist()
                for j, (lo, hi) in enumerate(grid)
            ]
            base = math.log(e / (n - e))
        state.update(
            grid=grid,
            cuts=cuts,
            base=base,
            n_train=n,
            trees=[],
            history=[],
        )
        self._new_tree(state)
        return self._grow_payload(state)

    @staticmethod
    def _new_tree(state: dict[str, Any]) -> None:
        state["tree"] = {
            "feature": [OPEN], "bin": [0], "threshold": [None], "default_left": [False],
            "left": [-1], "right": [-1], "value": [0.0], "n": [None], "gain": [None],
            "depth": [0],
        }  # fmt: skip
        state["open"] = [0]

    @staticmethod
    def _model_payload(state: dict[str, Any]) -> dict[str, Any]:
        return {
            "base_score": state["base"],
            "cut_points": state["cuts"],
            "trees": [{k: t[k] for k in TREE_KEYS} for t in state["trees"]],
        }

    def _grow_payload(self, state: dict[str, Any]) -> dict[str, Any]:
        tree = state["tree"]
        return {
            "phase": "grow",
            **self._model_payload(state),
            "tree": {k: tree[k] for k in TREE_KEYS},
            "open": state["open"],
        }

    def _grow(self, params: GbtParams, result: RoundResult, state: dict[str, Any]) -> Next:
        p = len(params.covariates)
        width = params.n_bins + 1
        open_nodes: list[int] = state["open"]
        shape = (len(open_nodes), p, width)
        grad, hess, count = (result.sums[k].reshape(shape) for k in ("grad", "hess", "count"))
        noise_sd = 0.0
        if params.rho is not None:  # noisy sums: counts come scaled; noise adds over sites
            count = count / COUNT_SCALE
            sigmas = [float(result.values[s].get("sigma", 0.0)) for s in result.sites]
            noise_sd = math.sqrt(sum(v * v for v in sigmas))
        tree = state["tree"]
        if len(tree["feature"]) == 1:  # a tree's first round: the loss of the trees so far
            state["history"].append(self._loss_entry(len(state["trees"]), result))
        n_cuts = np.array([len(c) for c in state["cuts"]], dtype=np.int64)
        still_open = []
        for i, node in enumerate(open_nodes):  # one pass per open node, not per row
            g, h, tree["n"][node] = _node_sums(grad[i], hess[i], count[i], noise_sd > 0)
            split = best_split(
                grad[i], hess[i], count[i], n_cuts, params, state["min_cell"], noise_sd
            )
            if split is None:
                tree["feature"][node] = LEAF
                tree["value"][node] = leaf_value(g, h, params)
                continue
            depth = tree["depth"][node] + 1
            cuts = state["cuts"][split.feature]
            tree["feature"][node] = split.feature
            tree["bin"][node] = split.bin
            tree["threshold"][node] = cuts[split.bin] if split.bin < len(cuts) else None
            tree["default_left"][node] = split.default_left
            tree["gain"][node] = split.gain
            for side, (g, h, c) in (("left", split.left), ("right", split.right)):
                child = len(tree["feature"])
                tree[side][node] = child
                last = depth >= params.max_depth
                for key, value in (
                    ("feature", LEAF if last else OPEN), ("bin", 0), ("threshold", None),
                    ("default_left", False), ("left", -1), ("right", -1),
                    ("value", leaf_value(g, h, params) if last else 0.0), ("n", max(c, 0)),
                    ("gain", None), ("depth", depth),
                ):  # fmt: skip
                    tree[key].append(value)
                if not last:
                    still_open.append(child)
        state["open"] = still_open
        if still_open:
            return Next(self._grow_payload(state))
        state["trees"].append(tree)
        if len(state["trees"]) < params.n_trees:
            self._new_tree(state)
            return Next(self._grow_payload(state))
        return Next({"phase": "evaluate", **self._model_payload(state)})

    @staticmethod
    def _loss_entry(n_trees: int, result: RoundResult) -> dict[str, Any]:
        if "loss" not in result.sums:  # with rho no loss is released
            return {"trees": n_trees, "train_logloss": None}
        rows = float(result.sums["rows"][0])
        return {
            "trees": n_trees,
            "train_logloss": float(result.sums["loss"][0]) / rows if rows else None,
        }

    def _result(
        self, params: GbtParams, result: RoundResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        state["history"].append(self._loss_entry(len(state["trees"]), result))
        evaluation = pooled_evaluation(result, params.bins)
        return {
            "outcome": params.outcome,
            "covariates": list(params.covariates),
            "n_trees": len(state["trees"]),
            "max_depth": params.max_depth,
            "learning_rate": params.learning_rate,
            "n_bins": params.n_bins,
            "seed": params.seed,
            "base_score": state["base"],
            "cut_points": dict(zip(params.covariates, state["cuts"], strict=True)),
            "trees": state["trees"],
            "n_train": state["n_train"],
            "min_cell_count": state["min_cell"],
            "global": evaluation["global"],
            "per_site": evaluation["per_site"],
            "evaluated_on": evaluated_on(params),
            "history": state["history"],
            "binning": "uniform" if params.uniform else "quantile",
            "dp": self._dp(params, state),
            "sites": list(result.sites),
            "sites_refused": dict(result.refused),
            "sites_failed": dict(result.failed),
        }

    @staticmethod
    def _dp(params: GbtParams, state: dict[str, Any]) -> dict[str, Any] | None:
        """The privacy accounting of a run with ``rho`` (``None`` without)."""
        if params.rho is None:
            return None
        plan = dp_plan(len(params.covariates), params.n_trees, params.max_depth, params.rho)
        return {
            "rho_per_site": dict(sorted(state.get("rho_run", {}).items())),
            "rho_spent_per_site": dict(sorted(state.get("rho_spent", {}).items())),
            "epsilon": zcdp.rho_to_eps(params.rho, DELTA),
            "delta": DELTA,
            "releases": plan.releases,
            "rho_per_release": plan.rho_per_release,
            "sensitivity": {"base_score": plan.sensitivity_base, "level": plan.sensitivity_level},
            "sigma": {"base_score": plan.sigma_base, "level": plan.sigma_level},
            "count_scale": COUNT_SCALE,
            "min_hessian_sds": DP_MIN_HESSIAN_SDS,
            "accounting": "each site splits rho equally over 1 + n_trees × max_depth releases "
            "(the base score, one per tree level) with Gaussian noise of sigma (per site, per "
            "released number); a tree that stops early leaves its shares unspent; epsilon at "
            "delta by the tight zCDP conversion of the run's rho; the evaluation is exact "
            "(secure sum and small-cell rules, as mlp's)",
        }


register(GbtTask())
