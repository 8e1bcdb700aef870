"""Invalid ViewDefinitions are rejected with a message naming the element and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cardiobox.errors import ViewDefinitionError
from cardiobox.store.views import load_view


def base(**changes: Any) -> dict[str, Any]:
    v: dict[str, Any] = {
        "resource": "Patient",
        "select": [{"column": [{"name": "id", "path": "id", "type": "id"}]}],
    }
    v.update(changes)
    return v


def two_selects(second: dict[str, Any]) -> dict[str, Any]:
    return base(select=[{"column": [{"name": "id", "path": "id"}]}, second])


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("empty", {}, "required", "ViewDefinition"),
    ("missing resource", {"select": base()["select"]}, "required", "resource"),
    ("bad resource", base(resource="patient"), "resource-type", "resource"),
    ("unknown top-level key", base(colums=[]), "unknown-key", "colums"),
    ("missing select", {"resource": "Patient"}, "required", "select"),
    ("empty select", base(select=[]), "cardinality", "select"),
    (
        "bad column name",
        two_selects({"column": [{"name": "1st", "path": "id"}]}),
        "sql-name",
        "select[1].column[0].name",
    ),
    (
        "column without path",
        two_selects({"column": [{"name": "x"}]}),
        "required",
        "select[1].column[0]",
    ),
    (
        "unknown column key",
        two_selects({"column": [{"name": "x", "path": "id", "colection": True}]}),
        "unknown-key",
        "select[1].column[0].colection",
    ),
    (
        "collection not boolean",
        two_selects({"column": [{"name": "x", "path": "id", "collection": "yes"}]}),
        "type",
        "select[1].column[0].collection",
    ),
    (
        "duplicate column",
        two_selects({"column": [{"name": "id", "path": "id"}]}),
        "duplicate-column",
        "select[1].column[0].name",
    ),
    (
        "duplicate column up to case",
        two_selects({"column": [{"name": "ID", "path": "id"}]}),
        "duplicate-column",
        "select[1].column[0].name",
    ),
    (
        "bad FHIRPath",
        two_selects({"column": [{"name": "x", "path": "name.where("}]}),
        "fhirpath-syntax",
        "select[1].column[0].path",
    ),
    ("forEach not a string", base(select=[{"forEach": 1}]), "type", "select[0].forEach"),
    (
        "forEach and forEachOrNull",
        base(
            select=[
                {
                    "forEach": "name",
                    "forEachOrNull": "name",
                    "column": [{"name": "a", "path": "id"}],
                }
            ]
        ),
        "sql-expressions",
        "select[0]",
    ),
    ("select without content", base(select=[{"forEach": "name"}]), "empty-select", "select[0]"),
    (
        "unknown constant",
        two_selects({"column": [{"name": "x", "path": "name.where(use = %nope)"}]}),
        "unknown-constant",
        "select[1].column[0].path",
    ),
    (
        "constant without value",
        base(constant=[{"name": "c"}]),
        "constant-value",
        "constant[0]",
    ),
    (
        "constant with a wrongly typed value",
        base(constant=[{"name": "c", "valueInteger": "1"}]),
        "type",
        "constant[0].valueInteger",
    ),
    (
        "union columns differ",
        two_selects(
            {
                "unionAll": [
                    {"column": [{"name": "a", "path": "id"}]},
                    {"column": [{"name": "b", "path": "id"}]},
                ]
            }
        ),
        "union-columns",
        "select[1].unionAll[1]",
    ),
    (
        "union column order differs",
        two_selects(
            {
                "unionAll": [
                    {"column": [{"name": "a", "path": "id"}, {"name": "b", "path": "id"}]},
                    {"column": [{"name": "b", "path": "id"}, {"name": "a", "path": "id"}]},
                ]
            }
        ),
        "union-columns",
        "select[1].unionAll[1]",
    ),
    ("where without path", base(where=[{"description": "x"}]), "required", "where[0]"),
    ("where bad syntax", base(where=[{"path": "active = "}]), "fhirpath-syntax", "where[0].path"),
]


@pytest.mark.parametrize(
    ("raw", "rule", "element"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejected_with_element_and_rule(raw: dict[str, Any], rule: str, element: str) -> None:
    with pytest.raises(ViewDefinitionError) as info:
        load_view(raw)
    err = info.value
    assert err.rule == rule, str(err)
    assert err.location.element == element, str(err)
    # The message a user sees starts with where the problem is.
    assert str(err).startswith(f"{element}: [{rule}]")


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(
        '{"resource": "Patient", "select": [{"column": [{"name": "x y", "path": "id"}]}]}'
    )
    with pytest.raises(ViewDefinitionError) as info:
        load_view(path)
    assert info.value.location.file == str(path)
    assert str(info.value).startswith(f"{path}, select[0].column[0].name: [sql-name]")


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ViewDefinitionError, match="invalid JSON") as info:
        load_view(bad)
    assert info.value.rule == "invalid-json"
    with pytest.raises(ViewDefinitionError) as info:
        load_view(tmp_path / "missing.json")
    assert info.value.rule == "not-found"
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text("[1, 2]")
    with pytest.raises(ViewDefinitionError, match="JSON object"):
        load_view(not_an_object)


def test_json_text_and_valid_views() -> None:
    v = load_view('{"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]}')
    assert v.resource == "Patient" and v.column_names == ["id"]
    full = load_view(
        {
            "resourceType": "ViewDefinition",
            "name": "pats",
            "status": "active",
            "resource": "Patient",
            "constant": [{"name": "sys", "valueUri": "http://x"}],
            "select": [
                {
                    "column": [
                        {
                            "name": "id",
                            "path": "getResourceKey()",
                            "tag": [{"name": "a", "value": "b"}],
                        }
                    ]
                },
                {
                    "forEachOrNull": "identifier.where(system = %sys)",
                    "column": [{"name": "v", "path": "value"}],
                },
            ],
            "where": [{"path": "active", "description": "active only"}],
        }
    )
    assert full.column_names == ["id", "v"] and full.constants["sys"].type == "uri"
