"""The numpy head decoder finds exactly the entities spaCy's own greedy loop finds."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from spacy.language import Language
from spacy.tokens import Doc
from tests.nlp.sample_notes import NOTES

from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.head_decoder import can_decode, decode
from cardiobox.nlp.ner import (
    ENCODER,
    EncoderShape,
    build_pipeline,
    entity_types,
    head_name,
    load_pipeline,
    predict_entities,
)
from cardiobox.nlp.pipeline import model_path


def _spacy_entities(head: Any, docs: list[Doc]) -> list[list[tuple[int, int, str]]]:
    for doc in docs:
        doc.ents = ()
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in head.pipe(docs)]


def _decoded(head: Any, docs: list[Doc], window: int = 8) -> list[list[tuple[int, int, str]]]:
    return [[(s.start, s.end, s.label_) for s in spans] for spans in decode(head, docs, window)]


def _encoded(nlp: Language, texts: list[str], lang: str) -> list[Doc]:
    docs = [make_doc(text, lang, nlp, sentences=False) for text in texts]
    list(nlp.get_pipe(ENCODER).pipe(docs))  # type: ignore[attr-defined]
    return docs


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_shipped_heads_decode_as_spacy(lang: str) -> None:
    path = model_path(lang)
    assert path is not None
    nlp = load_pipeline(path)
    docs = _encoded(nlp, NOTES[lang], lang)
    for entity_type in entity_types(nlp):
        head = nlp.get_pipe(head_name(entity_type))
        assert can_decode(head)
        expected = _spacy_entities(head, docs)
        assert any(expected) or entity_type == "PROCEDURE"
        assert _decoded(head, docs) == expected
        assert _decoded(head, docs, window=1) == expected


WORDS = ["disnea", "de", "esfuerzo", "fibrilación", "auricular", "furosemida", "40", "mg", ","]
WORDS += ["\n\n", "  ", ".", "y", "sin", "dolor", "torácico", "FEVI", "%"]  # spaces begin nothing


def _random_pipeline(seed: int) -> Language:
    """An untrained pipeline whose weights are random: many entities, and long ones."""
    shape = EncoderShape(width=16, depth=1, rows=(50, 50, 50, 50), hidden=8, static_vectors=False)
    nlp = build_pipeline("es", ["DISEASE", "SYMPTOM"], shape)
    nlp.initialize()
    rng = np.random.default_rng(seed)
    for _, component in nlp.components:
        for node in component.model.walk():  # type: ignore[attr-defined]
            for name in node.param_names:
                if node.has_param(name):
                    value = node.get_param(name)
                    node.set_param(name, rng.normal(0, 1.5, value.shape).astype(value.dtype))
        if hasattr(component, "moves"):
            model: Any = component.model  # type: ignore[attr-defined]
            model.attrs["unseen_classes"] = set()  # as if trained
            names = [component.moves.get_class_name(i) for i in range(component.moves.n_moves)]
            inside = [i for i, name in enumerate(names) if name.startswith("I-")]
            model.get_ref("upper").get_param("b")[inside] += 8.0  # longer entities
    return nlp


def _random_texts(rng: random.Random) -> list[str]:
    return ["" if i == 3 else " ".join(rng.choices(WORDS, k=rng.randint(1, 120))) for i in range(8)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_heads_decode_as_spacy(seed: int) -> None:
    nlp = _random_pipeline(seed)
    rng = random.Random(seed)
    docs = _encoded(nlp, _random_texts(rng), "es")
    for doc in docs[::2]:  # sentence starts forbid entities that cross them
        for token in doc:
            if token.i and rng.random() < 0.1:
                token.is_sent_start = True
    lengths = []
    for entity_type in ("DISEASE", "SYMPTOM"):
        head = nlp.get_pipe(head_name(entity_type))
        assert can_decode(head)
        expected = _spacy_entities(head, docs)
        lengths += [end - start for spans in expected for start, end, _ in spans]
        for window in (1, 2, 8):
            assert _decoded(head, docs, window) == expected
    assert len(lengths) > 20 and max(lengths) > 2  # longer than windows 1 and 2: rescored


@pytest.mark.parametrize("tolerance", [-1.0, 1e-4])
def test_ties_go_to_the_first_move_as_in_spacy(tolerance: float) -> None:
    nlp = _random_pipeline(6)
    docs = _encoded(nlp, _random_texts(random.Random(6)), "es")
    for entity_type in ("DISEASE", "SYMPTOM"):
        head: Any = nlp.get_pipe(head_name(entity_type))
        names = [head.moves.get_class_name(i) for i in range(head.moves.n_moves)]
        upper = head.model.get_ref("upper")
        weights, bias = upper.get_param("W"), upper.get_param("b")
        for tied, to in (("U-", "B-"), ("L-", "I-")):  # the same scores, exactly
            a, b = names.index(f"{tied}{entity_type}"), names.index(f"{to}{entity_type}")
            weights[a], bias[a] = weights[b], bias[b]
        expected = _spacy_entities(head, docs)
        assert any(expected)
        got = decode(head, docs, tolerance=tolerance)  # -1: decide the ties here, not in spaCy
        assert [[(s.start, s.end, s.label_) for s in spans] for spans in got] == expected


def test_empty_batches_and_bad_windows() -> None:
    nlp = _random_pipeline(7)
    head = nlp.get_pipe(head_name("DISEASE"))
    assert decode(head, []) == []
    predict_entities(nlp, [])
    with pytest.raises(ValueError, match="window"):
        decode(head, _encoded(nlp, ["disnea de esfuerzo"], "es"), window=0)


def test_heads_it_cannot_decode_fall_back_to_spacy() -> None:
    nlp = _random_pipeline(5)
    head = nlp.get_pipe(head_name("DISEASE"))
    head.add_label("SYMPTOM")  # type: ignore[attr-defined]  # two labels: spaCy's loop decodes
    head.model.attrs["unseen_classes"] = set()  # type: ignore[attr-defined]  # as if trained
    assert not can_decode(head)
    docs = _encoded(nlp, _random_texts(random.Random(5)), "es")
    expected = _spacy_entities(head, docs)
    predict_entities(nlp, docs)
    found = [
        [(s.start, s.end, s.label_) for s in doc.spans["entities"] if s.label_ != "SYMPTOM"]
        for doc in docs
    ]
    assert found == [[e for e in spans if e[2] == "DISEASE"] for spans in expected]
