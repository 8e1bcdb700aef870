"""Section headers and section spans in the seven languages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

import cardiobox.nlp.languages as languages_module
from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.languages import LanguageError
from cardiobox.nlp.sections import (
    SECTION_NAMES,
    SectionRules,
    find_headers,
    fold_text,
    load_section_rules,
    section_of,
    split_sections,
    token_sections,
)

# A short note per language: its headers in order, and a phrase of each section's body.
NOTES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "es": (
        "Varón de 67 años.\n"
        "ANTECEDENTES PERSONALES\n"
        "Hipertensión arterial. Dislipemia.\n"
        "Enfermedad actual: disnea de esfuerzo de dos semanas.\n"
        "Exploración física: crepitantes bibasales.\n"
        "Ecocardiograma transtorácico al ingreso: FEVI 35 %.\n"
        "DIAGNÓSTICO\n"
        "Insuficiencia cardiaca.\n",
        [
            ("past_history", "Dislipemia"),
            ("present_illness", "disnea de esfuerzo"),
            ("physical_exam", "crepitantes"),
            ("echo", "FEVI"),
            ("diagnosis", "Insuficiencia cardiaca"),
        ],
    ),
    "en": (
        "HISTORY OF PRESENT ILLNESS\n"
        "Three days of exertional dyspnoea.\n"
        "Past medical history: hypertension, type 2 diabetes.\n"
        "Family history: father died of sudden cardiac death.\n"
        "Medications: bisoprolol 5 mg.\n"
        "Plan: start furosemide.\n",
        [
            ("present_illness", "exertional dyspnoea"),
            ("past_history", "hypertension"),
            ("family_history", "sudden cardiac death"),
            ("medications", "bisoprolol"),
            ("plan", "furosemide"),
        ],
    ),
    "it": (
        "Anamnesi patologica remota: ipertensione arteriosa.\n"
        "Anamnesi patologica prossima: dispnea da sforzo.\n"
        "Esame obiettivo: soffio sistolico.\n"
        "ECG: ritmo sinusale.\n"
        "Terapia alla dimissione: ramipril 5 mg.\n",
        [
            ("past_history", "ipertensione"),
            ("present_illness", "dispnea"),
            ("physical_exam", "soffio"),
            ("ecg", "ritmo sinusale"),
            ("discharge", "ramipril"),
        ],
    ),
    "nl": (
        "Voorgeschiedenis: myocardinfarct in 2015.\n"
        "Anamnese: toenemende dyspneu.\n"
        "Lichamelijk onderzoek: crepitaties basaal.\n"
        "Laboratorium: NT-proBNP 2500 ng/L.\n"
        "Conclusie\n"
        "Hartfalen met verminderde ejectiefractie.\n"
        "Beleid: start sacubitril/valsartan.\n",
        [
            ("past_history", "myocardinfarct"),
            ("present_illness", "dyspneu"),
            ("physical_exam", "crepitaties"),
            ("labs", "NT-proBNP"),
            ("diagnosis", "Hartfalen"),
            ("plan", "sacubitril"),
        ],
    ),
    "sv": (
        "Kontaktorsak: bröstsmärta.\n"
        "Tidigare sjukdomar: hypertoni.\n"
        "Status: blåsljud över aorta.\n"
        "EKG: sinusrytm.\n"
        "Bedömning: akut koronart syndrom.\n",
        [
            ("chief_complaint", "bröstsmärta"),
            ("past_history", "hypertoni"),
            ("physical_exam", "blåsljud"),
            ("ecg", "sinusrytm"),
            ("diagnosis", "akut koronart syndrom"),
        ],
    ),
    "cs": (
        "Osobní anamnéza: arteriální hypertenze.\n"
        "Rodinná anamnéza: otec infarkt myokardu.\n"
        "Nynější onemocnění: dušnost při námaze.\n"
        "Objektivní nález: systolický šelest.\n"
        "Závěr: srdeční selhání.\n",
        [
            ("past_history", "hypertenze"),
            ("family_history", "infarkt"),
            ("present_illness", "dušnost"),
            ("physical_exam", "šelest"),
            ("diagnosis", "srdeční selhání"),
        ],
    ),
    "ro": (
        "Motivele internării: dispnee de efort.\n"
        "Antecedente personale patologice: hipertensiune arterială.\n"
        "AHC: tatăl cu infarct miocardic.\n"
        "Examen clinic: raluri crepitante.\n"
        "Diagnostic: insuficiență cardiacă.\n",
        [
            ("chief_complaint", "dispnee"),
            ("past_history", "hipertensiune"),
            ("family_history", "infarct"),
            ("physical_exam", "raluri"),
            ("diagnosis", "insuficiență cardiacă"),
        ],
    ),
}


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_sections_of_a_note(lang: str) -> None:
    text, expected = NOTES[lang]
    doc = split_sections(make_doc(text, lang))
    assert [s.label_ for s in doc.spans["sections"]] == [name for name, _ in expected]
    for name, phrase in expected:
        start = text.index(phrase)
        span = doc.char_span(start, start + len(phrase), alignment_mode="expand")
        assert section_of(span) == name, (lang, phrase)


def test_section_bodies_leave_out_the_headers() -> None:
    text = "Enfermedad actual:  disnea.\n\nDiagnóstico:\nIC.\n"
    doc = split_sections(make_doc(text, "es"))
    assert [(s.label_, s.text) for s in doc.spans["sections"]] == [
        ("present_illness", "disnea."),
        ("diagnosis", "IC."),
    ]


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("EXPLORACIÓN FÍSICA", "physical_exam"),  # alone on its line
        ("EXPLORACION FISICA", "physical_exam"),  # without accents
        ("exploración física:", "physical_exam"),  # lower case, colon
        ("Analítica al ingreso: Hb 12 g/dL", "labs"),  # qualifying words, then a colon
        ("Electrocardiograma (ECG): ritmo sinusal", "ecg"),  # a parenthesis before the colon
        ("Antecedentes familiares: padre con IAM", "family_history"),  # longest phrase wins
        ("Diagnóstico II:", "diagnosis"),  # a numeral after the header
        ("1. Antecedentes: HTA", "past_history"),  # a number before it
        ("• ECG: BRIHH", "ecg"),  # a bullet before it
        ("Enfermedad actual Consulta por disnea", "present_illness"),  # a capitalised word
    ],
)
def test_header_forms(line: str, name: str) -> None:
    headers = find_headers(f"Texto previo.\n{line}\nMás texto.\n", "es")
    assert [h.name for h in headers] == [name]


def test_header_after_a_sentence_in_mid_line() -> None:
    text = "Sin fiebre. Enfermedad actual: disnea. y evolución: buena."
    headers = find_headers(text, "es")
    assert [(text[h.start : h.end], h.name) for h in headers] == [
        ("Enfermedad actual:", "present_illness")
    ]


@pytest.mark.parametrize(
    "line",
    [
        "Tratamiento con furosemida intravenosa",  # a header word, no colon, lower case next
        "Se realiza ECG: ritmo sinusal",  # not at the start of the line
        "Evolución favorable",  # lower case after the header
        "Antecedentesfamiliares:",  # not a whole word
    ],
)
def test_non_headers(line: str) -> None:
    assert find_headers(f"{line}\n", "es") == []


def test_outside_every_section() -> None:
    doc = make_doc("Varón de 67 años.\nDiagnóstico: IC.", "es")
    assert section_of(doc[0:1]) is None  # no section group yet
    split_sections(doc)
    assert section_of(doc[0:1]) is None  # before the first header
    assert token_sections(doc)[0] is None
    assert token_sections(doc)[-2] == "diagnosis"


def test_empty_note() -> None:
    doc = split_sections(make_doc("", "es"))
    assert list(doc.spans["sections"]) == []


# --- case and accent folding ---


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Exploración FÍSICA", "exploracion fisica"),
        ("Přítomnost ŘEŠ", "pritomnost res"),
        ("fără ȘȚ şţ", "fara st st"),
        ("Ångström", "angstrom"),
        ("İzmir Łódź", "izmir lodz"),
        ("Ωμέγα", "ωμέγα"),  # other scripts are lower-cased only
    ],
)
def test_fold_text(text: str, folded: str) -> None:
    assert fold_text(text) == folded
    assert len(fold_text(text)) == len(text)


def test_fold_text_can_keep_accents() -> None:
    assert fold_text("Né È", accents=False) == "né è"


# --- the schema of sections.yaml ---


def full_headers() -> dict[str, list[str]]:
    return {name: [f"header {name}"] for name in SECTION_NAMES}


def test_every_section_but_other_needs_a_header() -> None:
    headers = full_headers()
    del headers["other"]
    assert SectionRules.model_validate({"headers": headers})
    del headers["plan"]
    with pytest.raises(ValidationError, match=r"no phrase for section.*plan"):
        SectionRules.model_validate({"headers": headers})


def test_a_phrase_opens_one_section_only() -> None:
    headers = full_headers()
    headers["labs"].append("Héader PLAN")
    with pytest.raises(ValidationError, match="opens both"):
        SectionRules.model_validate({"headers": headers})


def test_unknown_section_name_is_refused() -> None:
    headers = full_headers()
    headers["social_history"] = ["hábitos"]
    with pytest.raises(ValidationError, match="social_history"):
        SectionRules.model_validate({"headers": headers})


@pytest.fixture
def broken_spanish_file(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(
        languages_module, "load_language_file", lambda lang, name: {"headers": {"plan": [True]}}
    )
    load_section_rules.cache_clear()
    yield
    monkeypatch.undo()
    load_section_rules.cache_clear()


@pytest.mark.usefixtures("broken_spanish_file")
def test_a_broken_file_is_named() -> None:
    with pytest.raises(LanguageError, match=r"es[/\\]sections\.yaml.*headers\.plan"):
        load_section_rules("es")
