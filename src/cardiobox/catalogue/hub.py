"""The hub's catalogue: harvest site descriptions, validate them, keep every version.

A hub catalogue is a folder::

    hub.json                                  the catalogue's title, IRI and publisher
    index.json                                every accepted version, per site
    sites/<site>/<timestamp>-<hash>.ttl       each accepted version (normalised Turtle)

Publishing parses the file (Turtle, JSON-LD, RDF/XML) or builds the description from a site
store on the fly, validates it against the SHACL shapes, reads it back as a description
(one dataset, of the site it is published for), and only then stores it as the site's new
current version, with its UTC timestamp and the SHA-256 of its content. A malformed or
invalid description is refused with the reason, and the site's previous version stays
current. Publishing the same content again adds no version.

>>> from cardiobox.catalogue.hub import Hub
>>> hub = Hub("hub/")                                           # doctest: +SKIP
>>> hub.publish("hospital_es", "hospital_es.ttl").accepted      # doctest: +SKIP
True
>>> len(hub.catalogue_graph())                                  # doctest: +SKIP
5123
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from cardiobox.catalogue.model import DatasetDescription
from cardiobox.catalogue.rdf import (
    DescriptionError,
    RdfSyntaxError,
    from_graph,
    new_graph,
    parse_rdf,
    to_graph,
    to_turtle,
)
from cardiobox.catalogue.validate import ValidationReport, validate
from cardiobox.catalogue.vocab import CBX
from cardiobox.errors import CardioboxError, InputError, Location

#: Store files that are built on the fly (a profile is then needed).
STORE_SUFFIXES = (".duckdb", ".db")
DEFAULT_HUB_IRI = "https://cardiobox.org/hub/"


@dataclass(frozen=True)
class Version:
    """One accepted version of a site's description.

    Parameters
    ----------
    site : str
        The site.
    version : str
        ``<UTC timestamp>-<first 12 hex digits of the hash>``.
    sha256 : str
        SHA-256 of the description's canonical JSON.
    published_at : str
        ISO timestamp (UTC) of the publication.
    file : str
        The stored Turtle, relative to the hub folder.
    dataset : str
        The dataset's IRI.
    source : str
        What was published (file name).
    """

    site: str
    version: str
    sha256: str
    published_at: str
    file: str
    dataset: str
    source: str


@dataclass(frozen=True)
class PublishResult:
    """The outcome of a publication.

    Parameters
    ----------
    site : str
        The site.
    accepted : bool
        Whether the description is now the site's current one.
    message : str
        What happened, or why it was refused.
    version : Version, optional
        The current version after the publication (the previous one when refused).
    unchanged : bool
        The content was the current version's already (no new version).
    rule : str, optional
        The rule broken, when refused (``rdf-syntax``, ``shacl``, ``invalid-description``,
        ``wrong-site``...).
    report : ValidationReport, optional
        The SHACL report (also for a refusal for SHACL violations).
    """

    site: str
    accepted: bool
    message: str
    version: Version | None = None
    unchanged: bool = False
    rule: str | None = None
    report: ValidationReport | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "site": self.site,
            "accepted": self.accepted,
            "unchanged": self.unchanged,
            "message": self.message,
            "rule": self.rule,
            "version": asdict(self.version) if self.version else None,
            "violations": self.report.to_dict()["violations"] if self.report else [],
        }


def content_hash(description: DatasetDescription) -> str:
    """SHA-256 of a description's canonical JSON (sorted keys; lists in canonical order)."""
    canonical = orjson.dumps(description.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Hub:
    """A hub catalogue folder (created when missing).

    Parameters
    ----------
    path : str or Path
        The folder.
    title : str, optional
        The catalogue's title (kept in ``hub.json`` when the hub is created).
    iri : str, optional
        The catalogue's IRI (default ``https://cardiobox.org/hub/``).
    publisher : str, optional
        Name of the organisation running the hub.
    """

    def __init__(
        self,
        path: str | Path,
        title: str | None = None,
        iri: str | None = None,
        publisher: str | None = None,
    ):
        self.path = Path(path)
        config = self.path / "hub.json"
        if config.exists():
            try:
                self.config: dict[str, str] = orjson.loads(config.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise InputError(
                    f"not valid JSON: {exc}", rule="hub-config", location=Location(file=str(config))
                ) from None
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.config = {
                "title": title or "cardiobox federation catalogue",
                "iri": iri or DEFAULT_HUB_IRI,
                "publisher": publisher or "cardiobox hub",
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_atomic(config, orjson.dumps(self.config, option=orjson.OPT_INDENT_2))

    # -- index -------------------------------------------------------------------------------
    def _index(self) -> dict[str, list[dict[str, str]]]:
        index = self.path / "index.json"
        if not index.exists():
            return {}
        try:
            loaded: dict[str, list[dict[str, str]]] = orjson.loads(index.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON: {exc}", rule="hub-index", location=Location(file=str(index))
            ) from None
        return loaded

    def versions(self, site: str) -> list[Version]:
        """Every accepted version of a site's description, oldest first (empty if none)."""
        return [Version(**v) for v in self._index().get(site, [])]

    def current(self) -> dict[str, Version]:
        """The current version of each site, by site."""
        return {site: Version(**vs[-1]) for site, vs in sorted(self._index().items()) if vs}

    def description(self, site: str) -> DatasetDescription:
        """The current description of a site.

        Raises
        ------
        KeyError
            When the site has published nothing.
        """
        current = self.current()
        if site not in current:
            raise KeyError(f"site {site!r} has published no description to this hub")
        return from_graph(parse_rdf(self.path / current[site].file))[0]

    def descriptions(self) -> list[DatasetDescription]:
        """The current description of every site, by site."""
        return [self.description(site) for site in self.current()]

    # -- publishing --------------------------------------------------------------------------
    def _refuse(
        self, site: str, message: str, rule: str, report: ValidationReport | None = None
    ) -> PublishResult:
        previous = self.current().get(site)
        kept = f"; the current version stays {previous.version}" if previous else ""
        return PublishResult(
            site, False, f"refused: {message}{kept}", previous, rule=rule, report=report
        )

    def publish(
        self,
        site: str,
        file: str | Path,
        profile: Any = None,
        policy: Any = None,
    ) -> PublishResult:
        """Harvest a site's description: validate it and make it the site's current version.

        Parameters
        ----------
        site : str
            The site publishing (the description's ``dct:identifier`` must name it).
        file : str or Path
            A Turtle / JSON-LD / RDF-XML description, or a site store (``.duckdb``) to build
            the description from on the fly.
        profile : SiteProfile or path, optional
            The site profile, needed to build from a store.
        policy : SitePolicy or path, optional
            The site policy used when building from a store.

        Returns
        -------
        PublishResult
            ``accepted`` false (and the previous version kept) for a malformed or invalid
            description.
        """
        source = Path(file)
        try:
            if source.suffix.lower() in STORE_SUFFIXES:
                from cardiobox.catalogue.build import build_description

                if profile is None:
                    raise InputError(
                        "building a description from a store needs the site's profile",
                        rule="missing-profile",
                        location=Location(file=str(source)),
                    )
                graph = to_graph(build_description(source, profile, policy))
            else:
                graph = parse_rdf(source)
        except RdfSyntaxError as exc:
            return self._refuse(site, str(exc), exc.rule)
        except CardioboxError as exc:
            return self._refuse(site, str(exc), exc.rule)
        return self.publish_graph(site, graph, source=source.name)

    def publish_graph(self, site: str, graph: Graph, source: str = "<graph>") -> PublishResult:
        """Validate and store a description given as a graph (see :meth:`publish`)."""
        report = validate(graph)
        if not report.conforms:
            n = len(report.errors)
            return self._refuse(
                site, f"{n} SHACL violation(s): {report.summary(3)}", "shacl", report
            )
        try:
            found = from_graph(graph)
        except DescriptionError as exc:
            return self._refuse(site, exc.message, exc.rule, report)
        if len(found) != 1:
            return self._refuse(
                site, f"expected one dcat:Dataset, found {len(found)}", "one-dataset", report
            )
        description = found[0]
        if description.site != site:
            return self._refuse(
                site,
                f"the description is of site {description.site!r} (dct:identifier), not {site!r}",
                "wrong-site",
                report,
            )
        return self._store(site, description, source, report)

    def _store(
        self, site: str, description: DatasetDescription, source: str, report: ValidationReport
    ) -> PublishResult:
        digest = content_hash(description)
        index = self._index()
        history = index.setdefault(site, [])
        if history and history[-1]["sha256"] == digest:
            current = Version(**history[-1])
            return PublishResult(
                site, True, f"unchanged: {current.version} is current", current, True, report=report
            )
        now = datetime.now(UTC)
        version_id = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{digest[:12]}"
        folder = self.path / "sites" / site
        folder.mkdir(parents=True, exist_ok=True)
        stored = folder / f"{version_id}.ttl"
        _write_atomic(stored, to_turtle(description).encode())
        version = Version(
            site=site,
            version=version_id,
            sha256=digest,
            published_at=now.isoformat(timespec="seconds"),
            file=stored.relative_to(self.path).as_posix(),
            dataset=description.iri,
            source=source,
        )
        history.append(asdict(version))
        _write_atomic(self.path / "index.json", orjson.dumps(index, option=orjson.OPT_INDENT_2))
        n = len(history)
        return PublishResult(
            site, True, f"accepted as version {n} ({version_id})", version, report=report
        )

    # -- the merged catalogue -----------------------------------------------------------------
    def catalogue_graph(self) -> Graph:
        """The hub catalogue: a ``dcat:Catalog`` over every site's current description.

        Each site's dataset gets a ``dcat:CatalogRecord`` (first and latest publication,
        version id and content hash).
        """
        g = new_graph()
        iri = self.config["iri"]
        cat = URIRef(iri + ("catalog" if iri.endswith(("/", "#")) else "/catalog"))
        publisher = URIRef(iri + ("publisher" if iri.endswith(("/", "#")) else "/publisher"))
        g.add((cat, RDF.type, DCAT.Catalog))
        g.add((cat, DCTERMS.title, Literal(self.config["title"], lang="en")))
        g.add(
            (
                cat,
                DCTERMS.description,
                Literal(
                    "Aggregate-only HealthDCAT-AP descriptions of the federation's sites, "
                    "harvested and validated by the hub.",
                    lang="en",
                ),
            )
        )
        g.add((cat, DCTERMS.publisher, publisher))
        g.add((publisher, RDF.type, FOAF.Agent))
        g.add((publisher, FOAF.name, Literal(self.config["publisher"])))
        latest = ""
        for site, version in self.current().items():
            part = parse_rdf(self.path / version.file)
            for triple in part:
                g.add(triple)
            dataset = URIRef(version.dataset)
            g.add((cat, DCAT.dataset, dataset))
            record = URIRef(f"{cat}/record/{site}")
            first = self.versions(site)[0]
            g.add((cat, DCAT.record, record))
            g.add((record, RDF.type, DCAT.CatalogRecord))
            g.add((record, FOAF.primaryTopic, dataset))
            g.add((record, DCTERMS.identifier, Literal(version.version)))
            g.add((record, DCTERMS.issued, Literal(first.published_at, datatype=XSD.dateTime)))
            g.add((record, DCTERMS.modified, Literal(version.published_at, datatype=XSD.dateTime)))
            g.add((record, CBX.sha256, Literal(version.sha256)))
            latest = max(latest, version.published_at)
        if latest:
            g.add((cat, DCTERMS.modified, Literal(latest, datatype=XSD.dateTime)))
        return g
