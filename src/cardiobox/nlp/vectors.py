"""Subword word vectors trained on unlabelled notes (floret), as spaCy static vectors.

floret (fastText with hashed subwords in a fixed-size table) gives every word a vector, even
words never seen, from its character n-grams, in a table small enough to ship. The vectors are
trained on the training notes' text only (never on an evaluation split).

spaCy computes a floret vector afresh for every distinct word of every batch: hashing each
word's character n-grams in Python cost several milliseconds a CardioCCC note, batch after batch.
:func:`memoize_floret_vectors` keeps the vectors of words already seen.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.strings import get_string_id
from spacy.training.initialize import convert_vectors
from spacy.vectors import Vectors
from thinc.api import NumpyOps

from cardiobox.nlp.doc import blank_pipeline


def train_floret_vectors(
    texts: Iterable[str],
    nlp: Language,
    *,
    dim: int = 64,
    buckets: int = 10_000,
    epochs: int = 10,
    seed: int = 0,
    threads: int = 1,
) -> None:
    """Train floret vectors on ``texts`` and install them as ``nlp``'s static vectors.

    Parameters
    ----------
    texts : iterable of str
        Unlabelled notes, tokenised with the pipeline's own tokenizer before training.
    nlp : spacy.language.Language
        The pipeline that receives the vectors (``nlp.vocab.vectors``, floret mode).
    dim : int
        Vector width.
    buckets : int
        Rows of the hashed n-gram table (the table's size is ``buckets × dim`` floats).
    epochs : int
        Passes over the text.
    seed : int
        Seed of floret's random initialisation.
    threads : int
        floret's worker threads (1 gives a reproducible result).
    """
    import floret  # optional: only needed to train, not to run the shipped models

    tokenizer = blank_pipeline(nlp.lang).tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        with corpus.open("w", encoding="utf-8") as handle:
            for text in texts:
                tokens = [t.text for t in tokenizer(text) if not t.is_space]
                handle.write(" ".join(tokens) + "\n")
        model = floret.train_unsupervised(
            str(corpus),
            model="cbow",
            mode="floret",
            hashCount=2,
            bucket=buckets,
            minn=3,
            maxn=5,
            minCount=2,
            dim=dim,
            epoch=epochs,
            thread=threads,
            verbose=0,
        )
        vectors_file = Path(tmp) / "vectors.floret"
        model.save_floret_vectors(str(vectors_file))
        convert_vectors(nlp, vectors_file, truncate=0, prune=-1, mode="floret")
    memoize_floret_vectors(nlp)


class _Memo:
    """The remembered rows: word key → row of a table that grows by doubling."""

    def __init__(self, width: int, dtype: Any) -> None:
        self.index: dict[int, int] = {}
        self.rows = np.zeros((1024, width), dtype=dtype)
        #: n-gram → its rows of the table (words share most of their n-grams)
        self.ngrams: dict[str, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: list[int], rows: Any) -> None:
        count = len(self.index)
        needed = count + len(keys)
        if needed > len(self.rows):
            grown = np.zeros((max(needed, 2 * len(self.rows)), self.rows.shape[1]), self.rows.dtype)
            grown[:count] = self.rows[:count]
            self.rows = grown
        self.rows[count:needed] = rows
        self.index.update(zip(keys, range(count, needed), strict=True))


class MemoFloretVectors(Vectors):  # type: ignore[misc]  # spaCy's Cython class is untyped
    """Floret vectors that remember the vector of every word they have computed.

    A word's floret vector is the mean of its n-grams' rows, whatever else is in the batch, so
    a remembered vector is the one spaCy would compute, to the bit. At most ``limit`` words
    are kept (64 floats each, about 51 MB in all) and the table rows of at most ``limit``
    n-grams (about 230 bytes each, some 46 MB); past that each starts again empty. The
    remembered rows are one table, so that a batch's vectors are one fancy-indexing of it.
    """

    limit = 200_000

    def get_batch(self, keys: Iterable[Any]) -> Any:
        """The vectors of ``keys`` (strings or their hashes), one row each, as spaCy's."""
        memo = self._memo()
        if isinstance(keys, np.ndarray) and keys.dtype.kind in "iu":
            given: list[Any] = keys.tolist()  # hashes already (a Doc's ORTH column)
            wanted: list[int] = given
        else:
            given = list(keys)  # strings pass as strings: the store may not hold them
            wanted = [get_string_id(key) for key in given]
        if not wanted:
            return np.zeros((0, self.shape[1]), dtype=self.data.dtype)
        index = memo.index
        new = {k: key for k, key in zip(wanted, given, strict=True) if k not in index}
        if new and len(memo) + len(new) > self.limit:
            memo = self._memo(restart=True)
            index = memo.index
            new = dict(zip(wanted, given, strict=True))
        if new:
            words = [k if isinstance(k, str) else self.strings.as_string(k) for k in new.values()]
            memo.add(list(new), self._floret_rows(words, memo.ngrams))
        rows = np.fromiter(map(index.__getitem__, wanted), dtype=np.intp, count=len(wanted))
        return memo.rows[rows]

    def _floret_rows(self, words: list[str], ngrams: dict[str, tuple[int, ...]]) -> Any:
        """spaCy's floret vectors of ``words``, to the bit, their n-grams' rows remembered.

        spaCy's ``get_batch`` hashes every n-gram of every word afresh in a Python loop (about
        40-60 µs a word); the rows of an n-gram never change with the table, so they are kept
        (about 20 µs a word once most of its n-grams have been met).
        Each word's vector is the mean of its n-grams' rows by thinc's ``reduce_mean``, as in
        spaCy, the n-grams spaCy's own (``_get_ngrams``).
        """
        if len(ngrams) > self.limit:
            ngrams.clear()
        size = self.data.shape[0]
        indices: list[int] = []
        lengths: list[int] = []
        for word in words:
            if not word:
                lengths.append(0)
                continue
            before = len(indices)
            for gram in self._get_ngrams(word):  # spaCy's own n-grams, in its order
                rows = ngrams.get(gram)
                if rows is None:
                    rows = ngrams[gram] = tuple(h % size for h in self._get_ngram_hashes(gram))
                indices.extend(rows)
            lengths.append(len(indices) - before)
        if not indices:
            return np.zeros((len(words), self.shape[1]), dtype=self.data.dtype)
        ops = NumpyOps()  # the table is a numpy array; spaCy's get_array_ops gives the same
        table = self.data[ops.asarray(indices, dtype="int32")]
        return np.asarray(ops.reduce_mean(table, ops.asarray(lengths, dtype="int32")))

    def _memo(self, restart: bool = False) -> _Memo:
        """The memo of the current table, emptied when the table changes (or on ``restart``).

        Loading other vectors (``from_disk``, ``from_bytes``, ``resize``) replaces ``data`` or
        the n-gram settings.
        """
        settings = (self.minn, self.maxn, self.hash_count, self.hash_seed, self.bow, self.eow)
        table = (self.data, *settings)
        state = self.__dict__
        held = state.get("_memo_table")
        if restart or held is None or held[0] is not table[0] or held[1:] != table[1:]:
            state["_memo_table"] = table  # holds the array: its id cannot be reused meanwhile
            state["_memo_rows"] = _Memo(self.shape[1], self.data.dtype)
        memo: _Memo = state["_memo_rows"]
        return memo


def memoize_floret_vectors(nlp: Language) -> Language:
    """Give ``nlp`` a :class:`MemoFloretVectors` copy of its floret vectors (no other change).

    Parameters
    ----------
    nlp : spacy.language.Language
        A pipeline; vectors of another mode, or none, are left as they are.

    Returns
    -------
    spacy.language.Language
        The same pipeline.
    """
    vectors = nlp.vocab.vectors
    if vectors.mode != "floret" or isinstance(vectors, MemoFloretVectors) or not vectors.size:
        return nlp
    nlp.vocab.vectors = MemoFloretVectors(
        strings=nlp.vocab.strings,
        data=vectors.data,
        mode="floret",
        minn=vectors.minn,
        maxn=vectors.maxn,
        hash_count=vectors.hash_count,
        hash_seed=vectors.hash_seed,
        bow=vectors.bow,
        eow=vectors.eow,
        name=vectors.name,
        attr=vectors.attr,
    )
    return nlp
