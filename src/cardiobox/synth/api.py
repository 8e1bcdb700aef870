"""Fit a synthesizer to a table and sample synthetic tables (the Python API behind the CLI).

The contract (see ``docs/synth.md``): ``fit(table, domain, budget) → model`` and
``model.sample(n) → table``. The domain is public metadata; the budget is (ε, δ), spent as
zero-concentrated DP ρ by MST or AIM; the model is saved as JSON (no pickle) with the domain
and the guarantee, so a sample can always say what protects it.

Example
-------
>>> from cardiobox.synth import fit, template                                  # doctest: +SKIP
>>> model = fit("heart.csv", template("heart_failure_records"), epsilon=1.0)   # doctest: +SKIP
>>> model.sample(1000, seed=1).num_rows                                        # doctest: +SKIP
1000
"""

from __future__ import annotations

import hashlib
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from cardiobox import __version__, tableio
from cardiobox.errors import CardioboxError, InputError, Location
from cardiobox.privacy.audit import AuditLog, audit_path_for
from cardiobox.privacy.policy import PolicyRefusal, SitePolicy
from cardiobox.privacy.zcdp import eps_delta_to_rho, rho_to_eps
from cardiobox.synth.aim import fit_aim
from cardiobox.synth.domain import Domain, load_domain
from cardiobox.synth.encode import decode, encode
from cardiobox.synth.mst import fit_mst
from cardiobox.synth.pgm import MarginalModel

Mechanism = Literal["mst", "aim"]
MODEL_FORMAT = 1
_NOTE = (
    "(epsilon, delta)-differential privacy of each input row under add/remove of one row, "
    "through zCDP rho with the tight conversion"
)
_DRAFTED = "; the domain was drafted from the data and is NOT covered"


class SynthError(CardioboxError):
    """A fit or sample that cannot be done (bad budget, empty table, unreadable model)."""


@dataclass(frozen=True)
class Guarantee:
    """What protects the rows a model was fitted on.

    Parameters
    ----------
    mechanism : str
        ``mst`` or ``aim``.
    epsilon, delta : float
        The (ε, δ)-DP guarantee asked for.
    rho : float
        The zCDP budget that gives it (tight conversion), all spent by the mechanism.
    domain_public : bool
        False when the domain was drafted from the data: its bounds and categories are then
        not covered by the guarantee.
    """

    mechanism: str
    epsilon: float
    delta: float
    rho: float
    domain_public: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "mechanism": self.mechanism,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "rho": self.rho,
            "domain_public": self.domain_public,
            "note": _NOTE if self.domain_public else _NOTE + _DRAFTED,
        }


@dataclass
class SynthModel:
    """A fitted synthesizer: the domain, the graphical model, the guarantee."""

    domain: Domain
    model: MarginalModel
    guarantee: Guarantee
    fitted: dict[str, Any] = field(default_factory=dict)

    def sample(self, n: int, seed: int | None = None) -> pa.Table:
        """``n`` synthetic rows (decoded to the domain's columns and types).

        Sampling is post-processing of the released model: it costs no privacy.
        """
        if n < 0:
            raise SynthError(f"n must be ≥ 0, got {n}", rule="bad-n")
        rng = np.random.default_rng(seed)
        return decode(self.model.sample(n, rng), self.domain, rng)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what :meth:`save` writes)."""
        return {
            "cardiobox_synth_model": MODEL_FORMAT,
            "guarantee": self.guarantee.to_dict(),
            "fitted": self.fitted,
            "domain": self.domain.to_dict(),
            "model": self.model.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
        return out

    @classmethod
    def load(cls, path: str | Path) -> SynthModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        InputError
            For a missing, malformed or foreign file.
        """
        p = Path(path)
        try:
            data = orjson.loads(p.read_bytes())
        except FileNotFoundError:
            raise InputError("no such file", "missing-input", Location(file=str(p))) from None
        except orjson.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc}", "model-format", Location(file=str(p))) from exc
        if not isinstance(data, dict) or data.get("cardiobox_synth_model") != MODEL_FORMAT:
            raise InputError(
                "not a cardiobox synthesizer model", "model-format", Location(file=str(p))
            )
        try:
            g = data["guarantee"]
            guarantee = Guarantee(
                g["mechanism"], g["epsilon"], g["delta"], g["rho"], g["domain_public"]
            )
            domain = Domain.from_dict(data["domain"], source=str(p))
            model = MarginalModel.from_dict(data["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"the model file is incomplete or damaged: {exc}", "model-format",
                Location(file=str(p)),
            ) from exc  # fmt: skip
        return cls(domain, model, guarantee, data.get("fitted", {}))


def _table(table: pa.Table | str | Path) -> tuple[pa.Table, str]:
    if isinstance(table, pa.Table):
        return table, "table"
    return tableio.read_table(table), Path(table).name


def budget_rho(epsilon: float, delta: float) -> float:
    """The zCDP ρ whose tight conversion gives (ε, δ).

    Raises
    ------
    SynthError
        For ε ≤ 0 or δ outside (0, 1).
    """
    if not np.isfinite(epsilon) or epsilon <= 0:
        raise SynthError(f"epsilon must be > 0, got {epsilon}", rule="bad-budget")
    if not 0 < delta < 1:
        raise SynthError(f"delta must be in (0, 1), got {delta}", rule="bad-budget")
    return float(eps_delta_to_rho(epsilon, delta))


def _ledger(table: pa.Table | str | Path, policy: SitePolicy | None, rho: float) -> AuditLog | None:
    if policy is None:
        return None
    if isinstance(table, pa.Table):
        raise SynthError(
            "a fit under a site policy needs the table's file (its ledger lives beside it)",
            rule="no-ledger",
        )
    policy.check_task("synth")
    if rho > policy.budget.max_rho_per_release:
        raise PolicyRefusal(
            f"the fit would spend rho={rho:.4g}; this site's policy allows at most "
            f"{policy.budget.max_rho_per_release:g} per release",
            rule="rho-per-release",
        )
    ledger = AuditLog(audit_path_for(table), policy.budget.rho)
    if rho > ledger.remaining() + 1e-12:
        raise PolicyRefusal(
            f"the fit would spend rho={rho:.4g}; this site has {ledger.remaining():.4g} of its "
            f"budget of {policy.budget.rho:g} left",
            rule="budget-exceeded",
        )
    return ledger


def fit(
    table: pa.Table | str | Path,
    domain: Domain | str | Path,
    mechanism: Mechanism = "mst",
    epsilon: float = 1.0,
    delta: float = 1e-5,
    seed: int | None = None,
    policy: SitePolicy | None = None,
    **options: Any,
) -> SynthModel:
    """Fit MST or AIM to a table under (ε, δ)-differential privacy.

    Parameters
    ----------
    table : pyarrow.Table or path
        The private table (CSV, TSV or Parquet when a path); its columns must be the domain's.
    domain : Domain or path
        Public metadata: every column's categories, bins or bounds.
    mechanism : {"mst", "aim"}
        MST (fast; a tree of 2-way marginals) or AIM (adaptive; more marginals, slower).
    epsilon, delta : float
        The privacy guarantee (δ = 1e-5 by default).
    seed : int, optional
        Seed of the noise and selections (for reproducible runs; by default fresh entropy).
    policy : SitePolicy, optional
        The site's policy: when given (and the table is a file), the fit must be allowed
        (task ``synth``), its ρ within the policy's per-release limit and within the budget
        left in the site's ledger (the audit log beside the table), where it is then charged.
    **options
        Passed to :func:`cardiobox.synth.mst.fit_mst` or :func:`cardiobox.synth.aim.fit_aim`.

    Raises
    ------
    SynthError
        For a bad budget or an empty table.
    DomainError
        For columns missing from the domain or the table.
    PolicyRefusal
        When the site's policy does not allow the fit, or its budget does not cover it.
    """
    rho = budget_rho(epsilon, delta)
    ledger = _ledger(table, policy, rho)
    data, source = _table(table)
    dom = domain if isinstance(domain, Domain) else load_domain(domain)
    if data.num_rows == 0:
        raise SynthError(f"the table {source} has no rows", rule="empty-table")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoded = encode(data, dom)
    notes = [str(w.message) for w in caught]
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    fitter = fit_mst if mechanism == "mst" else fit_aim
    if mechanism not in ("mst", "aim"):
        raise SynthError(f"unknown mechanism {mechanism!r} (mst or aim)", rule="bad-mechanism")
    model = fitter(encoded.codes, encoded.sizes, rho, rng, **options)
    seconds = time.perf_counter() - started
    if ledger is not None:  # charged once the model exists, before anything is released
        ledger.record(
            uuid.uuid4().hex, "synth", 1, {"mechanism": mechanism, "epsilon": epsilon,
            "delta": delta, "rows": data.num_rows}, "released", reason=f"{mechanism} model",
            rho=model.rho,
        )  # fmt: skip
    fingerprint = hashlib.sha256(orjson.dumps(dom.to_dict())).hexdigest()[:16]
    return SynthModel(
        dom,
        model,
        Guarantee(mechanism, float(epsilon), float(delta), rho, not dom.derived_from_data),
        {
            "source": source,
            "rows": data.num_rows,
            "columns": len(dom.columns),
            "out_of_range": {k: v for k, v in encoded.out_of_range.items() if v},
            "seconds": seconds,
            "seed": seed,
            "domain_sha256": fingerprint,
            "rho_spent": model.rho,
            "epsilon_spent": float(rho_to_eps(model.rho, delta)) if model.rho > 0 else 0.0,
            "cardiobox": __version__,
            "notes": notes,
        },
    )


def write_sample(model: SynthModel, n: int, out: str | Path, seed: int | None = None) -> Path:
    """Sample ``n`` rows and write them (CSV or Parquet) with ``<out>.synth.json`` beside them.

    The side file records the domain, the guarantee and how the sample was made.
    """
    table = model.sample(n, seed)
    path = tableio.write_table(table, out)
    side = path.with_name(path.name + ".synth.json")
    side.write_bytes(
        orjson.dumps(
            {
                "synthetic": True,
                "rows": n,
                "seed": seed,
                "guarantee": model.guarantee.to_dict(),
                "fitted": model.fitted,
                "domain": model.domain.to_dict(),
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
        )
    )
    return path
