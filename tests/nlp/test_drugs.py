"""The drug files lang/<code>/drugs.yaml: schema, cross-language consistency, known codes."""

from __future__ import annotations

import pytest

import cardiobox.nlp.languages as languages_module
from cardiobox.nlp.languages import LANGUAGES, LanguageError
from cardiobox.nlp.lexicon import DrugLexicon, load_drug_lexicon, normalise_term


def _name_index(lang: str) -> dict[str, str]:
    """Folded name or brand → ATC code, for one language."""
    out: dict[str, str] = {}
    for entry in load_drug_lexicon(lang).drugs.values():
        for name in [*entry.names, *entry.brands]:
            out[normalise_term(name)] = entry.atc
    return out


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_file_loads_and_is_large(lang: str) -> None:
    drugs = load_drug_lexicon(lang).drugs
    substances = [e for e in drugs.values() if len(e.atc) == 7]
    assert len(substances) >= 250
    assert all(e.names for e in drugs.values())


def test_same_substances_with_same_atc_code_in_every_language() -> None:
    reference = {key: entry.atc for key, entry in load_drug_lexicon("en").drugs.items()}
    for lang in LANGUAGES:
        codes = {key: entry.atc for key, entry in load_drug_lexicon(lang).drugs.items()}
        assert codes.keys() == reference.keys(), lang
        different = {k: (codes[k], reference[k]) for k in codes if codes[k] != reference[k]}
        assert not different, (lang, different)
        flags = {k: e.link_only for k, e in load_drug_lexicon(lang).drugs.items()}
        assert flags == {k: e.link_only for k, e in load_drug_lexicon("en").drugs.items()}


# The cardiology core: every language must have these substances, with these codes.
CORE = {
    "digoxin": "C01AA05",
    "amiodarone": "C01BD01",
    "flecainide": "C01BC04",
    "dobutamine": "C01CA07",
    "norepinephrine": "C01CA03",
    "levosimendan": "C01CX08",
    "ivabradine": "C01EB17",
    "ranolazine": "C01EB18",
    "glyceryl_trinitrate": "C01DA02",
    "doxazosin": "C02CA04",
    "hydralazine": "C02DB02",
    "furosemide": "C03CA01",
    "torasemide": "C03CA04",
    "hydrochlorothiazide": "C03AA03",
    "spironolactone": "C03DA01",
    "eplerenone": "C03DA04",
    "finerenone": "C03DA05",
    "bisoprolol": "C07AB07",
    "carvedilol": "C07AG02",
    "metoprolol": "C07AB02",
    "amlodipine": "C08CA01",
    "diltiazem": "C08DB01",
    "verapamil": "C08DA01",
    "ramipril": "C09AA05",
    "enalapril": "C09AA02",
    "candesartan": "C09CA06",
    "sacubitril_valsartan": "C09DX04",
    "atorvastatin": "C10AA05",
    "rosuvastatin": "C10AA07",
    "ezetimibe": "C10AX09",
    "evolocumab": "C10AX13",
    "acenocoumarol": "B01AA07",
    "warfarin": "B01AA03",
    "apixaban": "B01AF02",
    "rivaroxaban": "B01AF01",
    "edoxaban": "B01AF03",
    "dabigatran": "B01AE07",
    "enoxaparin": "B01AB05",
    "acetylsalicylic_acid": "B01AC06",
    "clopidogrel": "B01AC04",
    "ticagrelor": "B01AC24",
    "prasugrel": "B01AC22",
    "empagliflozin": "A10BK03",
    "dapagliflozin": "A10BK01",
    "metformin": "A10BA02",
    "insulin_glargine": "A10AE04",
    "omeprazole": "A02BC01",
    "paracetamol": "N02BE01",
    "allopurinol": "M04AA01",
    "levothyroxine": "H03AA01",
    "ceftriaxone": "J01DD04",
    "gentamicin": "J01GB03",
    "vancomycin": "J01XA01",
    "cloxacillin": "J01CF02",
    "daptomycin": "J01XX09",
    "ferric_carboxymaltose": "B03AC",
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_cardiology_core_substances(lang: str) -> None:
    drugs = load_drug_lexicon(lang).drugs
    assert {key: drugs[key].atc for key in CORE} == CORE


@pytest.mark.parametrize(
    ("lang", "name", "atc"),
    [
        ("es", "furosemida", "C03CA01"),
        ("it", "furosemide", "C03CA01"),
        ("cs", "furosemid", "C03CA01"),
        ("ro", "furosemid", "C03CA01"),
        ("sv", "furosemid", "C03CA01"),
        ("nl", "furosemide", "C03CA01"),
        ("es", "ácido acetilsalicílico", "B01AC06"),
        ("it", "acido acetilsalicilico", "B01AC06"),
        ("nl", "acetylsalicylzuur", "B01AC06"),
        ("es", "AAS", "B01AC06"),
        ("en", "ASA", "B01AC06"),
        ("es", "HBPM", "B01AB"),
        ("en", "LMWH", "B01AB"),
        # Brands stand for their active substance.
        ("es", "Sintrom", "B01AA07"),
        ("es", "Adiro", "B01AC06"),
        ("es", "Seguril", "C03CA01"),
        ("es", "Trangorex", "C01BD01"),
        ("es", "Emconcor", "C07AB07"),
        ("es", "Sortis", "C10AA05"),
        ("cs", "Sortis", "C10AA05"),
        ("en", "Lasix", "C03CA01"),
        ("en", "Lanoxin", "C01AA05"),
        ("en", "Cordarone", "C01BD01"),
        ("en", "Plavix", "B01AC04"),
        ("en", "Brilinta", "B01AC24"),
        ("es", "Brilique", "B01AC24"),
        ("en", "Eliquis", "B01AF02"),
        ("en", "Xarelto", "B01AF01"),
        ("en", "Pradaxa", "B01AE07"),
        ("en", "Jardiance", "A10BK03"),
        ("en", "Forxiga", "A10BK01"),
        ("sv", "Waran", "B01AA03"),
        ("nl", "Ascal", "B01AC08"),
        ("ro", "Trombostop", "B01AA07"),
        ("it", "Cardioaspirina", "B01AC06"),
        # Combinations have their own code, written either way round.
        ("es", "sacubitrilo/valsartán", "C09DX04"),
        ("en", "Entresto", "C09DX04"),
        ("es", "carbidopa/levodopa", "N04BA02"),
        ("en", "piperacillin/tazobactam", "J01CR05"),
    ],
)
def test_names_and_brands_map_to_the_substance_code(lang: str, name: str, atc: str) -> None:
    assert _name_index(lang).get(normalise_term(name)) == atc


def test_a_name_may_stand_for_one_atc_code_only() -> None:
    bad = {
        "drugs": {
            "furosemide": {"atc": "C03CA01", "names": ["furosemida"]},
            "torasemide": {"atc": "C03CA04", "names": ["torasemida", "Furosemida"]},
        }
    }
    with pytest.raises(ValueError, match="also names 'furosemide'"):
        DrugLexicon.model_validate(bad)


@pytest.mark.parametrize(
    "entry",
    [
        {"atc": "C3CA01", "names": ["x1"]},  # not an ATC code
        {"atc": "C03CA01", "names": []},  # no name
        {"atc": "C03CA01", "names": ["furosemida"], "brand": ["Seguril"]},  # unknown field
    ],
)
def test_schema_rejects_bad_entries(entry: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DrugLexicon.model_validate({"drugs": {"furosemide": entry}})


def test_a_broken_file_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        languages_module, "load_language_file", lambda lang, name: {"drugs": {"Bad Key": {}}}
    )
    with pytest.raises(LanguageError, match=r"nl/drugs\.yaml.*language-data"):
        load_drug_lexicon.__wrapped__("nl")
