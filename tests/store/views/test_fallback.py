"""The fhirpathpy fallback gives the same tables as SQL wherever both apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from cardiobox.store.views import compile_view, run_view
from cardiobox.store.views.conformance import iter_suite, load_resources
from cardiobox.store.views.standard import members, standard_view_names

SUITE = Path(__file__).parent / "sql_on_fhir_v2"


def _suite_cases() -> list[Any]:
    cases = []
    for path, data in iter_suite(SUITE):
        for test in data["tests"]:
            if "expect" in test:
                cases.append(
                    pytest.param(data["resources"], test["view"], id=f"{path.stem}:{test['title']}")
                )
    return cases


def _canonical(table: pa.Table) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in table.to_pylist())


def assert_same(con: duckdb.DuckDBPyConnection, view: dict[str, Any]) -> None:
    sql = compile_view(view)
    fallback = compile_view(view, fallback=True)
    assert not sql.uses_fallback and fallback.uses_fallback
    a, b = run_view(con, sql), run_view(con, fallback)
    assert a.schema == b.schema
    assert _canonical(a) == _canonical(b)


@pytest.mark.parametrize(("resources", "view"), _suite_cases())
def test_suite_views(resources: list[dict[str, Any]], view: dict[str, Any]) -> None:
    con = duckdb.connect()
    load_resources(con, resources)
    assert_same(con, view)


RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2022-01-01T10:00:00Z",
        "component": [
            {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 120}},
            {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80.5}},
        ],
    },
    {
        "resourceType": "Observation", "id": "o2", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "33762-6"}]},
        "subject": {"reference": "http://h.org/fhir/Patient/p2"},
        "valueQuantity": {"value": 0.25, "unit": "ng/mL", "system": "http://unitsofmeasure.org",
                          "code": "ng/mL"},
    },
    {"resourceType": "Patient", "id": "p1", "gender": "female", "deceasedBoolean": True,
     "name": [{"family": "Doe", "given": ["Jane", "J"]}]},
    {"resourceType": "Patient", "id": "p2", "birthDate": "1960-07",
     "name": [{"use": "official", "family": "Roe"}]},
]  # fmt: skip

VIEWS: list[dict[str, Any]] = [
    {
        "resource": "Observation",
        "select": [
            {"column": [{"name": "id", "path": "id", "type": "id"}]},
            {
                "forEachOrNull": "component",
                "column": [
                    {"name": "i", "path": "%rowIndex", "type": "integer"},
                    {"name": "code", "path": "code.coding.first().code", "type": "code"},
                    {"name": "v", "path": "value.ofType(Quantity).value * 2", "type": "decimal"},
                ],
            },
        ],
    },
    {
        "resource": "Patient",
        "constant": [{"name": "use", "valueCode": "official"}],
        "where": [{"path": "name.exists()"}],
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()", "type": "id"},
                    {"name": "given", "path": "name.given", "type": "string", "collection": True},
                    {"name": "official", "path": "name.where(use = %use).family.first()",
                     "type": "string"},
                    {"name": "dead", "path": "deceased.ofType(boolean)", "type": "boolean"},
                    {"name": "born_low", "path": "birthDate.lowBoundary()", "type": "date"},
                    {"name": "n", "path": "name.given.count()", "type": "integer"},
                ]
            }
        ],
    },
]  # fmt: skip


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    load_resources(c, RESOURCES)
    return c


@pytest.mark.parametrize("view", VIEWS, ids=["observation-components", "patient-names"])
def test_hand_written_views(con: duckdb.DuckDBPyConnection, view: dict[str, Any]) -> None:
    assert_same(con, view)


@pytest.mark.parametrize("name", standard_view_names())
def test_standard_views(con: duckdb.DuckDBPyConnection, name: str) -> None:
    for view in members(name):
        assert_same(con, view.raw)
