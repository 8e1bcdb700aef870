"""The entity models' token encoder at prediction time, laid out for speed.

The encoder of :mod:`cardiobox.nlp.ner` is spaCy's ``Tok2Vec.v2``: hash embeddings of a
token's norm, prefix, suffix and shape, plus floret vectors, mixed by a maxout layer, then
residual blocks of a window (the token and its neighbours), a maxout layer and layer
normalisation. thinc runs it one token per row: each maxout layer writes its pieces
interleaved (output 0 piece 0, output 0 piece 1, …) and takes the maximum over strided columns,
and layer normalisation reduces along rows of 96 values. Here every activation is held
transposed, one feature per row, with the pieces of a maxout layer in contiguous blocks (its
weight rows permuted once): the maxima, the normalisation and the windows all run over long
contiguous rows. On CardioCCC notes (about 1,200 tokens) this takes the encoder from about
24 to 18.5 ms a note on one core, the matrix products being the same size. Up to the mixer
(the maxout layer after the embeddings) a token's encoding depends only on its hashed features
and its vector, and a batch of notes has about one distinct such row per five tokens: the
embeddings and the mixer run once per distinct row, which takes the encoder to about 16 ms.

The products are summed in another order than thinc's, so the encodings differ from thinc's
in the last bits of float32 (about 1e-5 at most, against values of order one); the entities of
the Spanish, English and Italian models were the same, span for span, on the CardioCCC train
notes, and the Spanish model's on the test notes (``tests/nlp/test_fast_encoder.py`` compares
the two on notes of every shipped model).
Any encoder of another shape (other layers, vectors not in floret mode) is left to spaCy:
:func:`encoder_weights` returns ``None`` for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from spacy.tokens import Doc
from thinc.api import NumpyOps

Floats = NDArray[np.float32]

#: The layer names of a ``spacy.Tok2Vec.v2`` encoder with ``MultiHashEmbed.v2`` and
#: ``MaxoutWindowEncoder.v2``, in ``Model.walk()`` order (``{hashes}`` and ``{blocks}`` repeat).
_EMBED = "extract_features>>list2ragged>>with_array({hashes})|static_vectors"
_MIXER = "with_array(maxout>>layernorm>>dropout)"
_BLOCK = "residual(expand_window>>maxout>>layernorm>>dropout)"


@dataclass(frozen=True)
class _Maxout:
    """A maxout layer with its pieces in contiguous blocks of rows, and its normalisation."""

    weights: Floats  # (pieces × outputs, inputs): rows of piece 0, then of piece 1, …
    bias: Floats  # (pieces × outputs, 1)
    pieces: int
    outputs: int
    gain: Floats  # layer normalisation, (outputs, 1)
    shift: Floats

    @classmethod
    def of(cls, maxout: Any, norm: Any) -> _Maxout:
        outputs, pieces, inputs = (maxout.get_dim(d) for d in ("nO", "nP", "nI"))
        weights = maxout.get_param("W").transpose(1, 0, 2).reshape(pieces * outputs, inputs)
        return cls(
            np.ascontiguousarray(weights),
            np.ascontiguousarray(maxout.get_param("b").T.reshape(pieces * outputs, 1)),
            pieces,
            outputs,
            norm.get_param("G").reshape(-1, 1),
            norm.get_param("b").reshape(-1, 1),
        )

    def __call__(self, inputs: Floats) -> Floats:
        """Normalised maxout of ``inputs`` (features × tokens), as features × tokens."""
        units: Floats = self.weights @ inputs
        units += self.bias
        n = self.outputs
        best: Floats = np.maximum(units[:n], units[n : 2 * n])
        for piece in range(2, self.pieces):
            np.maximum(best, units[piece * n : (piece + 1) * n], out=best)
        # layer normalisation over the features of each token (thinc's: variance + 1e-8)
        best -= best.mean(axis=0)
        variance = np.einsum("ij,ij->j", best, best) / n
        variance += 1e-08
        best *= variance ** (-1.0 / 2.0)
        best *= self.gain
        best += self.shift
        return best


@dataclass(frozen=True)
class EncoderWeights:
    """The parameters of one encoder, arranged for :meth:`encode`."""

    columns: list[Any]  # the token attributes hashed (NORM, PREFIX, SUFFIX, SHAPE)
    tables: list[tuple[Floats, int, int]]  # per hash embedding: (table, seed, column)
    static: Floats  # the projection of the floret vectors, (width, vector width)
    mixer: _Maxout
    blocks: list[_Maxout]
    window: int  # neighbours on each side in a block's window
    pad: int  # rows between notes (thinc's receptive field: a note never sees the next)
    ops: Any

    def encode(self, docs: Sequence[Doc]) -> list[Floats]:
        """The encoding of each note (tokens × width), as thinc's ``predict`` gives it.

        Parameters
        ----------
        docs : sequence of Doc
            Tokenised notes of the model's vocabulary.

        Returns
        -------
        list of numpy.ndarray
            One float32 array per note.
        """
        lengths = [len(doc) for doc in docs]
        total = sum(lengths)
        width = self.mixer.outputs
        if not total:
            return [np.zeros((n, width), dtype=np.float32) for n in lengths]
        vocab = docs[0].vocab
        # Up to the mixer a token's encoding depends on its features and its vector's key
        # only, and a batch holds about five tokens per distinct such row: embed and mix each
        # distinct row once.
        keys = np.concatenate([doc.to_array([*self.columns, vocab.vectors.attr]) for doc in docs])
        distinct, token_row = _distinct_rows(keys.astype(np.uint64, copy=False))
        hashed = sum(t.shape[1] for t, _, _ in self.tables)
        embedded = np.empty((len(distinct), hashed + self.static.shape[0]), "f")
        start = 0
        for table, seed, column in self.tables:
            hashes = self.ops.hash(np.ascontiguousarray(distinct[:, column]), seed)
            embedded[:, start : start + table.shape[1]] = self.ops.gather_add(
                table, hashes % table.shape[0]
            )
            start += table.shape[1]
        vectors = np.asarray(vocab.vectors.get_batch(distinct[:, -1]), "f")
        embedded[:, start:] = vectors @ self.static.T
        mixed = self.mixer(embedded.T).T[token_row]  # tokens × width
        # The notes side by side, ``pad`` empty columns around each, as thinc's with_array.
        flat = np.zeros((width, total + self.pad * (len(docs) + 1)), dtype=np.float32)
        offsets = np.cumsum([0, *lengths[:-1]])  # each note's first token in ``mixed``
        starts = offsets + self.pad * np.arange(1, len(docs) + 1)
        for first, at, n in zip(starts, offsets, lengths, strict=True):
            flat[:, first : first + n] = mixed[at : at + n].T
        span = 2 * self.window + 1
        windows = np.zeros((span * width, flat.shape[1]), dtype=np.float32)
        for block in self.blocks:
            for k in range(span):  # rows of neighbour k - window, as thinc's seq2col orders them
                shift, rows = k - self.window, slice(k * width, (k + 1) * width)
                if shift < 0:
                    windows[rows, -shift:] = flat[:, :shift]
                elif shift > 0:
                    windows[rows, :-shift] = flat[:, shift:]
                else:
                    windows[rows] = flat
            flat += block(windows)
        notes = zip(starts, lengths, strict=True)
        return [np.ascontiguousarray(flat[:, a : a + n].T) for a, n in notes]


def _distinct_rows(keys: NDArray[np.uint64]) -> tuple[NDArray[np.uint64], NDArray[np.intp]]:
    """The distinct rows of ``keys`` (2-D) and, for each row of ``keys``, its index among them.

    The rows are compared as single byte strings (a void view): several times faster than
    ``np.unique(keys, axis=0)``.
    """
    rows = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.itemsize * keys.shape[1])))
    _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
    return keys[first], inverse.ravel()


def encoder_weights(model: Any) -> EncoderWeights | None:
    """The weights of a thinc encoder model, or ``None`` when its shape is not the one handled.

    Parameters
    ----------
    model : thinc.api.Model
        The ``tok2vec`` component's model.

    Returns
    -------
    EncoderWeights or None
    """
    nodes = list(model.walk())
    by_name: dict[str, list[Any]] = {}
    for node in nodes:
        by_name.setdefault(node.name, []).append(node)
    hashes = by_name.get("hashembed", [])
    blocks = len(by_name.get("expand_window", []))
    stack = f"with_array({'>>'.join([_BLOCK] * blocks)})"
    embed = _EMBED.format(hashes="|".join(["ints-getitem>>hashembed"] * len(hashes)))
    vectors = by_name.get("static_vectors", [None])[0]
    if model.name != f"{embed}>>{_MIXER}>>ragged2list>>{stack}" or vectors is None or not blocks:
        return None
    windows = {node.attrs["window_size"] for node in by_name["expand_window"]}
    pads = [node.attrs.get("pad") for node in by_name.get(stack, [])]
    maxouts, norms = by_name["maxout"], by_name["layernorm"]
    if len(windows) != 1 or len(pads) != 1 or not len(maxouts) == len(norms) == blocks + 1:
        return None
    columns = by_name["extract_features"][0].attrs["columns"]
    if (
        not isinstance(model.ops, NumpyOps)
        or any(m.get_dim("nP") < 2 for m in maxouts)
        or len(columns) < 2  # one column: spaCy's features are then 1-D
    ):
        return None
    return EncoderWeights(
        columns=columns,
        tables=[(h.get_param("E"), h.attrs["seed"], h.attrs["column"]) for h in hashes],
        static=np.ascontiguousarray(vectors.get_param("W")),
        mixer=_Maxout.of(maxouts[0], norms[0]),
        blocks=[_Maxout.of(m, n) for m, n in zip(maxouts[1:], norms[1:], strict=True)],
        window=windows.pop(),
        pad=int(pads[0]),
        ops=model.ops,
    )


def encode(encoder: Any, docs: Sequence[Doc]) -> bool:
    """Set ``doc.tensor`` of every note by the fast pass, when the encoder is one it handles.

    Parameters
    ----------
    encoder : spacy.pipeline.Tok2Vec
        The pipeline's encoder component.
    docs : sequence of Doc
        Notes tokenised by the pipeline.

    Returns
    -------
    bool
        ``False`` (nothing done) when the encoder has another shape or vectors not in floret
        mode: the caller runs spaCy's own.
    """
    if not docs or getattr(docs[0].vocab.vectors, "mode", None) != "floret":
        return False
    weights = encoder_weights(encoder.model)
    if weights is None:
        return False
    encoder.set_annotations(list(docs), weights.encode(docs))
    return True
