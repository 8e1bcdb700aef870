"""checks.yaml: checks declared as data, generated from the dictionary, validated on load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.errors import InputError
from cardiobox.quality import load_checks, run_quality
from cardiobox.quality.engine import QualityError
from cardiobox.quality.spec import CATEGORIES, SUBCATEGORIES, default_checks_path
from cardiobox.quality.tables import ANSWER_ELEMENTS


def test_every_check_is_well_formed() -> None:
    checks = load_checks()
    ids = [c.id for c in checks.checks]
    assert len(ids) == len(set(ids)) == len(checks)
    for c in checks.checks:
        assert c.category in CATEGORIES and c.subcategory in SUBCATEGORIES
        assert c.reads and c.description
        assert not re.search(r"\{(variable|name|unit|low|high|source|label|path)\}", c.description)
    assert {c.category for c in checks.checks} == set(CATEGORIES)


def test_generated_from_the_dictionary() -> None:
    d = load_dictionary()
    ids = {c.id for c in load_checks().checks}
    quantities = [v for v in d if v.value_type == "quantity"]
    for v in quantities:
        if v.range is not None:
            assert f"range.{v.id}" in ids
        if v.resource == "Observation" and v.derived is None:
            assert f"unit.{v.id}" in ids
    coded = [v for v in d if v.answers]
    for v in coded:
        assert v.resource == "Observation" or v.element in ANSWER_ELEMENTS, v.id
        assert f"answer.{v.id}" in ids
    assert "clinical-range.potassium" in ids and "after-death.observation" in ids


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.yaml"
    base = default_checks_path().read_text(encoding="utf-8")
    head = base.split("\nchecks:\n")[0]
    path.write_text(head + "\nchecks:\n" + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("  - {id: x, category: quality, subcategory: value, description: d, severity: error, "
         "sql: SELECT 1}", "category must be one of"),
        ("  - {id: x, category: conformance, subcategory: value, description: d, "
         "severity: error}", "sql is required"),
        ("  - {generator: nope, id: x, category: conformance, subcategory: value, "
         "description: d, severity: error}", "unknown generator"),
        ("  - {generator: after-death, id: 'x.{source}', category: plausibility, "
         "subcategory: temporal, description: d, severity: error, sources: [nowhere]}",
         "unknown date source"),
        ("  - {id: x, category: conformance, subcategory: value, description: d, "
         "severity: error, sql: SELECT 1, threshold: 120}", "between 0 and 100"),
    ],
)  # fmt: skip
def test_invalid_entries_are_errors(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_checks(_write(tmp_path, entry + "\n"))
    assert info.value.rule == "quality-checks"


def test_a_check_that_cannot_run_names_itself(tmp_path: Path, planted_store: Path) -> None:
    path = _write(
        tmp_path,
        "  - {id: broken, category: conformance, subcategory: value, description: d, "
        "severity: error, reads: [resources], sql: SELECT no_such_column FROM resources}\n",
    )
    with pytest.raises(QualityError, match="check broken failed to run"):
        run_quality([planted_store], checks=load_checks(path))
