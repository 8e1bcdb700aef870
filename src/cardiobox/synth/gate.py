"""The release gate: synthetic data are published only when their report passes thresholds.

Thresholds are a flat mapping (a dict, or a YAML/JSON file) of limits on the measures of
:mod:`cardiobox.synth.evaluate`; any subset may be given, unknown names are refused (a typo
must not switch a check off)::

    max_mean_1way_tvd: 0.10          # mean 1-way total variation distance
    max_mean_2way_tvd: 0.20          # mean 2-way TVD over all pairs of columns
    max_worst_2way_tvd: 0.50         # the largest 2-way TVD of any pair
    max_mean_association_diff: 0.15  # mean |ΔV| of Cramér's V over all pairs
    min_tstr_trtr_ratio: 0.80        # TSTR AUROC / TRTR AUROC, each model
    min_tstr_auroc: 0.60             # TSTR AUROC, each model
    max_mia_auroc: 0.60              # membership-inference attack AUROC
    max_exact_copy_share: 0.05       # synthetic rows that copy a training row's codes
    max_exact_copy_excess: 0.02      # ... beyond the share of holdout rows that do
    max_closer_than_holdout_median: 0.60  # synthetic rows closer than the holdout median DCR

A threshold whose measure the report lacks (utility without an outcome column, a 2-way
measure of a one-column table) fails: a gate never passes what it could not check.
:data:`DEFAULT_THRESHOLDS` holds no utility threshold, since not every report has an outcome.

``check_release(report, thresholds)`` gives a :class:`GateResult`; ``refuse=True`` (or
:meth:`GateResult.raise_if_failed`) raises :class:`ReleaseRefused` naming every failed
threshold, which is what a release does before it publishes anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cardiobox import yamlio
from cardiobox.errors import CardioboxError, Location


class GateConfigError(CardioboxError, ValueError):
    """Thresholds that cannot be used: an unknown name, a value out of range, a bad file."""


class ReleaseRefused(CardioboxError):  # noqa: N818 (a refusal, not a fault)
    """The synthetic data failed the release gate and must not be published.

    Parameters
    ----------
    result : GateResult
        The failed gate, with every failed check.
    """

    def __init__(self, result: GateResult) -> None:
        self.result = result
        lines = "; ".join(str(f) for f in result.failures)
        n = len(result.failures)
        super().__init__(
            f"release refused: the synthetic data fail {n} release threshold"
            f"{'s' if n != 1 else ''}: {lines}",
            rule="release-gate",
        )


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class Thresholds(BaseModel):
    """Limits a synthetic table must meet to be released (``None``: not checked).

    Parameters
    ----------
    max_mean_1way_tvd : float, optional
        Largest mean 1-way total variation distance, in [0, 1].
    max_mean_2way_tvd : float, optional
        Largest mean 2-way TVD over all pairs of columns, in [0, 1].
    max_worst_2way_tvd : float, optional
        Largest 2-way TVD of any pair, in [0, 1].
    max_mean_association_diff : float, optional
        Largest mean ``|ΔV|`` of Cramér's V over all pairs, in [0, 1].
    min_tstr_trtr_ratio : float, optional
        Smallest TSTR / TRTR AUROC ratio of every model, at least 0.
    min_tstr_auroc : float, optional
        Smallest TSTR AUROC of every model, in [0, 1].
    max_mia_auroc : float, optional
        Largest membership-inference attack AUROC, in [0, 1].
    max_exact_copy_share : float, optional
        Largest share of synthetic rows copying a training row's codes, in [0, 1].
    max_exact_copy_excess : float, optional
        Largest excess of that share over the share of holdout rows that equal a training
        row's codes (chance copies, many in a domain of few coarse columns), in [0, 1].
    max_closer_than_holdout_median : float, optional
        Largest share of synthetic rows closer to the training table than the holdout's
        median distance, in [0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_mean_1way_tvd: float | None = Field(default=None, ge=0.0, le=1.0)
    max_mean_2way_tvd: float | None = Field(default=None, ge=0.0, le=1.0)
    max_worst_2way_tvd: float | None = Field(default=None, ge=0.0, le=1.0)
    max_mean_association_diff: float | None = Field(default=None, ge=0.0, le=1.0)
    min_tstr_trtr_ratio: float | None = Field(default=None, ge=0.0)
    min_tstr_auroc: float | None = Field(default=None, ge=0.0, le=1.0)
    max_mia_auroc: float | None = Field(default=None, ge=0.0, le=1.0)
    max_exact_copy_share: float | None = Field(default=None, ge=0.0, le=1.0)
    max_exact_copy_excess: float | None = Field(default=None, ge=0.0, le=1.0)
    max_closer_than_holdout_median: float | None = Field(default=None, ge=0.0, le=1.0)

    def active(self) -> dict[str, float]:
        """The thresholds that are set, by name."""
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


#: A starting point (not a policy): fidelity and privacy limits every report can be held to.
#: Exact copies are limited beyond chance (the holdout's share): in a domain of a few coarse
#: columns most rows, real or synthetic, repeat the codes of some training row.
DEFAULT_THRESHOLDS = Thresholds(
    max_mean_2way_tvd=0.2,
    max_mia_auroc=0.6,
    max_exact_copy_excess=0.05,
)


def load_thresholds(source: Thresholds | Mapping[str, Any] | str | Path) -> Thresholds:
    """Thresholds from a mapping or a YAML/JSON file.

    Parameters
    ----------
    source : Thresholds, mapping, str or Path
        The thresholds, or the path of a file holding them (a mapping of names to numbers).

    Raises
    ------
    GateConfigError
        Naming the file and the threshold for an unknown name or a value out of range.
    """
    if isinstance(source, Thresholds):
        return source
    file: str | None = None
    data: Any = source
    if isinstance(source, str | Path):
        file = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise GateConfigError(
                f"cannot read the thresholds: {exc.strerror or exc}",
                rule="missing-input",
                location=Location(file=file),
            ) from None
        try:
            data = json.loads(text) if file.endswith(".json") else yamlio.safe_load(text)
        except Exception as exc:  # YAML and JSON syntax errors
            raise GateConfigError(
                f"not valid YAML/JSON: {exc}", rule="syntax", location=Location(file=file)
            ) from None
    if not isinstance(data, Mapping):
        raise GateConfigError(
            "thresholds must be a mapping of threshold names to numbers",
            rule="gate-schema",
            location=Location(file=file),
        )
    try:
        return Thresholds.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        known = ", ".join(Thresholds.model_fields)
        msg = (
            f"unknown threshold {name!r} (known: {known})"
            if first["type"] == "extra_forbidden"
            else f"threshold {name!r}: {first['msg']}"
        )
        raise GateConfigError(
            msg, rule="gate-schema", location=Location(file=file, element=name)
        ) from None


@dataclass(frozen=True)
class GateCheck:
    """One threshold checked against one measure.

    Parameters
    ----------
    threshold : str
        The threshold's name (e.g. ``max_mia_auroc``).
    measure : str
        What was measured, in words (with the model for per-model thresholds).
    value : float or None
        The measure; ``None`` when the report lacks it.
    limit : float
        The threshold's value.
    passed : bool
        Whether the measure meets the threshold.
    """

    threshold: str
    measure: str
    value: float | None
    limit: float
    passed: bool

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.threshold}: {self.measure} was not measured (limit {self.limit:g})"
        sign = "≤" if self.threshold.startswith("max_") else "≥"
        verdict = "meets" if self.passed else "breaks"
        return (
            f"{self.threshold}: {self.measure} is {self.value:.4g}, "
            f"{verdict} the limit {sign} {self.limit:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The check as plain data."""
        return {
            "threshold": self.threshold,
            "measure": self.measure,
            "value": self.value,
            "limit": self.limit,
            "passed": self.passed,
            "message": str(self),
        }


@dataclass(frozen=True)
class GateResult:
    """The verdict of the release gate.

    Parameters
    ----------
    passed : bool
        True when every threshold is met.
    failures : list of GateCheck
        The failed checks (empty when ``passed``).
    checks : list of GateCheck
        Every check, in threshold order.
    thresholds : dict of str to float
        The thresholds in force.
    """

    passed: bool
    failures: list[GateCheck] = field(default_factory=list)
    checks: list[GateCheck] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        """Raise :class:`ReleaseRefused` naming every failed threshold, unless passed."""
        if not self.passed:
            raise ReleaseRefused(self)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain data (the ``gate`` entry of ``report.json``)."""
        return {
            "passed": self.passed,
            "thresholds": dict(self.thresholds),
            "checks": [c.to_dict() for c in self.checks],
            "failures": [str(f) for f in self.failures],
        }


def _get(doc: Any, *path: str | int) -> float | None:
    """A number at ``path`` in the report, ``None`` when absent or not a finite number."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(doc, list) or key >= len(doc):
                return None
        elif not isinstance(doc, Mapping) or key not in doc:
            return None
        doc = doc[key]
    if isinstance(doc, bool) or not isinstance(doc, int | float) or not math.isfinite(doc):
        return None
    return float(doc)


def _path(*path: str) -> Callable[[Any], float | None]:
    return lambda doc: _get(doc, *path)


def _copy_excess(doc: Any) -> float | None:
    synthetic = _get(doc, "privacy", "exact_copy_share")
    holdout = _get(doc, "privacy", "exact_copy_share_holdout")
    return None if synthetic is None or holdout is None else synthetic - holdout


#: Threshold name → (measure in words, how to read the value from the report).
_SINGLE: dict[str, tuple[str, Callable[[Any], float | None]]] = {
    "max_mean_1way_tvd": ("mean 1-way TVD", _path("fidelity", "one_way_mean", "synthetic")),
    "max_mean_2way_tvd": ("mean 2-way TVD", _path("fidelity", "two_way_mean", "synthetic")),
    "max_worst_2way_tvd": ("worst 2-way TVD", _path("fidelity", "two_way_max", "synthetic")),
    "max_mean_association_diff": (
        "mean Cramér's V difference",
        _path("fidelity", "association_mean", "synthetic"),
    ),
    "max_mia_auroc": ("membership-inference AUROC", _path("privacy", "mia_auroc")),
    "max_exact_copy_share": ("share of exact copies", _path("privacy", "exact_copy_share")),
    "max_exact_copy_excess": (
        "share of exact copies above the holdout's",
        _copy_excess,
    ),
    "max_closer_than_holdout_median": (
        "share of synthetic rows closer than the holdout median",
        _path("privacy", "closer_than_holdout_median"),
    ),
}
#: Per-model thresholds → (measure in words, key in each ``utility.models`` entry).
_PER_MODEL: dict[str, tuple[str, str]] = {
    "min_tstr_trtr_ratio": ("TSTR/TRTR AUROC ratio", "ratio"),
    "min_tstr_auroc": ("TSTR AUROC", "tstr"),
}


def _check(name: str, measure: str, value: float | None, limit: float) -> GateCheck:
    if value is None:
        return GateCheck(name, measure, None, limit, False)
    ok = value <= limit if name.startswith("max_") else value >= limit
    return GateCheck(name, measure, value, limit, ok)


def check_release(
    report: _HasToDict | Mapping[str, Any],
    thresholds: Thresholds | Mapping[str, Any] | str | Path = DEFAULT_THRESHOLDS,
    *,
    refuse: bool = False,
) -> GateResult:
    """Hold a quality report to release thresholds.

    Parameters
    ----------
    report : Evaluation or mapping
        An :class:`~cardiobox.synth.evaluate.Evaluation`, or its ``to_dict()`` (the contents
        of ``report.json``).
    thresholds : Thresholds, mapping, str or Path
        The thresholds, or a YAML/JSON file of them (default :data:`DEFAULT_THRESHOLDS`).
    refuse : bool
        Raise :class:`ReleaseRefused` when a threshold fails.

    Returns
    -------
    GateResult

    Raises
    ------
    ReleaseRefused
        With ``refuse=True``, naming every failed threshold.
    GateConfigError
        For unusable thresholds.
    """
    limits = load_thresholds(thresholds).active()
    doc: Any = report if isinstance(report, Mapping) else report.to_dict()
    checks: list[GateCheck] = []
    for name, limit in limits.items():
        if name in _SINGLE:
            measure, read = _SINGLE[name]
            checks.append(_check(name, measure, read(doc), limit))
            continue
        measure, key = _PER_MODEL[name]
        utility = doc.get("utility") if isinstance(doc, Mapping) else None
        models = utility.get("models") if isinstance(utility, Mapping) else None
        if not isinstance(models, list) or not models:
            checks.append(_check(name, f"{measure} (no outcome column, no utility)", None, limit))
            continue
        for i, m in enumerate(models):
            model = m.get("model", f"model {i}") if isinstance(m, Mapping) else f"model {i}"
            checks.append(_check(name, f"{measure} of {model}", _get(models, i, key), limit))
    failures = [c for c in checks if not c.passed]
    result = GateResult(not failures, failures, checks, limits)
    if refuse:
        result.raise_if_failed()
    return result
