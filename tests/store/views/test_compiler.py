"""The ViewDefinition → DuckDB SQL compiler on hand-written resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from cardiobox.errors import ViewDefinitionError
from cardiobox.store.views import compile_view, run_view
from cardiobox.store.views.compiler import REPEAT_DEPTH

Loader = Callable[[list[dict[str, Any]]], duckdb.DuckDBPyConnection]


def cols(*specs: tuple[str, str] | tuple[str, str, str]) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        col: dict[str, Any] = {"name": spec[0], "path": spec[1]}
        if len(spec) == 3:
            col["type"] = spec[2]
        out.append(col)
    return out


def view(
    resource: str, *columns: tuple[str, str] | tuple[str, str, str], **extra: Any
) -> dict[str, Any]:
    return {"resource": resource, "select": [{"column": cols(*columns)}], **extra}


OBS = [
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org"},
        "component": [
            {"code": {"text": "a"}, "valueQuantity": {"value": 1.5}},
            {"code": {"text": "b"}, "valueString": "x"},
        ],
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "status": "amended",
        "code": {
            "coding": [{"code": "no-system"}, {"system": "http://loinc.org", "code": "718-7"}]
        },
        "subject": {"reference": "http://example.org/fhir/Patient/p2/_history/3"},
        "valueString": "text",
    },
    {"resourceType": "Patient", "id": "p1"},
]


def rows(con: Any, v: Any) -> list[dict[str, Any]]:
    return sorted(run_view(con, v).to_pylist(), key=repr)


def test_one_parse_per_resource() -> None:
    compiled = compile_view(
        view("Observation", ("id", "id"), ("code", "code.coding.first().code"), ("s", "status"))
    )
    assert not compiled.uses_fallback
    # All three paths are read by a single json_extract_string call.
    assert compiled.sql.count("json_extract_string(") == 1
    assert "'$.code.coding[0].code'" in compiled.sql
    assert [tuple(c) for c in compiled.columns] == [
        ("id", "VARCHAR"),
        ("code", "VARCHAR"),
        ("s", "VARCHAR"),
    ]


def test_types_follow_declarations(load: Loader) -> None:
    con = load(OBS)
    v = view(
        "Observation",
        ("id", "getResourceKey()", "id"),
        ("value", "value.ofType(Quantity).value", "decimal"),
        ("n", "component.count()", "integer"),
        ("has_value", "value.exists()", "boolean"),
        ("patient", "subject.getReferenceKey(Patient)", "id"),
        ("codes", "code.coding.code", "code"),
    )
    v["select"][0]["column"][-1]["collection"] = True
    table = run_view(con, v)
    assert [str(t) for t in table.schema.types[:5]] == [
        "string",
        "double",
        "int64",
        "bool",
        "string",
    ]
    assert table.schema.field("codes").type.value_type == pa.string()
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
        {"id": "o1", "value": 72.0, "n": 2, "has_value": True, "patient": "p1",
         "codes": ["8867-4"]},
        {"id": "o2", "value": None, "n": 0, "has_value": True, "patient": "p2",
         "codes": ["no-system", "718-7"]},
    ]  # fmt: skip


def test_first_is_first_of_the_collection(load: Loader) -> None:
    # code.coding.system.first() skips a coding without a system; code.coding.first().system
    # does not.
    con = load(OBS)
    v = view(
        "Observation",
        ("id", "id"),
        ("a", "code.coding.system.first()"),
        ("b", "code.coding.first().system"),
    )
    assert rows(con, v) == [
        {"id": "o1", "a": "http://loinc.org", "b": "http://loinc.org"},
        {"id": "o2", "a": "http://loinc.org", "b": None},
    ]


def test_foreach_where_constant_and_row_index(load: Loader) -> None:
    con = load(OBS)
    v = {
        "resource": "Observation",
        "constant": [{"name": "min", "valueDecimal": 1.0}],
        "where": [{"path": "status = 'final'"}],
        "select": [
            {"column": cols(("id", "id"))},
            {
                "forEach": "component",
                "column": cols(
                    ("i", "%rowIndex", "integer"),
                    ("label", "code.text"),
                    ("big", "value.ofType(Quantity).value > %min", "boolean"),
                ),
            },
        ],
    }
    assert rows(con, v) == [
        {"id": "o1", "i": 0, "label": "a", "big": True},
        {"id": "o1", "i": 1, "label": "b", "big": None},
    ]


def test_several_values_in_a_single_column_is_an_error(load: Loader) -> None:
    con = load(OBS)
    v = view("Observation", ("code", "code.coding.code"))
    with pytest.raises(ViewDefinitionError, match=r"'code'.*more than one value") as info:
        run_view(con, v)
    assert "select[0].column[0]" in str(info.value)


def test_choice_without_oftype_and_unknown_elements(load: Loader) -> None:
    con = load(
        [
            {"resourceType": "Observation", "id": "a", "valueString": "x"},
            {"resourceType": "Observation", "id": "b", "valueBoolean": True},
            # performedDateTime is R4; the R5 schema does not know it: navigated generically.
            {"resourceType": "Procedure", "id": "p", "performedDateTime": "2020-01-01"},
        ]
    )
    assert rows(con, view("Observation", ("id", "id"), ("v", "value"))) == [
        {"id": "a", "v": "x"},
        {"id": "b", "v": "true"},
    ]
    assert rows(con, view("Procedure", ("d", "performed.ofType(dateTime)"))) == [
        {"d": "2020-01-01"}
    ]


def test_reference_keys(load: Loader) -> None:
    refs = [
        "Patient/p1",
        "http://x.org/fhir/Patient/p2",
        "Patient/p3/_history/1",
        "Group/g1",
        "urn:uuid:0b1d",
        "#contained",
    ]
    con = load(
        [
            {"resourceType": "Observation", "id": f"o{i}", "subject": {"reference": r}}
            for i, r in enumerate(refs)
        ]
    )
    got = {
        r["id"]: (r["typed"], r["any"])
        for r in run_view(
            con,
            view(
                "Observation",
                ("id", "id"),
                ("typed", "subject.getReferenceKey(Patient)"),
                ("any", "subject.getReferenceKey()"),
            ),
        ).to_pylist()
    }
    assert got == {
        "o0": ("p1", "p1"),
        "o1": ("p2", "p2"),
        "o2": ("p3", "p3"),
        "o3": (None, "g1"),
        "o4": (None, None),
        "o5": (None, None),
    }


def test_string_functions_and_operators(load: Loader) -> None:
    con = load(
        [
            {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"family": "Smith", "given": ["Ann", "B"]}],
            }
        ]
    )
    v = view(
        "Patient",
        ("up", "name.family.first().upper()"),
        ("starts", "name.family.first().startsWith('Sm')", "boolean"),
        ("n", "name.given.count() * 2 + 1", "integer"),
        ("joined", "name.given.join('-') & '!'"),
        ("sub", "name.family.first().substring(1, 3)"),
        ("inlist", "'Ann' in name.given", "boolean"),
        ("div", "7 div 2", "integer"),
        ("mod", "7 mod 2", "integer"),
        ("ratio", "7 / 2", "decimal"),
        ("neg", "-(2.5)", "decimal"),
    )
    assert run_view(con, v).to_pylist() == [
        {"up": "SMITH", "starts": True, "n": 5, "joined": "Ann-B!", "sub": "mit",
         "inlist": True, "div": 3, "mod": 1, "ratio": 3.5, "neg": -2.5},
    ]  # fmt: skip


def test_custom_source_table(load: Loader) -> None:
    con = load(OBS)
    con.execute('CREATE VIEW "my obs" AS SELECT * FROM resources')
    compiled = compile_view(view("Observation", ("id", "id")), source="my obs")
    assert '"my obs"' in compiled.sql
    assert len(run_view(con, compiled)) == 2


def _deep_item(depth: int) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": str(depth)}
    for level in range(depth - 1, 0, -1):
        item = {"linkId": str(level), "item": [item]}
    return item


def test_repeat_deeper_than_sql_walk_uses_fallback(load: Loader) -> None:
    depth = REPEAT_DEPTH + 3
    con = load([{"resourceType": "QuestionnaireResponse", "id": "q", "item": [_deep_item(depth)]}])
    v = {
        "resource": "QuestionnaireResponse",
        "select": [{"repeat": ["item"], "column": cols(("link", "linkId"), ("i", "%rowIndex"))}],
    }
    table = run_view(con, v)
    assert table.num_rows == depth
    assert table.column("link").to_pylist() == [str(i) for i in range(1, depth + 1)]
    assert table.column("i").to_pylist() == list(range(depth))


def test_unsupported_function_uses_fallback(load: Loader) -> None:
    con = load([{"resourceType": "Patient", "id": "p1", "name": [{"given": ["Ann", "Bob"]}]}])
    v = view("Patient", ("id", "id"), ("g", "name.given.last().replaceMatches('[aeiou]', '_')"))
    compiled = compile_view(v)
    assert compiled.uses_fallback
    assert "replaceMatches" in (compiled.fallback_reason or "")
    assert run_view(con, compiled).to_pylist() == [{"id": "p1", "g": "B_b"}]


def test_static_checks_name_the_element() -> None:
    with pytest.raises(ViewDefinitionError) as info:
        compile_view(
            {
                "resource": "Patient",
                "select": [{"column": [{"name": "n", "path": "name.family", "collection": False}]}],
            }
        )
    assert info.value.location.element == "select[0].column[0].path"
    assert info.value.rule == "collection"
    with pytest.raises(ViewDefinitionError) as info:
        compile_view(view("Patient", ("id", "id"), where=[{"path": "birthDate"}]))
    assert info.value.location.element == "where[0].path"
    assert info.value.rule == "where-boolean"


def test_where_on_unknown_type_is_checked_at_run_time(load: Loader) -> None:
    con = load([{"resourceType": "Patient", "id": "p1", "custom": "yes"}])
    with pytest.raises(ViewDefinitionError, match="not boolean"):
        run_view(con, view("Patient", ("id", "id"), where=[{"path": "custom"}]))
