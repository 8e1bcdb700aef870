"""The lexicon recogniser: data-model names and drug names found in notes of seven languages."""

from __future__ import annotations

import pytest
from spacy.tokens import Span

from cardiobox.cdm.dictionary import load_dictionary
from cardiobox.nlp.doc import ENTITIES, make_doc
from cardiobox.nlp.lexicon import (
    LexiconRecognizer,
    group_atc_code,
    lexicon_terms,
    medication_group_for_atc,
    recognise_entities,
    register_extensions,
    stem_key,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"

HF = ("DISEASE", f"{ICD10}|I50", "heart_failure")
DYSPNOEA = ("SYMPTOM", f"{SNOMED}|267036007", "breathlessness")
ANGIOGRAPHY = ("PROCEDURE", f"{SNOMED}|33367005", "coronary_angiography")
FUROSEMIDE = ("MEDICATION", f"{ATC}|C03CA01", "loop_diuretic")

# One note per language: a disease, a symptom, a procedure, a generic drug and a brand.
NOTES = {
    "es": (
        "Varón de 72 años con insuficiencia cardíaca. Refiere disnea de esfuerzo. Se realizó "
        "coronariografía. Tratamiento: furosemida 40 mg/24h y Sintrom.",
        {
            "insuficiencia cardíaca": HF,
            "disnea de esfuerzo": DYSPNOEA,
            "coronariografía": ANGIOGRAPHY,
            "furosemida": FUROSEMIDE,
            "Sintrom": ("MEDICATION", f"{ATC}|B01AA07", "vitamin_k_antagonist"),
        },
    ),
    "en": (
        "72-year-old man with heart failure. He reports shortness of breath on exertion. "
        "Coronary angiography was performed. Treatment: furosemide 40 mg daily and Eliquis 5 mg.",
        {
            "heart failure": HF,
            "shortness of breath": DYSPNOEA,
            "Coronary angiography": ANGIOGRAPHY,
            "furosemide": FUROSEMIDE,
            "Eliquis": ("MEDICATION", f"{ATC}|B01AF02", "doac"),
        },
    ),
    "it": (
        "Uomo di 72 anni con scompenso cardiaco. Riferisce dispnea da sforzo. Eseguita "
        "coronarografia. Terapia: furosemide 25 mg e Cardioaspirina 100 mg.",
        {
            "scompenso cardiaco": HF,
            "dispnea da sforzo": DYSPNOEA,
            "coronarografia": ANGIOGRAPHY,
            "furosemide": FUROSEMIDE,
            "Cardioaspirina": ("MEDICATION", f"{ATC}|B01AC06", "aspirin"),
        },
    ),
    "nl": (
        "Man van 72 jaar met hartfalen. Klaagt over kortademigheid bij inspanning. Er werd een "
        "coronairangiografie verricht. Medicatie: furosemide 40 mg en Selokeen 50 mg.",
        {
            "hartfalen": HF,
            "kortademigheid": DYSPNOEA,
            "coronairangiografie": ANGIOGRAPHY,
            "furosemide": FUROSEMIDE,
            "Selokeen": ("MEDICATION", f"{ATC}|C07AB02", "beta_blocker"),
        },
    ),
    "sv": (
        "72-årig man med hjärtsvikt. Besväras av andfåddhet vid ansträngning. "
        "Koronarangiografi utfördes. Behandling: furosemid 40 mg och Waran enligt schema.",
        {
            "hjärtsvikt": HF,
            "andfåddhet": DYSPNOEA,
            "Koronarangiografi": ANGIOGRAPHY,
            "furosemid": FUROSEMIDE,
            "Waran": ("MEDICATION", f"{ATC}|B01AA03", "vitamin_k_antagonist"),
        },
    ),
    "cs": (
        "72letý muž se srdečním selháním. Udává námahovou dušnost. Byla provedena "
        "koronarografie. Léčba: furosemid 40 mg a Anopyrin 100 mg.",
        {
            "srdečním selháním": HF,  # instrumental case, found through the stemmer
            "námahovou dušnost": DYSPNOEA,
            "koronarografie": ANGIOGRAPHY,
            "furosemid": FUROSEMIDE,
            "Anopyrin": ("MEDICATION", f"{ATC}|B01AC06", "aspirin"),
        },
    ),
    "ro": (
        "Bărbat de 72 de ani cu insuficiență cardiacă. Acuză dispnee de efort. S-a efectuat "
        "coronarografie. Tratament: furosemid 40 mg și Trombostop 2 mg.",
        {
            "insuficiență cardiacă": HF,
            "dispnee de efort": DYSPNOEA,
            "coronarografie": ANGIOGRAPHY,
            "furosemid": FUROSEMIDE,
            "Trombostop": ("MEDICATION", f"{ATC}|B01AA07", "vitamin_k_antagonist"),
        },
    ),
}


def _found(text: str, lang: str) -> dict[str, tuple[str, str | None, str | None]]:
    doc = recognise_entities(make_doc(text, lang))
    return {s.text: (s.label_, s._.code, s._.variable) for s in doc.spans[ENTITIES]}


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_each_language_finds_the_four_types_with_codes(lang: str) -> None:
    text, expected = NOTES[lang]
    assert _found(text, lang) == expected


def test_longest_match_wins_within_a_type_and_types_may_overlap() -> None:
    found = _found("Insuficiencia cardíaca congestiva. Angina de pecho.", "es")
    assert found["Insuficiencia cardíaca congestiva"] == HF
    assert "Insuficiencia cardíaca" not in found
    assert found["Angina de pecho"][0] == "DISEASE"


def test_matching_ignores_case_and_accents() -> None:
    found = _found("INSUFICIENCIA CARDIACA, tratada con FUROSEMIDA y acido acetilsalicilico", "es")
    assert found["INSUFICIENCIA CARDIACA"] == HF
    assert found["FUROSEMIDA"] == FUROSEMIDE
    assert found["acido acetilsalicilico"][1] == f"{ATC}|B01AC06"


def test_separators_between_drug_names_are_read_alike() -> None:
    for text in ("sacubitrilo/valsartán", "sacubitrilo-valsartán", "sacubitrilo + valsartán"):
        found = _found(f"Inicia {text} 49/51 mg.", "es")
        assert found[text] == ("MEDICATION", f"{ATC}|C09DX04", "arni")


def test_acronyms_match_only_in_capitals() -> None:
    assert _found("Paciente con FA permanente y AAS.", "es") == {
        "FA": ("DISEASE", f"{ICD10}|I48", "atrial_fibrillation"),
        "AAS": ("MEDICATION", f"{ATC}|B01AC06", "aspirin"),
    }
    # Dutch "af" (off) is no atrial fibrillation (AF); "ic" is no heart failure (IC).
    assert _found("De klachten namen af na rust.", "nl") == {}
    assert _found("Dolor en región ic izquierda.", "es") == {}


def test_words_used_otherwise_are_left_to_the_linker() -> None:
    # "potasio" is a lab value far more often than a drug: link_only in drugs.yaml.
    assert _found("Potasio 5,1 mmol/L.", "es") == {}
    assert any(t.text == "potasio" and t.link_only for t in lexicon_terms("es"))


def test_stemmer_keeps_short_words_and_strips_inflections() -> None:
    assert stem_key("tos") == "tos"
    assert stem_key("selhanim") == stem_key("selhani") == "selhan"
    assert stem_key("insuficiencias") == stem_key("insuficiencia")
    assert stem_key("hipertension") != stem_key("hipertrofia")


def test_stems_can_be_turned_off() -> None:
    doc = make_doc("Pacient se srdečním selháním.", "cs")
    assert list(LexiconRecognizer("cs", stems=False)(doc).spans[ENTITIES]) == []


def test_existing_entities_are_kept_and_completed() -> None:
    register_extensions()
    doc = make_doc("Disnea e insuficiencia cardíaca crónica; furosemida.", "es")
    tagged = Span(doc, 2, 5, label="DISEASE")  # "insuficiencia cardíaca crónica" by a tagger
    same = Span(doc, 6, 7, label="MEDICATION")  # "furosemida", no code yet
    coded = Span(doc, 0, 1, label="SYMPTOM")
    coded._.code = "already|set"
    doc.spans[ENTITIES] = [coded, tagged, same]
    out = LexiconRecognizer("es")(doc)
    spans = {(s.text, s.label_): s for s in out.spans[ENTITIES]}
    assert set(spans) == {
        ("Disnea", "SYMPTOM"),
        ("insuficiencia cardíaca crónica", "DISEASE"),
        ("furosemida", "MEDICATION"),
    }
    assert spans[("Disnea", "SYMPTOM")]._.code == "already|set"  # never overwritten
    assert spans[("furosemida", "MEDICATION")]._.code == f"{ATC}|C03CA01"
    assert spans[("insuficiencia cardíaca crónica", "DISEASE")]._.code is None  # the linker's job


def test_labels_restrict_what_is_found() -> None:
    doc = LexiconRecognizer("es", labels=["MEDICATION"])(make_doc("IC; furosemida.", "es"))
    assert [s.label_ for s in doc.spans[ENTITIES]] == ["MEDICATION"]
    with pytest.raises(ValueError, match="labels: unknown entity type"):
        LexiconRecognizer("es", labels=["DRUG"])


def test_empty_note() -> None:
    assert list(recognise_entities(make_doc("", "sv")).spans[ENTITIES]) == []


def test_extensions_register_idempotently() -> None:
    register_extensions()
    register_extensions()
    assert Span.has_extension("code") and Span.has_extension("variable")


@pytest.mark.parametrize(
    ("atc", "group"),
    [
        ("C03CA01", "loop_diuretic"),  # not just "diuretic"
        ("B01AC06", "aspirin"),  # not just "platelet_inhibitor"
        ("B01AF02", "doac"),
        ("C09DX04", "arni"),
        ("C09AA05", "ace_inhibitor"),
        ("A10BK03", "sglt2_inhibitor"),
        ("B01AB", "heparin"),
        ("A02BC01", None),  # omeprazole is in no data-model group
    ],
)
def test_a_drug_takes_the_most_specific_medication_group(atc: str, group: str | None) -> None:
    assert medication_group_for_atc(atc) == group


def test_group_mentions_get_the_groups_shared_atc_level() -> None:
    d = load_dictionary()
    assert group_atc_code(d["beta_blocker"]) == f"{ATC}|C07"
    assert group_atc_code(d["statin"]) == f"{ATC}|C10AA"
    assert group_atc_code(d["diuretic"]) == f"{ATC}|C03"  # C03, C07, C09...: first subgroup
    assert _found("Tratamiento con betabloqueantes.", "es")["betabloqueantes"] == (
        "MEDICATION",
        f"{ATC}|C07",
        "beta_blocker",
    )
