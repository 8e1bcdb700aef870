"""Evaluation of catalogue search: recall@k and MRR per language over a query set.

A query set is a YAML file per language::

    language: es
    queries:
      - {q: "fraccion de eyeccion", expected: [lvef]}
      - {q: "pastillas para orinar", expected: [diuretic, loop_diuretic, thiazide_diuretic]}

A query is *answered at k* when one of its expected data-model variables is among the first
``k`` distinct variables of the ranking (several site documents of one variable count once);
recall@k is the share of queries answered at k, and MRR the mean of ``1 / rank`` of the first
expected variable (0 when it is not in the first ``depth``).

The evaluation queries live in ``tests/catalogue/queries/``; the weights of the fusion were
chosen with :func:`tune` on the separate ``tests/catalogue/queries_tuning/``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cardiobox import yamlio
from cardiobox.cache import default_cache_dir
from cardiobox.catalogue.embeddings import EmbeddingCache
from cardiobox.catalogue.search import SearchConfig, SearchIndex, fuse_scores
from cardiobox.cdm.dictionary import LANGUAGES
from cardiobox.errors import InputError, Location

FloatArray = npt.NDArray[np.float32]

#: Cut-offs reported by default.
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


@dataclass(frozen=True)
class Query:
    """One query and the data-model variables that answer it.

    Parameters
    ----------
    text : str
        What the researcher types.
    expected : tuple of str
        Variable ids; any one of them in the top k answers the query.
    """

    text: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class QuerySet:
    """The queries of one language.

    Parameters
    ----------
    language : str
        Language code (one of the seven).
    queries : tuple of Query
        The queries, in file order.
    source : str
        File the set was read from.
    """

    language: str
    queries: tuple[Query, ...]
    source: str = ""


@dataclass(frozen=True)
class LanguageScores:
    """Search quality on one language's queries.

    Parameters
    ----------
    language : str
        Language code.
    n_queries : int
        Number of queries.
    recall : dict of int to float
        Recall at each cut-off.
    mrr : float
        Mean reciprocal rank of the first expected variable.
    misses : list of (str, tuple of str, list of str)
        Queries not answered at the largest cut-off: query, expected ids, top variables.
    """

    language: str
    n_queries: int
    recall: dict[int, float]
    mrr: float
    misses: list[tuple[str, tuple[str, ...], list[str]]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The scores as a JSON object."""
        return {
            "language": self.language,
            "queries": self.n_queries,
            "recall": {f"@{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr": round(self.mrr, 4),
            "misses": [{"query": q, "expected": list(e), "top": t} for q, e, t in self.misses],
        }


# -- reading ------------------------------------------------------------------------------------
def load_query_set(path: Path | str, known: Iterable[str] | None = None) -> QuerySet:
    """Read and check one language's query file.

    Parameters
    ----------
    path : path
        YAML file with ``language`` and ``queries``.
    known : iterable of str, optional
        Valid variable ids; an expected id outside them is an error.

    Returns
    -------
    QuerySet

    Raises
    ------
    InputError
        Naming the file and the query when the file is malformed, the language unknown, a
        query empty or an expected variable unknown.
    """
    where = str(path)
    doc = yamlio.load_file(Path(path), "query-set-syntax")
    if not isinstance(doc, dict) or not isinstance(doc.get("queries"), list):
        raise InputError(
            "expected a mapping with 'language' and a 'queries' list",
            rule="query-set",
            location=Location(file=where),
        )
    language = doc.get("language")
    if language not in LANGUAGES:
        raise InputError(
            f"language {language!r} is not one of {', '.join(LANGUAGES)}",
            rule="query-set",
            location=Location(file=where),
        )
    valid = set(known) if known is not None else None
    queries: list[Query] = []
    for i, entry in enumerate(doc["queries"]):
        loc = Location(file=where, entry=i)
        if not isinstance(entry, dict):
            raise InputError("a query must be a mapping {q, expected}", rule="query", location=loc)
        text, expected = entry.get("q"), entry.get("expected")
        if not isinstance(text, str) or not text.strip():
            raise InputError("'q' must be a non-empty text", rule="query", location=loc)
        if not isinstance(expected, list) or not expected:
            raise InputError(
                f"query {text!r}: 'expected' must list variable ids", rule="query", location=loc
            )
        unknown = [v for v in expected if valid is not None and v not in valid]
        if unknown:
            raise InputError(
                f"query {text!r}: unknown variables {unknown}", rule="query", location=loc
            )
        queries.append(Query(text.strip(), tuple(str(v) for v in expected)))
    return QuerySet(str(language), tuple(queries), where)


def load_query_sets(folder: Path | str, known: Iterable[str] | None = None) -> dict[str, QuerySet]:
    """Read every ``<lang>.yaml`` of ``folder``, in the project's language order.

    Parameters
    ----------
    folder : path
        Folder of query files.
    known : iterable of str, optional
        Valid variable ids (see :func:`load_query_set`).

    Returns
    -------
    dict of str to QuerySet
        By language code.
    """
    ids = list(known) if known is not None else None
    sets = {s.language: s for s in (load_query_set(p, ids) for p in Path(folder).glob("*.yaml"))}
    return {lang: sets[lang] for lang in LANGUAGES if lang in sets}


# -- scoring ------------------------------------------------------------------------------------
def first_relevant_rank(ranked: Sequence[str | None], expected: Iterable[str]) -> int | None:
    """1-based rank of the first expected variable among the distinct ranked variables.

    Parameters
    ----------
    ranked : sequence of str or None
        Variable ids of the hits, best first (``None`` for dataset hits, skipped).
    expected : iterable of str
        Variables that answer the query.

    Returns
    -------
    int or None
        ``None`` when no expected variable is ranked.
    """
    wanted = set(expected)
    seen: set[str] = set()
    for variable in ranked:
        if variable is None or variable in seen:
            continue
        seen.add(variable)
        if variable in wanted:
            return len(seen)
    return None


def ranked_variables(index: SearchIndex, scores: FloatArray, depth: int) -> list[str | None]:
    """Variable ids of the best-scored documents, best first, until ``depth`` distinct ones."""
    order = np.argsort(-scores, kind="stable")
    out: list[str | None] = []
    distinct: set[str] = set()
    for row in order:
        variable = index.documents[int(row)].variable_id
        out.append(variable)
        if variable is not None:
            distinct.add(variable)
            if len(distinct) >= depth:
                break
    return out


def score_language(
    language: str,
    queries: Sequence[Query],
    rankings: Sequence[Sequence[str | None]],
    ks: Sequence[int] = DEFAULT_KS,
) -> LanguageScores:
    """Recall@k and MRR of one language from the rankings of its queries.

    Parameters
    ----------
    language : str
        Language code.
    queries : sequence of Query
        The queries.
    rankings : sequence of sequence of str or None
        Each query's ranked variable ids.
    ks : sequence of int
        Cut-offs.

    Returns
    -------
    LanguageScores
    """
    ranks = [first_relevant_rank(r, q.expected) for q, r in zip(queries, rankings, strict=True)]
    n = len(queries)
    recall = {k: sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0 for k in ks}
    mrr = sum(1.0 / r for r in ranks if r is not None) / n if n else 0.0
    top = max(ks)
    misses = [
        (q.text, q.expected, _distinct(r, 5))
        for q, r, rank in zip(queries, rankings, ranks, strict=True)
        if rank is None or rank > top
    ]
    return LanguageScores(language, n, recall, mrr, misses)


def query_components(
    index: SearchIndex,
    query_sets: Mapping[str, QuerySet],
    cache_dir: Path | str | None = "default",
) -> dict[str, list[dict[str, FloatArray]]]:
    """Component scores of every query (queries embedded in one cached batch).

    Parameters
    ----------
    index : SearchIndex
        The index to search.
    query_sets : mapping of str to QuerySet
        Queries by language.
    cache_dir : path, "default" or None
        Embedding cache root for the query embeddings.

    Returns
    -------
    dict
        By language, one ``{"words", "trigrams", "dense"}`` mapping per query.
    """
    texts = [q.text for qs in query_sets.values() for q in qs.queries]
    vectors: dict[str, FloatArray] = {}
    if index.semantic and texts:
        folder = default_cache_dir() if cache_dir == "default" else cache_dir
        rows = EmbeddingCache(folder).embed(texts, index.embedder, kind="query")
        vectors = dict(zip(texts, rows, strict=True))
    return {
        lang: [index.component_scores(q.text, vectors.get(q.text)) for q in qs.queries]
        for lang, qs in query_sets.items()
    }


def evaluate(
    index: SearchIndex,
    query_sets: Mapping[str, QuerySet],
    ks: Sequence[int] = DEFAULT_KS,
    config: SearchConfig | None = None,
    components: Mapping[str, list[dict[str, FloatArray]]] | None = None,
    cache_dir: Path | str | None = "default",
) -> dict[str, LanguageScores]:
    """Recall@k and MRR of ``index`` on every language's queries.

    Parameters
    ----------
    index : SearchIndex
        The index (its documents must carry ``variable_id``).
    query_sets : mapping of str to QuerySet
        Queries by language.
    ks : sequence of int
        Cut-offs, default 1, 5 and 10.
    config : SearchConfig, optional
        Fusion weights to evaluate; default the index's own.
    components : mapping, optional
        Precomputed :func:`query_components` (tuning evaluates many configurations on one
        set of component scores).
    cache_dir : path, "default" or None
        Embedding cache root for the query embeddings.

    Returns
    -------
    dict of str to LanguageScores
        By language.
    """
    config = config or index.config
    components = components or query_components(index, query_sets, cache_dir)
    depth = max(ks)
    out: dict[str, LanguageScores] = {}
    for lang, qs in query_sets.items():
        rankings = [
            ranked_variables(index, fuse_scores(c, config), depth) for c in components[lang]
        ]
        out[lang] = score_language(lang, qs.queries, rankings, ks)
    return out


def format_table(results: Mapping[str, LanguageScores]) -> str:
    """A markdown table: one row per language, recall at each cut-off and MRR."""
    ks = sorted(next(iter(results.values())).recall) if results else []
    head = "| language | queries | " + " | ".join(f"recall@{k}" for k in ks) + " | MRR |"
    rule = "|---|---:|" + "---:|" * len(ks) + "---:|"
    rows = [
        f"| {s.language} | {s.n_queries} | "
        + " | ".join(f"{s.recall[k]:.3f}" for k in ks)
        + f" | {s.mrr:.3f} |"
        for s in results.values()
    ]
    return "\n".join([head, rule, *rows])


# -- tuning -------------------------------------------------------------------------------------
def tune(
    index: SearchIndex,
    tuning_sets: Mapping[str, QuerySet],
    word_weights: Sequence[float] = (1.0,),
    trigram_weights: Sequence[float] = (0.5, 1.0, 1.5),
    dense_weights: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 10.0, 15.0, 20.0),
    tolerance: float = 0.01,
    cache_dir: Path | str | None = "default",
) -> tuple[SearchConfig, float]:
    """Choose fusion weights on the tuning queries (never the evaluation queries).

    The objective is recall@5 + MRR averaged over the languages (each language counts the
    same). Of the grid points within ``tolerance`` of the best objective, the one with the
    smallest dense weight is kept (then the best objective): where the queries cannot tell
    weights apart, lexical evidence (exact names, abbreviations, codes) keeps its say.

    Parameters
    ----------
    index : SearchIndex
        The index (its BM25 constants are kept).
    tuning_sets : mapping of str to QuerySet
        Tuning queries by language.
    word_weights, trigram_weights, dense_weights : sequence of float
        Grid of each weight.
    tolerance : float, default 0.01
        How far below the best objective a configuration may be and still be chosen.
    cache_dir : path, "default" or None
        Embedding cache root for the query embeddings.

    Returns
    -------
    (SearchConfig, float)
        The chosen configuration and its objective.
    """
    components = query_components(index, tuning_sets, cache_dir)
    scored: list[tuple[float, SearchConfig]] = []
    for w, t, d in itertools.product(word_weights, trigram_weights, dense_weights):
        config = replace(index.config, word_weight=w, trigram_weight=t, dense_weight=d)
        scores = evaluate(index, tuning_sets, (5,), config, components)
        scored.append((float(np.mean([s.recall[5] + s.mrr for s in scores.values()])), config))
    if not scored:
        raise InputError("tuning needs at least one weight of each kind", rule="tune")
    best = max(objective for objective, _ in scored)
    near = [(c.dense_weight, -o, i) for i, (o, c) in enumerate(scored) if o >= best - tolerance]
    chosen = scored[min(near)[2]]
    return chosen[1], chosen[0]


def _distinct(ranked: Sequence[str | None], n: int) -> list[str]:
    out: list[str] = []
    for variable in ranked:
        if variable is not None and variable not in out:
            out.append(variable)
            if len(out) == n:
                break
    return out
