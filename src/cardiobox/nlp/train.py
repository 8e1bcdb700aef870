"""Training the entity pipelines from annotated corpora.

Sources, per language (``--data`` is a folder laid out like the project's ``shared/data``):

- ``es``: CardioCCC Spanish ``train`` (brat, all four types), DisTEMIST (MultiCardioNER
  track 1 ``train``: diseases) and DrugTEMIST Spanish (track 2 ``train``: medications);
- ``en``, ``it``: CardioCCC ``dev`` in that language (track 2: medications) and DrugTEMIST in
  that language (track 2 ``train``).

Evaluation-only splits (``test``) are never read here. A seeded tenth of the CardioCCC notes
is held out as the development set that picks the best epoch.

A note annotated for some types only (DisTEMIST: diseases) trains those heads alone: for the
other heads its tokens are *missing*, not *outside*, so they are not taught that its symptoms
are no symptoms.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan
from spacy.training import Example
from spacy.util import filter_spans, fix_random_seed, minibatch  # type: ignore[attr-defined]
from thinc.api import set_dropout_rate

from cardiobox.errors import CardioboxError, Location
from cardiobox.nlp.corpus import Corpus, Document, Span, read_bio, read_brat
from cardiobox.nlp.doc import ENTITY_TYPES, make_doc
from cardiobox.nlp.evaluate import Scores, score
from cardiobox.nlp.ner import (
    ENCODER,
    EncoderShape,
    build_pipeline,
    head_name,
    load_pipeline,
    predict_entities,
)
from cardiobox.nlp.vectors import train_floret_vectors


class TrainingError(CardioboxError):
    """Training data that is missing or unusable."""


@dataclass
class TrainingDocument:
    """A note and the types it is annotated for (its spans of other types are not gold)."""

    document: Document
    annotated: frozenset[str]
    core: bool = True  # a CardioCCC note (every epoch); others may be sampled per epoch


@dataclass
class TrainingData:
    """Training and development notes of one language."""

    lang: str
    types: list[str]
    train: list[TrainingDocument]
    dev: list[Document]
    sources: list[str] = field(default_factory=list)


def _need(path: Path) -> Path:
    if not path.exists():
        raise TrainingError(
            "training data not found (is --data the folder that holds cardioccc_es/ and "
            "multicardioner_2024/?)",
            "missing-input",
            Location(file=str(path)),
        )
    return path


def _split_dev(corpus: Corpus, share: float, seed: int) -> tuple[list[Document], list[Document]]:
    documents = sorted(corpus.documents, key=lambda d: d.doc_id)
    random.Random(seed).shuffle(documents)
    n_dev = max(1, round(share * len(documents)))
    return documents[n_dev:], documents[:n_dev]


def collect_training_data(
    data: str | Path, lang: str, *, dev_share: float = 0.1, seed: int = 0
) -> TrainingData:
    """Gather the training notes of ``lang`` from a data folder.

    Parameters
    ----------
    data : str or Path
        Folder with ``cardioccc_es/`` and ``multicardioner_2024/`` as in the project's data
        listing.
    lang : str
        ``es``, ``en`` or ``it`` (the languages with annotated notes).
    dev_share : float
        Share of the CardioCCC notes held out to pick the best epoch.
    seed : int
        Seed of the held-out draw.

    Returns
    -------
    TrainingData
        Training notes with the types each is annotated for, and the development notes.
    """
    root = Path(data)
    mcn = root / "multicardioner_2024"
    med = frozenset({"MEDICATION"})
    if lang == "es":
        types = ["DISEASE", "SYMPTOM", "PROCEDURE", "MEDICATION"]
        cardioccc = read_brat(_need(root / "cardioccc_es" / "train"), "es", strict=False)
        train, dev = _split_dev(cardioccc, dev_share, seed)
        docs = [TrainingDocument(d, frozenset(types)) for d in train]
        distemist = read_bio(_need(mcn / "track1_converted/train/all_train.csv"), "es", "DISEASE")
        docs += [TrainingDocument(d, frozenset({"DISEASE"}), core=False) for d in distemist]
        drugtemist = read_bio(_need(mcn / "track2_converted/train/es/all_train.csv"), "es")
        docs += [TrainingDocument(d, med, core=False) for d in drugtemist]
        sources = ["CardioCCC es train", "DisTEMIST train", "DrugTEMIST es train"]
    elif lang in ("en", "it"):
        types = ["MEDICATION"]
        cardioccc = read_bio(_need(mcn / f"track2_converted/dev/{lang}/all_dev.csv"), lang)
        train, dev = _split_dev(cardioccc, dev_share, seed)
        drugtemist = read_bio(_need(mcn / f"track2_converted/train/{lang}/all_train.csv"), lang)
        docs = [TrainingDocument(d, med) for d in train]
        docs += [TrainingDocument(d, med, core=False) for d in drugtemist]
        sources = [f"CardioCCC {lang} dev", f"DrugTEMIST {lang} train"]
    else:
        raise TrainingError(
            f"no annotated notes for {lang!r}: entity models are trained for es, en and it; "
            "the other languages use the lexicon recogniser",
            "no-training-data",
        )
    return TrainingData(lang, types, docs, dev, sources)


def _reference(predicted: Doc, spans: Sequence[Span], entity_type: str, annotated: bool) -> Doc:
    reference = predicted.copy()
    if not annotated:
        return reference  # every token "missing": no loss for this head
    candidates = []
    for s in spans:
        if s.label == entity_type:
            span = reference.char_span(s.start, s.end, label=s.label, alignment_mode="expand")
            if span is None:
                continue
            start, end = span.start, span.end
            while start < end and reference[start].is_space:
                start += 1
            while end > start and reference[end - 1].is_space:
                end -= 1
            if start < end:  # a tagger cannot start or end an entity on whitespace
                candidates.append(reference[start:end])
    # Nested spans of one type (CardioCCC: "bloqueo AV (BAV)"): a head keeps the outer one.
    reference.set_ents(
        [SpacySpan(reference, c.start, c.end, label=entity_type) for c in filter_spans(candidates)],
        default="outside",
    )
    return reference


def make_examples(data: TrainingData, nlp: Language) -> tuple[list[Doc], dict[str, list[Example]]]:
    """Tokenise the training notes and make one example per note and head."""
    predicted: list[Doc] = []
    examples: dict[str, list[Example]] = {t: [] for t in data.types}
    for item in data.train:
        doc = make_doc(item.document.text, data.lang, nlp, sentences=False)
        predicted.append(doc)
        for entity_type in data.types:
            reference = _reference(
                doc, item.document.spans, entity_type, entity_type in item.annotated
            )
            examples[entity_type].append(Example(doc, reference))
    return predicted, examples


def evaluate_pipeline(nlp: Language, documents: Sequence[Document], types: Sequence[str]) -> Scores:
    """Strict and lenient scores of ``nlp`` on annotated notes."""
    docs = [make_doc(d.text, str(nlp.lang), nlp, sentences=False) for d in documents]
    predict_entities(nlp, docs)
    gold = {d.doc_id: [s for s in d.spans if s.label in types] for d in documents}
    predicted = {
        d.doc_id: [Span(s.start_char, s.end_char, s.label_) for s in doc.spans["entities"]]
        for d, doc in zip(documents, docs, strict=True)
    }
    return score(gold, predicted, labels=types)


def _update_batch(
    encoder: Any,
    heads: Sequence[tuple[str, Any]],
    batch: Sequence[int],
    examples: dict[str, list[Example]],
    optimizer: Any,
    dropout: float,
    losses: dict[str, float],
) -> None:
    """One step: encode the batch once, update the heads that have gold in it, backprop once.

    spaCy's own ``Tok2Vec.update`` feeds every listener; a batch of DisTEMIST notes (diseases
    only) would then run all four heads for nothing. Here only the heads with annotated notes
    in the batch run; their gradients are summed and sent into the encoder by the last one.
    """
    docs = [examples[heads[0][0]][i].predicted for i in batch]
    active = [
        (t, head)
        for t, head in heads
        if any(examples[t][i].reference.has_annotation("ENT_IOB") for i in batch)
    ]
    if not active:
        return
    set_dropout_rate(encoder.model, dropout)
    tokvecs, bp_tokvecs = encoder.model.begin_update(docs)
    d_tokvecs = [encoder.model.ops.alloc2f(*t.shape) for t in tokvecs]

    def accumulate(one_d_tokvecs: list[Any]) -> list[Any]:
        for i, d in enumerate(one_d_tokvecs):
            d_tokvecs[i] += d
        return [encoder.model.ops.alloc2f(*t.shape) for t in tokvecs]

    def backprop(one_d_tokvecs: list[Any]) -> Any:
        accumulate(one_d_tokvecs)
        d_docs = bp_tokvecs(d_tokvecs)
        encoder.finish_update(optimizer)
        return d_docs

    batch_id = Tok2VecListener.get_batch_id(docs)
    for n, (entity_type, _head) in enumerate(active):
        listener = encoder.listener_map[head_name(entity_type)][0]
        listener.receive(batch_id, tokvecs, backprop if n == len(active) - 1 else accumulate)
    for entity_type, head in active:
        head.update(
            [examples[entity_type][i] for i in batch], drop=dropout, sgd=optimizer, losses=losses
        )


@dataclass
class TrainingReport:
    """What training did: epochs, losses, development scores and the best epoch."""

    lang: str
    types: list[str]
    sources: list[str]
    n_train: int
    n_dev: int
    epochs: list[dict[str, object]] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_f1: float = 0.0
    seconds: float = 0.0


def train_pipeline(
    data: TrainingData,
    *,
    shape: EncoderShape | None = None,
    max_epochs: int = 40,
    patience: int = 6,
    batch_size: int = 4,
    dropout: float = 0.15,
    seed: int = 0,
    max_seconds: float | None = None,
    extra_share: float = 1.0,
    checkpoint: str | Path | None = None,
    resume: str | Path | None = None,
    on_epoch: Callable[[dict[str, object]], None] | None = None,
) -> tuple[Language, TrainingReport]:
    """Train the shared encoder and one head per type; keep the epoch best on dev.

    Parameters
    ----------
    data : TrainingData
        From :func:`collect_training_data`.
    shape : EncoderShape, optional
        Encoder and head sizes.
    max_epochs, patience : int
        At most ``max_epochs`` passes; stop after ``patience`` without a better dev F1.
    batch_size : int
        Notes per update.
    dropout : float
        Dropout rate during training.
    seed : int
        Seed of the initialisation and the note order.
    max_seconds : float, optional
        Stop after the epoch that crosses this budget (the best epoch so far is kept).
    extra_share : float
        Share of the non-CardioCCC notes (DisTEMIST, DrugTEMIST) drawn afresh each epoch;
        the CardioCCC notes are used every epoch.
    checkpoint : str or Path, optional
        Folder where the best pipeline so far is saved at each improvement, so that an
        interrupted run still leaves its best model.
    resume : str or Path, optional
        A pipeline saved by an earlier run to continue training from (its encoder shape,
        vectors and heads are kept; the optimiser starts afresh).
    on_epoch : callable, optional
        Called with each epoch's record (for progress output).

    Returns
    -------
    (Language, TrainingReport)
        The best pipeline and what happened.
    """
    shape = shape or EncoderShape()
    fix_random_seed(seed)
    started = time.perf_counter()
    if resume is not None:
        nlp = load_pipeline(resume)
        missing = [t for t in data.types if head_name(t) not in nlp.pipe_names]
        if missing:
            raise TrainingError(f"{resume} has no head for {missing}", "resume-mismatch")
    else:
        nlp = build_pipeline(data.lang, data.types, shape)
        if shape.static_vectors:
            train_floret_vectors([d.document.text for d in data.train], nlp, seed=seed)
    predicted, examples = make_examples(data, nlp)
    if not predicted:
        raise TrainingError("no training notes", "no-training-data")
    encoder: Any = nlp.get_pipe(ENCODER)
    heads: list[tuple[str, Any]] = [(t, nlp.get_pipe(head_name(t))) for t in data.types]
    if resume is None:
        # Each component is initialised on its own examples: a head learns its label from them.
        sample = [Example(doc, doc.copy()) for doc in predicted[:20]]
        encoder.initialize(lambda: sample, nlp=nlp)
        for entity_type, head in heads:
            annotated = [e for e in examples[entity_type] if e.reference.has_annotation("ENT_IOB")]
            head.initialize(lambda a=annotated: a[:50], nlp=nlp)
    optimizer = nlp.create_optimizer()  # type: ignore[no-untyped-call]
    report = TrainingReport(
        data.lang, list(data.types), data.sources, len(predicted), len(data.dev)
    )
    core = [i for i, item in enumerate(data.train) if item.core]
    extra = [i for i, item in enumerate(data.train) if not item.core]
    n_extra = round(extra_share * len(extra))
    rng = random.Random(seed)
    best_bytes = nlp.to_bytes()
    if resume is not None:  # the resumed model is the one to beat
        report.best_dev_f1 = evaluate_pipeline(nlp, data.dev, data.types).micro().f1
    stale = 0
    for epoch in range(1, max_epochs + 1):
        # Notes of one source together: a batch of DisTEMIST notes trains the disease head.
        batches = [list(b) for b in minibatch(core, size=batch_size)]  # type: ignore[no-untyped-call]
        drawn = sorted(rng.sample(extra, n_extra), key=lambda i: data.train[i].annotated)
        batches += [list(b) for b in minibatch(drawn, size=batch_size)]  # type: ignore[no-untyped-call]
        rng.shuffle(core)
        rng.shuffle(batches)
        losses: dict[str, float] = {}
        for batch in batches:
            _update_batch(encoder, heads, batch, examples, optimizer, dropout, losses)
        scores = evaluate_pipeline(nlp, data.dev, data.types)
        dev_f1 = scores.micro().f1
        record: dict[str, object] = {
            "epoch": epoch,
            "seconds": round(time.perf_counter() - started, 1),
            "losses": {k: round(float(v), 1) for k, v in losses.items()},
            "dev_strict_f1": round(dev_f1, 4),
            "dev_f1_by_type": {t: round(c.f1, 4) for t, c in scores.strict.items()},
        }
        report.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if dev_f1 > report.best_dev_f1:
            report.best_dev_f1, report.best_epoch = dev_f1, epoch
            best_bytes = nlp.to_bytes()
            stale = 0
            if checkpoint is not None:
                report.seconds = round(time.perf_counter() - started, 1)
                save_pipeline(nlp, report, checkpoint)
        else:
            stale += 1
        out_of_time = max_seconds is not None and time.perf_counter() - started > max_seconds
        if stale >= patience or out_of_time:
            break
    nlp.from_bytes(best_bytes)
    report.seconds = round(time.perf_counter() - started, 1)
    return nlp, report


def save_pipeline(nlp: Language, report: TrainingReport, out: str | Path) -> Path:
    """Write the pipeline and its training report (``training.json``) to ``out``."""
    import json
    from dataclasses import asdict

    path = Path(out)
    nlp.to_disk(path)
    (path / "training.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return path


def train_transformer(
    data: str | Path,
    out: str | Path,
    *,
    hidden: int = 256,
    max_epochs: int = 30,
    dev_share: float = 0.1,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train the transformer option's tagger on the CardioCCC Spanish train notes.

    Every note is encoded once by multilingual-e5-small (:mod:`cardiobox.nlp.e5_encoder`,
    about a second a note on one core); a one-hidden-layer network learns the tags of the
    four types (:mod:`cardiobox.nlp.transformer_ner`). The notes held out (``dev_share``,
    the same draw as :func:`collect_training_data`'s) give the development scores written
    with the tagger.

    Parameters
    ----------
    data : str or Path
        Folder with ``cardioccc_es/`` (as for :func:`collect_training_data`).
    out : str or Path
        Folder for ``taggers.npz`` and ``meta.json``.
    hidden, max_epochs : int
        The network's hidden units and its most passes over the tokens.
    dev_share : float
        The held-out share of the notes.
    seed : int
        Seed of the held-out draw and of the network.
    progress : callable, optional
        ``progress(step, done, total)``, step ``encoding`` then ``scoring``.

    Returns
    -------
    dict
        What ``meta.json`` holds.
    """
    from cardiobox.nlp.transformer_ner import train_taggers

    started = time.perf_counter()
    root = Path(data)
    cardioccc = read_brat(_need(root / "cardioccc_es" / "train"), "es", strict=False)
    train, dev = _split_dev(cardioccc, dev_share, seed)
    types = list(ENTITY_TYPES)

    def tokenise(text: str) -> Doc:
        return make_doc(text, "es", None, sentences=False)

    tagger = train_taggers(
        train,
        tokenise,
        labels=types,
        hidden=hidden,
        seed=seed,
        max_epochs=max_epochs,
        progress=(lambda done, total: progress("encoding", done, total)) if progress else None,
    )
    predicted: dict[str, list[Span]] = {}
    for i, document in enumerate(dev):
        predicted[document.doc_id] = tagger.predict(tokenise(document.text))
        if progress:
            progress("scoring", i + 1, len(dev))
    gold = {d.doc_id: [s for s in d.spans if s.label in types] for d in dev}
    dev_scores = score(gold, predicted, labels=types)
    tagger.meta.update(
        {
            "training_data": "CardioCCC es train (all four types)",
            "dev_notes": len(dev),
            "dev_share": dev_share,
            "seed": seed,
            "dev_scores": dev_scores.to_dict(),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    tagger.save(out)
    return {**tagger.meta, "labels": tagger.labels, "layer": tagger.layer}
