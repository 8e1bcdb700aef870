"""Checks declared as data: load ``checks.yaml`` and expand its generators.

A check is a DuckDB query returning one row per item checked, with the columns
``resource_type, id, element, value, failed``. Checks are run in *families*: a written check
is a family of one; a generator (one check per dictionary variable, date source, ...) is one
query whose rows also carry a ``check_id`` column, so that a hundred range checks cost one
scan.

Example
-------
>>> from cardiobox.quality.spec import load_checks
>>> checks = load_checks()
>>> checks.get("encounter-start-before-end").category
'plausibility'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cardiobox import yamlio
from cardiobox.errors import InputError, Location

#: The Kahn framework's categories, in report order.
CATEGORIES: tuple[str, ...] = ("conformance", "completeness", "plausibility")
#: Subcategories (Kahn et al. 2016; uniqueness is part of atemporal plausibility).
SUBCATEGORIES: tuple[str, ...] = ("value", "relational", "computational", "atemporal", "temporal")
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
#: The columns every check query returns (generated families add ``check_id`` first).
ROW_COLUMNS: tuple[str, ...] = ("resource_type", "id", "element", "value", "failed")

_CHECK_KEYS = {"id", "category", "subcategory", "description", "severity", "threshold"}
_WRITTEN_KEYS = _CHECK_KEYS | {"reads", "sql"}
_DATE_KEYS = {"label", "element", "reads", "sql", "activity"}


@dataclass(frozen=True)
class Check:
    """One data-quality check.

    Parameters
    ----------
    id : str
        Stable identifier (``encounter-start-before-end``, ``range.potassium``).
    category : str
        ``conformance``, ``completeness`` or ``plausibility``.
    subcategory : str
        ``value``, ``relational``, ``computational``, ``atemporal`` or ``temporal``.
    description : str
        What a passing row satisfies, in one sentence.
    reads : tuple of str
        Relations the query reads (``resources``, ``v_<view>``, ``q_<helper>``).
    severity : str
        ``error``, ``warning`` or ``info``: how serious a failure is (it does not change
        the status).
    threshold : float or None
        Largest % of failing rows with which the check passes, as declared in
        ``checks.yaml``; ``None`` takes the category's default.
    generator : str or None
        The generator that made the check, or ``None`` for a written check.
    subject : str or None
        What a generated check is about (variable id, date source, element path...).
    """

    id: str
    category: str
    subcategory: str
    description: str
    reads: tuple[str, ...]
    severity: str
    threshold: float | None = None
    generator: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Family:
    """Checks computed by one query.

    Parameters
    ----------
    checks : tuple of Check
        The checks; a written check is a family of one.
    sql : str
        Query returning ``check_id`` and :data:`ROW_COLUMNS`.
    reads : tuple of str
        Relations the query reads.
    generator : str or None
        Generator name, or ``None`` for a written check.
    template : Check or None
        A generator's entry, with the ``id`` and ``description`` templates.
    """

    checks: tuple[Check, ...]
    sql: str
    reads: tuple[str, ...]
    generator: str | None = None
    template: Check | None = None


@dataclass(frozen=True)
class DateSource:
    """A dated element collected in ``q_events`` (see ``dates:`` in checks.yaml)."""

    name: str
    label: str
    element: str
    sql: str
    reads: tuple[str, ...]
    activity: bool = False


@dataclass(frozen=True)
class CheckSet:
    """All checks, with the data they are generated from.

    Parameters
    ----------
    families : tuple of Family
        Families in file order.
    thresholds : dict
        Default threshold (% failing) per category.
    clinical_ranges : dict
        Softer clinical range per quantity variable (canonical unit).
    log_bins : frozenset of str
        Variables whose histograms use logarithmic bins.
    dates : dict
        Date sources by name.
    source : str
        The YAML file the checks come from.
    """

    families: tuple[Family, ...]
    thresholds: dict[str, float]
    clinical_ranges: dict[str, tuple[float, float]]
    log_bins: frozenset[str]
    dates: dict[str, DateSource]
    source: str
    _by_id: dict[str, Check] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for fam in self.families:
            for c in fam.checks:
                if c.id in self._by_id:
                    raise _error(f"two checks have the id {c.id!r}", self.source)
                self._by_id[c.id] = c

    @property
    def checks(self) -> list[Check]:
        """Every check, in file order."""
        return [c for fam in self.families for c in fam.checks]

    def get(self, check_id: str) -> Check:
        """The check with this id (``KeyError`` when there is none)."""
        return self._by_id[check_id]

    def __len__(self) -> int:
        return len(self._by_id)


def _error(message: str, source: str, element: str | None = None) -> InputError:
    return InputError(
        message, rule="quality-checks", location=Location(file=source, element=element)
    )


def default_checks_path() -> Path:
    """The ``checks.yaml`` shipped with cardiobox."""
    return Path(str(resources.files("cardiobox.quality") / "checks.yaml"))


def _number(value: object, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(f"{where} must be a number, found {value!r}", source, where)
    return float(value)


def _threshold(value: object, where: str, source: str) -> float:
    pct = _number(value, where, source)
    if not 0 <= pct <= 100:
        raise _error(f"{where} must be a percentage between 0 and 100, found {pct}", source, where)
    return pct


def _str_list(value: object, where: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error(f"{where} must be a list of names", source, where)
    return tuple(value)


def parse_check(entry: dict[str, Any], source: str, written: bool) -> Check:
    """Validate the common fields of a check entry (a written check or a generator's)."""
    ident = str(entry.get("id", "?"))
    allowed = _WRITTEN_KEYS if written else None
    if allowed is not None:
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise _error(f"check {ident}: unknown keys {unknown}", source, ident)
    for key in ("id", "category", "subcategory", "description", "severity"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise _error(f"check {ident}: {key} is required (text)", source, ident)
    if entry["category"] not in CATEGORIES:
        raise _error(
            f"check {ident}: category must be one of {', '.join(CATEGORIES)}", source, ident
        )
    if entry["subcategory"] not in SUBCATEGORIES:
        raise _error(
            f"check {ident}: subcategory must be one of {', '.join(SUBCATEGORIES)}", source, ident
        )
    if entry["severity"] not in SEVERITIES:
        raise _error(
            f"check {ident}: severity must be one of {', '.join(SEVERITIES)}", source, ident
        )
    threshold = entry.get("threshold")
    reads: tuple[str, ...] = ()
    if written:
        if not isinstance(entry.get("sql"), str) or not entry["sql"].strip():
            raise _error(f"check {ident}: sql is required", source, ident)
        reads = _str_list(entry.get("reads", []), f"{ident}.reads", source)
    return Check(
        id=ident,
        category=entry["category"],
        subcategory=entry["subcategory"],
        description=" ".join(entry["description"].split()),
        reads=reads,
        severity=entry["severity"],
        threshold=None
        if threshold is None
        else _threshold(threshold, f"{ident}.threshold", source),
    )


def _dates(doc: dict[str, Any], source: str) -> dict[str, DateSource]:
    raw = doc.get("dates") or {}
    if not isinstance(raw, dict):
        raise _error("dates must be a mapping of name to date source", source, "dates")
    out: dict[str, DateSource] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or set(spec) - _DATE_KEYS:
            raise _error(f"date source {name}: expected keys {sorted(_DATE_KEYS)}", source, name)
        for key in ("label", "element", "sql"):
            if not isinstance(spec.get(key), str):
                raise _error(f"date source {name}: {key} is required", source, name)
        out[str(name)] = DateSource(
            name=str(name),
            label=spec["label"],
            element=spec["element"],
            sql=" ".join(spec["sql"].split()),
            reads=_str_list(spec.get("reads", []), f"dates.{name}.reads", source),
            activity=bool(spec.get("activity", False)),
        )
    return out


def _written_family(check: Check, sql: str) -> Family:
    quoted = check.id.replace("'", "''")
    body = sql.strip().rstrip(";")
    cols = ", ".join(ROW_COLUMNS)
    return Family(
        checks=(check,),
        sql=f"SELECT '{quoted}' AS check_id, {cols} FROM (\n{body}\n)",
        reads=check.reads,
    )


def load_checks(path: str | Path | None = None) -> CheckSet:
    """Load the checks and expand the generators (cached for the packaged file).

    Parameters
    ----------
    path : str or Path, optional
        A checks YAML file; defaults to the one shipped with cardiobox.

    Returns
    -------
    CheckSet

    Raises
    ------
    InputError
        Naming the file and the check when an entry is invalid.
    """
    return _load(str(path) if path is not None else str(default_checks_path()))


@cache
def _load(source: str) -> CheckSet:
    from cardiobox.quality import generators

    try:
        doc = yamlio.safe_load(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(f"cannot read the checks file: {exc.strerror}", source) from exc
    except yaml.YAMLError as exc:
        raise _error(f"not valid YAML: {exc}", source) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise _error("expected a mapping with a list of checks", source)
    raw_thresholds = doc.get("thresholds") or {}
    if not isinstance(raw_thresholds, dict) or set(raw_thresholds) != set(CATEGORIES):
        raise _error(f"thresholds must give {', '.join(CATEGORIES)}", source, "thresholds")
    thresholds = {c: _threshold(raw_thresholds[c], f"thresholds.{c}", source) for c in CATEGORIES}
    ranges: dict[str, tuple[float, float]] = {}
    for var, pair in (doc.get("clinical_ranges") or {}).items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise _error(f"clinical_ranges.{var} must be [low, high]", source, str(var))
        lo, hi = (_number(x, f"clinical_ranges.{var}", source) for x in pair)
        if lo > hi:
            raise _error(f"clinical_ranges.{var}: low > high", source, str(var))
        ranges[str(var)] = (lo, hi)
    log_bins = frozenset(_str_list(doc.get("log_bins", []), "log_bins", source))
    dates = _dates(doc, source)
    context = generators.Context(source=source, clinical_ranges=ranges, dates=dates)
    families: list[Family] = []
    for i, entry in enumerate(doc["checks"]):
        if not isinstance(entry, dict):
            raise _error(f"checks[{i}] is not a mapping", source)
        if "generator" in entry:
            families.append(generators.expand(entry, context))
        else:
            check = parse_check(entry, source, written=True)
            families.append(_written_family(check, entry["sql"]))
    return CheckSet(
        families=tuple(families),
        thresholds=thresholds,
        clinical_ranges=ranges,
        log_bins=log_bins,
        dates=dates,
        source=source,
    )
