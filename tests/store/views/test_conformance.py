"""The official SQL-on-FHIR v2 test suite, one pytest case per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from cardiobox.store.views.conformance import iter_suite, load_resources, run_conformance, run_test

SUITE = Path(__file__).parent / "sql_on_fhir_v2"


def _cases() -> list[Any]:
    cases = []
    for path, data in iter_suite(SUITE):
        for i, test in enumerate(data["tests"]):
            cases.append(pytest.param(path.name, i, id=f"{path.stem}:{test['title']}"))
    return cases


_DATA = {path.name: data for path, data in iter_suite(SUITE)}


@pytest.mark.parametrize(("file", "index"), _cases())
def test_suite_case(file: str, index: int) -> None:
    data = _DATA[file]
    con = duckdb.connect()
    load_resources(con, data["resources"])
    result = run_test(con, file, data["tests"][index])
    assert result.passed, result.reason


def test_suite_counts() -> None:
    report = run_conformance(SUITE)
    assert report.total == 134
    assert report.by_tag["shareable"] == {"passed": 123, "failed": 0, "total": 123}
    assert report.by_tag["experimental"]["total"] == 11
    assert report.all_pass("shareable")
    errors = [r for r in report.results if r.expect_error]
    assert len(errors) == 11 and all(r.passed for r in errors)
    # Every test runs in SQL: none needs the fhirpathpy fallback.
    assert not report.to_dict()["fallback"]


def test_report_names_failures(tmp_path: Path) -> None:
    bad = {
        "title": "wrong expectation",
        "resources": [{"resourceType": "Patient", "id": "p1"}],
        "tests": [
            {
                "title": "ids",
                "tags": ["shareable"],
                "view": {
                    "resource": "Patient",
                    "select": [{"column": [{"name": "id", "path": "id"}]}],
                },
                "expect": [{"id": "p2"}],
            }
        ],
    }
    import orjson

    (tmp_path / "bad.json").write_bytes(orjson.dumps(bad))
    report = run_conformance(tmp_path)
    assert report.failed == 1 and report.failures == ["bad.json: ids"]
    assert not report.all_pass("shareable")
    assert "p2" in report.to_dict()["failure_reasons"]["bad.json: ids"]
