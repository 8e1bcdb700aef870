from __future__ import annotations

from typing import get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.catalogue.search_helpers import small_index

from cardiobox.catalogue.api import MAX_SITES, Language, create_router
from cardiobox.catalogue.search import MAX_K, MAX_QUERY_CHARS
from cardiobox.cdm.dictionary import LANGUAGES


@pytest.fixture(scope="module")
def client() -> TestClient:
    index, _ = small_index()
    app = FastAPI()
    app.include_router(create_router(index), prefix="/catalogue")
    return TestClient(app)


def test_the_languages_are_the_seven_of_the_data_model() -> None:
    assert get_args(Language) == LANGUAGES


def test_search_returns_hits_and_their_facet_counts(client: TestClient) -> None:
    r = client.get("/catalogue/search", params={"q": "fraccion de eyeccion", "lang": "es", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert (body["query"], body["lang"], body["k"]) == ("fraccion de eyeccion", "es", 2)
    assert [h["variable_id"] for h in body["hits"]] == ["lvef", "lvef"]
    assert {h["site"] for h in body["hits"]} == {"hospital-a", "hospital-b"}
    assert body["hits"][0]["label"] == "Fracción de eyección del VI"
    assert body["facets"]["site"] == {"hospital-a": 1, "hospital-b": 1}
    assert body["facets"]["category"] == {"echo": 2}


def test_search_filters_on_site_and_kind(client: TestClient) -> None:
    r = client.get("/catalogue/search", params={"q": "heart", "k": MAX_K, "site": ["hospital-b"]})
    assert {h["id"] for h in r.json()["hits"]} == {"dataset:hospital-b", "variable:hospital-b:lvef"}
    r = client.get("/catalogue/search", params={"q": "heart", "kind": "dataset"})
    hits = r.json()["hits"]
    assert {h["kind"] for h in hits} == {"dataset"} and all(h["variable_id"] is None for h in hits)
    r = client.get(
        "/catalogue/search", params=[("q", "heart"), ("site", "hospital-a"), ("site", "hospital-b")]
    )
    assert len(r.json()["hits"]) == 6


@pytest.mark.parametrize(
    ("params", "where", "says"),
    [
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q", f"at most {MAX_QUERY_CHARS}"),
        ({"q": ""}, "q", "at least 1"),
        ({"q": "   "}, "q", "empty"),
        ({}, "q", "Field required"),
        ({"q": "kalium", "lang": "de"}, "lang", "'en'"),
        ({"q": "kalium", "k": 0}, "k", "greater than or equal to 1"),
        ({"q": "kalium", "k": MAX_K + 1}, "k", f"less than or equal to {MAX_K}"),
        ({"q": "kalium", "k": "ten"}, "k", "integer"),
        ({"q": "kalium", "kind": "patient"}, "kind", "'variable'"),
        ({"q": "kalium", "site": ["s"] * (MAX_SITES + 1)}, "site", f"at most {MAX_SITES}"),
        ({"q": "kalium", "site": ["s" * 500]}, "site", "at most"),
    ],
)
def test_hostile_parameters_get_a_422_naming_them(
    client: TestClient,
    params: dict,
    where: str,
    says: str,  # type: ignore[type-arg]
) -> None:
    r = client.get("/catalogue/search", params=params)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert any(d["loc"][-1] == where and says in d["msg"] for d in detail), detail


def test_a_variable_page_lists_its_sites_and_labels(client: TestClient) -> None:
    r = client.get("/catalogue/variables/lvef", params={"lang": "es"})
    assert r.status_code == 200
    body = r.json()
    assert body["variable_id"] == "lvef"
    assert body["sites"] == ["hospital-a", "hospital-b"]
    assert body["labels"]["en"] == "Left ventricular ejection fraction"
    assert [d["id"] for d in body["documents"]] == [
        "variable:hospital-a:lvef",
        "variable:hospital-b:lvef",
    ]
    assert body["documents"][0]["label"] == "Fracción de eyección del VI"
    assert body["documents"][0]["facets"]["category"] == ["echo"]


def test_an_unknown_or_malformed_variable_is_refused(client: TestClient) -> None:
    r = client.get("/catalogue/variables/bnp")
    assert r.status_code == 404 and "bnp" in r.json()["detail"]
    for bad in ("LVEF", "lvef;drop", "x" * 65):
        assert client.get(f"/catalogue/variables/{bad}").status_code == 422


def test_dataset_pages_serve_the_hubs_current_descriptions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.catalogue.stores import sample_description

    from cardiobox.catalogue.hub import Hub
    from cardiobox.catalogue.rdf import to_turtle

    description = sample_description()
    path = tmp_path / "x.ttl"
    path.write_text(to_turtle(description), encoding="utf-8")
    hub = Hub(tmp_path / "hub")
    site = description.site
    assert hub.publish(site, path).accepted
    index, _ = small_index()
    app = FastAPI()
    app.include_router(create_router(index, hub), prefix="/catalogue")
    client = TestClient(app)
    listed = client.get("/catalogue/datasets").json()
    assert [d["site"] for d in listed] == [site]
    page = client.get(f"/catalogue/datasets/{site}").json()
    assert page["site"] == site
    jsonld = client.get(f"/catalogue/datasets/{site}", params={"format": "jsonld"})
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert client.get("/catalogue/datasets/nobody").status_code == 404
    assert client.get("/catalogue/datasets/..%2Fetc").status_code in (404, 422)
