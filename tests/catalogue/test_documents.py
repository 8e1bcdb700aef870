from __future__ import annotations

import dataclasses

import pytest

from cardiobox.catalogue.documents import SearchDocument, variable_document, variable_documents
from cardiobox.cdm.dictionary import LANGUAGES, load_dictionary


def test_search_document_is_the_contract_dataclass() -> None:
    fields = {f.name: f for f in dataclasses.fields(SearchDocument)}
    assert list(fields) == ["id", "kind", "labels", "texts", "site", "variable_id", "facets"]
    assert fields["site"].default is None and fields["variable_id"].default is None
    doc = SearchDocument(id="dataset:a", kind="dataset", labels={"en": "A"}, texts={})
    assert doc.facets == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.id = "other"  # type: ignore[misc]


def test_one_document_per_variable_with_unique_ids() -> None:
    dictionary = load_dictionary()
    docs = variable_documents(dictionary)
    assert len(docs) == len(dictionary)
    assert [d.id for d in docs] == [f"variable::{v.id}" for v in dictionary]
    assert all(d.kind == "variable" and d.site is None for d in docs)
    assert all(d.variable_id == v.id for d, v in zip(docs, dictionary, strict=True))


def test_labels_are_the_display_names_in_every_language() -> None:
    lvef = load_dictionary()["lvef"]
    doc = variable_document(lvef)
    assert doc.labels == lvef.display
    assert set(doc.labels) == set(LANGUAGES)
    assert doc.labels["cs"] == "Ejekční frakce levé komory"


def test_texts_hold_names_synonyms_and_the_english_description() -> None:
    v = load_dictionary()["lvef"]
    doc = variable_document(v)
    assert doc.texts["es"].split("; ") == [v.display["es"], *v.synonyms["es"]]
    english = doc.texts["en"]
    for part in (v.display["en"], "LVEF", v.description, "echo", "unit %", "LOINC"):
        assert part in english


def test_a_synonym_repeating_the_label_is_kept_once() -> None:
    ecg = load_dictionary()["ecg_12_lead"]  # sv: label "12-avlednings-EKG", synonym "EKG"
    names = variable_document(ecg).texts["nl"].split("; ")
    assert len(names) == len({n.casefold() for n in names})


def test_facets_name_the_category_and_coding_systems() -> None:
    d = load_dictionary()
    assert variable_document(d["heart_failure"]).facets == {
        "variable": ("heart_failure",),
        "category": ("phenotype",),
        "coding_system": ("ICD-10",),
    }
    assert variable_document(d["sex"]).facets["coding_system"] == ()


def test_a_variable_without_synonyms_has_its_name_as_text() -> None:
    amiodarone = load_dictionary()["amiodarone"]
    doc = variable_document(amiodarone)
    assert doc.texts["it"] == amiodarone.display["it"]
