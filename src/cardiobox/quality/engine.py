"""Run the data-quality checks and metrics over one or more site stores.

Every check runs as DuckDB SQL over a store opened read-only, and returns the rows checked
(denominator), the failing rows (numerator), the % failing, the threshold in force, a
status (``pass``, ``fail``, or ``not-applicable`` when nothing was checked) and up to five
failing examples. Examples hold the resource type and id, the element and the value, and
nothing else: the report stays at the site, but it should not show more than needed.

Example
-------
>>> from cardiobox.quality import run_quality
>>> result = run_quality(["site.duckdb"])                    # doctest: +SKIP
>>> result.summary()["by_status"]                            # doctest: +SKIP
{'pass': 240, 'fail': 3, 'not-applicable': 250}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from cardiobox import __version__
from cardiobox.cdm.dictionary import DataDictionary, load_dictionary
from cardiobox.errors import CardioboxError, Location
from cardiobox.quality.completeness import SiteCompleteness, measure_completeness
from cardiobox.quality.distributions import measure_distributions
from cardiobox.quality.spec import CATEGORIES, CheckSet, Family, load_checks
from cardiobox.quality.tables import Workspace
from cardiobox.quality.thresholds import Thresholds, load_thresholds
from cardiobox.store import SiteStore

#: Statuses of a check, in report order.
STATUSES: tuple[str, ...] = ("fail", "pass", "not-applicable")
#: Failing rows kept per check.
EXAMPLES = 5

#: ``progress(description, done, total)``.
Progress = Callable[[str, int, int], None]


class QualityError(CardioboxError):
    """A check that cannot run (an error in its SQL)."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one site.

    Parameters
    ----------
    id, category, subcategory, description, severity : str
        From the check.
    site : str
        Site name.
    numerator : int
        Failing rows.
    denominator : int
        Rows checked.
    threshold : float
        Largest % failing with which the check passes.
    threshold_source : str
        Where the threshold comes from (see :meth:`Thresholds.resolve`).
    examples : list of dict
        Up to five failing rows: ``resource_type``, ``id``, ``element``, ``value``.
    reads : tuple of str
        Relations the check read.
    """

    id: str
    site: str
    category: str
    subcategory: str
    description: str
    severity: str
    numerator: int
    denominator: int
    threshold: float
    threshold_source: str
    examples: list[dict[str, Any]]
    reads: tuple[str, ...] = ()

    @property
    def pct_failing(self) -> float | None:
        """% of rows failing (``None`` when nothing was checked)."""
        return 100.0 * self.numerator / self.denominator if self.denominator else None

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``not-applicable``."""
        if not self.denominator:
            return "not-applicable"
        # Compared without dividing, so that 3 of 20 at a 15 % threshold passes exactly.
        return "pass" if 100 * self.numerator <= self.threshold * self.denominator else "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see docs/quality.md)."""
        pct = self.pct_failing
        return {
            "id": self.id,
            "site": self.site,
            "category": self.category,
            "subcategory": self.subcategory,
            "description": self.description,
            "severity": self.severity,
            "reads": list(self.reads),
            "numerator": self.numerator,
            "denominator": self.denominator,
            "pct_failing": None if pct is None else round(pct, 4),
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "status": self.status,
            "examples": self.examples,
        }


@dataclass
class SiteResult:
    """Everything measured on one site store."""

    site: str
    store: str
    stats: dict[str, Any]
    checks: list[CheckResult]
    completeness: SiteCompleteness
    distributions: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    seconds: float = 0.0


@dataclass
class QualityResult:
    """The result of a quality run over one or more sites.

    Parameters
    ----------
    sites : list of SiteResult
        One per store, in the order given.
    thresholds : Thresholds
        Thresholds in force.
    checks_file : str
        The checks YAML file.
    reference_date : date
        The day of the run (dates after it are "in the future").
    generated_at : str
        ISO timestamp (UTC).
    version : str
        cardiobox version.
    dictionary : DataDictionary
        The data dictionary the run used.
    clinical_ranges : dict
        Clinical ranges of checks.yaml (marked on histograms).
    """

    sites: list[SiteResult]
    thresholds: Thresholds
    checks_file: str
    reference_date: date
    dictionary: DataDictionary = field(repr=False)
    clinical_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    generated_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    version: str = __version__

    @property
    def checks(self) -> list[CheckResult]:
        """Every check result of every site."""
        return [c for s in self.sites for c in s.checks]

    def summary(self) -> dict[str, Any]:
        """Counts of checks per status and category (overall and per site), and failures."""
        return summarise(self.checks, [s.site for s in self.sites])


def summarise(results: Sequence[CheckResult], sites: Sequence[str]) -> dict[str, Any]:
    """The ``summary`` section of the report.

    Parameters
    ----------
    results : sequence of CheckResult
        Check results of all sites.
    sites : sequence of str
        Site names, in order.

    Returns
    -------
    dict
        ``checks`` (results counted), ``by_status``, ``by_category`` (category → status →
        count), ``by_site`` (site → the same two), and ``failed`` (site, id, category,
        severity, pct_failing, threshold of each failing check, worst first).
    """

    def counts(rs: Sequence[CheckResult]) -> dict[str, Any]:
        return {
            "checks": len(rs),
            "by_status": {st: sum(r.status == st for r in rs) for st in STATUSES},
            "by_category": {
                cat: {st: sum(r.status == st and r.category == cat for r in rs) for st in STATUSES}
                for cat in CATEGORIES
            },
        }

    failed = sorted(
        (r for r in results if r.status == "fail"),
        key=lambda r: (r.severity != "error", -(r.pct_failing or 0.0), r.site, r.id),
    )
    return {
        **counts(results),
        "sites": list(sites),
        "by_site": {s: counts([r for r in results if r.site == s]) for s in sites},
        "failed": [
            {
                "site": r.site,
                "id": r.id,
                "category": r.category,
                "severity": r.severity,
                "numerator": r.numerator,
                "denominator": r.denominator,
                "pct_failing": round(r.pct_failing or 0.0, 4),
                "threshold": r.threshold,
            }
            for r in failed
        ],
    }


_AGGREGATE = """SELECT check_id, count(*) AS denominator,
    count(*) FILTER (WHERE failed) AS numerator,
    min({{'resource_type': resource_type::VARCHAR, 'id': id::VARCHAR,
          'element': element::VARCHAR, 'value': value::VARCHAR}}, {n})
        FILTER (WHERE failed) AS examples
FROM (
{sql}
) GROUP BY check_id"""


def run_family(ws: Workspace, family: Family) -> dict[str, tuple[int, int, list[dict[str, Any]]]]:
    """Run one family of checks: check id → (numerator, denominator, examples).

    Raises
    ------
    QualityError
        When the query fails (naming the checks).
    """
    if not family.sql:
        return {}
    ws.ensure(family.reads)
    try:
        rows = ws.con.execute(_AGGREGATE.format(sql=family.sql, n=EXAMPLES)).fetchall()
    except duckdb.Error as exc:
        ids = ", ".join(c.id for c in family.checks[:3])
        more = f" and {len(family.checks) - 3} more" if len(family.checks) > 3 else ""
        raise QualityError(
            f"check {ids}{more} failed to run: {exc}",
            rule="check-sql",
            location=Location(element=family.checks[0].id if family.checks else None),
        ) from exc
    return {str(cid): (int(num), int(den), list(ex or [])) for cid, den, num, ex in rows}


def run_checks(
    ws: Workspace,
    checks: CheckSet,
    thresholds: Thresholds,
    site: str,
    progress: Progress | None = None,
) -> list[CheckResult]:
    """Run every check over one store's workspace.

    Parameters
    ----------
    ws : Workspace
        The store's workspace.
    checks : CheckSet
        The checks.
    thresholds : Thresholds
        Thresholds in force.
    site : str
        Site name recorded in the results.
    progress : callable, optional
        ``progress(description, done, total)`` after each family.

    Returns
    -------
    list of CheckResult
        In the order of the checks.
    """
    out: list[CheckResult] = []
    for i, family in enumerate(checks.families):
        counts = run_family(ws, family)
        for check in family.checks:
            num, den, examples = counts.get(check.id, (0, 0, []))
            pct, source = thresholds.resolve(check)
            out.append(
                CheckResult(
                    id=check.id,
                    site=site,
                    category=check.category,
                    subcategory=check.subcategory,
                    description=check.description,
                    severity=check.severity,
                    numerator=num,
                    denominator=den,
                    threshold=pct,
                    threshold_source=source,
                    examples=examples,
                    reads=check.reads,
                )
            )
        if progress:
            progress(f"{site}: checks", i + 1, len(checks.families))
    return out


def _quarantine_summary(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT rule, coalesce(resource_type, '?'), count(*) AS n FROM quarantine "
        "GROUP BY ALL ORDER BY n DESC, 1, 2"
    ).fetchall()
    return [{"rule": r, "resource_type": t, "items": int(n)} for r, t, n in rows]


def _findings_summary(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    # Element paths without list indexes, so that component[0] and component[3] group.
    rows = con.execute(
        "SELECT severity, rule, resource_type, regexp_replace(coalesce(element, ''), "
        "'\\[\\d+\\]', '[]', 'g') AS element, count(*) AS n, count(DISTINCT id) "
        "FROM findings GROUP BY ALL ORDER BY n DESC, 1, 2, 3, 4"
    ).fetchall()
    return [
        {
            "severity": s,
            "rule": r,
            "resource_type": t,
            "element": e or None,
            "findings": int(n),
            "resources": int(k),
        }
        for s, r, t, e, n, k in rows
    ]


def assess_store(
    path: str | Path,
    site: str,
    checks: CheckSet,
    thresholds: Thresholds,
    today: date,
    dictionary: DataDictionary | None = None,
    progress: Progress | None = None,
) -> SiteResult:
    """Run checks, completeness and distributions over one store (opened read-only).

    Parameters
    ----------
    path : str or Path
        The site store.
    site : str
        Its name in the report.
    checks : CheckSet
        The checks.
    thresholds : Thresholds
        Thresholds in force.
    today : date
        The day of the run.
    dictionary : DataDictionary, optional
        Defaults to the packaged dictionary.
    progress : callable, optional
        ``progress(description, done, total)``.

    Returns
    -------
    SiteResult

    Raises
    ------
    InputError
        When the store does not exist or is not a site store.
    """
    started = time.perf_counter()
    dictionary = dictionary or load_dictionary()
    with SiteStore(path, read_only=True) as store:
        stats = store.stats()
        ws = Workspace(store.con, dictionary, checks.dates, today)
        results = run_checks(ws, checks, thresholds, site, progress)
        completeness = measure_completeness(ws)
        distributions = measure_distributions(ws, checks.log_bins)
        quarantine = _quarantine_summary(store.con)
        findings = _findings_summary(store.con)
    return SiteResult(
        site=site,
        store=str(path),
        stats=stats,
        checks=results,
        completeness=completeness,
        distributions=distributions,
        quarantine=quarantine,
        findings=findings,
        seconds=time.perf_counter() - started,
    )


def site_names(paths: Sequence[str | Path]) -> list[str]:
    """Names of sites from their store files (file stem; ``-2``, ``-3`` for repeats)."""
    names: list[str] = []
    for p in paths:
        stem = Path(p).stem or "site"
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names


def run_quality(
    stores: Sequence[str | Path] | Mapping[str, str | Path],
    thresholds: Thresholds | str | Path | None = None,
    checks: CheckSet | None = None,
    today: date | None = None,
    progress: Progress | None = None,
) -> QualityResult:
    """Assess the data quality of one or more site stores.

    Parameters
    ----------
    stores : sequence of paths, or mapping of site name to path
        The site stores; sites are named after their files unless a mapping is given.
    thresholds : Thresholds or path, optional
        Thresholds, or a thresholds YAML file; default: those of checks.yaml.
    checks : CheckSet, optional
        Defaults to the packaged checks.yaml.
    today : date, optional
        Reference day for "in the future" (default: today, UTC).
    progress : callable, optional
        ``progress(description, done, total)``.

    Returns
    -------
    QualityResult
    """
    checks = checks or load_checks()
    if not isinstance(thresholds, Thresholds):
        thresholds = load_thresholds(thresholds, checks)
    if isinstance(stores, Mapping):
        named = [(str(k), v) for k, v in stores.items()]
    else:
        named = list(zip(site_names(stores), stores, strict=True))
    today = today or datetime.now(UTC).date()
    dictionary = load_dictionary()
    sites = [
        assess_store(path, name, checks, thresholds, today, dictionary, progress)
        for name, path in named
    ]
    return QualityResult(
        sites=sites,
        thresholds=thresholds,
        checks_file=checks.source,
        reference_date=today,
        dictionary=dictionary,
        clinical_ranges=dict(checks.clinical_ranges),
    )
