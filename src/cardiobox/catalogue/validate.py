"""Validate catalogue RDF against the DCAT-AP, HealthDCAT-AP and cardiobox SHACL shapes.

>>> from cardiobox.catalogue.validate import validate
>>> report = validate("hospital_es.ttl")                   # doctest: +SKIP
>>> report.conforms, [v.path for v in report.violations]   # doctest: +SKIP
(True, [])

The shapes live in ``cardiobox/catalogue/shapes/``: ``dcat-ap.ttl`` (the DCAT-AP 3 classes),
``healthdcat-ap.ttl`` (the HealthDCAT-AP additions for sensitive health data) and
``cardiobox.ttl`` (the variable dictionary, and the privacy rules: no small cell, no date
finer than a month). A result of severity ``Violation`` makes the graph non-conforming;
``Warning`` results (recommended properties missing) are reported but do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pyshacl import validate as shacl_validate
from rdflib import BNode, Graph, Literal
from rdflib.namespace import RDF, SH
from rdflib.term import Node

from cardiobox.catalogue.rdf import parse_rdf
from cardiobox.catalogue.vocab import PREFIXES

#: The shapes files, in the order they are read.
SHAPE_FILES: tuple[str, ...] = ("dcat-ap.ttl", "healthdcat-ap.ttl", "cardiobox.ttl")


@dataclass(frozen=True)
class Violation:
    """One SHACL result.

    Parameters
    ----------
    focus_node : str
        The node that fails (an IRI, or ``_:…`` for a blank node).
    path : str or None
        The property path, compacted with the catalogue's prefixes (``dct:title``).
    message : str
        What is wrong.
    severity : str
        ``Violation``, ``Warning`` or ``Info``.
    value : str or None
        The offending value, when there is one.
    """

    focus_node: str
    path: str | None
    message: str
    severity: str
    value: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a validation.

    Parameters
    ----------
    conforms : bool
        No result of severity ``Violation``.
    violations : list of Violation
        Every result, violations first.
    """

    conforms: bool
    violations: list[Violation]

    @property
    def errors(self) -> list[Violation]:
        """The results of severity ``Violation``."""
        return [v for v in self.violations if v.severity == "Violation"]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``conforms`` and ``violations``."""
        return {"conforms": self.conforms, "violations": [asdict(v) for v in self.violations]}

    def summary(self, limit: int = 5) -> str:
        """The first errors in one line each (for messages)."""
        lines = [f"{v.path or '-'} of <{v.focus_node}>: {v.message}" for v in self.errors[:limit]]
        more = len(self.errors) - limit
        return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


@cache
def shapes_graph() -> Graph:
    """The packaged shapes, parsed once."""
    g = Graph()
    folder = resources.files("cardiobox.catalogue") / "shapes"
    for name in SHAPE_FILES:
        g.parse(data=(folder / name).read_text(encoding="utf-8"), format="turtle")
    return g


def _short(node: Node | None, g: Graph) -> str | None:
    """An IRI compacted with the catalogue's prefixes, or a path written in SHACL's terms."""
    if node is None:
        return None
    if isinstance(node, Literal):
        return str(node)
    if (node, RDF.first, None) in g:  # a sequence path
        return "/".join(_short(x, g) or "" for x in g.items(node))
    alternatives = g.value(node, SH.alternativePath)
    if alternatives is not None:
        return "(" + "|".join(_short(x, g) or "" for x in g.items(alternatives)) + ")"
    text = str(node)
    for prefix, ns in PREFIXES.items():
        if text.startswith(ns):
            return f"{prefix}:{text[len(ns) :]}"
    return text


_SEVERITY_ORDER = {"Violation": 0, "Warning": 1, "Info": 2}


def validate(graph_or_file: Graph | str | Path, shapes: Graph | None = None) -> ValidationReport:
    """Validate a description (or a hub catalogue) against the SHACL shapes.

    Parameters
    ----------
    graph_or_file : Graph, str or Path
        An rdflib graph, or a Turtle / JSON-LD / RDF-XML file.
    shapes : Graph, optional
        Other shapes to use instead of the packaged ones.

    Returns
    -------
    ValidationReport

    Raises
    ------
    RdfSyntaxError
        When the file does not parse.
    """
    data = graph_or_file if isinstance(graph_or_file, Graph) else parse_rdf(Path(graph_or_file))
    _, results, _ = shacl_validate(
        data,
        shacl_graph=shapes if shapes is not None else shapes_graph(),
        inference="none",
        advanced=True,
        allow_warnings=True,
    )
    assert isinstance(results, Graph)
    out = []
    for r in results.subjects(RDF.type, SH.ValidationResult):
        severity = results.value(r, SH.resultSeverity)
        focus = results.value(r, SH.focusNode)
        out.append(
            Violation(
                focus_node=f"_:{focus}" if isinstance(focus, BNode) else str(focus),
                path=_short(results.value(r, SH.resultPath), results),
                message=str(results.value(r, SH.resultMessage) or "constraint not met"),
                severity=str(severity).rsplit("#", 1)[-1] if severity else "Violation",
                value=_short(results.value(r, SH.value), results),
            )
        )
    out.sort(
        key=lambda v: (_SEVERITY_ORDER.get(v.severity, 3), v.focus_node, v.path or "", v.message)
    )
    return ValidationReport(
        conforms=not any(v.severity == "Violation" for v in out), violations=out
    )
