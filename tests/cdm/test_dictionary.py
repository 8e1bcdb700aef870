"""Content tests of the packaged data dictionary (cardiobox/cdm/data/variables/*.yaml)."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from cardiobox.cdm import LANGUAGES, Category, DataDictionary, Variable, load_dictionary
from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import MULTILINGUAL_CATEGORIES

ICD10 = codesys.ICD10
ICD10_CM = codesys.ICD10_CM
ATC = codesys.ATC
LOINC = codesys.LOINC
SNOMED = codesys.SNOMED
PCS = codesys.ICD10_PCS


@pytest.fixture(scope="module")
def d() -> DataDictionary:
    return load_dictionary()


def ids(variables: list[Variable]) -> list[str]:
    return [v.id for v in variables]


# --------------------------------------------------------------------------- loading, counts


def test_dictionary_loads(d: DataDictionary) -> None:
    assert len(d) > 200
    assert {v.category for v in d} == set(Category)


@pytest.mark.parametrize(
    ("category", "low", "high"),
    [
        (Category.phenotype, 40, None),
        (Category.medication_group, 20, None),
        (Category.symptom, 30, 30),
        (Category.lab, 30, None),
        (Category.vital_sign, 15, None),
        (Category.echo, 25, None),
        (Category.ecg, 12, None),
        (Category.procedure, 10, None),
        (Category.assessment, 2, None),
        (Category.demographics, 3, None),
        (Category.encounter, 4, None),
        (Category.death, 2, None),
    ],
)
def test_counts_per_category(
    d: DataDictionary, category: Category, low: int, high: int | None
) -> None:
    n = len(d.by_category(category))
    assert n >= low
    if high is not None:
        assert n <= high


def test_dt4h_phenotypes_all_present_with_acronyms(d: DataDictionary) -> None:
    acronyms = {v.acronym for v in d.by_category(Category.phenotype) if v.acronym}
    # The 44 rows of the DT4H condition-codes table.
    expected = {
        "AP", "AF", "CM", "HF", "HYP", "IHD", "MI", "PAD", "CVA", "TIA", "VD", "Revasc",
        "Devices", "FamHisCM", "FamHisSCD", "PulmEmb", "ArtEmb", "PeriCDis", "MyoCar",
        "EndoCar", "Amyl", "ActiveMcancer", "ActiveLcancer", "AIDSHIV", "Asthma", "COPD",
        "DM", "Dem", "Dep", "Dia", "HyperT", "HypoT", "HyperA", "LD", "MC", "OSA", "RD",
        "CKDchronic", "IntLDis", "GIBleedUlcer", "SubsAb", "PulmEd", "Dyslip", "IBD",
    }  # fmt: skip
    assert acronyms == expected


# --------------------------------------------------------------- every named code resolves

# (system, code, variable id) for every code the specification of the dictionary names.
NAMED_CODES: list[tuple[str, str, str]] = [
    # phenotypes (ICD-10)
    *[(ICD10, c, "heart_failure") for c in
      ["I50", "I50.9", "I11.0", "I13.0", "I13.2", "I26.0", "I09.81", "I97.13", "I25.5"]],
    (ICD10, "I48", "atrial_fibrillation"),
    (ICD10, "I48.0", "atrial_fibrillation"),
    *[(ICD10, c, "hypertension") for c in ["I10", "I11", "I12", "I13", "I13.1", "I15", "I16"]],
    *[(ICD10, f"I{n}", "ischemic_heart_disease") for n in range(20, 26)],
    (ICD10, "I21", "myocardial_infarction"),
    (ICD10, "I22", "myocardial_infarction"),
    (ICD10, "I21.4", "myocardial_infarction"),
    (ICD10, "I42", "cardiomyopathy"),
    (ICD10, "I43", "cardiomyopathy"),
    (ICD10, "I35.0", "valvular_heart_disease"),
    (ICD10, "Q23.2", "valvular_heart_disease"),
    (ICD10, "Z95.3", "valvular_heart_disease"),
    *[(ICD10, f"I6{n}", "stroke") for n in range(5)],
    (ICD10, "G45.9", "transient_ischemic_attack"),
    (ICD10, "I70.2", "peripheral_artery_disease"),
    *[(ICD10, f"E1{n}", "diabetes") for n in range(5)],
    (ICD10, "E11.9", "diabetes"),
    *[(ICD10, c, "chronic_kidney_disease") for c in ["N18", "N18.4", "N19", "Z99.2", "Z49"]],
    *[(ICD10, f"J4{n}", "copd") for n in range(5)],
    (ICD10, "E78", "dyslipidemia"),
    (ICD10, "E78.5", "dyslipidemia"),
    (ICD10, "G47.3", "obstructive_sleep_apnea"),
    (ICD10, "F03", "dementia"),
    (ICD10, "F32.1", "depression"),
    (ICD10, "K70.3", "liver_disease"),
    (ICD10, "C34.1", "malignant_cancer"),
    (ICD10_CM, "I50.22", "heart_failure"),
    # medication groups (ATC)
    (ATC, "C09AA05", "ras_inhibitor"),
    (ATC, "C09AA05", "ace_inhibitor"),
    (ATC, "C09CA06", "angiotensin_receptor_blocker"),
    (ATC, "C09DX04", "arni"),
    (ATC, "C03DA04", "mra"),
    (ATC, "C03CA01", "diuretic"),
    (ATC, "C03CA01", "loop_diuretic"),
    (ATC, "C08CA01", "calcium_channel_blocker"),
    (ATC, "C01DA14", "vasodilator"),
    (ATC, "B01AC06", "platelet_inhibitor"),
    (ATC, "B01AA03", "oral_anticoagulant"),
    (ATC, "B01AF01", "oral_anticoagulant"),
    (ATC, "C10AA05", "statin"),
    (ATC, "C01AA05", "digitalis_glycoside"),
    (ATC, "C07AB07", "beta_blocker"),
    (ATC, "C01BD01", "antiarrhythmic"),
    (ATC, "C01EB17", "ivabradine"),
    (ATC, "A10BK01", "sglt2_inhibitor"),
    (ATC, "A10BK03", "sglt2_inhibitor"),
    (ATC, "A10BA02", "antidiabetic"),
    # laboratory (LOINC)
    (LOINC, "718-7", "hemoglobin"),
    (LOINC, "2276-4", "ferritin"),
    (LOINC, "2502-3", "transferrin_saturation"),
    (LOINC, "33762-6", "nt_probnp"),
    (LOINC, "30934-4", "bnp"),
    (LOINC, "1988-5", "crp"),
    (LOINC, "30522-7", "hs_crp"),
    (LOINC, "89579-7", "hs_troponin_i"),
    (LOINC, "10839-9", "troponin_i"),
    (LOINC, "67151-1", "hs_troponin_t"),
    (LOINC, "6598-7", "troponin_t"),
    (LOINC, "14927-8", "triglycerides"),
    (LOINC, "14647-2", "total_cholesterol"),
    (LOINC, "14646-4", "hdl_cholesterol"),
    (LOINC, "22748-8", "ldl_cholesterol"),
    (LOINC, "2823-3", "potassium"),
    (LOINC, "6298-4", "potassium"),
    (LOINC, "2951-2", "sodium"),
    (LOINC, "2160-0", "creatinine"),
    (LOINC, "2161-8", "urine_creatinine"),
    (LOINC, "69405-9", "egfr"),
    (LOINC, "14937-7", "urea_nitrogen"),
    (LOINC, "22664-7", "urea"),
    (LOINC, "1751-7", "albumin"),
    (LOINC, "1754-1", "urine_albumin"),
    (LOINC, "32294-1", "albumin_creatinine_ratio"),
    (LOINC, "34366-5", "protein_creatinine_ratio"),
    (LOINC, "4548-4", "hba1c"),
    (LOINC, "41995-2", "hba1c_ifcc"),
    (LOINC, "30385-9", "rdw"),
    (LOINC, "1920-8", "ast"),
    (LOINC, "2324-2", "ggt"),
    (LOINC, "1975-2", "bilirubin"),
    # vital signs (LOINC)
    (LOINC, "29463-7", "body_weight"),
    (LOINC, "8302-2", "body_height"),
    (LOINC, "39156-5", "bmi"),
    (LOINC, "8277-6", "bsa"),
    (LOINC, "8480-6", "systolic_bp"),
    (LOINC, "8462-4", "diastolic_bp"),
    (LOINC, "8478-0", "mean_bp"),
    (LOINC, "8867-4", "heart_rate"),
    (LOINC, "2708-6", "oxygen_saturation"),
    (LOINC, "59408-5", "oxygen_saturation"),
    (LOINC, "8310-5", "body_temperature"),
    (LOINC, "9279-1", "respiratory_rate"),
    # echocardiography
    *[(LOINC, c, "lvef") for c in
      ["8806-2", "8807-0", "79990-8", "79991-6", "77890-2", "93645-0", "79992-4",
       "79993-2", "77891-0", "18049-7", "93644-3", "10230-1", "18043-0"]],
    (LOINC, "79996-5", "lvedv"),
    (LOINC, "80001-1", "lvesv"),
    (LOINC, "18083-6", "lvedd"),
    (LOINC, "18085-1", "lvesd"),
    (LOINC, "81386-5", "e_e_prime_ratio"),
    (LOINC, "77903-3", "tapse"),
    (codesys.DT4H_ECHO_PARAMETER, "LAVi", "la_volume_index"),
    # ECG
    (LOINC, "8633-0", "qrs_duration"),
    (LOINC, "8636-3", "qtc"),
    (LOINC, "8625-6", "pr_interval"),
    (LOINC, "8632-2", "qrs_axis"),
    (LOINC, "76281-5", "ecg_rhythm"),
    (LOINC, "76282-3", "ecg_heart_rate"),
    (SNOMED, "164931005", "st_elevation"),
    # assessments
    (LOINC, "88020-3", "nyha_class"),
    (LOINC, "72166-2", "smoking_status"),
    # symptoms (SNOMED CT)
    (SNOMED, "267036007", "breathlessness"),
    (SNOMED, "62744007", "orthopnoea"),
    (SNOMED, "55442000", "paroxysmal_nocturnal_dyspnoea"),
    (SNOMED, "271809000", "peripheral_oedema"),
    (SNOMED, "84229001", "fatigue"),
    # death
    (LOINC, "79378-6", "cause_of_death"),
    # procedures
    (SNOMED, "415070008", "pci"),
    (PCS, "02703ZZ", "pci"),
    (SNOMED, "232717009", "cabg"),
    (PCS, "021009W", "cabg"),
    (SNOMED, "395218007", "icd_implantation"),
    (PCS, "0JH608Z", "icd_implantation"),
    (PCS, "0JH609Z", "crt_implantation"),
    (PCS, "0JH606Z", "pacemaker_implantation"),
    (SNOMED, "725351001", "tavi"),
    (PCS, "02RF38Z", "tavi"),
    (PCS, "02RF38Z", "heart_valve_replacement"),
    (PCS, "02YA0Z0", "heart_transplant"),
    (PCS, "02HA3QZ", "lvad_implantation"),
    (SNOMED, "33367005", "coronary_angiography"),
    ("http://hl7.org/fhir/sid/icd-10-pcs", "02YA0Z0", "heart_transplant"),
]  # fmt: skip


@pytest.mark.parametrize(("system", "code", "expected"), NAMED_CODES)
def test_named_code_resolves(d: DataDictionary, system: str, code: str, expected: str) -> None:
    found = d.find_all(system, code)
    assert expected in ids(found), f"{system}|{code} -> {ids(found)}"
    assert d.find_code(system, code) is not None


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [(s, c, e) for s, c, e in NAMED_CODES if s in (LOINC, SNOMED)],
)
def test_exact_codes_identify_one_variable(
    d: DataDictionary, system: str, code: str, expected: str
) -> None:
    hit = d.find_code(system, code)
    assert hit is not None and hit.id == expected


# ---------------------------------------------------------------------- specific facts


def test_heart_failure_code_set(d: DataDictionary) -> None:
    hf = d["heart_failure"]
    assert hf.matches(ICD10, "I50.9")
    assert hf.matches(ICD10, "I13.0")
    assert hf.matches(ICD10_CM, "I50.22")
    assert not hf.matches(ICD10, "I13.1")
    assert not hf.matches(ICD10, "I11.9")
    assert not hf.matches(ICD10, "I51")
    assert hf.acronym == "HF"


def test_hypertension_covers_i10_to_i13_i15_i16(d: DataDictionary) -> None:
    htn = d["hypertension"]
    for code in ["I10", "I11", "I11.0", "I12.9", "I13", "I13.2", "I15.0", "I16.1"]:
        assert htn.matches(ICD10, code), code
    for code in ["I14", "I17", "I09", "I20"]:
        assert not htn.matches(ICD10, code), code


def test_valvular_disease_cell_with_two_ranges(d: DataDictionary) -> None:
    vd = d["valvular_heart_disease"]
    icd = next(cs for cs in vd.codes if cs.system == ICD10)
    for code in ["Q23.0", "Q23.1", "Q23.2", "Q23.3", "Z95.2", "Z95.3", "Z95.4", "A52.0"]:
        assert code in icd.codes
    assert not vd.matches(ICD10, "Q23.4")
    assert not vd.matches(ICD10, "Z95.5")


def test_crp_and_hs_crp_not_swapped(d: DataDictionary) -> None:
    assert d["crp"].codes[0].codes == ["1988-5"]
    assert d["hs_crp"].codes[0].codes == ["30522-7"]
    assert d.find_code("loinc", "1988-5") == d["crp"]
    assert d.find_code("loinc", "30522-7") == d["hs_crp"]
    assert "high-sensitivity" in d["hs_crp"].description.lower()
    assert "not high-sensitivity" in d["crp"].description.lower()


def test_arni_not_an_arb_and_not_a_diuretic(d: DataDictionary) -> None:
    assert ids(d.find_all(ATC, "C09DX04")) == ["ras_inhibitor", "arni"]
    assert d["angiotensin_receptor_blocker"].matches(ATC, "C09DX01")
    assert d["diuretic"].matches(ATC, "C09DX01")


def test_oral_anticoagulants(d: DataDictionary) -> None:
    oac = d["oral_anticoagulant"]
    for code in ["B01AA03", "B01AF01", "B01AF02", "B01AF03", "B01AE07"]:
        assert oac.matches(ATC, code), code
    assert not oac.matches(ATC, "B01AB05")  # enoxaparin is parenteral


def test_lvef(d: DataDictionary) -> None:
    lvef = d["lvef"]
    assert lvef.unit == "%"
    assert lvef.display["es"] == "Fracción de eyección del ventrículo izquierdo"
    assert lvef.display["nl"] == "Linkerventrikelejectiefractie"
    assert lvef.display["sv"] == "Vänsterkammarens ejektionsfraktion"
    assert lvef.display["it"] == "Frazione di eiezione ventricolare sinistra"
    assert lvef.display["cs"] == "Ejekční frakce levé komory"
    assert lvef.display["ro"] == "Fracția de ejecție a ventriculului stâng"
    for abbreviation, lang in [("FEVI", "es"), ("LVEF", "en"), ("FEVS", "it"), ("FE", "ro")]:
        assert abbreviation in lvef.all_names(lang)


def test_nyha_answers(d: DataDictionary) -> None:
    nyha = d["nyha_class"]
    loinc = {a.code: a for a in nyha.answers if a.system == LOINC}
    assert {c: a.value for c, a in loinc.items()} == {
        "LA28404-4": 1,
        "LA28405-1": 2,
        "LA28406-9": 3,
        "LA28407-7": 4,
    }
    for answer in nyha.answers:
        assert set(answer.display) == set(LANGUAGES)
        assert all(text.strip() for text in answer.display.values())


def test_symptoms_are_boolean_observations(d: DataDictionary) -> None:
    for v in d.by_category(Category.symptom):
        assert v.resource == "Observation"
        assert v.value_type == "boolean"
        assert [cs.system for cs in v.codes] == [SNOMED]


def test_sex_answers(d: DataDictionary) -> None:
    assert [a.code for a in d["sex"].answers] == ["male", "female", "other", "unknown"]


def test_derived_variables(d: DataDictionary) -> None:
    assert d["age_at_index"].derived
    assert d["length_of_stay"].derived
    assert d["length_of_stay"].unit == "d"


# ------------------------------------------------------------- whole-dictionary invariants


def test_all_languages_present_for_multilingual_categories(d: DataDictionary) -> None:
    for v in d:
        if v.category in MULTILINGUAL_CATEGORIES:
            assert set(v.display) == set(LANGUAGES), v.id
            for lang, text in v.display.items():
                assert text.strip() == text and text, (v.id, lang)


def test_every_variable_has_seven_display_names(d: DataDictionary) -> None:
    # Not required by the loader outside the multilingual categories, but kept complete.
    missing = [v.id for v in d if set(v.display) != set(LANGUAGES)]
    assert missing == []


def test_coded_answers_have_all_languages(d: DataDictionary) -> None:
    for v in d:
        for a in v.answers:
            assert set(a.display) == set(LANGUAGES), (v.id, a.code)


_UCUM = re.compile(r"^[A-Za-z0-9%/.\[\]{}_^*-]+$")
_NOT_UCUM = {"mmHg", "bpm", "mcg/L", "ml/min", "sec", "°C", "kg/m²", "m²", "ng/ml", "pg/ml"}


def test_units_look_like_ucum(d: DataDictionary) -> None:
    for v in d:
        if v.unit is None:
            continue
        assert _UCUM.match(v.unit), (v.id, v.unit)
        assert v.unit not in _NOT_UCUM, (v.id, v.unit)
        assert v.unit.count("{") == v.unit.count("}"), (v.id, v.unit)
        assert v.unit.count("[") == v.unit.count("]"), (v.id, v.unit)


def test_quantities_have_unit_and_range(d: DataDictionary) -> None:
    for v in d:
        if v.value_type == "quantity":
            assert v.unit, v.id
            assert v.range is not None, v.id
        else:
            assert v.unit is None, v.id


def test_ranges_ordered(d: DataDictionary) -> None:
    for v in d:
        if v.range is not None:
            low, high = v.range
            assert low < high, v.id


def test_specified_plausible_ranges(d: DataDictionary) -> None:
    assert d["potassium"].range == (1, 10)
    assert d["sodium"].range == (90, 200)
    assert d["hemoglobin"].range == (2, 25) and d["hemoglobin"].unit == "g/dL"
    assert d["nt_probnp"].range == (0, 100000)


def test_ids_unique_and_snake_case(d: DataDictionary) -> None:
    all_ids = [v.id for v in d]
    assert len(all_ids) == len(set(all_ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in all_ids)


def test_descriptions(d: DataDictionary) -> None:
    for v in d:
        assert v.description.strip(), v.id
        assert v.description.rstrip().endswith("."), v.id


def test_coded_variables_have_codes(d: DataDictionary) -> None:
    for v in d:
        if v.category not in {Category.demographics, Category.encounter} and v.id not in {
            "death_date",
            "deceased",
        }:
            assert v.codes, v.id
        if v.value_type == "presence":
            assert v.codes, v.id


# Codes deliberately shared: a CRT defibrillator is both an ICD and a CRT implantation.
SHARED_EXACT_CODES = {(SNOMED, "1236755008"), (SNOMED, "447365002")}


def test_exact_codes_not_shared_between_variables(d: DataDictionary) -> None:
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for v in d:
        for cs in v.codes:
            if not cs.hierarchical:
                for c in cs.codes:
                    owners[(cs.system, c)].append(v.id)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    assert set(shared) == SHARED_EXACT_CODES, shared


def test_names_unambiguous_within_each_language(d: DataDictionary) -> None:
    # A display name or synonym must point to one variable per language, or NLP and search
    # cannot tell which variable a mention means.
    for lang in LANGUAGES:
        seen: dict[str, set[str]] = defaultdict(set)
        for v in d:
            names = [n.casefold().strip() for n in v.all_names(lang)]
            assert len(names) == len(set(names)), (v.id, lang, names)
            for n in names:
                seen[n].add(v.id)
        clashes = {n: sorted(vs) for n, vs in seen.items() if len(vs) > 1}
        assert clashes == {}, (lang, clashes)


def test_dt4h_profiles_named(d: DataDictionary) -> None:
    for v in d:
        assert v.profile is not None and v.profile.startswith("HFR-"), v.id


def test_observation_categories(d: DataDictionary) -> None:
    allowed = {"laboratory", "vital-signs", "imaging", "exam", "survey", "social-history"}
    for v in d:
        if v.resource == "Observation":
            assert v.observation_category in allowed, v.id
    assert {v.observation_category for v in d.by_category(Category.lab)} == {"laboratory"}
    assert {v.observation_category for v in d.by_category(Category.vital_sign)} == {"vital-signs"}
