"""Okapi BM25 over a sparse document-term matrix (numpy + scipy, no Python loop per document).

The BM25 weight of every (document, term) pair is computed once at build time and stored in a
column-compressed matrix; a query then sums the columns of its terms, which is one sparse
slice and one product however many documents there are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BM25Params:
    """BM25 constants.

    Parameters
    ----------
    k1 : float, default 1.2
        Term-frequency saturation.
    b : float, default 0.75
        Document-length normalisation (0: none, 1: full).
    """

    k1: float = 1.2
    b: float = 0.75


class BM25:
    """A BM25 index of weighted token lists.

    Parameters
    ----------
    vocabulary : dict of str to int
        Token → column.
    weights : scipy.sparse.csc_matrix
        ``(n_documents, n_terms)`` BM25 weights.
    """

    def __init__(self, vocabulary: dict[str, int], weights: sp.csc_matrix) -> None:
        self.vocabulary = vocabulary
        self.weights = weights

    @property
    def n_documents(self) -> int:
        """Number of documents (rows)."""
        return int(self.weights.shape[0])

    @classmethod
    def build(
        cls,
        documents: Sequence[Sequence[tuple[str, float]]],
        params: BM25Params | None = None,
    ) -> BM25:
        """Index documents given as lists of ``(token, weight)`` pairs.

        Parameters
        ----------
        documents : sequence of sequence of (str, float)
            Each document's tokens with a field weight (a label token may count twice as
            much as a description token); the weighted count is the term frequency.
        params : BM25Params, optional
            BM25 constants; the defaults when omitted.

        Returns
        -------
        BM25
        """
        vocabulary: dict[str, int] = {}
        columns = [
            vocabulary.setdefault(tok, len(vocabulary)) for doc in documents for tok, _ in doc
        ]
        weights = [w for doc in documents for _, w in doc]
        lengths = [len(doc) for doc in documents]
        rows = np.repeat(np.arange(len(documents)), lengths)
        return cls.from_entries(
            rows,
            np.array(columns, dtype=np.int64),
            np.array(weights, dtype=np.float64),
            len(documents),
            vocabulary,
            params,
        )

    @classmethod
    def from_entries(
        cls,
        rows: npt.NDArray[np.int64],
        columns: npt.NDArray[np.int64],
        weights: npt.NDArray[np.float64],
        n_documents: int,
        vocabulary: dict[str, int],
        params: BM25Params | None = None,
    ) -> BM25:
        """Index token occurrences given as parallel arrays.

        Parameters
        ----------
        rows, columns, weights : numpy.ndarray
            One entry per token occurrence: its document, its column in ``vocabulary`` and
            its field weight (repeated entries add up to the term frequency).
        n_documents : int
            Number of documents (rows).
        vocabulary : dict of str to int
            Token → column.
        params : BM25Params, optional
            BM25 constants; the defaults when omitted.

        Returns
        -------
        BM25
        """
        params = params or BM25Params()
        tf = sp.coo_matrix((weights, (rows, columns)), shape=(n_documents, len(vocabulary))).tocsr()
        tf.sum_duplicates()
        doc_len = np.asarray(tf.sum(axis=1)).ravel()
        avg_len = float(doc_len.mean()) if n_documents else 1.0
        avg_len = avg_len if avg_len > 0 else 1.0
        doc_freq = np.bincount(tf.indices, minlength=tf.shape[1])
        idf = np.log1p((n_documents - doc_freq + 0.5) / (doc_freq + 0.5))
        # BM25 term weight, per stored (document, term) entry.
        norm = params.k1 * (1.0 - params.b + params.b * doc_len / avg_len)
        row_of_entry = np.repeat(np.arange(n_documents), np.diff(tf.indptr))
        data = tf.data * (params.k1 + 1.0) / (tf.data + norm[row_of_entry]) * idf[tf.indices]
        bm25 = sp.csr_matrix((data.astype(np.float32), tf.indices, tf.indptr), shape=tf.shape)
        return cls(dict(vocabulary), bm25.tocsc())

    def scores(self, query_tokens: Sequence[str]) -> FloatArray:
        """BM25 score of every document for a query's tokens.

        Parameters
        ----------
        query_tokens : sequence of str
            Tokens of the query (a repeated token counts as often as it appears).

        Returns
        -------
        numpy.ndarray
            ``(n_documents,)`` float32 scores; zero where no token matches.
        """
        counts = Counter(t for t in query_tokens if t in self.vocabulary)
        if not counts:
            return np.zeros(self.n_documents, dtype=np.float32)
        columns = np.fromiter((self.vocabulary[t] for t in counts), dtype=np.int64)
        times = np.fromiter(counts.values(), dtype=np.float32)
        return np.asarray(self.weights[:, columns] @ times, dtype=np.float32).ravel()

    def to_arrays(self, prefix: str) -> dict[str, Any]:
        """The index as plain arrays for ``numpy.savez`` (keys start with ``prefix``)."""
        vocab = np.array(sorted(self.vocabulary, key=self.vocabulary.__getitem__), dtype=str)
        return {
            f"{prefix}vocabulary": vocab,
            f"{prefix}data": self.weights.data,
            f"{prefix}indices": self.weights.indices,
            f"{prefix}indptr": self.weights.indptr,
            f"{prefix}shape": np.array(self.weights.shape, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> BM25:
        """Rebuild an index written by :meth:`to_arrays`."""
        shape = tuple(int(x) for x in arrays[f"{prefix}shape"])
        weights = sp.csc_matrix(
            (arrays[f"{prefix}data"], arrays[f"{prefix}indices"], arrays[f"{prefix}indptr"]),
            shape=shape,
        )
        vocabulary = {str(tok): i for i, tok in enumerate(arrays[f"{prefix}vocabulary"])}
        return cls(vocabulary, weights)
