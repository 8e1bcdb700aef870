"""Floret vectors remembered per word: the same rows as spaCy computes."""

from __future__ import annotations

import numpy as np
import pytest
import spacy
from spacy.vectors import Vectors

from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.ner import load_pipeline
from cardiobox.nlp.pipeline import model_path
from cardiobox.nlp.vectors import MemoFloretVectors, memoize_floret_vectors

WORDS = ["disnea", "de", "esfuerzo", ",", "furosemida", "40", "mg", "disnea", "FEVI", "de"]


def _floret_pipeline() -> spacy.language.Language:
    nlp = spacy.blank("es")
    table = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    nlp.vocab.vectors = Vectors(
        strings=nlp.vocab.strings, data=table, mode="floret", minn=3, maxn=5, hash_count=2
    )
    return nlp


def test_memo_gives_spacy_rows_to_the_bit() -> None:
    nlp = _floret_pipeline()
    keys = [nlp.vocab.strings.add(w) for w in WORDS]
    expected = nlp.vocab.vectors.get_batch(keys)
    memoize_floret_vectors(nlp)
    vectors = nlp.vocab.vectors
    assert isinstance(vectors, MemoFloretVectors)
    for _ in range(2):  # computed, then remembered
        got = vectors.get_batch(keys)
        assert got.dtype == expected.dtype and (got == expected).all()
    assert vectors.get_batch([]).shape == (0, 8)
    assert memoize_floret_vectors(nlp).vocab.vectors is vectors  # already memoized


def test_memo_starts_again_past_its_limit() -> None:
    nlp = memoize_floret_vectors(_floret_pipeline())
    vectors = nlp.vocab.vectors
    vectors.limit = 3
    keys = [nlp.vocab.strings.add(w) for w in WORDS]
    first = vectors.get_batch(keys[:3])
    again = vectors.get_batch(keys)
    assert len(vectors._memo()) == len(set(WORDS))  # emptied, then this batch
    assert (again[:3] == first).all()


def test_pipelines_without_floret_vectors_are_left_alone() -> None:
    nlp = spacy.blank("es")
    before = nlp.vocab.vectors
    assert memoize_floret_vectors(nlp).vocab.vectors is before


def test_string_keys_and_reloaded_tables() -> None:
    nlp = _floret_pipeline()
    plain = nlp.vocab.vectors
    saved = plain.to_bytes()
    memoize_floret_vectors(nlp)
    vectors = nlp.vocab.vectors
    assert (vectors["disnea"] == plain["disnea"]).all()  # a string, not a hash
    assert (vectors.get_batch(["disnea", "de"]) == plain.get_batch(["disnea", "de"])).all()
    other = Vectors(
        strings=nlp.vocab.strings,
        data=np.ones((50, 8), dtype=np.float32),
        mode="floret",
        minn=3,
        maxn=5,
        hash_count=2,
    )
    vectors.from_bytes(other.to_bytes())  # another table: nothing remembered may survive
    assert (vectors["disnea"] == 1).all()
    vectors.from_bytes(saved)
    assert (vectors["disnea"] == plain["disnea"]).all()


def test_memo_table_grows_past_its_first_rows() -> None:
    nlp = _floret_pipeline()
    words = [f"palabra{i}" for i in range(3000)]
    keys = np.array([nlp.vocab.strings.add(w) for w in words], dtype=np.uint64)
    expected = nlp.vocab.vectors.get_batch(keys.tolist())
    vectors = memoize_floret_vectors(nlp).vocab.vectors
    # a Doc's ORTH column is an array of hashes: first some, then all, then all reversed
    assert (vectors.get_batch(keys[:700]) == expected[:700]).all()
    assert (vectors.get_batch(keys) == expected).all()
    assert (vectors.get_batch(keys[::-1]) == expected[::-1]).all()
    assert len(vectors._memo()) == 3000


@pytest.mark.parametrize(("hash_count", "minn", "maxn"), [(1, 3, 5), (2, 2, 4), (4, 4, 6)])
def test_remembered_ngrams_give_spacy_rows_for_any_word(
    hash_count: int, minn: int, maxn: int
) -> None:
    nlp = spacy.blank("es")
    table = np.random.default_rng(hash_count).normal(size=(97, 6)).astype(np.float32)
    nlp.vocab.vectors = Vectors(
        strings=nlp.vocab.strings,
        data=table,
        mode="floret",
        minn=minn,
        maxn=maxn,
        hash_count=hash_count,
    )
    words = ["Cardiopatía", "isquémica", "ß", "日本語", "a", "x" * 60, "NT-proBNP", "40", "ř"]
    words += [w.upper() for w in words] + ["cardiopatía"]
    expected = nlp.vocab.vectors.get_batch(words)
    vectors = memoize_floret_vectors(nlp).vocab.vectors
    for _ in range(2):  # the n-grams computed, then remembered
        assert (vectors.get_batch(words) == expected).all()
        vectors._memo().index.clear()  # words forgotten: their rows come from the n-grams again


def test_shipped_vectors_are_spacys_to_the_bit() -> None:
    nlp = load_pipeline(model_path("es"))
    vectors = nlp.vocab.vectors
    assert isinstance(vectors, MemoFloretVectors)
    text = "Paciente con cardiopatía isquémica, FEVI 35 %, NT-proBNP 2.340 pg/mL; furosemida."
    keys = make_doc(text * 3, "es", nlp).to_array("ORTH")
    expected = Vectors.get_batch(vectors, keys.tolist())  # spaCy's own computation
    assert (vectors.get_batch(keys) == expected).all()


def test_remembered_ngrams_start_again_past_the_limit() -> None:
    nlp = memoize_floret_vectors(_floret_pipeline())
    vectors = nlp.vocab.vectors
    keys = np.array([nlp.vocab.strings.add(w) for w in WORDS], dtype=np.uint64)
    expected = Vectors.get_batch(vectors, WORDS)
    assert (vectors.get_batch(WORDS) == expected).all()
    every_ngram = len(vectors._memo().ngrams)
    vectors._memo(restart=True)
    vectors.limit = 20
    for batch in (WORDS, WORDS[:4], WORDS[4:]):  # past 20 n-grams the memo starts again
        vectors._memo().index.clear()
        assert (vectors.get_batch(batch) == Vectors.get_batch(vectors, batch)).all()
    assert 0 < len(vectors._memo().ngrams) < every_ngram
    vectors._memo().index.clear()
    assert (vectors.get_batch(keys) == expected).all()  # hashes, as a Doc's ORTH column
