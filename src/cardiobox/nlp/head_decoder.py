"""Greedy decoding of a one-type tagger head in numpy: spaCy's answer at an eighth of the cost.

A head (:mod:`cardiobox.nlp.ner`) is spaCy's transition-based NER: BILUO moves, one token
consumed per move, and a state feature vector of three tokens — the next token, the first token
of the open entity and the token before the next one (the last two only while an entity is
open). spaCy scores one move at a time in a C loop that takes the interpreter's lock at every
step (``c_transition_batch``); over a CardioCCC note of 1,040 tokens its four heads cost about
40 ms. The decision is cheap to reorganise:

- while no entity is open, the features are the next token and two paddings, so the scores of
  *every* token are one matrix product over the note;
- an entity opened at ``s`` continues while the In move outscores the Last move, with features
  that depend on ``s`` only through one row: the next few tokens of every candidate start are
  scored together, and the walk along the note only reads the decisions.

The moves' validity rules are spaCy's (``ner.pyx``) for documents without preset entities:
an entity may not begin on whitespace, nor run into a token that starts a sentence, nor begin
on the last token. :func:`can_decode` says when a head has exactly this shape (one label, an
output layer, three state features, every move seen in training); :mod:`cardiobox.nlp.ner`
falls back to spaCy's own loop otherwise.

The scores are spaCy's numbers summed in another order and multiplied by numpy rather than
BLIS, so they may differ from spaCy's in the last bits (up to about 1e-5): a note where some
decision is won by less than :data:`TOLERANCE` is decoded by spaCy's loop instead (2 of the
1,032 note-and-head pairs of the CardioCCC Spanish train notes). The entities were the same,
token for token, as spaCy's on all 508 CardioCCC Spanish train and test notes for the four
Spanish heads and on the 258 train notes for the English and Italian medication heads;
``tests/nlp/test_head_decoder.py`` compares the two on trained heads, random heads and exact
ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from spacy.attrs import IS_SPACE, SENT_START
from spacy.tokens import Doc, Span

WINDOW = 8
"""Tokens after an entity's first token scored at once (longer entities take more rounds)."""

TOLERANCE = 1e-4
"""Decisions won by less are left to spaCy: the scores here are summed in another order and
multiplied by another library than spaCy's, so they may differ from spaCy's in the last bits (up
to about 1e-5 measured), and a near-tie could go the other way."""

_STATE_FEATURES = 3  # spaCy's "ner" state: next token, entity start, token before the next


def can_decode(head: Any) -> bool:
    """Whether :func:`decode` gives ``head``'s own predictions.

    Parameters
    ----------
    head : spacy.pipeline.EntityRecognizer
        A trained transition-based NER component.

    Returns
    -------
    bool
        True for a greedy head with one label, an output layer, spaCy's three-token "ner" state
        and no move left unseen in training.
    """
    model = getattr(head, "model", None)
    if model is None or type(getattr(head, "moves", None)).__name__ != "BiluoPushDown":
        return False
    if getattr(head, "cfg", {}).get("beam_width", 1) != 1:
        return False
    if not model.attrs.get("has_upper") or model.attrs.get("unseen_classes"):
        return False
    try:
        moves = _Moves.of(head)
        lower = model.get_ref("lower")
    except (KeyError, ValueError):
        return False
    return bool(moves.label) and lower.get_param("W").shape[0] == _STATE_FEATURES


@dataclass(frozen=True)
class _Moves:
    """Class indices of one label's BILUO moves in a head's output layer."""

    label: str
    begin: int
    inside: int
    last: int
    unit: int
    out: int

    @classmethod
    def of(cls, head: Any) -> _Moves:
        names = [head.moves.get_class_name(i) for i in range(head.moves.n_moves)]
        labels = {name[2:] for name in names if name[:2] in ("B-", "I-", "L-", "U-") and name[2:]}
        if len(labels) != 1:
            raise ValueError(f"a head with one label is needed, not {sorted(labels)}")
        label = labels.pop()
        index = {name: i for i, name in enumerate(names)}
        begin, inside, last, unit = (index[f"{move}-{label}"] for move in "BILU")
        return cls(label, begin, inside, last, unit, index["O"])


def _maxout(units: NDArray[np.float32]) -> NDArray[np.float32]:
    # pieces on the second-last axis: contiguous halves, far faster than np.max over pieces
    hidden = units[..., 0, :]
    for piece in range(1, units.shape[-2]):
        hidden = np.maximum(hidden, units[..., piece, :])
    return hidden


class _HeadWeights:
    """A head's hidden and output layers, split by state feature, maxout pieces first."""

    def __init__(self, head: Any):
        lower = head.model.get_ref("lower")
        upper = head.model.get_ref("upper")
        weights = lower.get_param("W").transpose(0, 2, 1, 3)  # (features, pieces, hidden, in)
        _, self.pieces, self.hidden, inputs = weights.shape
        self.by_feature = [
            weights[f].reshape(self.pieces * self.hidden, inputs).T for f in range(_STATE_FEATURES)
        ]
        padding = lower.get_param("pad")[0].transpose(0, 2, 1)
        self.bias = lower.get_param("b").T
        self.closed_bias = (padding[1] + padding[2]) + self.bias  # no entity open: two paddings
        self.output = upper.get_param("W").T
        self.output_bias = upper.get_param("b")

    def feature(self, f: int, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Feature ``f``'s contribution to the hidden units, for each row of ``vectors``."""
        product: NDArray[np.float32] = vectors @ self.by_feature[f]
        return product.reshape(*vectors.shape[:-1], self.pieces, self.hidden)

    def scores(self, units: NDArray[np.float32]) -> NDArray[np.float32]:
        """Move scores from the summed hidden units, bias included."""
        result: NDArray[np.float32] = _maxout(units) @ self.output + self.output_bias
        return result


def decode(
    head: Any, docs: Sequence[Doc], window: int = WINDOW, tolerance: float = TOLERANCE
) -> list[list[Span]]:
    """The entities ``head`` finds in ``docs``, as spaCy's greedy parse finds them.

    Parameters
    ----------
    head : spacy.pipeline.EntityRecognizer
        A head for which :func:`can_decode` holds; its encoder has already run on ``docs``
        (``doc.tensor`` is set, as after the encoder component's ``pipe``).
    docs : sequence of Doc
        Notes without preset entities.
    window : int
        Tokens of an open entity scored at once (≥ 1).
    tolerance : float
        A note where some decision is won by less than this is decoded by spaCy's own loop
        instead (negative: never).

    Returns
    -------
    list of list of Span
        Per note, its entities in order, labelled with the head's type.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if not docs:
        return []
    moves = _Moves.of(head)
    weights = _HeadWeights(head)
    vectors = head.model.get_ref("tok2vec").predict(list(docs))
    next_token = weights.feature(0, vectors)
    closed_scores = weights.scores(next_token + weights.closed_bias)
    found: list[list[Span]] = []
    offset = 0
    for doc in docs:
        if not len(doc):
            found.append([])
            continue
        rows = slice(offset, offset + len(doc))
        decoder = _NoteDecoder(doc, moves, weights, vectors[rows], next_token[rows], window)
        spans, margin = decoder.entities(closed_scores[rows])
        found.append(spans if margin >= tolerance else spacy_entities(head, [doc])[0])
        offset += len(doc)
    return found


def spacy_entities(head: Any, docs: Sequence[Doc], batch_size: int = 16) -> list[list[Span]]:
    """``head``'s entities in ``docs`` by spaCy's own loop; the notes' ``doc.ents`` left empty.

    For heads :func:`can_decode` refuses, and for notes with a near-tie.
    """
    for doc in docs:
        doc.ents = ()  # a head treats existing entities as fixed: start each one clean
    found = [
        [Span(doc, e.start, e.end, label=e.label_) for e in doc.ents]
        for doc in head.pipe(docs, batch_size=batch_size)
    ]
    for doc in docs:
        doc.ents = ()
    return found


class _NoteDecoder:
    """The greedy walk along one note."""

    def __init__(
        self,
        doc: Doc,
        moves: _Moves,
        weights: _HeadWeights,
        vectors: NDArray[np.float32],
        next_token: NDArray[np.float32],
        window: int,
    ):
        self.doc, self.moves, self.weights, self.window = doc, moves, weights, window
        self.vectors, self.next_token = vectors, next_token
        flags = doc.to_array([SENT_START, IS_SPACE])
        n = len(doc)
        self.before_sentence = np.zeros(n, dtype=bool)  # the next token starts a sentence
        self.before_sentence[:-1] = flags[1:, 0] == 1
        self.space = flags[:, 1].astype(bool)
        self.can_continue = ~self.before_sentence  # In is valid: not last, no sentence break
        self.can_continue[-1] = False

    def entities(self, closed_scores: NDArray[np.float32]) -> tuple[list[Span], float]:
        """The note's entities, and the smallest margin by which a decision was won."""
        moves = self.moves
        best, closed_margin = self._best_closed_moves(closed_scores)
        begins = np.flatnonzero(best == moves.begin)
        counts, margins = self._continuations(begins, 1)
        lengths = dict(zip(begins.tolist(), zip(counts, margins, strict=True), strict=True))
        spans: list[Span] = []
        inside = np.zeros(len(self.doc), dtype=bool)  # tokens decided with an entity open
        margin = np.inf
        free_from = 0
        for start in np.flatnonzero(best != moves.out).tolist():
            if start < free_from:
                continue  # the token was taken by the entity before
            end = start + 1
            if start in lengths:
                (more, more_margin), scored = lengths[start], 1
                margin = min(margin, more_margin)
                while more < 0:  # the entity ran past the window: score the next one
                    scored += self.window
                    ((more,), (more_margin,)) = self._continuations(np.array([start]), scored)
                    margin = min(margin, more_margin)
                end = start + scored + more + 1
                inside[start + 1 : end] = True
            spans.append(Span(self.doc, start, end, label=moves.label))
            free_from = end
        closed = closed_margin[~inside]
        return spans, min(margin, float(closed.min()) if len(closed) else np.inf)

    def _best_closed_moves(
        self, scores: NDArray[np.float32]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The best valid move at each token when no entity is open (first index on ties).

        Also by how much it beats the second best (infinite when it is the only valid one).
        """
        moves = self.moves
        may_begin = ~self.space & ~self.before_sentence
        may_begin[-1] = False
        candidates = sorted(
            [
                (moves.begin, np.where(may_begin, scores[:, moves.begin], -np.inf)),
                (moves.unit, np.where(~self.space, scores[:, moves.unit], -np.inf)),
                (moves.out, scores[:, moves.out]),
            ],
            key=lambda candidate: candidate[0],
        )
        best = np.full(len(scores), candidates[0][0])
        best_score = candidates[0][1]
        second = np.full(len(scores), -np.inf, dtype=best_score.dtype)
        for move, score in candidates[1:]:
            better = score > best_score
            second = np.where(better, best_score, np.maximum(second, score))
            best = np.where(better, move, best)
            best_score = np.where(better, score, best_score)
        with np.errstate(invalid="ignore"):  # -inf - -inf where no move is valid: never here
            margin = np.where(np.isfinite(second), best_score - second, np.inf)
        return best, margin

    def _continuations(
        self, starts: NDArray[np.int64], first: int
    ) -> tuple[list[int], list[float]]:
        """How many tokens from ``start + first`` on continue each entity opened at ``starts``.

        The token after them closes the entity; -1 when none within the window does. Also,
        per entity, the smallest margin between In and Last among the decisions made.
        """
        if not len(starts):
            return [], []
        moves, weights = self.moves, self.weights
        n = len(self.doc)
        tokens = np.minimum(starts[:, None] + np.arange(first, first + self.window), n - 1)
        entity_start = weights.feature(1, self.vectors[starts])[:, None]
        # spaCy's order of summation: next token, entity start, token before the next, bias
        units = (self.next_token[tokens] + entity_start) + weights.feature(
            2, self.vectors[tokens - 1]
        )
        scores = weights.scores(units + weights.bias)
        inside, last = scores[..., moves.inside], scores[..., moves.last]
        prefers_inside = inside >= last if moves.inside < moves.last else inside > last
        can_continue = self.can_continue[tokens]
        closes = ~(can_continue & prefers_inside)
        stops = np.where(closes.any(axis=1), closes.argmax(axis=1), -1)
        # decisions made: up to the closing token, or the whole window when none closes
        made = np.arange(self.window) <= np.where(stops < 0, self.window, stops)[:, None]
        margins = np.where(made & can_continue, np.abs(inside - last), np.inf).min(axis=1)
        return stops.tolist(), margins.tolist()
