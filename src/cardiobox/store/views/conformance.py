"""Run the SQL-on-FHIR v2 conformance suite against this engine.

Each test file of the official suite holds ``resources`` and ``tests``; a test has a
``view`` and either ``expect`` (rows), ``expectColumns`` (column names in order) or
``expectError`` (the view must be rejected). For each test the resources are loaded into
an in-memory DuckDB table ``resources(resource_type, id, resource JSON)``, the view is run
with :func:`~cardiobox.store.views.run.run_view`, and the rows are compared as the suite's
reference runner does: as a multiset (row order does not matter), lists inside a cell in
order, numbers by value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from cardiobox.errors import CardioboxError
from cardiobox.store.views.run import run_view


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test of the suite.

    Parameters
    ----------
    file : str
        Test file name (``basic.json``).
    title : str
        Test title.
    tags : tuple of str
        The test's tags (``shareable``, ``experimental``...).
    passed : bool
        Whether the engine did what the test expects.
    reason : str
        Why it failed (empty when it passed).
    expect_error : bool
        Whether the test expects the view to be rejected.
    uses_fallback : bool
        Whether the view ran on the fhirpathpy fallback.
    """

    file: str
    title: str
    tags: tuple[str, ...]
    passed: bool
    reason: str = ""
    expect_error: bool = False
    uses_fallback: bool = False

    @property
    def name(self) -> str:
        """``file: title``."""
        return f"{self.file}: {self.title}"


@dataclass
class ConformanceReport:
    """Results of a conformance run."""

    results: list[TestResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Number of passing tests."""
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        """Number of failing tests."""
        return self.total - self.passed

    @property
    def total(self) -> int:
        """Number of tests."""
        return len(self.results)

    @property
    def failures(self) -> list[str]:
        """``file: title`` of every failing test."""
        return [r.name for r in self.results if not r.passed]

    @property
    def by_tag(self) -> dict[str, dict[str, int]]:
        """Per tag: ``passed``, ``failed`` and ``total``."""
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            for tag in r.tags or ("untagged",):
                row = out.setdefault(tag, {"passed": 0, "failed": 0, "total": 0})
                row["total"] += 1
                row["passed" if r.passed else "failed"] += 1
        return out

    @property
    def by_file(self) -> dict[str, dict[str, int]]:
        """Per test file: ``passed``, ``failed`` and ``total``."""
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = out.setdefault(r.file, {"passed": 0, "failed": 0, "total": 0})
            row["total"] += 1
            row["passed" if r.passed else "failed"] += 1
        return out

    def all_pass(self, tag: str = "shareable") -> bool:
        """Whether every test with ``tag`` passes."""
        return all(r.passed for r in self.results if tag in r.tags)

    def to_dict(self) -> dict[str, Any]:
        """Summary as plain data (for ``--json``)."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "total": self.total,
            "failures": self.failures,
            "failure_reasons": {r.name: r.reason for r in self.results if not r.passed},
            "by_tag": self.by_tag,
            "by_file": self.by_file,
            "fallback": [r.name for r in self.results if r.uses_fallback],
        }


def _same(got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, dict):
        if isinstance(got, str):
            try:
                got = orjson.loads(got)
            except orjson.JSONDecodeError:
                return False
        return (
            isinstance(got, dict)
            and set(got) == set(want)
            and all(_same(got[k], want[k]) for k in want)
        )
    return bool(got == want)


def rows_match(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    """Compare rows as a multiset; return an empty string or the reason they differ."""
    if len(got) != len(want):
        return f"expected {len(want)} rows, got {len(got)}: {got!r}"
    unmatched = list(got)
    for row in want:
        for i, candidate in enumerate(unmatched):
            if set(candidate) >= set(row) and all(_same(candidate[k], row[k]) for k in row):
                del unmatched[i]
                break
        else:
            return f"expected row {row!r} not found in {got!r}"
    return ""


def load_resources(con: duckdb.DuckDBPyConnection, resources: list[dict[str, Any]]) -> None:
    """Create table ``resources(resource_type, id, resource JSON)`` holding ``resources``."""
    con.execute(
        "CREATE OR REPLACE TABLE resources (resource_type VARCHAR, id VARCHAR, resource JSON)"
    )
    rows = [
        (r.get("resourceType"), r.get("id"), orjson.dumps(r).decode())
        for r in resources
        if isinstance(r, dict)
    ]
    if rows:
        con.executemany("INSERT INTO resources VALUES (?, ?, ?)", rows)


def run_test(con: duckdb.DuckDBPyConnection, file: str, test: dict[str, Any]) -> TestResult:
    """Run one test of a suite file against the ``resources`` table of ``con``."""
    title = str(test.get("title", "?"))
    tags = tuple(str(t) for t in test.get("tags", []))
    expect_error = bool(test.get("expectError"))
    from cardiobox.store.views.compiler import compile_view

    try:
        compiled = compile_view(test["view"])
        table = run_view(con, compiled)
    except CardioboxError as exc:
        if expect_error:
            return TestResult(file, title, tags, True, expect_error=True)
        return TestResult(file, title, tags, False, f"error: {exc}")
    except Exception as exc:  # an engine bug, not a rejected view
        return TestResult(file, title, tags, False, f"{type(exc).__name__}: {exc}", expect_error)
    if expect_error:
        return TestResult(
            file, title, tags, False, "expected an error, got rows", True, compiled.uses_fallback
        )
    reasons: list[str] = []
    if "expectColumns" in test and table.column_names != list(test["expectColumns"]):
        reasons.append(f"expected columns {test['expectColumns']}, got {table.column_names}")
    if "expect" in test:
        reason = rows_match(table.to_pylist(), list(test["expect"]))
        if reason:
            reasons.append(reason)
    return TestResult(
        file, title, tags, not reasons, "; ".join(reasons), False, compiled.uses_fallback
    )


def iter_suite(directory: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Test files of a suite directory (``*.json`` except the schema), with their content."""
    root = Path(directory)
    files = sorted(p for p in root.glob("*.json") if not p.name.endswith(".schema.json"))
    if (root / "tests").is_dir():
        files = sorted(p for p in (root / "tests").glob("*.json")) + files
    for path in files:
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict) and "tests" in data:
            yield path, data


def run_conformance(directory: str | Path) -> ConformanceReport:
    """Run every test file of the official suite's format found in ``directory``.

    Parameters
    ----------
    directory : str or Path
        Folder with the suite's test files (or a folder with a ``tests/`` subfolder).

    Returns
    -------
    ConformanceReport
        ``passed``, ``failed``, ``total``, ``failures`` (``file: title``), ``by_tag``.
    """
    report = ConformanceReport()
    for path, data in iter_suite(directory):
        con = duckdb.connect()
        try:
            load_resources(con, list(data.get("resources", [])))
            for test in data.get("tests", []):
                report.results.append(run_test(con, path.name, test))
        finally:
            con.close()
    return report


__all__ = [
    "ConformanceReport",
    "TestResult",
    "iter_suite",
    "load_resources",
    "rows_match",
    "run_conformance",
    "run_test",
]
