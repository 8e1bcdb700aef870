"""Data quality of site stores: conformance, completeness and plausibility checks, and a report.

Checks follow the Kahn framework used by OHDSI's Data Quality Dashboard; they are declared in
``checks.yaml`` (some written once, most generated from the data dictionary) and run as DuckDB
SQL over a store opened read-only. See docs/quality.md.

>>> from cardiobox.quality import load_checks
>>> len(load_checks()) > 100
True
"""

from cardiobox.quality.engine import CheckResult, QualityResult, SiteResult, run_quality
from cardiobox.quality.spec import Check, CheckSet, load_checks
from cardiobox.quality.thresholds import Thresholds, load_thresholds

__all__ = [
    "Check",
    "CheckResult",
    "CheckSet",
    "QualityResult",
    "SiteResult",
    "Thresholds",
    "load_checks",
    "load_thresholds",
    "run_quality",
]
