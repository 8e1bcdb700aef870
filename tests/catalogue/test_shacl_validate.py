"""SHACL validation: a valid description conforms; each kind of invalid one fails on its path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rdflib import BNode, Graph, Literal, URIRef
from rdflib import namespace as ns
from tests.catalogue.stores import sample_description

from cardiobox.catalogue.rdf import RdfSyntaxError, to_graph
from cardiobox.catalogue.validate import validate
from cardiobox.catalogue.vocab import CBX, DCATAP, DQV, HEALTHDCATAP, VCARD

DS = URIRef(sample_description().iri)
LVEF = URIRef(sample_description().iri + "/variable/lvef")
BINS_OR_ANSWERS = "(cbx:histogramBin|cbx:answer)"
STORE = URIRef("https://hospital-x.example/catalogue/distribution/store")


def test_the_sample_conforms_with_warnings_only() -> None:
    report = validate(to_graph(sample_description()))
    assert report.conforms, report.summary()
    assert report.errors == []
    # the health data access body has no dct:type: a recommended property, so a warning
    assert [(v.severity, v.path) for v in report.violations] == [("Warning", "dct:type")]
    assert report.to_dict()["conforms"] is True


def _without_title(g: Graph) -> None:
    g.remove((DS, ns.DCTERMS.title, None))


def _records_as_text(g: Graph) -> None:
    g.set((DS, HEALTHDCATAP.numberOfRecords, Literal("about 5000")))


def _publisher_of_wrong_class(g: Graph) -> None:
    publisher = g.value(DS, ns.DCTERMS.publisher)
    g.remove((publisher, ns.RDF.type, ns.FOAF.Agent))
    g.add((publisher, ns.RDF.type, VCARD.Kind))


def _ages_reversed(g: Graph) -> None:
    g.set((DS, HEALTHDCATAP.minTypicalAge, Literal(95, datatype=ns.XSD.nonNegativeInteger)))


def _small_cell(g: Graph) -> None:
    g.set((LVEF, CBX.patients, Literal(3, datatype=ns.XSD.nonNegativeInteger)))


def _temporal_by_day(g: Graph) -> None:
    t = g.value(DS, ns.DCTERMS.temporal)
    g.set((t, ns.DCAT.startDate, Literal("2018-01-04", datatype=ns.XSD.date)))


def _no_access_url(g: Graph) -> None:
    g.remove((STORE, ns.DCAT.accessURL, None))


def _unknown_access_rights(g: Graph) -> None:
    g.set((DS, ns.DCTERMS.accessRights, URIRef("https://example.org/open-to-all")))


def _no_health_category(g: Graph) -> None:
    g.remove((DS, HEALTHDCATAP.healthCategory, None))


def _no_legislation(g: Graph) -> None:
    g.remove((DS, DCATAP.applicableLegislation, None))


def _completeness_above_100(g: Graph) -> None:
    m = g.value(LVEF, DQV.hasQualityMeasurement)
    g.set((m, DQV.value, Literal("180", datatype=ns.XSD.decimal)))


def _two_issued_dates(g: Graph) -> None:
    g.add((DS, ns.DCTERMS.issued, Literal("2020-01-01", datatype=ns.XSD.date)))


def _keyword_as_iri(g: Graph) -> None:
    g.add((DS, ns.DCAT.keyword, URIRef("https://example.org/keyword")))


def _title_in_english_twice(g: Graph) -> None:
    g.add((DS, ns.DCTERMS.title, Literal("Another title", lang="en")))


def _histogram_count_as_decimal(g: Graph) -> None:
    b = BNode()
    g.add((LVEF, CBX.histogramBin, b))
    g.add((b, CBX["count"], Literal("12.5", datatype=ns.XSD.decimal)))


CASES: list[tuple[str, Callable[[Graph], None], str, str]] = [
    ("missing title", _without_title, str(DS), "dct:title"),
    ("bad datatype", _records_as_text, str(DS), "healthdcatap:numberOfRecords"),
    ("wrong class", _publisher_of_wrong_class, str(DS), "dct:publisher"),
    ("age min > max", _ages_reversed, str(DS), "healthdcatap:minTypicalAge"),
    ("small cell", _small_cell, str(DS), "cbx:patients"),
    ("day precision", _temporal_by_day, str(DS) + "#temporal", "dcat:startDate"),
    ("no access URL", _no_access_url, str(STORE), "dcat:accessURL"),
    ("access rights", _unknown_access_rights, str(DS), "dct:accessRights"),
    ("health category", _no_health_category, str(DS), "healthdcatap:healthCategory"),
    ("legislation", _no_legislation, str(DS), "dcatap:applicableLegislation"),
    ("completeness", _completeness_above_100, str(LVEF), "dqv:hasQualityMeasurement/dqv:value"),
    ("cardinality", _two_issued_dates, str(DS), "dct:issued"),
    ("node kind", _keyword_as_iri, str(DS), "dcat:keyword"),
    ("unique language", _title_in_english_twice, str(DS), "dct:title"),
    ("count type", _histogram_count_as_decimal, str(LVEF), f"{BINS_OR_ANSWERS}/cbx:count"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "break_it", "focus", "path"), CASES, ids=[c[0] for c in CASES])
def test_an_invalid_description_fails_on_its_path(
    case: str, break_it: Callable[[Graph], None], focus: str, path: str
) -> None:
    g = to_graph(sample_description())
    break_it(g)
    report = validate(g)
    assert not report.conforms
    found = {(v.focus_node, v.path) for v in report.errors}
    assert (focus, path) in found, report.errors
    assert all(v.message for v in report.errors)


def test_a_catalogue_needs_title_description_and_publisher() -> None:
    g = Graph()
    cat = URIRef("https://hub.example/catalog")
    g.add((cat, ns.RDF.type, ns.DCAT.Catalog))
    report = validate(g)
    paths = {v.path for v in report.errors}
    assert {"dct:title", "dct:description", "dct:publisher"} <= paths


def test_validate_reads_files(tmp_path: Path) -> None:
    good = tmp_path / "d.ttl"
    good.write_text(to_graph(sample_description()).serialize(format="turtle"), "utf-8")
    assert validate(good).conforms
    bad = tmp_path / "bad.ttl"
    bad.write_text("this is not turtle", "utf-8")
    with pytest.raises(RdfSyntaxError):
        validate(bad)
