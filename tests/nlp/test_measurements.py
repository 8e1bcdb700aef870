"""Measurement extraction from cardiology notes in seven languages."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cardiobox.nlp import measurements as m
from cardiobox.nlp.doc import MEASUREMENTS, make_doc
from cardiobox.nlp.languages import LANGUAGES, LanguageError, language_dir
from cardiobox.nlp.measurements import (
    QUANTITY_VARIABLES,
    MeasurementExtractor,
    find_measurements,
    load_measurement_lexicon,
)

# Closed-form conversion factors (molar masses of the data model's unit table).
CREATININE_MG_DL = 10 / 113.12 * 1000  # mg/dL -> umol/L
CHOLESTEROL_MG_DL = 10 / 386.65  # mg/dL -> mmol/L
HB_MMOL_L = 16114.5 / 1000 / 10  # mmol/L (monomer) -> g/dL

NYHA = {
    1: "http://loinc.org|LA28404-4",
    2: "http://loinc.org|LA28405-1",
    3: "http://loinc.org|LA28406-9",
    4: "http://loinc.org|LA28407-7",
}

# (language, note, [(variable, value in the canonical unit, canonical unit)]); NYHA class is
# written ("nyha_class", class, None) and also checked for its coded answer.
CASES: list[tuple[str, str, list[tuple[str, float, str | None]]]] = [
    # Spanish
    ("es", "Ecocardiograma: FEVI del 35 %, sin valvulopatías.", [("lvef", 35, "%")]),
    ("es", "FE estimada 30-35 % por Simpson biplano.", [("lvef", 32.5, "%")]),
    (
        "es",
        "Fracción de eyección del ventrículo izquierdo (FEVI) severamente deprimida (25%).",
        [("lvef", 25, "%")],
    ),
    (
        "es",
        "Exploración física: TA 120/70 mmHg, FC 80 lpm, SatO2 96 %.",
        [
            ("systolic_bp", 120, "mm[Hg]"),
            ("diastolic_bp", 70, "mm[Hg]"),
            ("heart_rate", 80, "/min"),
            ("oxygen_saturation", 96, "%"),
        ],
    ),
    (
        "es",
        "Analítica: creatinina 1,2 mg/dL, K 4,5 mEq/L, Na 138 mmol/L, NT-proBNP 12.500 pg/ml.",
        [
            ("creatinine", 1.2 * CREATININE_MG_DL, "umol/L"),
            ("potassium", 4.5, "mmol/L"),
            ("sodium", 138, "mmol/L"),
            ("nt_probnp", 12500, "pg/mL"),
        ],
    ),
    (
        "es",
        "Disnea de moderados esfuerzos, clase funcional III de la NYHA.",
        [("nyha_class", 3, None)],
    ),
    ("es", "Disnea en clase funcional II/IV NYHA.", [("nyha_class", 2, None)]),
    (
        "es",
        "ECG: ritmo sinusal a 72 lpm, PR 180 ms, QRS 140 ms.",
        [("heart_rate", 72, "/min"), ("pr_interval", 180, "ms"), ("qrs_duration", 140, "ms")],
    ),
    (
        "es",
        "Peso 82 kg, talla 1,75 m, IMC 26,8 kg/m2, Tª 36,7 ºC.",
        [
            ("body_weight", 82, "kg"),
            ("body_height", 175, "cm"),
            ("bmi", 26.8, "kg/m2"),
            ("body_temperature", 36.7, "Cel"),
        ],
    ),
    (
        "es",
        "Colesterol total 190 mg/dl, c-LDL 110 mg/dl, HbA1c 7,2 %.",
        [
            ("total_cholesterol", 190 * CHOLESTEROL_MG_DL, "mmol/L"),
            ("ldl_cholesterol", 110 * CHOLESTEROL_MG_DL, "mmol/L"),
            ("hba1c", 7.2, "%"),
        ],
    ),
    # No unit: Spanish laboratories report creatinine in mg/dL and platelets per uL.
    (
        "es",
        "Cr 0,9, Hb 12,5 y plaquetas 250.000.",
        [
            ("creatinine", 0.9 * CREATININE_MG_DL, "umol/L"),
            ("hemoglobin", 12.5, "g/dL"),
            ("platelets", 250, "10*9/L"),
        ],
    ),
    ("es", "Troponina T ultrasensible 0,014 ng/mL.", [("hs_troponin_t", 14, "ng/L")]),
    (
        "es",
        "FEVI conservada y TA 110/60.",
        [("systolic_bp", 110, "mm[Hg]"), ("diastolic_bp", 60, "mm[Hg]")],
    ),
    # English
    ("en", "Echo showed LVEF 35% with global hypokinesis.", [("lvef", 35, "%")]),
    ("en", "EF 30-35% on the last echo.", [("lvef", 32.5, "%")]),
    (
        "en",
        "On examination BP 128/76 mmHg, HR 72 bpm, RR 18/min, SpO2 95% on room air.",
        [
            ("systolic_bp", 128, "mm[Hg]"),
            ("diastolic_bp", 76, "mm[Hg]"),
            ("heart_rate", 72, "/min"),
            ("respiratory_rate", 18, "/min"),
            ("oxygen_saturation", 95, "%"),
        ],
    ),
    ("en", "Temperature 100.4 °F.", [("body_temperature", 38.0, "Cel")]),
    ("en", "Ongoing NYHA class II symptoms.", [("nyha_class", 2, None)]),
    (
        "en",
        "Labs: creatinine 1.4 mg/dL, potassium 5.1 mmol/L, sodium 134 mEq/L, Hb 11.2 g/dL.",
        [
            ("creatinine", 1.4 * CREATININE_MG_DL, "umol/L"),
            ("potassium", 5.1, "mmol/L"),
            ("sodium", 134, "mmol/L"),
            ("hemoglobin", 11.2, "g/dL"),
        ],
    ),
    (
        "en",
        "NT-proBNP 2,450 pg/mL; hs-TnT 38 ng/L; HbA1c 53 mmol/mol.",
        [
            ("nt_probnp", 2450, "pg/mL"),
            ("hs_troponin_t", 38, "ng/L"),
            ("hba1c_ifcc", 53, "mmol/mol"),
        ],
    ),
    (
        "en",
        "Weight 94 kg, height 178 cm, BMI 29.7.",
        [("body_weight", 94, "kg"), ("body_height", 178, "cm"), ("bmi", 29.7, "kg/m2")],
    ),
    ("en", "QRS duration 152 ms with LBBB morphology.", [("qrs_duration", 152, "ms")]),
    ("en", "Sinus rhythm at 64 beats per minute.", [("heart_rate", 64, "/min")]),
    # Italian
    ("it", "Ecocardiogramma: FEVS 40%, insufficienza mitralica moderata.", [("lvef", 40, "%")]),
    ("it", "Frazione di eiezione 40%.", [("lvef", 40, "%")]),
    (
        "it",
        "PA 130/80 mmHg, frequenza cardiaca 80 bpm, SpO2 97%.",
        [
            ("systolic_bp", 130, "mm[Hg]"),
            ("diastolic_bp", 80, "mm[Hg]"),
            ("heart_rate", 80, "/min"),
            ("oxygen_saturation", 97, "%"),
        ],
    ),
    ("it", "Dispnea da sforzo in classe funzionale NYHA II.", [("nyha_class", 2, None)]),
    (
        "it",
        "Esami: creatinina 1,3 mg/dl, potassio 4,2 mEq/l, sodio 139 mEq/l, emoglobina 12,1 g/dl.",
        [
            ("creatinine", 1.3 * CREATININE_MG_DL, "umol/L"),
            ("potassium", 4.2, "mmol/L"),
            ("sodium", 139, "mmol/L"),
            ("hemoglobin", 12.1, "g/dL"),
        ],
    ),
    ("it", "NT-proBNP 3.200 pg/ml.", [("nt_probnp", 3200, "pg/mL")]),
    (
        "it",
        "Peso 78 kg, altezza 1,70 m, colesterolo LDL 95 mg/dl.",
        [
            ("body_weight", 78, "kg"),
            ("body_height", 170, "cm"),
            ("ldl_cholesterol", 95 * CHOLESTEROL_MG_DL, "mmol/L"),
        ],
    ),
    ("it", "Perdita di peso di circa 15 kg negli ultimi mesi.", []),
    # Dutch
    ("nl", "Echo: LVEF 45%, matige MI.", [("lvef", 45, "%")]),
    ("nl", "Ejectiefractie 45%.", [("lvef", 45, "%")]),
    (
        "nl",
        "RR 135/85 mmHg, pols 76/min.",
        [
            ("systolic_bp", 135, "mm[Hg]"),
            ("diastolic_bp", 85, "mm[Hg]"),
            ("heart_rate", 76, "/min"),
        ],
    ),
    ("nl", "Hartfrequentie 80/min.", [("heart_rate", 80, "/min")]),
    ("nl", "Klachten passend bij NYHA klasse III.", [("nyha_class", 3, None)]),
    (
        "nl",
        "Lab: kreatinine 98 µmol/l, kalium 4,3 mmol/l, natrium 140 mmol/l, Hb 8,4 mmol/l.",
        [
            ("creatinine", 98, "umol/L"),
            ("potassium", 4.3, "mmol/L"),
            ("sodium", 140, "mmol/L"),
            ("hemoglobin", 8.4 * HB_MMOL_L, "g/dL"),
        ],
    ),
    ("nl", "NT-proBNP 1.250 ng/l.", [("nt_probnp", 1250, "pg/mL")]),
    (
        "nl",
        "Gewicht 85 kg, lengte 1,82 m, temperatuur 38,2 °C.",
        [("body_weight", 85, "kg"), ("body_height", 182, "cm"), ("body_temperature", 38.2, "Cel")],
    ),
    # Swedish
    ("sv", "Ekokardiografi: EF 40 %, lätt vidgad vänsterkammare.", [("lvef", 40, "%")]),
    ("sv", "Ejektionsfraktion 40 %.", [("lvef", 40, "%")]),
    (
        "sv",
        "BT 130/80, puls 72 slag/min.",
        [
            ("systolic_bp", 130, "mm[Hg]"),
            ("diastolic_bp", 80, "mm[Hg]"),
            ("heart_rate", 72, "/min"),
        ],
    ),
    ("sv", "Besvär motsvarande NYHA klass II.", [("nyha_class", 2, None)]),
    (
        "sv",
        "Hb 135 g/l, P-kreatinin 110 µmol/l, P-kalium 4,1 mmol/l.",
        [("hemoglobin", 13.5, "g/dL"), ("creatinine", 110, "umol/L"), ("potassium", 4.1, "mmol/L")],
    ),
    ("sv", "NT-proBNP 2 300 ng/l.", [("nt_probnp", 2300, "pg/mL")]),
    # Swedish laboratories report HbA1c in mmol/mol: without a unit, % is implausible.
    ("sv", "HbA1c 48.", [("hba1c_ifcc", 48, "mmol/mol")]),
    (
        "sv",
        "Vikt 80 kg, längd 175 cm, temperatur 37,5 °C, saturation 96 %.",
        [
            ("body_weight", 80, "kg"),
            ("body_height", 175, "cm"),
            ("body_temperature", 37.5, "Cel"),
            ("oxygen_saturation", 96, "%"),
        ],
    ),
    # Czech
    ("cs", "ECHO: EF LK 35 %, hypokineze spodní stěny.", [("lvef", 35, "%")]),
    ("cs", "Ejekční frakce 40 %.", [("lvef", 40, "%")]),
    (
        "cs",
        "TK 140/90 mmHg, TF 88/min.",
        [
            ("systolic_bp", 140, "mm[Hg]"),
            ("diastolic_bp", 90, "mm[Hg]"),
            ("heart_rate", 88, "/min"),
        ],
    ),
    ("cs", "Tepová frekvence 80/min.", [("heart_rate", 80, "/min")]),
    ("cs", "Dušnost odpovídá NYHA třída II-III.", [("nyha_class", 3, None)]),
    (
        "cs",
        "Kreatinin 120 µmol/l, draslík 4,8 mmol/l, sodík 136 mmol/l, hemoglobin 128 g/l.",
        [
            ("creatinine", 120, "umol/L"),
            ("potassium", 4.8, "mmol/L"),
            ("sodium", 136, "mmol/L"),
            ("hemoglobin", 12.8, "g/dL"),
        ],
    ),
    ("cs", "NT-proBNP 1 850 pg/ml.", [("nt_probnp", 1850, "pg/mL")]),
    (
        "cs",
        "Hmotnost 90 kg, výška 180 cm, QRS 120 ms.",
        [("body_weight", 90, "kg"), ("body_height", 180, "cm"), ("qrs_duration", 120, "ms")],
    ),
    # Romanian
    ("ro", "Ecocardiografie: FEVS 30%, VS dilatat.", [("lvef", 30, "%")]),
    ("ro", "Fracția de ejecție 40%.", [("lvef", 40, "%")]),
    (
        "ro",
        "Tensiune arterială 120/70 mmHg, AV 80/min.",
        [
            ("systolic_bp", 120, "mm[Hg]"),
            ("diastolic_bp", 70, "mm[Hg]"),
            ("heart_rate", 80, "/min"),
        ],
    ),
    ("ro", "Alura ventriculară 96 bătăi/min.", [("heart_rate", 96, "/min")]),
    ("ro", "Dispnee de efort, clasa funcțională III NYHA.", [("nyha_class", 3, None)]),
    (
        "ro",
        "Creatinină 1,4 mg/dl, potasiu 4,6 mEq/l, sodiu 137 mEq/l, hemoglobină 11,8 g/dl.",
        [
            ("creatinine", 1.4 * CREATININE_MG_DL, "umol/L"),
            ("potassium", 4.6, "mmol/L"),
            ("sodium", 137, "mmol/L"),
            ("hemoglobin", 11.8, "g/dL"),
        ],
    ),
    ("ro", "NT-proBNP 5.400 pg/ml.", [("nt_probnp", 5400, "pg/mL")]),
    (
        "ro",
        "Greutate 70 kg, înălțime 1,65 m, IMC 25,7 kg/m2, SpO2 93%.",
        [
            ("body_weight", 70, "kg"),
            ("body_height", 165, "cm"),
            ("bmi", 25.7, "kg/m2"),
            ("oxygen_saturation", 93, "%"),
        ],
    ),
]


def _found(lang: str, text: str) -> list[tuple[str, float, str | None]]:
    return [(x.variable, round(x.value, 9), x.unit) for x in find_measurements(text, lang)]


@pytest.mark.parametrize(
    ("lang", "text", "expected"), CASES, ids=[f"{c[0]}-{c[1][:30]}" for c in CASES]
)
def test_measurements(lang: str, text: str, expected: list[tuple[str, float, str | None]]) -> None:
    found = _found(lang, text)
    assert [f[0] for f in found] == [e[0] for e in expected]
    for (_, value, unit), (variable, want, want_unit) in zip(found, expected, strict=True):
        assert value == pytest.approx(want, rel=1e-4), variable
        assert unit == want_unit, variable


def test_every_language_has_enough_cases() -> None:
    for lang in LANGUAGES:
        mentions = sum(len(e) for c_lang, _, e in CASES if c_lang == lang)
        assert mentions >= 8, lang


# --- NYHA ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "text", "cls"),
    [
        ("es", "NYHA II", 2),
        ("es", "clase funcional I de la NYHA", 1),
        ("es", "grado funcional III/ IV de la NYHA", 3),
        ("es", "disnea en reposo (IV/IV NYHA)", 4),
        ("es", "NYHA II-III", 3),
        ("en", "NYHA functional class 3", 3),
        ("en", "New York Heart Association class IV", 4),
        ("sv", "NYHA klass II", 2),
        ("cs", "NYHA třída II", 2),
        ("ro", "clasa II NYHA", 2),
    ],
)
def test_nyha_class_and_code(lang: str, text: str, cls: int) -> None:
    (found,) = find_measurements(text, lang)
    assert found.variable == "nyha_class"
    assert found.value == cls
    assert found.unit is None
    assert found.value_code == NYHA[cls]


# --- numbers, units and plausibility ---------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "text", "value"),
    [
        ("es", "NT-proBNP 12.500 pg/ml", 12500),  # "." groups thousands in Spanish
        ("es", "NT-proBNP 1250,5 pg/ml", 1250.5),  # decimal comma
        ("es", "NT-proBNP 125.5 pg/ml", 125.5),  # a point with other than three digits
        ("en", "NT-proBNP 12,500 pg/mL", 12500),  # "," groups thousands in English
        ("en", "NT-proBNP 1,2 pg/mL", 1.2),  # a decimal comma in English text
        ("sv", "NT-proBNP 12 500 ng/l", 12500),  # a space groups thousands in Swedish
        ("it", "NT-proBNP 1.250,5 pg/ml", 1250.5),
    ],
)
def test_numbers(lang: str, text: str, value: float) -> None:
    (found,) = find_measurements(text, lang)
    assert found.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("es", "FEVI 350 %"),  # above the data model's range for LVEF
        ("en", "LVEF 0%"),  # below it
        ("es", "FEVI > 55 %"),  # a comparator: not a value
        ("en", "K 45 mmol/L"),  # potassium above 10 mmol/L
        ("es", "TA 70/120 mmHg"),  # systolic not above diastolic
        ("es", "PCR 10 minutos"),  # a unit that is not one of CRP
        ("es", "Hb 12 mg/dl"),  # converts, but 0.12 g/dL is implausible
        ("es", "pérdida de peso de 5 kg"),  # weight loss, not body weight
        ("en", "VO2 14 ml/kg/min"),  # an unreadable unit
        ("en", "T11-T12 level"),  # a vertebra, not a temperature
    ],
)
def test_not_emitted(lang: str, text: str) -> None:
    assert find_measurements(text, lang) == []


def test_assumed_units_take_the_first_plausible_reading() -> None:
    # Spanish talla without a unit: 1,70 cm is implausible, 1,70 m is 170 cm.
    (found,) = find_measurements("talla 1,70", "es")
    assert found.variable == "body_height"
    assert found.value == pytest.approx(170)
    # English creatinine: 1.1 is mg/dL, 97 is umol/L (97 mg/dL would be implausible).
    assert find_measurements("creatinine 1.1", "en")[0].value == pytest.approx(
        1.1 * CREATININE_MG_DL
    )
    assert find_measurements("creatinine 97", "en")[0].value == pytest.approx(97)


def test_unit_decides_between_variables_sharing_a_label() -> None:
    assert _found("en", "HbA1c 7.1%") == [("hba1c", 7.1, "%")]
    assert _found("en", "HbA1c 54 mmol/mol") == [("hba1c_ifcc", 54, "mmol/mol")]


def test_accents_and_case_are_ignored_in_phrases_not_in_codes() -> None:
    assert _found("es", "fraccion de eyeccion 40%") == [("lvef", 40, "%")]
    assert _found("es", "FRECUENCIA CARDÍACA 70 lpm") == [("heart_rate", 70, "/min")]
    # "Ta" is the Spanish temperature, "TA" the blood pressure: codes keep their case.
    assert _found("es", "Ta 37,1 ºC") == [("body_temperature", 37.1, "Cel")]
    assert _found("es", "ta 37,1 ºC") == []


def test_mention_extent() -> None:
    text = "TA 120/70 mmHg; FEVI del 35 %; creatinina 1,2 mg/dL."
    spans = [(x.variable, text[x.start : x.end]) for x in find_measurements(text, "es")]
    assert spans == [
        ("systolic_bp", "TA 120/70 mmHg"),
        ("diastolic_bp", "120/70 mmHg"),
        ("lvef", "FEVI del 35 %"),
        ("creatinine", "creatinina 1,2 mg/dL"),
    ]


# --- the spaCy component ---------------------------------------------------------------------


def test_component_fills_the_span_group() -> None:
    doc = make_doc("Exploración: TA 130/85 mmHg, FC 72 lpm. FEVI 40 %, NYHA II.", "es")
    out = MeasurementExtractor()(doc)
    assert out is doc
    spans = list(doc.spans[MEASUREMENTS])
    assert [s.label_ for s in spans] == [
        "systolic_bp",
        "diastolic_bp",
        "heart_rate",
        "lvef",
        "nyha_class",
    ]
    # spaCy keys extension values by offsets: the two pressures need different extents.
    assert [s.text for s in spans] == [
        "TA 130/85 mmHg",
        "130/85 mmHg",
        "FC 72 lpm",
        "FEVI 40 %",
        "NYHA II",
    ]
    assert [s._.value for s in spans] == [130, 85, 72, 40, 2]
    assert [s._.unit for s in spans] == ["mm[Hg]", "mm[Hg]", "/min", "%", None]
    assert spans[-1]._.value_code == NYHA[2]
    assert all(s._.value_code is None for s in spans[:-1])


def test_component_with_fixed_language_and_empty_note() -> None:
    doc = make_doc("", "en")
    assert list(MeasurementExtractor("en")(doc).spans[MEASUREMENTS]) == []
    with pytest.raises(LanguageError, match="not supported"):
        MeasurementExtractor("de")


def test_long_note_is_read_whole() -> None:
    text = "Control: TA 120/70 mmHg, FC 70 lpm. " * 2000
    found = find_measurements(text, "es")
    assert len(found) == 3 * 2000
    assert {x.variable for x in found} == {"systolic_bp", "diastolic_bp", "heart_rate"}


# --- the language files ----------------------------------------------------------------------


def test_every_language_file_validates_with_the_same_keys() -> None:
    shapes = set()
    for lang in LANGUAGES:
        lexicon = load_measurement_lexicon(lang)
        assert set(lexicon.quantities) == set(QUANTITY_VARIABLES)
        raw = yaml.safe_load((language_dir(lang) / "measurements.yaml").read_text("utf-8"))
        shapes.add((tuple(sorted(raw)), tuple(sorted(raw["unit_cues"]))))
    assert len(shapes) == 1


def test_language_files_say_where_they_come_from() -> None:
    for lang in LANGUAGES:
        head = (language_dir(lang) / "measurements.yaml").read_text("utf-8")[:600]
        assert "cardiobox" in head and "Apache-2.0" in head, lang


def _broken(monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]) -> None:
    raw = yaml.safe_load((language_dir("es") / "measurements.yaml").read_text("utf-8"))
    raw.update(change)
    monkeypatch.setattr(m, "load_language_file", lambda lang, name: raw)


def test_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = yaml.safe_load((language_dir("es") / "measurements.yaml").read_text("utf-8"))
    del raw["quantities"]["lvef"]
    _broken(monkeypatch, {"quantities": raw["quantities"]})
    with pytest.raises(LanguageError, match=r"es/measurements\.yaml.*missing \['lvef'\]"):
        load_measurement_lexicon.__wrapped__("es")


def test_schema_errors_name_the_file_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    _broken(monkeypatch, {"decimal_mark": ";"})
    with pytest.raises(LanguageError, match=r"measurements\.yaml.*decimal_mark"):
        load_measurement_lexicon.__wrapped__("es")


def test_assumed_unit_must_convert(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = yaml.safe_load((language_dir("es") / "measurements.yaml").read_text("utf-8"))
    raw["quantities"]["creatinine"]["assume"] = ["mm[Hg]"]
    _broken(monkeypatch, {"quantities": raw["quantities"]})
    with pytest.raises(LanguageError, match=r"quantities\.creatinine\.assume"):
        load_measurement_lexicon.__wrapped__("es")


def test_unknown_unit_spelling_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _broken(monkeypatch, {"units": {"lpm": "beats"}})
    with pytest.raises(LanguageError, match=r"units: 'lpm'"):
        load_measurement_lexicon.__wrapped__("es")
