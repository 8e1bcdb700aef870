"""The loader rejects bad dictionary files with messages that name the file and the variable."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.dictionary import load_variables_file

SEVEN = (
    "{en: Potassium, es: Potasio, it: Potassio, nl: Kalium, sv: Kalium, cs: Draslík, ro: Potasiu}"
)

GOOD_ENTRY = f"""
  - id: potassium_test
    codes: [{{system: loinc, codes: ["2823-3"]}}]
    unit: mmol/L
    range: [1, 10]
    description: Test potassium.
    display: {SEVEN}
"""

HEADER = """
defaults:
  category: lab
  resource: Observation
  element: Observation.value.ofType(Quantity)
  value_type: quantity
variables:
"""


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(HEADER) + body, encoding="utf-8")
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "labs.yaml", GOOD_ENTRY)
    (v,) = load_variables_file(path)
    assert v.id == "potassium_test"
    assert v.range == (1.0, 10.0)
    d = load_dictionary(str(tmp_path))
    assert d.find_code("loinc", "2823-3") is d["potassium_test"]


def test_unknown_display_language(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace("ro: Potasiu}", "ro: Potasiu, fr: Potassium}")
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match=r"labs\.yaml: variable potassium_test") as err:
        load_variables_file(path)
    assert "unknown display languages ['fr']" in str(err.value)


def test_missing_display_language(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace(", ro: Potasiu}", "}")
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match=r"display names missing for \['ro'\]") as err:
        load_variables_file(path)
    assert "labs.yaml: variable potassium_test" in str(err.value)


def test_empty_display_counts_as_missing(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace("sv: Kalium", 'sv: ""')
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match=r"display names missing for \['sv'\]"):
        load_variables_file(path)


def test_english_display_required_outside_multilingual_categories(tmp_path: Path) -> None:
    body = """
  - id: birth_date_test
    category: demographics
    resource: Patient
    element: Patient.birthDate
    value_type: date
    description: Test.
    display: {es: Fecha de nacimiento}
"""
    path = write(tmp_path, "demographics.yaml", body)
    with pytest.raises(ValueError, match="display needs at least 'en'"):
        load_variables_file(path)


def test_unknown_synonym_language(tmp_path: Path) -> None:
    body = GOOD_ENTRY + "    synonyms: {de: [Kalium]}\n"
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match=r"unknown synonym languages \['de'\]"):
        load_variables_file(path)


def test_quantity_without_unit(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace("    unit: mmol/L\n", "")
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match="a quantity needs a canonical UCUM unit") as err:
        load_variables_file(path)
    assert "potassium_test" in str(err.value)


def test_reversed_range(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace("range: [1, 10]", "range: [10, 1]")
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match="range low > high"):
        load_variables_file(path)


@pytest.mark.parametrize("bad", ["[1]", "[1, 2, 3]", "[low, 10]", "5"])
def test_malformed_range(tmp_path: Path, bad: str) -> None:
    body = GOOD_ENTRY.replace("range: [1, 10]", f"range: {bad}")
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match=r"labs\.yaml: variable potassium_test: range"):
        load_variables_file(path)


def test_malformed_code_range(tmp_path: Path) -> None:
    body = """
  - id: hf_test
    category: phenotype
    resource: Condition
    element: Condition.code
    value_type: presence
    codes: [{system: icd-10, codes: [I13-I10]}]
    description: Test.
    display: {en: HF, es: IC, it: SC, nl: HF, sv: HS, cs: SS, ro: IC}
"""
    path = write(tmp_path, "phenotypes.yaml", body)
    with pytest.raises(
        ValueError,
        match=r"phenotypes\.yaml: variable hf_test: codes\.0: code range 'I13-I10' is reversed",
    ):
        load_variables_file(path)


def test_unknown_field_rejected(tmp_path: Path) -> None:
    body = GOOD_ENTRY + "    units: mmol/L\n"
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match="units"):
        load_variables_file(path)


def test_bad_id(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace("id: potassium_test", "id: Potassium-Test")
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match="Potassium-Test"):
        load_variables_file(path)


def test_duplicate_id_in_one_file(tmp_path: Path) -> None:
    write(tmp_path, "labs.yaml", GOOD_ENTRY + GOOD_ENTRY)
    with pytest.raises(ValueError, match=r"duplicate variable id 'potassium_test' in labs\.yaml"):
        load_dictionary(str(tmp_path))


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD_ENTRY)
    write(tmp_path, "b.yaml", GOOD_ENTRY)
    with pytest.raises(
        ValueError, match=r"duplicate variable id 'potassium_test' in a\.yaml and b\.yaml"
    ):
        load_dictionary(str(tmp_path))


def test_answer_without_english(tmp_path: Path) -> None:
    body = """
  - id: nyha_test
    category: assessment
    resource: Observation
    element: Observation.value.ofType(CodeableConcept)
    value_type: code
    codes: [{system: loinc, codes: ["88020-3"]}]
    description: Test.
    display: {en: NYHA, es: NYHA, it: NYHA, nl: NYHA, sv: NYHA, cs: NYHA, ro: NYHA}
    answers:
      - {code: LA28404-4, system: loinc, value: 1, display: {es: Clase I}}
"""
    path = write(tmp_path, "assessments.yaml", body)
    with pytest.raises(ValueError, match="answer 'LA28404-4': display needs at least 'en'"):
        load_variables_file(path)


def test_coded_assessment_needs_answers(tmp_path: Path) -> None:
    body = """
  - id: nyha_test
    category: assessment
    resource: Observation
    element: Observation.value.ofType(CodeableConcept)
    value_type: code
    codes: [{system: loinc, codes: ["88020-3"]}]
    description: Test.
    display: {en: NYHA, es: NYHA, it: NYHA, nl: NYHA, sv: NYHA, cs: NYHA, ro: NYHA}
"""
    path = write(tmp_path, "assessments.yaml", body)
    with pytest.raises(ValueError, match="coded assessment needs answers"):
        load_variables_file(path)


def test_empty_description(tmp_path: Path) -> None:
    body = GOOD_ENTRY.replace("description: Test potassium.", 'description: " "')
    path = write(tmp_path, "labs.yaml", body)
    with pytest.raises(ValueError, match="description must not be empty"):
        load_variables_file(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("variables: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML"):
        load_variables_file(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- id: x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping"):
        load_variables_file(path)


def test_entry_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "labs.yaml", "  - just a string\n")
    with pytest.raises(ValueError, match=r"labs\.yaml: entry 0 is not a mapping"):
        load_variables_file(path)


def test_empty_file_has_no_variables(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_variables_file(path) == []
