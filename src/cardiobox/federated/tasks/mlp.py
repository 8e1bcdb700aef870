"""``mlp``: a binary classifier (a small neural network) trained across sites by FedAvg.

The model is a multilayer perceptron on the standardised covariates: ``layers = [p, *hidden,
1]``, ReLU between hidden layers and a sigmoid on the output logit, trained on the binary
cross-entropy. Its weights travel as one flat list of floats, layer by layer, each layer's
weight matrix (``out × in``, row-major) followed by its bias.

Rounds (``rounds`` + 2 in all):

1. **Standardisation.** Each site sends, summed by secure aggregation, n, Σx and Σx² of its
   complete training rows; the hub computes the pooled mean and standard deviation (public
   afterwards, as any aggregate) and draws the initial weights from ``seed`` (PyTorch's
   default ``nn.Linear`` initialisation, uniform in ±1/√fan_in). A site whose training rows,
   events or non-events are below its minimum cell count refuses and is left out.
2. **Training** (``rounds`` rounds). The hub sends the global weights; each site runs
   ``local_epochs`` epochs of minibatch SGD on its shuffled training rows (``strategy:
   fedprox`` adds μ/2·‖w − w_global‖² to the local loss) and sends, summed, n_k·w_k and n_k:
   FedAvg's new weights are Σn_k·w_k / Σn_k. ``fedadam`` (Reddi et al. 2021) takes the
   averaged change as a pseudo-gradient Δ and moves the weights by server Adam: m ← β1·m +
   (1−β1)·Δ, v ← β2·v + (1−β2)·Δ², w ← w + server_lr·m / (√v + τ). Without noise the sites
   also send their training loss at the global weights, summed, for the ``history``.
3. **Evaluation.** The hub sends the final weights; the sites release the aggregates of
   :func:`~cardiobox.federated.evaluation.evaluation_release` for their test rows — summed,
   the counts, correct classifications, squared errors, score and logit histograms and
   ``bootstrap`` Poisson-bootstrap replicates; in clear, their own metrics when their test
   rows, events and non-events are not small cells.

Runs without noise are deterministic: the initial weights and each site's shuffles derive from
``seed`` (shuffles also from the round and the site's name).

Differential privacy (the request's ``rho`` is what each site may spend per training round;
a site whose cost is higher refuses with ``budget-exceeded``):

- ``dp_sgd``: DP-SGD (Abadi et al. 2016) at each site. Batches are drawn by **Poisson
  sampling** (each row with probability q = batch_size/n, from the site's secret generator),
  ``local_epochs · ⌈n/batch_size⌉`` steps per round; per-sample gradients (``torch.func.vmap``
  of ``grad``) are clipped to L2 norm ``clip``, summed, and get N(0, (σ·clip)²) noise per
  coordinate before division by the expected batch size. The site charges ρ = steps/(2σ²)
  per round: the zCDP of the un-subsampled Gaussian mechanism (sensitivity ``clip`` under
  adding or removing a row), a valid upper bound that ignores the amplification by
  subsampling. The result also gives, as information, the tighter (ε, δ = 1e-5) of the RDP
  accountant for the Poisson-subsampled Gaussian
  (:func:`~cardiobox.privacy.zcdp.dpsgd_epsilon`), or the zCDP bound when that is smaller.
- ``client_dp``: each site clips its round's change of the weights to L2 norm ``clip`` and adds
  N(0, (σ·clip)²) noise per coordinate before the secure sum. Adding or removing one row can
  move a clipped change anywhere within the ball, so its sensitivity is 2·clip and the site
  charges ρ = (2·clip)²/(2·(σ·clip)²) = 2/σ² per round (against removing the whole site, the
  sensitivity is ``clip`` and the cost 1/(2σ²): that is the client-level guarantee). The
  changes are averaged **unweighted** over the sites: weighting by n_k would release n_k.

With either, the per-round training losses are not released (they would be exact functions
of the training rows outside the accounting). The standardisation sums, the row counts and the
evaluation's aggregates carry no noise: they are protected by secure aggregation and the
small-cell rules, as in the other tasks, and cost no ρ. For the accounting, each site states
in clear its ρ per round and, with ``dp_sgd``, its steps and sampling rate (so its number of
training rows, which its policy lets out since it reaches the minimum cell count).

The result: ``outcome``, ``covariates``, ``strategy``, ``rounds``, ``sites``, ``n_train``
(pooled, round 1), ``history`` (per training round: the sites and the pooled mean training
loss of the weights the round started from, ``None`` with noise), ``train_loss`` (of the final
weights), ``global`` (pooled ``n``, ``accuracy``, ``auroc``, ``auprc``, ``brier``,
``calibration_slope``, ``calibration_intercept``, ``ci`` — ``{metric: [lower, upper] or
None}``, empty with ``bootstrap`` 0 — ``roc`` and ``calibration_curve``; every figure ``None``
and no interval or curve when the pooled test rows are fewer than the largest minimum cell
count the sites declared), ``per_site`` (each site's metrics with their ``ci``, or ``None``),
``model`` (``layers``, ``weights``, the public ``mean`` and ``sd``; see :func:`predict_proba`),
``dp`` (``rho_per_site``, ``epsilon``, ``delta``... or ``None``), ``evaluated_on``,
``sites_refused`` and ``sites_failed``.
"""

from __future__ import annotations

import itertools
import math
import zlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cardiobox.federated.learning import (
    LearningParams,
    Standardisation,
    check_training_cells,
    evaluated_on,
    evaluation_release,
    learning_variables,
    payload_vector,
    pooled_evaluation,
    pooled_standardisation,
    site_rows,
    standardisation_sums,
)
from cardiobox.federated.site_table import SiteTable
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
from cardiobox.privacy import zcdp
from cardiobox.privacy.policy import PolicyRefusal

if TYPE_CHECKING:
    import torch

Array = npt.NDArray[np.float64]

#: The most training rounds (with the standardisation and evaluation rounds: 500, the default
#: policy's limit).
MAX_TRAINING_ROUNDS = 498
#: The most weights a model may have (its JSON list stays near 2 MB, well inside the default
#: message limit of 8 MB).
MAX_WEIGHTS = 100_000
#: δ of the (ε, δ) reported for DP runs.
DELTA = 1e-5


class NoiseParams(BaseModel):
    """Clipping norm and noise multiplier of a Gaussian mechanism (``dp_sgd``, ``client_dp``).

    Parameters
    ----------
    clip : float
        L2 norm each per-sample gradient (``dp_sgd``) or each site's change (``client_dp``) is
        clipped to.
    noise_multiplier : float
        σ: the noise's standard deviation is σ·clip.
    """

    model_config = ConfigDict(extra="forbid")

    clip: float = Field(gt=0, allow_inf_nan=False)
    noise_multiplier: float = Field(gt=0, allow_inf_nan=False)


class MlpParams(LearningParams):
    """Parameters of ``mlp``.

    ``outcome``, ``covariates``, ``split_column``, ``seed``, ``bins`` and ``bootstrap`` are
    those of :class:`~cardiobox.federated.learning.LearningParams`.

    Parameters
    ----------
    hidden : list of int
        Units of each hidden layer (default ``[16]``; ``[]`` is logistic regression).
    rounds : int
        Federated training rounds (default 30).
    local_epochs : int
        Passes over its training rows each site makes per round (default 1).
    batch_size : int
        Minibatch size of local SGD (the expected size under ``dp_sgd``; default 32).
    lr : float
        Learning rate of local SGD (default 0.05).
    strategy : {"fedavg", "fedprox", "fedadam"}
        How the sites' models are combined (default ``fedavg``).
    mu : float
        FedProx's proximal weight μ (default 0.01).
    server_lr, beta1, beta2, tau : float
        FedAdam's server learning rate (0.01), moment decays (0.9, 0.99) and adaptivity τ
        (1e-3), the defaults of Reddi et al. (2021).
    dp_sgd : NoiseParams, optional
        DP-SGD at each site (``clip``, ``noise_multiplier``); needs ``rho``.
    client_dp : NoiseParams, optional
        Clipped, noised model changes (``clip``, ``noise_multiplier``); needs ``rho``.
    """

    hidden: list[int] = Field(default_factory=lambda: [16], max_length=8)
    rounds: int = Field(30, ge=1, le=MAX_TRAINING_ROUNDS)
    local_epochs: int = Field(1, ge=1, le=100)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.05, gt=0, allow_inf_nan=False)
    strategy: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    mu: float = Field(0.01, ge=0, allow_inf_nan=False)
    server_lr: float = Field(0.01, gt=0, allow_inf_nan=False)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    tau: float = Field(1e-3, gt=0, allow_inf_nan=False)
    dp_sgd: NoiseParams | None = None
    client_dp: NoiseParams | None = None

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, value: list[int]) -> list[int]:
        if any(not 1 <= h <= 4096 for h in value):
            raise ValueError("every hidden layer needs between 1 and 4096 units")
        return value

    @model_validator(mode="after")
    def _model(self) -> MlpParams:
        size = weight_count(layer_sizes(self))
        if size > MAX_WEIGHTS:
            raise ValueError(
                f"the model would have {size:,} weights; at most {MAX_WEIGHTS:,} travel in a "
                "round's payload (use fewer or smaller hidden layers)"
            )
        noisy = self.dp_sgd is not None or self.client_dp is not None
        if noisy and not (self.rho is not None and self.rho > 0):
            raise ValueError(
                "rho must be set above 0 with dp_sgd or client_dp: it is the most each site "
                "may spend per training round"
            )
        if not noisy and self.rho is not None and self.rho > 0:
            raise ValueError("rho > 0 needs dp_sgd or client_dp: mlp adds noise only through them")
        return self


# -- the model ------------------------------------------------------------------------------------
def layer_sizes(params: MlpParams) -> list[int]:
    """Units per layer: covariates, hidden layers, one output logit."""
    return [len(params.covariates), *params.hidden, 1]


def weight_count(layers: list[int]) -> int:
    """Number of weights (matrices and biases) of a model with these layer sizes."""
    return sum(o * i + o for i, o in itertools.pairwise(layers))


def _torch() -> ModuleType:
    try:
        import torch
    except ImportError:  # torch is an optional dependency (the ``ml`` extra)
        raise TaskError(
            "the mlp task needs PyTorch: pip install 'cardiobox[ml]'", rule="missing-dependency"
        ) from None
    return torch


def init_weights(layers: list[int], seed: int) -> Array:
    """The initial flat weights: PyTorch's ``nn.Linear`` default, uniform in ±1/√fan_in.

    Parameters
    ----------
    layers : list of int
        Units per layer (:func:`layer_sizes`).
    seed : int
        Seed of a private ``torch.Generator`` (the same seed gives the same weights).
    """
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for fan_in, fan_out in itertools.pairwise(layers):
        bound = 1.0 / math.sqrt(fan_in)
        for shape in ((fan_out, fan_in), (fan_out,)):
            parts.append((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
    out: Array = torch.cat([p.reshape(-1) for p in parts]).numpy()
    return out


def predict_proba(model: dict[str, Any], x: npt.ArrayLike) -> Array:
    """Predicted probabilities of a trained model (the result's ``model``) for raw covariates.

    Parameters
    ----------
    model : dict
        ``layers``, ``weights``, ``mean`` and ``sd`` as in the task's result.
    x : array_like of shape (n, p)
        Covariates in the order of the result's ``model["covariates"]``, unstandardised.
    """
    layers = [int(v) for v in model["layers"]]
    flat = np.asarray(model["weights"], dtype=np.float64)
    h = (np.asarray(x, dtype=np.float64) - np.asarray(model["mean"])) / np.asarray(model["sd"])
    offset = 0
    for k, (fan_in, fan_out) in enumerate(itertools.pairwise(layers)):
        w = flat[offset : offset + fan_out * fan_in].reshape(fan_out, fan_in)
        offset += fan_out * fan_in
        h = h @ w.T + flat[offset : offset + fan_out]
        offset += fan_out
        if k < len(layers) - 2:
            h = np.maximum(h, 0.0)
    logit = h[:, 0]
    prob: Array = 0.5 * (1.0 + np.tanh(0.5 * logit))  # the sigmoid, without overflow
    return prob


def _logits(flat: torch.Tensor, x: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """The output logits for rows ``x`` (or one row) under the flat weights."""
    torch = _torch()
    offset = 0
    h = x
    for k, (fan_in, fan_out) in enumerate(itertools.pairwise(layers)):
        w = flat[offset : offset + fan_out * fan_in].view(fan_out, fan_in)
        offset += fan_out * fan_in
        h = torch.nn.functional.linear(h, w, flat[offset : offset + fan_out])
        offset += fan_out
        if k < len(layers) - 2:
            h = torch.relu(h)
    return h.squeeze(-1)


def _mean_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, layers: list[int]) -> Any:
    torch = _torch()
    return torch.nn.functional.binary_cross_entropy_with_logits(_logits(flat, x, layers), y)


# -- privacy costs --------------------------------------------------------------------------------
def dp_steps(params: MlpParams, n: int) -> int:
    """DP-SGD steps a site with ``n`` training rows takes per round (0 without ``dp_sgd``)."""
    if params.dp_sgd is None:
        return 0
    return params.local_epochs * math.ceil(n / params.batch_size)


def round_rho(params: MlpParams, n: int) -> float:
    """The zCDP ρ a site with ``n`` training rows spends per training round.

    ``steps / (2σ²)`` for ``dp_sgd`` plus ``2 / σ²`` for ``client_dp`` (see the module
    docstring); 0 without noise.
    """
    rho = 0.0
    if params.dp_sgd is not None:
        rho += dp_steps(params, n) / (2 * params.dp_sgd.noise_multiplier**2)
    if params.client_dp is not None:
        rho += 2 / params.client_dp.noise_multiplier**2
    return rho


def _check_budget(params: MlpParams, n: int, ctx: SiteContext) -> float:
    """The round's cost, once the request's ρ is known to cover it."""
    cost = round_rho(params, n)
    if cost == 0 and ctx.rho > 0:
        raise TaskError(
            f"this site's policy asks for noise (rho={ctx.rho:g}) but mlp adds noise only "
            "through dp_sgd or client_dp: set one of them",
            rule="dp-unsupported",
        )
    if cost > ctx.rho + 1e-12:
        raise PolicyRefusal(
            f"a training round spends rho={cost:g} at this site (dp_sgd: rho = steps/(2σ²), "
            f"client_dp: 2/σ²); the request allows rho={ctx.rho:g} per round: raise rho, the "
            "noise multiplier or the batch size",
            rule="budget-exceeded",
        )
    return cost


def _epsilon(params: MlpParams, account: dict[str, Any]) -> float:
    """ε (at δ = DELTA) of one site's DP-SGD steps and noised changes.

    The RDP accountant (with the amplification of Poisson subsampling) or the zCDP bound of
    the ρ the site charged, whichever is smaller: both hold.
    """
    orders = np.asarray(zcdp.DEFAULT_ORDERS)
    rdp = np.zeros_like(orders)
    if params.dp_sgd is not None and account["steps"]:
        rdp += account["steps"] * zcdp.rdp_subsampled_gaussian(
            account["sample_rate"], params.dp_sgd.noise_multiplier, orders
        )
    if params.client_dp is not None and account["rounds"]:
        # Sensitivity 2·clip, noise σ·clip: the Gaussian mechanism with noise multiplier σ/2.
        rdp += account["rounds"] * zcdp.rdp_subsampled_gaussian(
            1.0, params.client_dp.noise_multiplier / 2, orders
        )
    eps = zcdp.rdp_to_eps(rdp, orders, DELTA)[0]
    if account["rho"] > 0:
        eps = min(eps, zcdp.rho_to_eps(account["rho"], DELTA))
    return eps


# -- the task -------------------------------------------------------------------------------------
class MlpTask(Task[MlpParams]):
    """Federated training of a small neural-network classifier (FedAvg, FedProx, FedAdam).

    See the module docstring for the rounds, the result and the privacy accounting.
    """

    name = "mlp"
    params_model = MlpParams
    uses_secure_sum = True
    max_rounds: ClassVar[int] = MAX_TRAINING_ROUNDS + 2

    def variables(self, params: MlpParams) -> set[str]:
        """The outcome, the covariates and the split column."""
        return learning_variables(params)

    def start(self, params: MlpParams) -> dict[str, Any]:
        """Ask for the standardisation sums (checking first that PyTorch is there)."""
        _torch()
        return {"phase": "standardise"}

    # -- site half --------------------------------------------------------------------------------
    def site(
        self, table: SiteTable, params: MlpParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Standardisation sums, a round of local training, or the evaluation."""
        torch = _torch()
        torch.set_num_threads(1)  # sites run in threads of one process
        x, y = site_rows(table, params, "train")
        check_training_cells(y, ctx, params.outcome)
        cost = _check_budget(params, len(y), ctx)
        phase = payload.get("phase")
        if phase == "standardise":
            return SiteOutput(
                values={"min_cell_count": ctx.policy.min_cell_count},
                secure=standardisation_sums(x),
                mechanism="sums over sites (secure aggregation); sites with training rows, "
                f"events or non-events below {ctx.policy.min_cell_count} refuse",
            )
        layers = layer_sizes(params)
        weights = payload_vector(payload, "weights", weight_count(layers))
        std = Standardisation.from_payload(payload, len(params.covariates))
        if phase == "train":
            return self._train(params, payload, ctx, std.apply(x), y, weights, cost)
        if phase == "evaluate":
            return self._evaluate(table, params, ctx, std, std.apply(x), y, weights)
        raise TaskError(f"unknown mlp phase {phase!r} in the payload", rule="protocol")

    @staticmethod
    def _train(
        params: MlpParams,
        payload: dict[str, Any],
        ctx: SiteContext,
        z: Array,
        y: Array,
        weights: Array,
        cost: float,
    ) -> SiteOutput:
        torch = _torch()
        round_no = payload.get("round")
        if not isinstance(round_no, int) or isinstance(round_no, bool) or round_no < 1:
            raise TaskError("the payload's round must be a positive integer", rule="protocol")
        layers = layer_sizes(params)
        xt, yt = torch.from_numpy(z), torch.tensor(y)  # y is read-only: copied
        start = torch.from_numpy(weights)
        noisy = params.dp_sgd is not None or params.client_dp is not None
        secure: dict[str, Array] = {}
        if not noisy:
            with torch.no_grad():
                loss = _mean_loss(start, xt, yt, layers)
            secure["loss"] = np.array([float(loss) * len(y)])
        if params.dp_sgd is None:
            seed = [params.seed, round_no, zlib.crc32(ctx.site.encode())]
            local = _local_sgd(params, xt, yt, start, np.random.default_rng(seed))
        else:
            local = _local_dpsgd(params, xt, yt, start, ctx.rng)
        values: dict[str, Any] = {"min_cell_count": ctx.policy.min_cell_count}
        mechanism = "weights summed over sites (secure aggregation)"
        if params.client_dp is None:
            n = float(len(y))
            secure.update(n=np.array([n]), weighted=n * local)
        else:
            secure["delta"] = _noised_change(params.client_dp, local - weights, ctx.rng)
            mechanism = (
                f"change clipped to {params.client_dp.clip:g} with Gaussian noise "
                f"(σ={params.client_dp.noise_multiplier:g}·clip), summed over sites"
            )
        if params.dp_sgd is not None:
            mechanism = (
                f"DP-SGD (clip {params.dp_sgd.clip:g}, σ={params.dp_sgd.noise_multiplier:g}, "
                f"{dp_steps(params, len(y))} Poisson-sampled steps); " + mechanism
            )
            values.update(
                dp_steps=dp_steps(params, len(y)),
                sample_rate=min(1.0, params.batch_size / len(y)),
            )
        if noisy:
            values["rho"] = cost
        return SiteOutput(values=values, secure=secure, rho=cost, mechanism=mechanism)

    @staticmethod
    def _evaluate(
        table: SiteTable,
        params: MlpParams,
        ctx: SiteContext,
        std: Standardisation,
        z_train: Array,
        y_train: Array,
        weights: Array,
    ) -> SiteOutput:
        torch = _torch()
        layers = layer_sizes(params)
        flat = torch.from_numpy(weights)
        x_test, y_test = site_rows(table, params, "test")
        with torch.no_grad():
            logits = _logits(flat, torch.from_numpy(std.apply(x_test)), layers)
            prob = torch.sigmoid(logits).numpy().astype(np.float64)
        values, secure = evaluation_release(
            y_test, prob, ctx, params.bins, bootstrap=params.bootstrap
        )
        if params.dp_sgd is None and params.client_dp is None:
            with torch.no_grad():
                loss = _mean_loss(flat, torch.from_numpy(z_train), torch.tensor(y_train), layers)
            secure.update(
                train_loss=np.array([float(loss) * len(y_train)]),
                train_n=np.array([float(len(y_train))]),
            )
        return SiteOutput(
            values=values,
            secure=secure,
            mechanism="evaluation sums over sites (secure aggregation); the site's own metrics "
            f"only when its test rows, events and non-events reach {ctx.policy.min_cell_count}",
        )

    # -- hub half ---------------------------------------------------------------------------------
    def hub(self, params: MlpParams, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """Standardise and initialise, average the sites' models, or finish with the evaluation."""
        phase = state.get("phase", "standardise")
        if phase == "standardise":
            std = pooled_standardisation(result.sums, params.covariates)
            layers = layer_sizes(params)
            weights = init_weights(layers, params.seed)
            state.update(
                phase="train",
                round=1,
                n_train=std.n,
                standardisation=std.to_payload(),
                weights=weights.tolist(),
                m=[0.0] * len(weights),
                v=[0.0] * len(weights),
                history=[],
                accounts={},
            )
            return Next(self._payload(state, "train"))
        if phase == "train":
            return self._aggregate(params, result, state)
        return Result(self._result(params, result, state))

    @staticmethod
    def _payload(state: dict[str, Any], phase: str) -> dict[str, Any]:
        payload = {"phase": phase, "weights": state["weights"], **state["standardisation"]}
        if phase == "train":
            payload["round"] = state["round"]
        return payload

    def _aggregate(self, params: MlpParams, result: RoundResult, state: dict[str, Any]) -> Next:
        sums = result.sums
        weights = np.asarray(state["weights"], dtype=np.float64)
        if params.client_dp is None:
            averaged = sums["weighted"] / float(sums["n"][0])
            change = averaged - weights
        else:
            change = sums["delta"] / len(result.sites)
            averaged = weights + change
        if params.strategy == "fedadam":
            m = params.beta1 * np.asarray(state["m"]) + (1 - params.beta1) * change
            v = params.beta2 * np.asarray(state["v"]) + (1 - params.beta2) * change**2
            averaged = weights + params.server_lr * m / (np.sqrt(v) + params.tau)
            state.update(m=m.tolist(), v=v.tolist())
        round_no = int(state["round"])
        if not np.all(np.isfinite(averaged)):
            raise TaskError(
                f"mlp diverged in training round {round_no}: lower lr (or server_lr)",
                rule="no-convergence",
            )
        loss = float(sums["loss"][0]) / float(sums["n"][0]) if "loss" in sums else None
        state["history"].append({"round": round_no, "sites": list(result.sites), "loss": loss})
        for site in result.sites:
            values = result.values[site]
            account = state["accounts"].setdefault(
                site, {"rho": 0.0, "steps": 0, "sample_rate": 0.0, "rounds": 0}
            )
            account["rho"] += float(values.get("rho", 0.0))
            account["steps"] += int(values.get("dp_steps", 0))
            account["sample_rate"] = float(values.get("sample_rate", 0.0))
            account["rounds"] += 1
        state["weights"] = averaged.tolist()
        if round_no >= params.rounds:
            state["phase"] = "evaluate"
            return Next(self._payload(state, "evaluate"))
        state["round"] = round_no + 1
        return Next(self._payload(state, "train"))

    def _result(
        self, params: MlpParams, result: RoundResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        sums = result.sums
        train_loss = None
        if "train_loss" in sums:
            train_loss = float(sums["train_loss"][0]) / float(sums["train_n"][0])
        dp = None
        if params.dp_sgd is not None or params.client_dp is not None:
            accounts = state["accounts"]
            eps = {s: _epsilon(params, a) for s, a in sorted(accounts.items())}
            rho = {s: a["rho"] for s, a in sorted(accounts.items())}
            dp = {
                "rho_per_site": rho,
                "epsilon": max(eps.values(), default=0.0),
                "delta": DELTA,
                "epsilon_per_site": eps,
                "epsilon_from_rho": max(
                    (zcdp.rho_to_eps(r, DELTA) for r in rho.values() if r > 0), default=0.0
                ),
                "dp_sgd": params.dp_sgd.model_dump() if params.dp_sgd else None,
                "client_dp": params.client_dp.model_dump() if params.client_dp else None,
                "accounting": "rho_per_site: the zCDP the sites charged (DP-SGD steps/(2σ²) "
                "without subsampling amplification, client_dp 2/σ² per round); epsilon: the "
                "RDP accountant with Poisson subsampling, the tighter bound (information)",
            }
        evaluation = pooled_evaluation(result, params.bins)
        return {
            "outcome": params.outcome,
            "covariates": list(params.covariates),
            "strategy": params.strategy,
            "rounds": params.rounds,
            "sites": list(result.sites),
            "n_train": state["n_train"],
            "history": state["history"],
            "train_loss": train_loss,
            "global": evaluation["global"],
            "per_site": evaluation["per_site"],
            "model": {
                "layers": layer_sizes(params),
                "activation": "relu",
                "output": "sigmoid",
                "covariates": list(params.covariates),
                "weights": state["weights"],
                **state["standardisation"],
            },
            "dp": dp,
            "evaluated_on": evaluated_on(params),
            "sites_refused": dict(result.refused),
            "sites_failed": dict(result.failed),
        }


# -- local training -------------------------------------------------------------------------------
def _local_sgd(
    params: MlpParams,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    rng: np.random.Generator,
) -> Array:
    """``local_epochs`` epochs of shuffled minibatch SGD from the global weights."""
    torch = _torch()
    layers = layer_sizes(params)
    w = start.clone().requires_grad_(True)
    prox = params.mu if params.strategy == "fedprox" else 0.0
    n = len(y)
    for _ in range(params.local_epochs):
        order = torch.from_numpy(rng.permutation(n))
        for batch in torch.split(order, params.batch_size):
            loss = _mean_loss(w, x[batch], y[batch], layers)
            if prox:
                loss = loss + prox / 2 * torch.sum((w - start) ** 2)
            (grad,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                w -= params.lr * grad
    out: Array = w.detach().numpy()
    return out


def _local_dpsgd(
    params: MlpParams,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    rng: np.random.Generator,
) -> Array:
    """DP-SGD from the global weights: Poisson batches, clipped per-sample gradients, noise."""
    torch = _torch()
    from torch.func import grad, vmap

    assert params.dp_sgd is not None
    layers = layer_sizes(params)
    clip, sigma = params.dp_sgd.clip, params.dp_sgd.noise_multiplier
    prox = params.mu if params.strategy == "fedprox" else 0.0
    n = len(y)
    rate = min(1.0, params.batch_size / n)
    expected = rate * n  # dividing by the realised batch size would leak it

    # The loss of one row (a 0-d mean), differentiated and mapped over the batch's rows.
    per_sample = vmap(grad(_mean_loss), in_dims=(None, 0, 0, None))
    w = start.clone()
    for _ in range(dp_steps(params, n)):
        batch = torch.from_numpy(np.flatnonzero(rng.random(n) < rate))
        total = torch.zeros_like(w)
        if len(batch):
            grads = per_sample(w, x[batch], y[batch], layers)
            norms = torch.linalg.vector_norm(grads, dim=1)
            scale = torch.clamp(clip / torch.clamp(norms, min=1e-300), max=1.0)
            total = (grads * scale[:, None]).sum(dim=0)
        noise = torch.from_numpy(rng.normal(0.0, sigma * clip, size=len(w)))
        step = (total + noise) / expected
        if prox:
            step = step + prox * (w - start)
        w = w - params.lr * step
    out: Array = w.numpy()
    return out


def _noised_change(noise: NoiseParams, change: Array, rng: np.random.Generator) -> Array:
    """The change clipped to L2 norm ``clip``, plus N(0, (σ·clip)²) per coordinate."""
    norm = float(np.linalg.norm(change))
    clipped = change * min(1.0, noise.clip / norm) if norm > 0 else change
    out: Array = clipped + rng.normal(0.0, noise.noise_multiplier * noise.clip, size=len(change))
    return out


register(MlpTask())
