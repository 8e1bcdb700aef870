"""The dictionary agrees with the DataTools4Heart value sets and code systems it models.

The DT4H resources are the copies shipped in ``cardiobox/cdm/data/dt4h`` (Apache-2.0). A code
of a DT4H value set is either modelled by a dictionary variable or listed below as deliberately
left out, with the reason; both directions are checked so neither side drifts unnoticed.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cardiobox.cdm import Category, DataDictionary, Variable, load_dictionary
from cardiobox.cdm import codes as codesys

LOINC = codesys.LOINC
SNOMED = codesys.SNOMED

DT4H = Path(str(resources.files("cardiobox.cdm") / "data" / "dt4h"))


@pytest.fixture(scope="module")
def d() -> DataDictionary:
    return load_dictionary()


def _load(kind: str, name: str) -> dict[str, Any]:
    with (DT4H / kind / f"{name}.json").open(encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


def valueset_codes(name: str) -> set[tuple[str, str]]:
    """``(system, code)`` of every concept listed in a DT4H ValueSet (not whole systems)."""
    out: set[tuple[str, str]] = set()
    for inc in _load("valuesets", name)["compose"]["include"]:
        for concept in inc.get("concept", []):
            out.add((inc["system"], concept["code"]))
    return out


def valueset_whole_systems(name: str) -> set[str]:
    """Systems a DT4H ValueSet includes entirely (an include without a concept list)."""
    return {
        inc["system"]
        for inc in _load("valuesets", name)["compose"]["include"]
        if not inc.get("concept")
    }


def codesystem_codes(name: str) -> set[tuple[str, str]]:
    doc = _load("codesystems", name)
    return {(doc["url"], c["code"]) for c in doc["concept"]}


def answer_codes(v: Variable) -> set[tuple[str, str]]:
    return {(a.system, a.code) for a in v.answers}


def modelled_codes(d: DataDictionary, category: Category) -> set[tuple[str, str]]:
    return {(cs.system, c) for v in d.by_category(category) for cs in v.codes for c in cs.codes}


def test_reference_files_shipped_with_licence() -> None:
    assert (DT4H / "LICENSE.txt").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    readme = (DT4H / "README.md").read_text(encoding="utf-8")
    assert "DataTools4Heart/common-data-model" in readme
    assert "08910d1" in readme
    assert "Apache" in readme


# ----------------------------------------------------------------------------- symptoms


def test_symptom_value_set_equals_symptom_variables(d: DataDictionary) -> None:
    expected = valueset_codes("symptom")
    assert len(expected) == 30
    assert modelled_codes(d, Category.symptom) == expected
    for system, code in expected:
        hit = d.find_code(system, code)
        assert hit is not None and hit.category == Category.symptom, code


# --------------------------------------------------------------------- medication groups


def test_medication_group_value_set(d: DataDictionary) -> None:
    expected = valueset_codes("medication-group")
    assert len(expected) == 18
    for system, code in expected:
        hit = d.find_code(system, code)
        assert hit is not None, code
        assert hit.category == Category.medication_group
        assert hit.acronym == code
        assert any(cs.system == codesys.ATC for cs in hit.codes), code
    modelled = {
        (cs.system, c)
        for v in d.by_category(Category.medication_group)
        for cs in v.codes
        if cs.system == codesys.DT4H_MEDICATION_GROUP
        for c in cs.codes
    }
    assert modelled == expected


# ------------------------------------------------------------------------ assessments


def test_nyha_value_set(d: DataDictionary) -> None:
    nyha = d["nyha_class"]
    assert valueset_codes("nyha-classification") == {
        (s, c) for s, c in answer_codes(nyha) if s == LOINC
    }


def test_smoking_status_value_set(d: DataDictionary) -> None:
    assert valueset_codes("smoking-status") == answer_codes(d["smoking_status"])


def test_employment_status_value_set(d: DataDictionary) -> None:
    assert valueset_codes("employment-status") == answer_codes(d["employment_status"])


def test_income_level_value_set(d: DataDictionary) -> None:
    assert valueset_codes("income-level") == answer_codes(d["income_level"])


# --------------------------------------------------------------- patient and encounter


def test_ethnicity_value_set(d: DataDictionary) -> None:
    assert valueset_codes("ethnicity") == answer_codes(d["ethnicity"])


def test_encounter_class_value_set(d: DataDictionary) -> None:
    expected = valueset_codes("encounter-class") | codesystem_codes("encounter-class")
    assert valueset_whole_systems("encounter-class") == {codesys.DT4H_ENCOUNTER_CLASS}
    assert expected == answer_codes(d["encounter_class"])


def test_admit_source_value_set(d: DataDictionary) -> None:
    expected = valueset_codes("encounter-admit-source") | codesystem_codes("encounter-admit-source")
    assert valueset_whole_systems("encounter-admit-source") == {codesys.DT4H_ADMIT_SOURCE}
    assert expected == answer_codes(d["admit_source"])


# ------------------------------------------------------------------------ vital signs


def test_vital_sign_value_set(d: DataDictionary) -> None:
    expected = valueset_codes("vital-sign")
    for system, code in expected:
        hit = d.find_code(system, code)
        assert hit is not None, code
        # The 12-lead ECG panel code sits in the DT4H vital-sign value set.
        want = Category.ecg if code == "34534-8" else Category.vital_sign
        assert hit.category == want, code
    # 3139-3 (body surface area, measured) comes from the echo and MRI value sets.
    assert modelled_codes(d, Category.vital_sign) == (expected - {(LOINC, "34534-8")}) | {
        (LOINC, "3139-3")
    }


# ---------------------------------------------------------------------- echocardiography

# Echo value-set codes that the dictionary deliberately does not model, with the reason.
ECHO_NOT_MODELLED: dict[str, str] = {
    "75994-4": "pulmonary capillary wedge pressure: an invasive (RHC) measurement",
    "79971-8": "septal thickness in systole: rarely used",
    "99528-2": "septal thickness without cardiac phase",
    "80034-2": "posterior wall thickness in systole: rarely used",
    "29445-4": "posterior wall thickness in systole (M-mode): rarely used",
    "29440-5": "septal/posterior wall ratio: derivable from ivsd and lvpwd",
    "18155-2": "septal/posterior wall ratio: derivable from ivsd and lvpwd",
    "79915-5": "pulmonary vein A-wave velocity (DT4H labels it mitral A wave)",
    "79917-1": "pulmonary vein flow",
    "79916-3": "pulmonary vein flow",
    "78184-9": "pulmonary vein flow",
    "29453-8": "pulmonary vein flow",
    "80065-6": "mitral A-wave duration: rarely used",
    "11712-7": "tricuspid peak systolic blood-flow velocity; DT4H labels it s', ambiguous",
    "80062-3": "mitral regurgitation peak velocity: rarely used",
    "81397-2": "lateral annular a' velocity: rarely used",
    "81396-4": "medial annular a' velocity: rarely used",
    "78188-0": "lateral annular s' velocity: rarely used",
    "78187-2": "medial annular s' velocity: rarely used",
    "17993-7": "mitral valve cardiac output: rarely used",
    "18035-6": "mitral regurgitation dP/dt: rarely used",
    "79912-2": "mitral pressure half-time: mitral_valve_area carries the result",
    "80058-1": "mitral systolic peak gradient: rarely used",
    "80059-9": "PISA radius: an intermediate of mitral_eroa",
    "20270-5": "mitral valve acceleration: rarely used",
    "82340-1": "mitral closure-to-opening time: rarely used",
    "80057-3": "mitral regurgitant flow rate: an intermediate of mitral_eroa",
    "93628-6": "mitral regurgitant VTI: an intermediate of regurgitant volume",
    "82595-0": "mitral A-wave VTI: rarely used",
    "82594-3": "mitral E-wave VTI: rarely used",
    "18002-6": "mitral deceleration slope: mitral_deceleration_time is used",
    "18053-9": "posterior wall fractional thickening: rarely used",
    "20232-5": "LVOT mean velocity: rarely used",
    "93633-6": "LVOT/aortic velocity ratio: valve disease detail",
    "20233-3": "LVOT mean gradient: lvot_max_gradient is used",
    "93632-8": "LVOT/aortic VTI ratio: valve disease detail",
    "80076-3": "right atrial major axis: rarely used",
    "18079-4": "right ventricular minimal major axis: rarely used",
    "20350-5": "tricuspid mean velocity: rarely used",
    "79975-9": "left atrial minor axis: la_volume and la_diameter are used",
    "80077-1": "right atrial minor axis: rarely used",
    "93643-5": "right ventricular major axis: rarely used",
    "18169-3": "aortic valve VTI: valve disease detail",
}

# DT4H echo-parameter code-system codes not modelled.
ECHO_PARAMETER_NOT_MODELLED: dict[str, str] = {
    "RVESD": "right ventricular end-systolic diameter: rarely used",
    "RhythmEcho": "rhythm at echo: DT4H gives no answer list (and a unit of bpm)",
    "Avol": "atrial volume without side",
    "Avoli": "atrial volume index without side",
    "RAD": "right atrial diameter: ra_area and ra_volume are used",
    "RAVi": "indexed right atrial volume: rarely used",
    "LVEDDi": "indexed diameter: rarely used",
    "LVESDi": "indexed diameter: rarely used",
    "LAAi": "indexed left atrial area: la_volume_index is used",
    "LADi": "indexed left atrial diameter: la_volume_index is used",
    "RAAi": "indexed right atrial area: rarely used",
    "RADi": "indexed right atrial diameter: rarely used",
    "RVEDDi": "indexed right ventricular diameter: rarely used",
    "RVESDi": "indexed right ventricular diameter: rarely used",
    "IVSdi": "indexed wall thickness: rarely used",
    "IVSsi": "indexed wall thickness: rarely used",
    "IVSi": "indexed wall thickness: rarely used",
    "LVPWdi": "indexed wall thickness: rarely used",
    "LVPWsi": "indexed wall thickness: rarely used",
    "LVPWi": "indexed wall thickness: rarely used",
}

# Echo codes of the dictionary that are not in the DT4H echo value set, and why.
ECHO_EXTRA = {
    (LOINC, "34552-0"): "the DT4H echo panel code itself (Echo sheet)",
    (LOINC, "8807-0"): "LVEF visual estimate, listed in the DT4H Echo sheet",
    (LOINC, "18049-7"): "LVEF by M-mode Teichholz, listed in the DT4H Echo sheet",
    (LOINC, "79984-1"): "indexed LA volume, listed in the DT4H Echo sheet",
    (LOINC, "10230-1"): "LVEF, method not stated (LOINC)",
    (LOINC, "18043-0"): "LVEF by ultrasound (LOINC)",
}


def test_echo_value_set(d: DataDictionary) -> None:
    listed = valueset_codes("echo-parameter")
    assert valueset_whole_systems("echo-parameter") == {codesys.DT4H_ECHO_PARAMETER}
    for system, code in sorted(listed):
        hit = d.find_code(system, code)
        if code in ECHO_NOT_MODELLED:
            assert hit is None, f"{code} is modelled by {hit.id}; drop it from the list"
            continue
        assert hit is not None, f"echo code {code} neither modelled nor listed as left out"
        if code == "3139-3":
            assert hit.id == "bsa"
        elif code == "8867-4":
            assert hit.id == "heart_rate"
        else:
            assert hit.category == Category.echo, code
    assert set(ECHO_NOT_MODELLED) <= {c for _, c in listed}, "stale ECHO_NOT_MODELLED entry"


def test_echo_variables_use_dt4h_codes(d: DataDictionary) -> None:
    listed = valueset_codes("echo-parameter") | codesystem_codes("echo-parameter")
    for v in d.by_category(Category.echo):
        for cs in v.codes:
            for c in cs.codes:
                assert (cs.system, c) in listed or (cs.system, c) in ECHO_EXTRA, (v.id, c)


def test_echo_parameter_code_system(d: DataDictionary) -> None:
    for system, code in codesystem_codes("echo-parameter"):
        assert system == codesys.DT4H_ECHO_PARAMETER
        hit = d.find_code(system, code)
        if code in ECHO_PARAMETER_NOT_MODELLED:
            assert hit is None, code
        else:
            assert hit is not None and hit.category == Category.echo, code
    assert set(ECHO_PARAMETER_NOT_MODELLED) <= {c for _, c in codesystem_codes("echo-parameter")}


# LVEF codes of the DT4H Echo sheet; all but the last two are also in the echo value set.
LVEF_SHEET_CODES = [
    "8806-2", "79990-8", "79991-6", "77890-2", "93645-0", "79992-4", "79993-2", "77891-0",
    "93644-3", "8807-0", "18049-7",
]  # fmt: skip


def test_lvef_findable_by_every_dt4h_lvef_code(d: DataDictionary) -> None:
    in_value_set = {c for _, c in valueset_codes("echo-parameter")}
    assert set(LVEF_SHEET_CODES[:-2]) <= in_value_set
    for code in LVEF_SHEET_CODES:
        hit = d.find_code("http://loinc.org", code)
        assert hit is not None and hit.id == "lvef", code


# ------------------------------------------------------------------------------- ECG

ECG_PARAMETER_NOT_MODELLED = {
    "SamplingFrequency": "signal metadata",
    "RawMedianBeat": "raw signal",
    "RawRhythm": "raw signal",
    "PacedRhythm": "raw signal of paced beats",
    "ECGFilterSettings": "signal metadata",
}


def test_ecg_parameter_code_system(d: DataDictionary) -> None:
    for system, code in codesystem_codes("ecg-parameter"):
        hit = d.find_code(system, code)
        if code in ECG_PARAMETER_NOT_MODELLED:
            assert hit is None, code
        else:
            assert hit is not None and hit.category == Category.ecg, code


def test_qt_correction_code_system(d: DataDictionary) -> None:
    found = {
        code: d.find_code(system, code)
        for system, code in codesystem_codes("qt-correction-formula")
    }
    assert {code: v.id if v else None for code, v in found.items()} == {
        "bazett": "qtc_bazett",
        "frederica": "qtc_fridericia",
        "framingham": "qtc_framingham",
    }
