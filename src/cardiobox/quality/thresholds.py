"""Thresholds: the largest share of failing rows (%) with which a check still passes.

Defaults come from ``checks.yaml`` (one per category, and a few per check). A YAML file
given with ``--thresholds`` overrides them::

    categories:            # every check of a category
      completeness: 20
    checks:                # one check, or every check matching a glob pattern
      encounter-end-present: 50
      "clinical-range.*": 2

For a check the first of these that applies wins: its id in the file, the most specific
(longest) matching pattern in the file, its category in the file, its own threshold in
checks.yaml, its category's default in checks.yaml.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cardiobox import yamlio
from cardiobox.errors import InputError, Location
from cardiobox.quality.spec import CATEGORIES, Check, CheckSet


@dataclass(frozen=True)
class Thresholds:
    """Thresholds in force for a run.

    Parameters
    ----------
    defaults : dict
        Category defaults of checks.yaml.
    categories : dict
        Category overrides from the thresholds file.
    checks : dict
        Check ids or glob patterns from the thresholds file.
    file : str or None
        The thresholds file, when one was given.
    """

    defaults: dict[str, float]
    categories: dict[str, float] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)
    file: str | None = None

    def resolve(self, check: Check) -> tuple[float, str]:
        """The threshold of a check and where it comes from.

        Returns
        -------
        tuple
            ``(percent, source)`` with source ``file:check``, ``file:pattern``,
            ``file:category``, ``checks.yaml:check`` or ``checks.yaml:category``.
        """
        if check.id in self.checks:
            return self.checks[check.id], "file:check"
        patterns = [p for p in self.checks if _is_pattern(p) and fnmatch.fnmatchcase(check.id, p)]
        if patterns:
            return self.checks[max(patterns, key=len)], "file:pattern"
        if check.category in self.categories:
            return self.categories[check.category], "file:category"
        if check.threshold is not None:
            return check.threshold, "checks.yaml:check"
        return self.defaults[check.category], "checks.yaml:category"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: defaults, effective category thresholds, overrides and the file."""
        return {
            "defaults": dict(self.defaults),
            "categories": {c: self.categories.get(c, self.defaults[c]) for c in CATEGORIES},
            "overrides": {"categories": dict(self.categories), "checks": dict(self.checks)},
            "file": self.file,
        }


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _error(message: str, path: str, element: str | None = None) -> InputError:
    return InputError(message, rule="thresholds", location=Location(file=path, element=element))


def _pct(value: object, where: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise _error(
            f"{where} must be a percentage between 0 and 100, found {value!r}", path, where
        )
    return float(value)


def load_thresholds(path: str | Path | None, checks: CheckSet) -> Thresholds:
    """Read a thresholds file (or none) against a set of checks.

    Parameters
    ----------
    path : str or Path or None
        YAML file with optional ``categories`` and ``checks`` mappings; ``None`` for the
        defaults of checks.yaml.
    checks : CheckSet
        The checks the thresholds apply to: a check id or pattern that matches none of them
        is an error (a typo would otherwise be ignored silently).

    Returns
    -------
    Thresholds

    Raises
    ------
    InputError
        When the file is missing, not YAML, or names an unknown category or check.
    """
    if path is None:
        return Thresholds(defaults=dict(checks.thresholds))
    file = str(path)
    try:
        doc = yamlio.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _error("no such thresholds file", file) from None
    except OSError as exc:
        raise _error(f"cannot read the thresholds file: {exc.strerror}", file) from exc
    except yaml.YAMLError as exc:
        raise _error(f"not valid YAML: {exc}", file) from exc
    doc = doc or {}
    if not isinstance(doc, dict) or set(doc) - {"categories", "checks"}:
        raise _error("expected a mapping with 'categories' and/or 'checks'", file)
    raw_cat, raw_checks = doc.get("categories") or {}, doc.get("checks") or {}
    if not isinstance(raw_cat, dict) or not isinstance(raw_checks, dict):
        raise _error("'categories' and 'checks' must be mappings", file)
    categories: dict[str, float] = {}
    for name, value in raw_cat.items():
        if name not in CATEGORIES:
            raise _error(f"unknown category {name!r}; use {', '.join(CATEGORIES)}", file, str(name))
        categories[name] = _pct(value, f"categories.{name}", file)
    ids = [c.id for c in checks.checks]
    overrides: dict[str, float] = {}
    for name, value in raw_checks.items():
        key = str(name)
        if not (key in ids or (_is_pattern(key) and fnmatch.filter(ids, key))):
            raise _error(f"{key!r} matches no check (see `cardiobox quality checks`)", file, key)
        overrides[key] = _pct(value, f"checks.{key}", file)
    return Thresholds(
        defaults=dict(checks.thresholds), categories=categories, checks=overrides, file=file
    )
