"""Span-level scores of predicted entities against gold annotations.

Strict: a prediction counts when its start, end and type all equal a gold span's. Lenient: a
prediction counts when it overlaps a gold span of the same type, and a gold span is found when
a prediction of its type overlaps it. Micro-averaged over documents; only entity spans are
counted (the "O" class of token taggers never is).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from cardiobox.errors import Location
from cardiobox.nlp.corpus import (
    LABEL_ALIASES,
    Corpus,
    CorpusError,
    Span,
    parse_brat_offsets,
    read_brat,
)

#: A document's spans keyed by document id.
SpanTable = Mapping[str, Iterable[Span]]


@dataclass(frozen=True)
class Counts:
    """Matched predictions, predictions and gold spans; precision, recall and F1 from them.

    ``found`` is the number of gold spans matched; it equals ``tp`` under strict matching, and
    may differ under lenient matching (one prediction can overlap two gold spans).
    """

    tp: int
    predicted: int
    gold: int
    found: int = -1

    def __post_init__(self) -> None:
        if self.found < 0:
            object.__setattr__(self, "found", self.tp)

    @property
    def precision(self) -> float:
        """Share of predictions that are right (0 when nothing was predicted)."""
        return self.tp / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        """Share of gold spans found (0 when there are none)."""
        return self.found / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        """The counts and the three scores, rounded to 4 decimals."""
        return {
            "tp": self.tp,
            "predicted": self.predicted,
            "gold": self.gold,
            "found": self.found,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass
class Scores:
    """Strict and lenient counts per type, and their micro-averages over all types."""

    strict: dict[str, Counts] = field(default_factory=dict)
    lenient: dict[str, Counts] = field(default_factory=dict)

    def micro(self, mode: str = "strict") -> Counts:
        """Counts summed over every type (``mode`` is ``strict`` or ``lenient``)."""
        table = self.strict if mode == "strict" else self.lenient
        return Counts(
            sum(c.tp for c in table.values()),
            sum(c.predicted for c in table.values()),
            sum(c.gold for c in table.values()),
            sum(c.found for c in table.values()),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready scores: per type and micro, strict and lenient."""
        return {
            mode: {
                "micro": self.micro(mode).to_dict(),
                **{label: c.to_dict() for label, c in sorted(table.items())},
            }
            for mode, table in (("strict", self.strict), ("lenient", self.lenient))
        }


def _overlaps(a: Span, b: Span) -> bool:
    return a.label == b.label and a.start < b.end and b.start < a.end


def score(gold: SpanTable, predicted: SpanTable, labels: Iterable[str] | None = None) -> Scores:
    """Score predicted spans against gold spans, document by document.

    Parameters
    ----------
    gold : mapping of str to iterable of Span
        Gold spans per document id; every document to score must be a key.
    predicted : mapping of str to iterable of Span
        Predicted spans per document id; documents missing here predicted nothing. A
        prediction for a document absent from ``gold`` is an error (a wrong folder, usually).
    labels : iterable of str, optional
        Types to score (default: every type in gold or predictions).

    Returns
    -------
    Scores
        Strict and lenient counts per type.
    """
    unknown = sorted(set(predicted) - set(gold))
    if unknown:
        raise CorpusError(
            f"predictions for {len(unknown)} document(s) without gold annotations, e.g. "
            f"{unknown[0]!r}: are gold and predictions from the same split?",
            "unknown-document",
        )
    wanted = set(labels) if labels is not None else None
    strict: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    lenient: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for doc_id, gold_spans in gold.items():
        g = {s for s in gold_spans if wanted is None or s.label in wanted}
        p = {s for s in predicted.get(doc_id, ()) if wanted is None or s.label in wanted}
        for s in p:
            strict[s.label][1] += 1
            strict[s.label][0] += s in g
            lenient[s.label][1] += 1
            lenient[s.label][0] += any(_overlaps(s, t) for t in g)
        for s in g:
            strict[s.label][2] += 1
            lenient[s.label][2] += 1
            lenient[s.label][3] += any(_overlaps(s, t) for t in p)
    result = Scores()
    for label in sorted(set(strict) | (wanted or set())):
        tp, n_pred, n_gold = strict[label]
        result.strict[label] = Counts(tp, n_pred, n_gold)
        result.lenient[label] = Counts(*lenient[label])
    return result


def corpus_spans(corpus: Corpus) -> dict[str, list[Span]]:
    """Spans of every document of ``corpus`` keyed by document id."""
    return {d.doc_id: list(d.spans) for d in corpus}


def _prediction_tsvs(source: Path) -> list[Path]:
    """The TSV files predictions are read from: ``source`` itself, or a folder's ``.tsv``."""
    return [source] if source.is_file() else sorted(source.glob("*.tsv"))


def predictions_are_brat(path: str | Path) -> bool:
    """Whether :func:`read_predictions` reads ``path`` as a brat folder (not as TSVs).

    A brat folder holds a ``.ann`` for every note it predicted for, even one that found
    nothing; TSVs list only the notes with spans.
    """
    source = Path(path)
    return source.is_dir() and not _prediction_tsvs(source)


def read_predictions(path: str | Path) -> dict[str, list[Span]]:
    """Read predictions: a brat folder, or a folder or file of TSVs.

    TSV columns (CardioCCC's published predictions): ``filename, label, start_span,
    end_span, text``, with a header.

    Parameters
    ----------
    path : str or Path
        A brat folder (``.ann`` files; ``.txt`` optional), a folder of ``.tsv`` files, or one
        ``.tsv`` file.

    Returns
    -------
    dict of str to list of Span
        Predicted spans per document id.
    """
    source = Path(path)
    tsvs = _prediction_tsvs(source)
    if source.is_dir() and not tsvs:
        if not any(source.glob("*.ann")):
            raise CorpusError("no .ann or .tsv files", "missing-input", Location(file=str(source)))
        return _read_ann_only(source)
    if not tsvs:
        raise CorpusError("no such file or folder", "missing-input", Location(file=str(source)))
    spans: dict[str, list[Span]] = defaultdict(list)
    for tsv in tsvs:
        with tsv.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle, delimiter="\t"), start=2):
                try:
                    label = LABEL_ALIASES.get(row["label"], row["label"])
                    spans[row["filename"]].append(
                        Span(int(row["start_span"]), int(row["end_span"]), label)
                    )
                except (KeyError, TypeError, ValueError):
                    raise CorpusError(
                        "expected columns filename, label, start_span, end_span with integer "
                        "offsets",
                        "tsv-syntax",
                        Location(file=str(tsv), line=number),
                    ) from None
    return dict(spans)


def _read_ann_only(folder: Path) -> dict[str, list[Span]]:
    if any(folder.glob("*.txt")):
        return corpus_spans(read_brat(folder))
    spans: dict[str, list[Span]] = {}
    for ann in sorted(folder.glob("*.ann")):
        found = []
        for number, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.startswith("T"):
                continue
            try:
                label, offsets = line.split("\t")[1].split(" ", 1)
                # brat fragments ("2806 2813;2814 2823"): the span runs from the first's start
                # to the last's end, as in the gold reader
                fragments = parse_brat_offsets(offsets)
                bounds = [x for fragment in fragments for x in fragment]
                if bounds[0] < 0 or any(a >= b for a, b in pairwise(bounds)):
                    raise ValueError("offsets negative, empty or out of order")
                found.append(Span(bounds[0], bounds[-1], LABEL_ALIASES.get(label, label)))
            except (IndexError, ValueError):
                raise CorpusError(
                    f"unreadable brat line {line!r}", "brat-syntax", Location(str(ann), number)
                ) from None
        spans[ann.stem] = found
    return spans
