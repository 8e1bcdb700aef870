"""A site's privacy policy: what the site lets federated tasks compute and release.

The policy is a YAML file owned by the site, read by the site's node and enforced there,
whatever the hub asks. Example::

    cardiobox_policy: 1
    site: hospital_a
    allowed_tasks: [count, describe, crosstab, km, logreg, linreg, cox]
    allowed_variables: ["*"]           # every column of the site table ...
    denied_variables: [patient_id]     # ... but these
    min_cell_count: 10                 # no count below this leaves the site in clear
    min_sites: 3                       # no aggregate over fewer sites
    budget:
      rho: 1.0                         # total zero-concentrated DP budget of the site
      max_rho_per_release: 0.1
      default_rho: 0.0                 # noise added when a request asks for none
      require_noise: false             # refuse releases without DP noise
    definitions:                       # cohorts and feature sets requests may name
      my_cohort: cohorts/my_cohort.yaml

Every field has a default, so an empty policy (``cardiobox_policy: 1``) is the strictest
sensible one for analytics: every task, every non-identifying column, cells of 10, three sites,
no DP budget (so releases that ask for noise are refused until the site grants one).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cardiobox import yamlio
from cardiobox.errors import CardioboxError, InputError, Location

#: Every release a policy can allow: the federated tasks, and fitting a synthesizer.
ALL_TASKS = (
    "count", "describe", "crosstab", "km", "logreg", "linreg", "cox", "mlp", "gbt", "synth",
)  # fmt: skip
#: Columns that identify people or rows: never allowed, whatever the policy says.
IDENTIFIERS = ("patient_id", "row_id", "encounter_id", "index_encounter_id")


class PolicyRefusal(CardioboxError):  # noqa: N818 (a refusal, not a fault)
    """A request the site's policy does not allow (refused at the site and logged)."""


class Budget(BaseModel):
    """The site's differential-privacy budget, in zero-concentrated DP (ρ).

    Parameters
    ----------
    rho : float
        Total budget of the site over its lifetime; every noisy release spends part of it and
        the ledger refuses a release that would go beyond (default 0: no noisy release).
    max_rho_per_release : float
        The most one release may spend (default 0.1).
    default_rho : float
        What a release spends when the request names no ρ (default 0: no noise).
    require_noise : bool
        Refuse every release that carries no DP noise (default false).
    """

    model_config = ConfigDict(extra="forbid")

    rho: float = Field(0.0, ge=0)
    max_rho_per_release: float = Field(0.1, ge=0)
    default_rho: float = Field(0.0, ge=0)
    require_noise: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Budget:
        if self.default_rho > self.max_rho_per_release:
            raise ValueError("default_rho cannot exceed max_rho_per_release")
        if self.require_noise and self.default_rho == 0:
            raise ValueError("require_noise needs a default_rho above 0")
        return self


class SitePolicy(BaseModel):
    """What a site allows; see the module docstring for the YAML form.

    Parameters
    ----------
    site : str, optional
        The site's name, for messages and the audit log.
    allowed_tasks : list of str
        Task names the site runs (default: all of :data:`ALL_TASKS`).
    allowed_variables : list of str
        Column names or glob patterns a task may read (default ``["*"]``).
    denied_variables : list of str
        Names or patterns never allowed, even when matched above; identifier columns
        (:data:`IDENTIFIERS`) are always denied.
    min_cell_count : int
        Counts below this never leave the site in clear (default 10).
    min_sites : int
        The site takes part only in aggregates over at least this many sites (default 3).
    max_rounds : int
        The most rounds the site answers in one run (default 500).
    max_message_bytes : int
        Requests larger than this are refused unread (default 8 MB).
    budget : Budget
        The differential-privacy budget.
    definitions : dict of str to str
        Cohort definitions and feature sets a request may name, by name → file (relative to
        the policy file); besides these only the built-in library's names are accepted, never
        a path sent by the hub.
    """

    model_config = ConfigDict(extra="forbid")

    cardiobox_policy: Literal[1] = 1
    site: str | None = None
    allowed_tasks: list[str] = Field(default_factory=lambda: list(ALL_TASKS))
    allowed_variables: list[str] = Field(default_factory=lambda: ["*"])
    denied_variables: list[str] = Field(default_factory=list)
    min_cell_count: int = Field(10, ge=1)
    min_sites: int = Field(3, ge=1)
    max_rounds: int = Field(500, ge=1)
    max_message_bytes: int = Field(8_000_000, ge=1024)
    budget: Budget = Field(default_factory=Budget)
    definitions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_tasks(self) -> SitePolicy:
        unknown = sorted(set(self.allowed_tasks) - set(ALL_TASKS))
        if unknown:
            raise ValueError(
                f"unknown task(s) in allowed_tasks: {', '.join(unknown)} "
                f"(tasks are {', '.join(ALL_TASKS)})"
            )
        return self

    # -- checks ------------------------------------------------------------------------------
    def variable_allowed(self, name: str) -> bool:
        """Whether a task may read the column ``name``."""
        if name in IDENTIFIERS:
            return False
        if any(fnmatch.fnmatchcase(name, p) for p in self.denied_variables):
            return False
        return any(fnmatch.fnmatchcase(name, p) for p in self.allowed_variables)

    def check_task(self, task: str) -> None:
        """Raise :class:`PolicyRefusal` unless the task is allowed."""
        if task not in self.allowed_tasks:
            raise PolicyRefusal(
                f"task {task!r} is not allowed by this site's policy "
                f"(allowed: {', '.join(self.allowed_tasks) or 'none'})",
                rule="task-not-allowed",
            )

    def check_variables(self, names: set[str]) -> None:
        """Raise :class:`PolicyRefusal` naming every column the policy does not allow."""
        refused = sorted(n for n in names if not self.variable_allowed(n))
        if refused:
            raise PolicyRefusal(
                f"variable(s) not allowed by this site's policy: {', '.join(refused)}",
                rule="variable-not-allowed",
            )

    def check_sites(self, n_sites: int) -> None:
        """Raise :class:`PolicyRefusal` when an aggregate would cover too few sites."""
        if n_sites < self.min_sites:
            raise PolicyRefusal(
                f"the aggregate would cover {n_sites} site(s); this site's policy needs at "
                f"least {self.min_sites}",
                rule="too-few-sites",
            )

    def check_cell(self, n: int, what: str) -> None:
        """Raise :class:`PolicyRefusal` when a count released in clear is below the minimum."""
        if n < self.min_cell_count:
            raise PolicyRefusal(
                f"{what} is below this site's minimum cell count of {self.min_cell_count}",
                rule="small-cell",
            )

    def release_rho(self, requested: float | None) -> float:
        """The ρ a release will spend: the request's, or the policy's default.

        Raises
        ------
        PolicyRefusal
            When the request asks for more than ``max_rho_per_release``, or for no noise
            while the policy requires it.
        """
        rho = self.budget.default_rho if requested is None else float(requested)
        if rho < 0:
            raise PolicyRefusal(f"rho must be ≥ 0, got {rho}", rule="bad-request")
        if rho > self.budget.max_rho_per_release:
            raise PolicyRefusal(
                f"a release may spend at most rho={self.budget.max_rho_per_release} at this "
                f"site; the request asks for {rho}",
                rule="rho-per-release",
            )
        if rho == 0 and self.budget.require_noise:
            raise PolicyRefusal(
                "this site releases only with differential-privacy noise (rho > 0)",
                rule="noise-required",
            )
        return rho


def load_policy(path: str | Path | None) -> SitePolicy:
    """Read a site policy from YAML; ``None`` gives the default policy.

    Raises
    ------
    InputError
        Naming the file and the field for a syntax or schema error.
    """
    if path is None:
        return SitePolicy()
    p = Path(path)
    raw: Any = yamlio.load_file(p, "policy-syntax")
    if not isinstance(raw, dict) or "cardiobox_policy" not in raw:
        raise InputError(
            "expected a site policy (a mapping with cardiobox_policy: 1)",
            rule="policy-schema",
            location=Location(file=str(p)),
        )
    try:
        policy = SitePolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "policy"
        raise InputError(
            f"{field}: {first['msg'].removeprefix('Value error, ')}",
            rule="policy-schema",
            location=Location(file=str(p)),
        ) from exc
    policy.definitions = {k: str((p.parent / v).resolve()) for k, v in policy.definitions.items()}
    return policy
