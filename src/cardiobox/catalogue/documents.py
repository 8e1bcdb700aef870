"""Search documents: what the catalogue search indexes, one per dataset or variable.

A :class:`SearchDocument` is the only thing :mod:`cardiobox.catalogue.search` knows about the
catalogue: labels and free texts by language, the site and variable it stands for, and facet
values. Site descriptions become documents in
:func:`cardiobox.catalogue.build.documents_from_description`; the data model's own variables
become documents here (:func:`variable_documents`), so that search works before any site has
published anything.

Example
-------
>>> from cardiobox.catalogue.documents import variable_documents
>>> docs = variable_documents()
>>> lvef = next(d for d in docs if d.variable_id == "lvef")
>>> lvef.id, lvef.labels["sv"]
('variable::lvef', 'Vänsterkammarens ejektionsfraktion')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardiobox.catalogue import vocab
from cardiobox.cdm.dictionary import LANGUAGES, DataDictionary, Variable, load_dictionary

#: Kinds of documents the search indexes.
KINDS: tuple[str, ...] = ("variable", "dataset")


@dataclass(frozen=True)
class SearchDocument:
    """One searchable catalogue entry: a dataset (a site) or a variable (at a site or not).

    Parameters
    ----------
    id : str
        Unique id: ``variable:<site>:<variable_id>``, ``dataset:<site>``, or
        ``variable::<variable_id>`` for a data-model variable without a site.
    kind : str
        ``"variable"`` or ``"dataset"``.
    labels : dict of str to str
        Display name by language code; at least ``"en"``.
    texts : dict of str to str
        Searchable text by language code (names, synonyms, description, keywords...).
    site : str, optional
        Site that holds the data; ``None`` for the data model's own variables.
    variable_id : str, optional
        Data-model variable id of a variable document.
    facets : dict of str to tuple of str
        Facet values, e.g. ``{"coding_system": ("LOINC",), "years": ("2018", "2019")}``.
    """

    id: str
    kind: str
    labels: dict[str, str]
    texts: dict[str, str]
    site: str | None = None
    variable_id: str | None = None
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)


def variable_document(variable: Variable) -> SearchDocument:
    """The search document of one data-model variable (no site).

    Parameters
    ----------
    variable : Variable
        A variable of the data dictionary.

    Returns
    -------
    SearchDocument
        ``variable::<id>``: labels are the display names by language; each language's text
        holds the display name and synonyms, and the English text adds the acronym, the
        description, the category, the unit and the coding systems.
    """
    systems = tuple(sorted({vocab.system_name(cs.system) for cs in variable.codes}))
    texts: dict[str, str] = {}
    for lang in LANGUAGES:
        names = variable.all_names(lang)
        if lang == "en":
            extra = [
                variable.acronym or "",
                variable.description,
                variable.category.value.replace("_", " "),
                f"unit {variable.unit}" if variable.unit else "",
                *systems,
            ]
            names = [*names, *(e for e in extra if e)]
        if names:
            texts[lang] = "; ".join(_unique(names))
    return SearchDocument(
        id=f"variable::{variable.id}",
        kind="variable",
        labels={lang: name for lang, name in variable.display.items() if name},
        texts=texts,
        variable_id=variable.id,
        facets={
            "variable": (variable.id,),
            "category": (variable.category.value,),
            "coding_system": systems,
        },
    )


def variable_documents(dictionary: DataDictionary | None = None) -> list[SearchDocument]:
    """The search documents of every data-model variable, in dictionary order.

    Parameters
    ----------
    dictionary : DataDictionary, optional
        Defaults to the packaged data dictionary.

    Returns
    -------
    list of SearchDocument
        One ``variable::<id>`` document per variable (see :func:`variable_document`).
    """
    dictionary = dictionary if dictionary is not None else load_dictionary()
    return [variable_document(v) for v in dictionary]


def _unique(items: list[str]) -> list[str]:
    """Keep the first of names that differ only in case (a synonym often repeats the label)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.casefold()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
