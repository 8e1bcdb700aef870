"""Training the shared-encoder taggers on a small made-up corpus, saving, resuming, predicting."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cardiobox.nlp.corpus import Document, Span
from cardiobox.nlp.ner import EncoderShape, entity_types, load_pipeline, recognise
from cardiobox.nlp.train import (
    TrainingData,
    TrainingDocument,
    TrainingError,
    collect_training_data,
    save_pipeline,
    train_pipeline,
)

DISEASES = ["insuficiencia cardíaca", "fibrilación auricular", "estenosis aórtica", "diabetes"]
DRUGS = ["furosemida", "bisoprolol", "apixabán", "ramipril", "espironolactona"]
SYMPTOMS = ["disnea de esfuerzo", "ortopnea", "dolor torácico", "edemas"]


def _note(rng: random.Random, n: int) -> Document:
    disease, drug, symptom = rng.choice(DISEASES), rng.choice(DRUGS), rng.choice(SYMPTOMS)
    text = f"Paciente con {disease} que refiere {symptom}. Se pauta {drug} 40 mg al día."
    spans = []
    for value, label in ((disease, "DISEASE"), (drug, "MEDICATION"), (symptom, "SYMPTOM")):
        start = text.index(value)
        spans.append(Span(start, start + len(value), label))
    return Document(f"n{n}", text, spans, "es")


def _data(n_train: int = 60) -> TrainingData:
    rng = random.Random(0)
    docs = [_note(rng, i) for i in range(n_train + 10)]
    types = ["DISEASE", "MEDICATION", "SYMPTOM"]
    train = [TrainingDocument(d, frozenset(types)) for d in docs[:n_train]]
    # Notes annotated for medications only: their diseases must not be taught as "outside".
    train += [TrainingDocument(d, frozenset({"MEDICATION"}), core=False) for d in docs[:10]]
    return TrainingData("es", types, train, docs[n_train:])


SMALL = EncoderShape(width=32, depth=1, rows=(500, 100, 200, 200), hidden=16, static_vectors=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("model")
    nlp, report = train_pipeline(_data(), shape=SMALL, max_epochs=12, patience=4, checkpoint=out)
    save_pipeline(nlp, report, out)
    return out, report.best_dev_f1


def test_learns_every_type(trained: tuple[Path, float]) -> None:
    _, f1 = trained
    assert f1 > 0.9


def test_saved_model_predicts_overlapping_types_apart(trained: tuple[Path, float]) -> None:
    path, _ = trained
    nlp = load_pipeline(path)
    assert entity_types(nlp) == ["DISEASE", "MEDICATION", "SYMPTOM"]
    (doc,) = recognise(nlp, ["Paciente con diabetes que refiere ortopnea. Se pauta ramipril."])
    found = {(s.text, s.label_) for s in doc.spans["entities"]}
    assert {("diabetes", "DISEASE"), ("ortopnea", "SYMPTOM"), ("ramipril", "MEDICATION")} <= found
    assert list(doc.sents)  # sentences are marked after tagging
    assert (path / "training.json").is_file()


def test_resume_keeps_the_model_to_beat(trained: tuple[Path, float]) -> None:
    path, f1 = trained
    _, report = train_pipeline(_data(), resume=path, max_epochs=1, patience=1)
    assert report.best_dev_f1 >= f1 - 1e-9


def test_floret_vectors_train_and_ship(tmp_path: Path) -> None:
    pytest.importorskip("floret")
    shape = EncoderShape(width=32, depth=1, rows=(500, 100, 200, 200), hidden=16)
    nlp, _ = train_pipeline(_data(30), shape=shape, max_epochs=1)
    assert nlp.vocab.vectors.mode == "floret"
    assert nlp.vocab.vectors.shape[1] == 64


def test_missing_training_data_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="cardioccc_es"):
        collect_training_data(tmp_path, "es")
    with pytest.raises(TrainingError, match="lexicon recogniser"):
        collect_training_data(tmp_path, "nl")
