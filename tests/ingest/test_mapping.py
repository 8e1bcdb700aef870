"""Mapping files: clear errors naming the file, YAML line and key."""

from __future__ import annotations

import pytest

from cardiobox.errors import InputError
from cardiobox.ingest.mapping import load_mapping, parse_mapping

HEAD = """cardiobox_mapping: 1
name: test
source: {format: csv, path: a.csv}
patient: nhc
resources:
"""


def error(text: str) -> InputError:
    with pytest.raises(InputError) as err:
        parse_mapping(text, "m.yaml")
    return err.value


def test_yaml_syntax_error_names_the_line() -> None:
    e = error("cardiobox_mapping: 1\nname: [broken\n")
    assert e.rule == "mapping-syntax" and e.location.file == "m.yaml"
    assert e.location.line == 3


def test_unknown_key_names_line_and_suggests() -> None:
    e = error(HEAD + "  - id: p\n    type: Patient\n    gendr: sex\n")
    assert e.rule == "mapping-schema" and e.location.line == 8
    assert "unknown key 'gendr'" in e.message and "did you mean 'gender'" in e.message


def test_key_not_for_this_type() -> None:
    e = error(HEAD + "  - id: o\n    type: Observation\n    variable: potassium\n    onset: d\n")
    assert "Observation blocks do not take 'onset'" in e.message
    assert e.location.line == 6


def test_missing_required() -> None:
    e = error("cardiobox_mapping: 1\nname: t\nsource: {format: csv, path: a}\nresources: []\n")
    assert "patient" in e.message or "resources" in e.message


def test_undeclared_concept_map() -> None:
    e = error(HEAD + "  - id: p\n    type: Patient\n    gender: {expr: s, map: sexes}\n")
    assert "concept map 'sexes'" in e.message


def test_source_needs_path_or_query() -> None:
    e = error(
        HEAD.replace("{format: csv, path: a.csv}", "{format: sql, url: 'sqlite://'}")
        + "  - id: p\n    type: Patient\n"
    )
    assert "needs 'url' and 'query'" in e.message and e.location.line == 3


def test_repeat_entries_inherit_block_keys() -> None:
    m = parse_mapping(
        HEAD
        + "  - id: v\n    type: Observation\n    effective: fecha\n    repeat:\n"
        + "      - {variable: systolic_bp, value: tas, unit: {const: 'mm[Hg]'}}\n"
        + "      - {variable: heart_rate, value: fc, unit: {const: /min}, name: hr}\n"
    )
    inst = m.resources[0].instances()
    assert [s for s, _ in inst] == ["0", "hr"]
    assert all(f.effective is not None and f.effective.expr == "fecha" for _, f in inst)


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no such mapping file"):
        load_mapping(tmp_path / "nope.yaml")
