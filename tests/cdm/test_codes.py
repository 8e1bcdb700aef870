"""Code systems and code sets: range expansion, hierarchical matching, system aliases."""

from __future__ import annotations

import pytest

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.codes import (
    canonical_system,
    code_matches,
    expand_codes,
    expand_range,
    normalise_code,
)
from cardiobox.cdm.dictionary import CodeSet


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("I10-I13", ["I10", "I11", "I12", "I13"]),
        ("I10–I13", ["I10", "I11", "I12", "I13"]),  # en dash
        (" i10 - i11 ", ["I10", "I11"]),
        ("F00-F03", ["F00", "F01", "F02", "F03"]),
        ("I60-I60", ["I60"]),
        ("Q23.0-Q23.3", ["Q23.0", "Q23.1", "Q23.2", "Q23.3"]),
        ("Z95.2-Z95.4", ["Z95.2", "Z95.3", "Z95.4"]),
        ("C09AA01-C09AA03", ["C09AA01", "C09AA02", "C09AA03"]),
        ("C09DX05-C09DX07", ["C09DX05", "C09DX06", "C09DX07"]),
        ("I50", ["I50"]),
        ("I09.81", ["I09.81"]),
        ("C09DX04", ["C09DX04"]),
        ("0JH608", ["0JH608"]),
    ],
)
def test_expand_range(spec: str, expected: list[str]) -> None:
    assert expand_range(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("I10-J13", "spans two chapters"),
        ("I13-I10", "reversed"),
        ("Q23.3-Q23.0", "reversed"),
        ("I10-I13.2", "mixes categories and subcategories"),
        ("Q23.0-Q24.1", "must stay within one category"),
        ("I10-", "malformed code range"),
        ("10-13", "malformed code range"),
        ("C09AA01-C09BA03", "spans two chemical subgroups"),
        ("C09AA16-C09AA01", "reversed"),
    ],
)
def test_expand_range_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_range(spec)


def test_expand_codes_keeps_order_and_drops_duplicates() -> None:
    assert expand_codes(["I11.0", "I10-I12", "I11", "E78"]) == ["I11.0", "I10", "I11", "I12", "E78"]


def test_expand_codes_splits_comma_lists() -> None:
    assert expand_codes(["I20, I21", "I22"]) == ["I20", "I21", "I22"]


def test_normalise_code() -> None:
    assert normalise_code(" i50.9 ") == "I50.9"
    assert normalise_code("C09 AA05") == "C09AA05"


@pytest.mark.parametrize(
    ("code", "members", "hierarchical", "expected"),
    [
        ("I50.9", ["I50"], True, True),
        ("I509", ["I50"], True, True),
        ("I50", ["I50.9"], True, False),
        ("I13.1", ["I13.0", "I13.2"], True, False),
        ("I13.0", ["I13.0", "I13.2"], True, True),
        ("C09AA05", ["C09A"], True, True),
        ("C09CA01", ["C09A"], True, False),
        ("02703ZZ", ["0270"], True, True),
        ("8806-2", ["8806-2"], False, True),
        ("8806-2", ["8806"], False, False),
        ("18806-2", ["8806-2"], False, False),
    ],
)
def test_code_matches(code: str, members: list[str], hierarchical: bool, expected: bool) -> None:
    assert code_matches(code, members, hierarchical) is expected


@pytest.mark.parametrize(
    ("alias", "uri"),
    [
        ("loinc", codesys.LOINC),
        ("LOINC", codesys.LOINC),
        ("snomed", codesys.SNOMED),
        ("icd-10", codesys.ICD10),
        ("atc", codesys.ATC),
        ("icd-10-pcs", codesys.ICD10_PCS),
        ("http://hl7.org/fhir/sid/icd-10-pcs", codesys.ICD10_PCS),
        ("dt4h-echo-parameter", codesys.DT4H_ECHO_PARAMETER),
        ("http://loinc.org", codesys.LOINC),
        ("urn:example:local", "urn:example:local"),
    ],
)
def test_canonical_system(alias: str, uri: str) -> None:
    assert canonical_system(alias) == uri


def test_codeset_expands_only_hierarchical_systems() -> None:
    icd = CodeSet.model_validate({"system": "icd-10", "codes": ["I10-I11"]})
    assert icd.codes == ["I10", "I11"]
    assert icd.hierarchical
    loinc = CodeSet.model_validate({"system": "loinc", "codes": ["8806-2"]})
    assert loinc.codes == ["8806-2"]
    assert not loinc.hierarchical


def test_codeset_matches_equivalent_icd10_systems() -> None:
    cs = CodeSet.model_validate({"system": "icd-10", "codes": ["I50"]})
    assert cs.matches(codesys.ICD10_CM, "I50.22")
    assert cs.matches("icd-10", "I50.9")
    assert not cs.matches(codesys.ATC, "I50")


def test_codeset_matches_dt4h_icd10_pcs_uri() -> None:
    cs = CodeSet.model_validate({"system": "icd-10-pcs", "codes": ["02YA0Z0"]})
    assert cs.matches("http://hl7.org/fhir/sid/icd-10-pcs", "02YA0Z0")


def test_codeset_requires_codes() -> None:
    with pytest.raises(ValueError):
        CodeSet.model_validate({"system": "loinc", "codes": []})
