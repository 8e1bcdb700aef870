"""The hub: harvest, validate, version; refuse malformed or invalid descriptions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
from rdflib import URIRef
from rdflib import namespace as ns
from tests.catalogue.stores import CLEVELAND_PROFILE, sample_description

from cardiobox.catalogue.hub import Hub, content_hash
from cardiobox.catalogue.model import DatasetDescription
from cardiobox.catalogue.rdf import from_graph, to_graph, to_jsonld, to_turtle
from cardiobox.catalogue.validate import validate

Y_IRI = "https://hospital-y.example/catalogue/dataset"


def _write(path: Path, d: DatasetDescription) -> Path:
    path.write_text(to_turtle(d), encoding="utf-8")
    return path


def test_publish_versions_and_merge(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "hub", title="Test federation")
    v1 = sample_description()
    first = hub.publish("hospital_x", _write(tmp_path / "x1.ttl", v1))
    assert first.accepted and not first.unchanged and first.version is not None
    assert first.version.sha256 == content_hash(v1)
    canonical = orjson.dumps(v1.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    assert first.version.sha256 == hashlib.sha256(canonical).hexdigest()
    assert (hub.path / first.version.file).exists()
    # the same content again: accepted, no new version
    again = hub.publish("hospital_x", _write(tmp_path / "x1b.ttl", v1))
    assert again.accepted and again.unchanged and len(hub.versions("hospital_x")) == 1
    # a new version (JSON-LD this time) becomes current; the old one is kept
    v2 = sample_description(number_of_records=6000)
    jsonld = tmp_path / "x2.jsonld"
    jsonld.write_text(to_jsonld(v2), encoding="utf-8")
    second = hub.publish("hospital_x", jsonld)
    assert second.accepted and "version 2" in second.message
    versions = hub.versions("hospital_x")
    assert [v.sha256 for v in versions] == [content_hash(v1), content_hash(v2)]
    assert versions[0].published_at <= versions[1].published_at
    assert hub.current()["hospital_x"] == versions[1]
    assert hub.description("hospital_x") == v2
    # a second site, then the merged catalogue
    y = sample_description(site="hospital_y", iri=Y_IRI)
    assert hub.publish("hospital_y", _write(tmp_path / "y.ttl", y)).accepted
    assert sorted(hub.current()) == ["hospital_x", "hospital_y"]
    g = hub.catalogue_graph()
    report = validate(g)
    assert report.conforms, report.summary()
    (cat,) = g.subjects(ns.RDF.type, ns.DCAT.Catalog)
    assert set(g.objects(cat, ns.DCAT.dataset)) == {URIRef(v2.iri), URIRef(Y_IRI)}
    records = list(g.subjects(ns.RDF.type, ns.DCAT.CatalogRecord))
    assert len(records) == 2
    assert from_graph(g) == [v2, y]
    # reopening the folder sees the same state
    assert Hub(tmp_path / "hub").current() == hub.current()
    assert Hub(tmp_path / "hub").config["title"] == "Test federation"


def test_malformed_rdf_is_refused_and_the_previous_version_stays(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "hub")
    good = hub.publish("hospital_x", _write(tmp_path / "x.ttl", sample_description()))
    bad = tmp_path / "bad.ttl"
    bad.write_text(to_turtle(sample_description())[:-200] + " ;; <broken", encoding="utf-8")
    result = hub.publish("hospital_x", bad)
    assert not result.accepted and result.rule == "rdf-syntax"
    assert "malformed turtle" in result.message and "stays" in result.message
    assert result.version == good.version
    assert hub.current()["hospital_x"] == good.version and len(hub.versions("hospital_x")) == 1


def test_a_description_failing_shacl_is_refused(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "hub")
    good = hub.publish("hospital_x", _write(tmp_path / "x.ttl", sample_description()))
    g = to_graph(sample_description())
    g.remove((URIRef(sample_description().iri), ns.DCTERMS.title, None))
    bad = tmp_path / "no-title.ttl"
    bad.write_text(g.serialize(format="turtle"), encoding="utf-8")
    result = hub.publish("hospital_x", bad)
    assert not result.accepted and result.rule == "shacl"
    assert "dct:title" in result.message and result.report is not None
    assert result.to_dict()["violations"][0]["path"] == "dct:title"
    assert hub.current()["hospital_x"] == good.version


def test_refusals_for_the_wrong_site_and_a_first_invalid_publication(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "hub")
    other = hub.publish("hospital_z", _write(tmp_path / "x.ttl", sample_description()))
    assert not other.accepted and other.rule == "wrong-site" and other.version is None
    missing = hub.publish("hospital_x", tmp_path / "missing.ttl")
    assert not missing.accepted and "cannot read" in missing.message
    assert hub.current() == {} and hub.versions("hospital_x") == []


def test_publish_from_a_store_builds_on_the_fly(cleveland_store: Path, tmp_path: Path) -> None:
    hub = Hub(tmp_path / "hub")
    result = hub.publish("cleveland", cleveland_store, profile=CLEVELAND_PROFILE)
    assert result.accepted, result.message
    assert hub.description("cleveland").number_of_unique_individuals == 40
    no_profile = hub.publish("cleveland", cleveland_store)
    assert not no_profile.accepted and no_profile.rule == "missing-profile"
