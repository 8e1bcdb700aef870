"""The fast encoder pass gives thinc's encodings (to float32 rounding) and the same entities."""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
import pytest
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vectors import Vectors
from tests.nlp.sample_notes import NOTES

from cardiobox.nlp import ner
from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.fast_encoder import _distinct_rows, encode, encoder_weights
from cardiobox.nlp.ner import ENCODER, EncoderShape, build_pipeline, load_pipeline
from cardiobox.nlp.pipeline import model_path
from cardiobox.nlp.vectors import memoize_floret_vectors

WORDS = ["disnea", "de", "esfuerzo", "fibrilación", "auricular", "furosemida", "40", "mg", ","]
WORDS += ["\n\n", "  ", ".", "y", "sin", "dolor", "torácico", "FEVI", "%", "NT-proBNP"]


def _docs(nlp: Language, texts: list[str], lang: str) -> list[Doc]:
    return [make_doc(text, lang, nlp, sentences=False) for text in texts]


def _assert_same_encodings(nlp: Language, docs: list[Doc]) -> None:
    model = nlp.get_pipe(ENCODER).model  # type: ignore[attr-defined]
    weights = encoder_weights(model)
    assert weights is not None
    expected = model.predict(docs)
    got = weights.encode(docs)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.shape == theirs.shape and mine.dtype == np.float32
        assert mine.flags.c_contiguous
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4)


@pytest.mark.parametrize("lang", ["es", "en", "it"])
def test_shipped_encoders_match_thinc_and_find_the_same_entities(lang: str) -> None:
    nlp = load_pipeline(model_path(lang))
    texts = [*NOTES[lang], " ".join(NOTES[lang] * 40)]  # and a note of a few thousand tokens
    _assert_same_encodings(nlp, _docs(nlp, texts, lang))

    def entities(docs: list[Doc]) -> list[list[tuple[int, int, str]]]:
        ner.predict_entities(nlp, docs)
        return [[(s.start, s.end, s.label_) for s in doc.spans["entities"]] for doc in docs]

    fast = entities(_docs(nlp, texts, lang))
    with mock.patch.object(ner, "encode", lambda _encoder, _docs: False):
        slow = entities(_docs(nlp, texts, lang))
    assert fast == slow
    assert any(fast)


def _random_floret_pipeline(shape: EncoderShape, seed: int) -> Language:
    """An encoder of another size, with floret vectors, every weight random."""
    nlp = build_pipeline("es", ["DISEASE"], shape)
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(64, 12)).astype(np.float32)
    nlp.vocab.vectors = Vectors(
        strings=nlp.vocab.strings, data=table, mode="floret", minn=3, maxn=5, hash_count=2
    )
    nlp.initialize()
    for node in nlp.get_pipe(ENCODER).model.walk():  # type: ignore[attr-defined]
        for name in node.param_names:
            if node.has_param(name):
                value = node.get_param(name)
                node.set_param(name, rng.normal(0, 1.0, value.shape).astype(value.dtype))
    return memoize_floret_vectors(nlp)


@pytest.mark.parametrize(
    ("width", "depth", "window", "seed"), [(16, 1, 1, 0), (24, 2, 2, 1), (8, 3, 1, 2)]
)
def test_encoders_of_other_sizes_match_thinc(
    width: int, depth: int, window: int, seed: int
) -> None:
    shape = EncoderShape(width=width, depth=depth, window=window, rows=(50, 40, 30, 20), hidden=8)
    nlp = _random_floret_pipeline(shape, seed)
    rng = random.Random(seed)
    texts = [
        "" if i == 2 else " ".join(rng.choices(WORDS, k=rng.randint(1, 150))) for i in range(6)
    ]
    _assert_same_encodings(nlp, _docs(nlp, texts, "es"))


def test_encoders_it_does_not_handle_are_left_to_spacy() -> None:
    shape = EncoderShape(width=16, depth=1, rows=(50, 50, 50, 50), hidden=8, static_vectors=False)
    nlp = build_pipeline("es", ["DISEASE"], shape)
    nlp.initialize()
    encoder = nlp.get_pipe(ENCODER)
    assert encoder_weights(encoder.model) is None  # type: ignore[attr-defined]
    docs = _docs(nlp, NOTES["es"], "es")
    assert encode(encoder, docs) is False
    assert all(doc.tensor.size == 0 for doc in docs)  # nothing written
    ner.predict_entities(nlp, docs)  # spaCy's own pass
    assert all(doc.tensor.shape == (len(doc), 16) for doc in docs if len(doc))
    assert encode(encoder, []) is False


def test_the_fast_pass_sets_every_notes_tensor() -> None:
    nlp = load_pipeline(model_path("es"))
    docs = _docs(nlp, NOTES["es"], "es")
    assert encode(nlp.get_pipe(ENCODER), docs) is True
    assert [doc.tensor.shape for doc in docs] == [(len(doc), 96) for doc in docs]


def test_notes_are_encoded_batch_by_batch_with_the_same_entities() -> None:
    nlp = load_pipeline(model_path("es"))
    texts = NOTES["es"] * 3

    def entities(batch_size: int) -> list[list[tuple[int, int, str]]]:
        docs = _docs(nlp, texts, "es")
        ner.predict_entities(nlp, docs, batch_size)
        return [[(s.start, s.end, s.label_) for s in doc.spans["entities"]] for doc in docs]

    calls: list[int] = []
    real = ner.encode
    with mock.patch.object(ner, "encode", lambda e, d: calls.append(len(d)) or real(e, d)):
        in_twos = entities(2)
    assert calls == [2] * 6  # never more notes at once than the batch size
    assert in_twos == entities(16)


def test_distinct_rows_rebuild_every_token_row() -> None:
    keys = np.array([[5, 1, 9], [2, 2, 2], [5, 1, 9], [5, 1, 8], [2, 2, 2]], dtype=np.uint64)
    distinct, token_row = _distinct_rows(keys)
    assert len(distinct) == 3
    assert len({tuple(row) for row in distinct.tolist()}) == 3
    np.testing.assert_array_equal(distinct[token_row], keys)


def test_a_note_of_one_repeated_word_encodes_as_thinc_does() -> None:
    nlp = load_pipeline(model_path("es"))
    _assert_same_encodings(nlp, _docs(nlp, ["disnea " * 50, "disnea", "FEVI 35 %"], "es"))
