"""RDF: the vocabulary used, Turtle and JSON-LD round trips, and clear parse errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Literal, URIRef
from rdflib import namespace as ns
from tests.catalogue.stores import sample_description

from cardiobox.catalogue.model import DatasetDescription
from cardiobox.catalogue.rdf import (
    DescriptionError,
    RdfSyntaxError,
    from_graph,
    parse_rdf,
    to_graph,
    to_jsonld,
    to_turtle,
)
from cardiobox.catalogue.vocab import CBX, DPV, HEALTHDCATAP

H = "http://healthdataportal.eu/ns/health#"


def test_graph_uses_the_healthdcat_ap_vocabulary(sample: DatasetDescription) -> None:
    g = to_graph(sample)
    ds = URIRef(sample.iri)
    assert str(HEALTHDCATAP) == H
    assert (ds, ns.RDF.type, ns.DCAT.Dataset) in g
    assert (ds, ns.DCTERMS.title, Literal("Ingresos del Hospital X", lang="es")) in g
    assert g.value(ds, HEALTHDCATAP.numberOfUniqueIndividuals) == Literal(
        150, datatype=ns.XSD.nonNegativeInteger
    )
    assert g.value(ds, HEALTHDCATAP.minTypicalAge).toPython() == 50
    assert (ds, HEALTHDCATAP.healthTheme, URIRef("http://www.wikidata.org/entity/Q181754")) in g
    assert (ds, DPV.hasLegalBasis, URIRef("https://w3id.org/dpv/legal/eu/gdpr#A9-2-j")) in g
    temporal = g.value(ds, ns.DCTERMS.temporal)
    assert g.value(temporal, ns.DCAT.startDate) == Literal("2018-01", datatype=ns.XSD.gYearMonth)
    lvef = URIRef(sample.iri + "/variable/lvef")
    assert (ds, CBX.hasVariable, lvef) in g
    assert g.value(lvef, CBX.patients).toPython() == 120
    # a withheld count is said to be withheld, never written
    withheld = [b for b in g.objects(lvef, CBX.histogramBin) if (b, CBX.withheld, None) in g]
    assert len(withheld) == 2 and all((b, CBX["count"], None) not in g for b in withheld)
    assert (URIRef(sample.iri + "/variable/stroke"), CBX.patients, None) not in g
    text = to_turtle(sample)
    assert "@prefix healthdcatap: <http://healthdataportal.eu/ns/health#>" in text


def test_turtle_round_trip_is_exact(sample: DatasetDescription) -> None:
    back = from_graph(parse_rdf(to_turtle(sample), "turtle"))
    assert back == [sample]


def test_jsonld_round_trip_is_exact(sample: DatasetDescription, tmp_path: Path) -> None:
    text = to_jsonld(sample)
    doc = json.loads(text)
    assert doc["@context"]["healthdcatap"] == H
    path = tmp_path / "d.jsonld"
    path.write_text(text, encoding="utf-8")
    assert from_graph(parse_rdf(path)) == [sample]


def test_minimal_description_round_trips() -> None:
    bare = sample_description(
        temporal=None, retention_period=None, hdab=None, quality_annotations=(),
        population_coverage={}, min_typical_age=None, max_typical_age=None,
        number_of_records=None, number_of_unique_individuals=None, variables=(), keywords={},
    )  # fmt: skip
    assert from_graph(parse_rdf(to_turtle(bare), "turtle")) == [bare]


def test_two_descriptions_in_one_graph() -> None:
    a = sample_description()
    b = sample_description(site="hospital_y", iri="https://hospital-y.example/dataset")
    g = to_graph(a)
    to_graph(b, g)
    assert from_graph(g) == [a, b]


def test_malformed_turtle_is_a_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text('@prefix dct: <http://purl.org/dc/terms/> .\n<a> dct:title "x" \n<b> .', "utf-8")
    with pytest.raises(RdfSyntaxError, match="malformed turtle") as info:
        parse_rdf(bad)
    assert info.value.rule == "rdf-syntax" and str(bad) in str(info.value)
    with pytest.raises(RdfSyntaxError, match="malformed json-ld"):
        parse_rdf('{"@id": ', "json-ld")
    with pytest.raises(RdfSyntaxError, match="unknown RDF file type"):
        parse_rdf(tmp_path / "d.csv")
    with pytest.raises(RdfSyntaxError, match="cannot read"):
        parse_rdf(tmp_path / "missing.ttl")


def test_a_dataset_that_is_not_a_description_is_named() -> None:
    g = to_graph(sample_description())
    g.remove((URIRef(sample_description().iri), ns.DCAT.contactPoint, None))
    with pytest.raises(DescriptionError, match="contact_point"):
        from_graph(g)
