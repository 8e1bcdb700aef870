"""Descriptions as RDF (rdflib): to a graph, Turtle and JSON-LD, and back.

The vocabularies and the IRIs are listed in :mod:`cardiobox.catalogue.vocab` and
docs/catalogue.md. The dataset's own nodes (contact point, periods, quality annotation,
variables) get IRIs under the dataset's IRI, so that two sites' descriptions merged into one
hub graph never share a node; only statistics inside a variable are blank nodes.

>>> from cardiobox.catalogue.rdf import to_turtle, from_graph, parse_rdf
>>> text = to_turtle(description)                          # doctest: +SKIP
>>> from_graph(parse_rdf(text, "turtle"))[0] == description  # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.exceptions import ParserError
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD
from rdflib.term import Node

from cardiobox.catalogue.model import (
    Agent,
    CategoryCount,
    Coding,
    ContactPoint,
    DatasetDescription,
    DatePeriod,
    Distribution,
    HistogramBin,
    MonthPeriod,
    QualityAnnotation,
    QuantitySummary,
    TableColumn,
    VariableEntry,
)
from cardiobox.catalogue.vocab import (
    CBX,
    CDM,
    CSVW,
    DCATAP,
    DPV,
    DQV,
    HEALTHDCATAP,
    OA,
    PREFIXES,
    VCARD,
)
from cardiobox.errors import CardioboxError, Location

#: File suffix → rdflib format.
FORMATS: dict[str, str] = {
    ".ttl": "turtle",
    ".jsonld": "json-ld",
    ".json": "json-ld",
    ".rdf": "xml",
    ".xml": "xml",
    ".nt": "nt",
}
_SUMMARY = ("n", "mean", "sd", "p05", "p25", "median", "p75", "p95")
# Namespace attributes that are also str methods must be looked up by key.
COUNT, LOWER, UPPER = CBX["count"], CBX["lower"], CBX["upper"]


class RdfSyntaxError(CardioboxError):
    """RDF that cannot be parsed."""


class DescriptionError(CardioboxError):
    """RDF that parses but does not hold a valid description."""


def new_graph() -> Graph:
    """An empty graph with the catalogue's prefixes bound."""
    g = Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns, override=True, replace=True)
    return g


# -- writing ---------------------------------------------------------------------------------
def _texts(g: Graph, s: Node, p: URIRef, texts: dict[str, str]) -> None:
    for lang, text in texts.items():
        g.add((s, p, Literal(text, lang=lang)))


def _iris(g: Graph, s: Node, p: URIRef, iris: Iterable[str]) -> None:
    for iri in iris:
        g.add((s, p, URIRef(iri)))


def _count(n: int) -> Literal:
    return Literal(n, datatype=XSD.nonNegativeInteger)


def _decimal(x: float) -> Literal:
    return Literal(Decimal(repr(float(x))), datatype=XSD.decimal)


def _mailto(email: str) -> URIRef:
    return URIRef(f"mailto:{email}")


def _add_agent(g: Graph, a: Agent) -> URIRef:
    node = URIRef(a.iri)
    g.add((node, RDF.type, FOAF.Agent))
    g.add((node, FOAF.name, Literal(a.name)))
    if a.homepage:
        g.add((node, FOAF.homepage, URIRef(a.homepage)))
    if a.email:
        g.add((node, FOAF.mbox, _mailto(a.email)))
    if a.type:
        g.add((node, DCTERMS.type, URIRef(a.type)))
    return node


def _add_period(g: Graph, node: URIRef, start: Literal | None, end: Literal | None) -> None:
    g.add((node, RDF.type, DCTERMS.PeriodOfTime))
    if start is not None:
        g.add((node, DCAT.startDate, start))
    if end is not None:
        g.add((node, DCAT.endDate, end))


def _add_distribution(g: Graph, dist: Distribution) -> URIRef:
    node = URIRef(dist.iri)
    g.add((node, RDF.type, DCAT.Distribution))
    _texts(g, node, DCTERMS.title, dist.title)
    _texts(g, node, DCTERMS.description, dist.description)
    g.add((node, DCAT.accessURL, URIRef(dist.access_url)))
    if dist.media_type:
        g.add((node, DCAT.mediaType, URIRef(dist.media_type)))
    if dist.format:
        g.add((node, DCTERMS.format, URIRef(dist.format)))
    if dist.rows is not None:
        g.add((node, CBX.rows, _count(dist.rows)))
    if dist.columns:
        schema = URIRef(f"{dist.iri}#schema")
        g.add((node, CSVW.tableSchema, schema))
        g.add((schema, RDF.type, CSVW.Schema))
        for i, c in enumerate(dist.columns):
            col = URIRef(f"{dist.iri}#column-{i + 1}")
            g.add((schema, CSVW.column, col))
            g.add((col, RDF.type, CSVW.Column))
            g.add((col, CSVW.name, Literal(c.name)))
            g.add((col, CBX.position, Literal(i + 1, datatype=XSD.positiveInteger)))
            g.add((col, CBX.kind, Literal(c.kind)))
            if c.description:
                g.add((col, DCTERMS.description, Literal(c.description, lang="en")))
            if c.variable:
                g.add((col, CBX.variable, CDM[c.variable]))
            if c.unit:
                g.add((col, CBX.unit, Literal(c.unit)))
            if c.missing_share is not None:
                g.add((col, CBX.missingShare, _decimal(c.missing_share)))
    return node


def _add_variable(g: Graph, dataset: str, v: VariableEntry) -> URIRef:
    node = URIRef(f"{dataset}/variable/{v.id}")
    g.add((node, RDF.type, CBX.Variable))
    g.add((node, DCTERMS.identifier, Literal(v.id)))
    g.add((node, DCTERMS.conformsTo, CDM[v.id]))
    _texts(g, node, SKOS.prefLabel, v.labels)
    if v.description:
        g.add((node, DCTERMS.description, Literal(v.description, lang="en")))
    g.add((node, CBX.category, Literal(v.category)))
    g.add((node, CBX.valueType, Literal(v.value_type)))
    g.add((node, CBX.resourceType, Literal(v.resource)))
    if v.unit:
        g.add((node, CBX.unit, Literal(v.unit)))
    for i, c in enumerate(v.coding):
        coding = URIRef(f"{node}#coding-{i + 1}")
        g.add((node, CBX.coding, coding))
        g.add((coding, CBX.system, URIRef(c.system)))
        for code in c.codes:
            g.add((coding, SKOS.notation, Literal(code)))
    if v.patients is not None:
        g.add((node, CBX.patients, _count(v.patients)))
    if v.completeness is not None:
        m = URIRef(f"{node}#completeness")
        g.add((node, DQV.hasQualityMeasurement, m))
        g.add((m, RDF.type, DQV.QualityMeasurement))
        g.add((m, DQV.isMeasurementOf, CBX.completeness))
        g.add((m, DQV.value, _decimal(v.completeness)))
    for y in v.years:
        g.add((node, CBX.year, Literal(f"{y:04d}", datatype=XSD.gYear)))
    if v.summary is not None:
        s = BNode()
        g.add((node, CBX.summary, s))
        for name in _SUMMARY:
            value = getattr(v.summary, name)
            if value is not None:
                lit = _count(value) if name == "n" else _decimal(value)
                g.add((s, CBX[name], lit))
    for b in v.histogram:
        h = BNode()
        g.add((node, CBX.histogramBin, h))
        if b.lower is not None:
            g.add((h, LOWER, _decimal(b.lower)))
        if b.upper is not None:
            g.add((h, UPPER, _decimal(b.upper)))
        if b.count is not None:
            g.add((h, COUNT, _count(b.count)))
        else:
            g.add((h, CBX.withheld, Literal(True)))
    for answer in v.categories:
        a = BNode()
        g.add((node, CBX.answer, a))
        g.add((a, SKOS.notation, Literal(answer.code)))
        if answer.system:
            g.add((a, CBX.system, URIRef(answer.system)))
        _texts(g, a, SKOS.prefLabel, answer.label)
        if answer.count is not None:
            g.add((a, COUNT, _count(answer.count)))
        else:
            g.add((a, CBX.withheld, Literal(True)))
    return node


def to_graph(description: DatasetDescription, graph: Graph | None = None) -> Graph:
    """Add a description to a graph (a new one by default) as a HealthDCAT-AP dataset.

    Parameters
    ----------
    description : DatasetDescription
        The description.
    graph : Graph, optional
        The graph to add to (the hub's catalogue graph, for instance).

    Returns
    -------
    Graph
    """
    g = graph if graph is not None else new_graph()
    d = description
    ds = URIRef(d.iri)
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.identifier, Literal(d.site)))
    _texts(g, ds, DCTERMS.title, d.title)
    _texts(g, ds, DCTERMS.description, d.description)
    g.add((ds, DCTERMS.publisher, _add_agent(g, d.publisher)))
    cp = URIRef(f"{d.iri}#contact-point")
    g.add((ds, DCAT.contactPoint, cp))
    g.add((cp, RDF.type, VCARD.Kind))
    g.add((cp, VCARD.fn, Literal(d.contact_point.name)))
    g.add((cp, VCARD.hasEmail, _mailto(d.contact_point.email)))
    if d.contact_point.url:
        g.add((cp, VCARD.hasURL, URIRef(d.contact_point.url)))
    g.add((ds, DCTERMS.issued, Literal(d.issued.isoformat(), datatype=XSD.date)))
    g.add((ds, DCTERMS.modified, Literal(d.modified.isoformat(), datatype=XSD.date)))
    for lang, words in d.keywords.items():
        for w in words:
            g.add((ds, DCAT.keyword, Literal(w, lang=lang)))
    _iris(g, ds, DCAT.theme, d.themes)
    if d.temporal is not None:
        t = URIRef(f"{d.iri}#temporal")
        g.add((ds, DCTERMS.temporal, t))
        ym = XSD.gYearMonth
        _add_period(
            g,
            t,
            Literal(d.temporal.start, datatype=ym) if d.temporal.start else None,
            Literal(d.temporal.end, datatype=ym) if d.temporal.end else None,
        )
    _iris(g, ds, DCTERMS.spatial, d.spatial)
    _iris(g, ds, DCTERMS.language, d.languages)
    g.add((ds, DCTERMS.accessRights, URIRef(d.access_rights)))
    _iris(g, ds, DCTERMS.conformsTo, d.conforms_to)
    _iris(g, ds, DCATAP.applicableLegislation, d.applicable_legislation)
    for dist in d.distributions:
        g.add((ds, DCAT.distribution, _add_distribution(g, dist)))
    _iris(g, ds, HEALTHDCATAP.healthCategory, d.health_categories)
    _iris(g, ds, HEALTHDCATAP.healthTheme, d.health_themes)
    _iris(g, ds, HEALTHDCATAP.hasCodingSystem, d.coding_systems)
    if d.number_of_records is not None:
        g.add((ds, HEALTHDCATAP.numberOfRecords, _count(d.number_of_records)))
    if d.number_of_unique_individuals is not None:
        g.add((ds, HEALTHDCATAP.numberOfUniqueIndividuals, _count(d.number_of_unique_individuals)))
    _texts(g, ds, HEALTHDCATAP.populationCoverage, d.population_coverage)
    if d.min_typical_age is not None:
        g.add((ds, HEALTHDCATAP.minTypicalAge, _count(d.min_typical_age)))
    if d.max_typical_age is not None:
        g.add((ds, HEALTHDCATAP.maxTypicalAge, _count(d.max_typical_age)))
    _iris(g, ds, DPV.hasPersonalData, d.personal_data)
    _iris(g, ds, DPV.hasLegalBasis, d.legal_basis)
    _iris(g, ds, DPV.hasPurpose, d.purpose)
    if d.retention_period is not None:
        r = URIRef(f"{d.iri}#retention-period")
        g.add((ds, HEALTHDCATAP.retentionPeriod, r))
        rp = d.retention_period
        _add_period(
            g,
            r,
            Literal(rp.start.isoformat(), datatype=XSD.date) if rp.start else None,
            Literal(rp.end.isoformat(), datatype=XSD.date) if rp.end else None,
        )
        if rp.comment:
            g.add((r, RDFS.comment, Literal(rp.comment)))
    if d.hdab is not None:
        g.add((ds, HEALTHDCATAP.hdab, _add_agent(g, d.hdab)))
    for i, qa in enumerate(d.quality_annotations):
        q = URIRef(f"{d.iri}#quality-annotation-{i + 1}")
        g.add((ds, DQV.hasQualityAnnotation, q))
        g.add((q, RDF.type, DQV.QualityAnnotation))
        g.add((q, OA.hasTarget, ds))
        g.add((q, OA.motivatedBy, DQV.qualityAssessment))
        g.add((q, RDFS.comment, Literal(qa.text, lang="en")))
        if qa.report:
            g.add((q, OA.hasBody, URIRef(qa.report)))
        if qa.generated:
            g.add((q, DCTERMS.issued, Literal(qa.generated.isoformat(), datatype=XSD.date)))
        for status, n in qa.checks.items():
            c = BNode()
            g.add((q, CBX.checkCount, c))
            g.add((c, CBX.status, Literal(status)))
            g.add((c, COUNT, _count(n)))
    g.add((ds, CBX.minCellCount, Literal(d.min_cell_count, datatype=XSD.positiveInteger)))
    for v in d.variables:
        g.add((ds, CBX.hasVariable, _add_variable(g, d.iri, v)))
    return g


def to_turtle(description: DatasetDescription) -> str:
    """A description as Turtle."""
    return to_graph(description).serialize(format="turtle")


def to_jsonld(graph_or_description: Graph | DatasetDescription) -> str:
    """A description (or a whole graph) as JSON-LD, compacted with the catalogue's prefixes."""
    g = graph_or_description
    if isinstance(g, DatasetDescription):
        g = to_graph(g)
    return g.serialize(format="json-ld", context=dict(PREFIXES), indent=2)


# -- parsing ---------------------------------------------------------------------------------
def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # not a possible path (too long, NUL bytes)
        return False


def parse_rdf(source: str | Path | bytes, format: str | None = None) -> Graph:
    """Parse RDF from a file (format from its suffix) or from text.

    Parameters
    ----------
    source : str, Path or bytes
        A path, or the RDF text itself (then ``format`` is needed).
    format : str, optional
        rdflib format (``turtle``, ``json-ld``, ``xml``, ``nt``).

    Raises
    ------
    RdfSyntaxError
        For a missing file, an unknown suffix, or RDF that does not parse.
    """
    where = Location()
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and (format is None or _is_file(source))
    ):
        path = Path(source)
        where = Location(file=str(path))
        fmt = format or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise RdfSyntaxError(
                f"unknown RDF file type {path.suffix!r} (use {', '.join(sorted(FORMATS))})",
                rule="rdf-format",
                location=where,
            )
        try:
            data: str | bytes = path.read_bytes()
        except OSError as exc:
            raise RdfSyntaxError(
                f"cannot read the file: {exc.strerror}", rule="missing-input", location=where
            ) from None
    else:
        if format is None:
            raise RdfSyntaxError("give the format of RDF text", rule="rdf-format")
        fmt, data = format, source
    g = new_graph()
    try:
        if fmt == "json-ld":
            json.loads(data)  # a clear message for broken JSON (rdflib's is not)
        with warnings.catch_warnings():  # rdflib's JSON-LD parser uses its own deprecated API
            warnings.simplefilter("ignore", DeprecationWarning)
            g.parse(data=data, format=fmt)
    except (ParserError, SyntaxError, ValueError, TypeError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RdfSyntaxError(
            f"malformed {fmt} RDF: {first}", rule="rdf-syntax", location=where
        ) from None
    except Exception as exc:  # rdflib's parsers raise plain Exceptions on bad input
        raise RdfSyntaxError(
            f"malformed {fmt} RDF: {exc}", rule="rdf-syntax", location=where
        ) from None
    return g


class _Reader:
    """Read the values of one node's properties from a graph."""

    def __init__(self, g: Graph, node: Node):
        self.g = g
        self.node = node

    def objects(self, p: URIRef) -> Iterator[Node]:
        return self.g.objects(self.node, p)

    def one(self, p: URIRef) -> Node | None:
        return next(iter(sorted(self.objects(p), key=str)), None)

    def text(self, p: URIRef) -> str | None:
        value = self.one(p)
        return None if value is None else str(value)

    def iri(self, p: URIRef) -> str | None:
        value = self.one(p)
        return str(value) if isinstance(value, URIRef) else None

    def iris(self, p: URIRef) -> tuple[str, ...]:
        return tuple(sorted(str(o) for o in self.objects(p) if isinstance(o, URIRef)))

    def langs(self, p: URIRef) -> dict[str, str]:
        return {o.language or "en": str(o) for o in self.objects(p) if isinstance(o, Literal)}

    def integer(self, p: URIRef) -> int | None:
        value = self.one(p)
        return None if value is None else int(str(value))

    def number(self, p: URIRef) -> float | None:
        value = self.one(p)
        return None if value is None else float(str(value))

    def day(self, p: URIRef) -> date | None:
        value = self.text(p)
        return None if value is None else date.fromisoformat(value[:10])

    def email(self, p: URIRef) -> str | None:
        value = self.iri(p)
        return value.removeprefix("mailto:") if value else None

    def at(self, p: URIRef) -> _Reader | None:
        value = self.one(p)
        return None if value is None else _Reader(self.g, value)

    def each(self, p: URIRef) -> list[_Reader]:
        return [_Reader(self.g, o) for o in self.objects(p)]


def _agent(r: _Reader | None) -> Agent | None:
    if r is None:
        return None
    return Agent(
        iri=str(r.node),
        name=r.text(FOAF.name) or "",
        homepage=r.iri(FOAF.homepage),
        email=r.email(FOAF.mbox),
        type=r.iri(DCTERMS.type),
    )


def _distribution(r: _Reader) -> Distribution:
    columns: list[tuple[int, TableColumn]] = []
    schema = r.at(CSVW.tableSchema)
    for c in schema.each(CSVW.column) if schema else []:
        var = c.iri(CBX.variable)
        columns.append(
            (
                c.integer(CBX.position) or 0,
                TableColumn(
                    name=c.text(CSVW.name) or "",
                    description=c.text(DCTERMS.description) or "",
                    variable=var.removeprefix(str(CDM)) if var else None,
                    unit=c.text(CBX.unit),
                    kind=c.text(CBX.kind) or "feature",
                    missing_share=c.number(CBX.missingShare),
                ),
            )
        )
    return Distribution(
        iri=str(r.node),
        title=r.langs(DCTERMS.title),
        description=r.langs(DCTERMS.description),
        access_url=r.iri(DCAT.accessURL) or "",
        media_type=r.iri(DCAT.mediaType),
        format=r.iri(DCTERMS.format),
        columns=tuple(c for _, c in sorted(columns, key=lambda x: x[0])),
        rows=r.integer(CBX.rows),
    )


def _variable(r: _Reader) -> VariableEntry:
    summary = r.at(CBX.summary)
    measures = r.each(DQV.hasQualityMeasurement)
    of = str(CBX.completeness)
    completeness = next((m for m in measures if m.iri(DQV.isMeasurementOf) == of), None)
    return VariableEntry(
        id=r.text(DCTERMS.identifier) or "",
        labels=r.langs(SKOS.prefLabel),
        description=r.text(DCTERMS.description) or "",
        category=r.text(CBX.category) or "",
        value_type=r.text(CBX.valueType) or "",
        resource=r.text(CBX.resourceType) or "",
        unit=r.text(CBX.unit),
        coding=tuple(
            Coding(
                system=c.iri(CBX.system) or "",
                codes=tuple(str(x) for x in c.objects(SKOS.notation)),
            )
            for c in r.each(CBX.coding)
        ),
        patients=r.integer(CBX.patients),
        completeness=completeness.number(DQV.value) if completeness else None,
        years=tuple(int(str(y)) for y in r.objects(CBX.year)),
        summary=(
            QuantitySummary.model_validate({n: summary.number(CBX[n]) for n in _SUMMARY})
            if summary
            else None
        ),
        histogram=tuple(
            HistogramBin(lower=b.number(LOWER), upper=b.number(UPPER), count=b.integer(COUNT))
            for b in r.each(CBX.histogramBin)
        ),
        categories=tuple(
            CategoryCount(
                code=a.text(SKOS.notation) or "",
                system=a.iri(CBX.system),
                label=a.langs(SKOS.prefLabel),
                count=a.integer(COUNT),
            )
            for a in r.each(CBX.answer)
        ),
    )


def _quality(r: _Reader) -> QualityAnnotation:
    return QualityAnnotation(
        text=r.text(RDFS.comment) or "",
        report=r.iri(OA.hasBody),
        checks={c.text(CBX.status) or "": c.integer(COUNT) or 0 for c in r.each(CBX.checkCount)},
        generated=r.day(DCTERMS.issued),
    )


def _month_period(r: _Reader | None) -> MonthPeriod | None:
    if r is None:
        return None
    return MonthPeriod(start=r.text(DCAT.startDate), end=r.text(DCAT.endDate))


def _description(r: _Reader) -> DatasetDescription:
    cp = r.at(DCAT.contactPoint)
    rp = r.at(HEALTHDCATAP.retentionPeriod)
    keywords: dict[str, list[str]] = {}
    for o in r.objects(DCAT.keyword):
        if isinstance(o, Literal):
            keywords.setdefault(o.language or "en", []).append(str(o))
    fields: dict[str, Any] = {
        "site": r.text(DCTERMS.identifier),
        "iri": str(r.node),
        "title": r.langs(DCTERMS.title),
        "description": r.langs(DCTERMS.description),
        "publisher": _agent(r.at(DCTERMS.publisher)),
        "contact_point": ContactPoint(
            name=cp.text(VCARD.fn) or "",
            email=cp.email(VCARD.hasEmail) or "",
            url=cp.iri(VCARD.hasURL),
        )
        if cp
        else None,
        "issued": r.day(DCTERMS.issued),
        "modified": r.day(DCTERMS.modified),
        "keywords": {k: tuple(v) for k, v in keywords.items()},
        "themes": r.iris(DCAT.theme),
        "temporal": _month_period(r.at(DCTERMS.temporal)),
        "spatial": r.iris(DCTERMS.spatial),
        "languages": r.iris(DCTERMS.language),
        "access_rights": r.iri(DCTERMS.accessRights),
        "conforms_to": r.iris(DCTERMS.conformsTo),
        "applicable_legislation": r.iris(DCATAP.applicableLegislation),
        "distributions": tuple(_distribution(x) for x in r.each(DCAT.distribution)),
        "health_categories": r.iris(HEALTHDCATAP.healthCategory),
        "health_themes": r.iris(HEALTHDCATAP.healthTheme),
        "coding_systems": r.iris(HEALTHDCATAP.hasCodingSystem),
        "number_of_records": r.integer(HEALTHDCATAP.numberOfRecords),
        "number_of_unique_individuals": r.integer(HEALTHDCATAP.numberOfUniqueIndividuals),
        "population_coverage": r.langs(HEALTHDCATAP.populationCoverage),
        "min_typical_age": r.integer(HEALTHDCATAP.minTypicalAge),
        "max_typical_age": r.integer(HEALTHDCATAP.maxTypicalAge),
        "personal_data": r.iris(DPV.hasPersonalData),
        "legal_basis": r.iris(DPV.hasLegalBasis),
        "purpose": r.iris(DPV.hasPurpose),
        "retention_period": DatePeriod(
            start=rp.day(DCAT.startDate), end=rp.day(DCAT.endDate), comment=rp.text(RDFS.comment)
        )
        if rp
        else None,
        "hdab": _agent(r.at(HEALTHDCATAP.hdab)),
        "quality_annotations": tuple(_quality(q) for q in r.each(DQV.hasQualityAnnotation)),
        "min_cell_count": r.integer(CBX.minCellCount),
        "variables": tuple(_variable(v) for v in r.each(CBX.hasVariable)),
    }  # fmt: skip
    return DatasetDescription.model_validate(fields)


def from_graph(graph: Graph) -> list[DatasetDescription]:
    """Every dataset description in a graph, in IRI order.

    Raises
    ------
    DescriptionError
        When a dataset lacks what a description needs (naming the dataset and the field).
    """
    out = []
    for node in sorted(set(graph.subjects(RDF.type, DCAT.Dataset)), key=str):
        try:
            out.append(_description(_Reader(graph, node)))
        except (ValidationError, ValueError) as exc:
            detail = exc
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                detail = f"{where}: {str(first['msg']).removeprefix('Value error, ')}"  # type: ignore[assignment]
            raise DescriptionError(
                f"dataset <{node}> is not a valid cardiobox description: {detail}",
                rule="invalid-description",
            ) from None
    return out
