"""Where a search index comes from: the data model, a description, a hub or a saved index.

:func:`open_index` takes what a user types after ``--catalogue``:

* ``datamodel``: the data model's own variables
  (:func:`~cardiobox.catalogue.documents.variable_documents`);
* a folder holding ``search-index.json``: an index saved with
  :meth:`~cardiobox.catalogue.search.SearchIndex.save` (nothing is embedded again);
* a hub folder (``hub.json``): the current description of every site;
* a Turtle / JSON-LD / RDF file: the descriptions it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cardiobox.catalogue.documents import SearchDocument, variable_documents
from cardiobox.catalogue.embeddings import Embedder
from cardiobox.catalogue.search import INDEX_JSON, SearchIndex
from cardiobox.errors import InputError, Location

#: The ``--catalogue`` value that names the data model itself.
DATAMODEL = "datamodel"


def catalogue_documents(source: str | Path) -> list[SearchDocument]:
    """The search documents of a catalogue source (see the module notes).

    Parameters
    ----------
    source : str or Path
        ``"datamodel"``, a hub folder or a description file.

    Returns
    -------
    list of SearchDocument

    Raises
    ------
    InputError
        When the source does not exist or is none of the above.
    """
    if str(source) == DATAMODEL:
        return variable_documents()
    path = Path(source)
    # Imported here: rdflib and the description model are only needed for these sources.
    from cardiobox.catalogue.build import documents_from_description

    if path.is_dir():
        if not (path / "hub.json").is_file():
            raise InputError(
                f"a folder must be a hub (hub.json) or a saved search index ({INDEX_JSON})",
                rule="catalogue-source",
                location=Location(file=str(path)),
            )
        from cardiobox.catalogue.hub import Hub

        descriptions = Hub(path).descriptions()
    elif path.is_file():
        from cardiobox.catalogue.rdf import from_graph, parse_rdf

        descriptions = from_graph(parse_rdf(path))
    else:
        raise InputError(
            f"no such file or folder; use {DATAMODEL!r}, a hub folder, a saved index or a "
            "description file (.ttl, .jsonld)",
            rule="missing-input",
            location=Location(file=str(path)),
        )
    return [doc for d in descriptions for doc in documents_from_description(d)]


def open_index(
    source: str | Path,
    *,
    semantic: bool = True,
    embedder: Embedder | None = None,
    cache_dir: Path | str | Literal["default"] | None = "default",
) -> SearchIndex:
    """A search index over a catalogue source: loaded when saved, built otherwise.

    Parameters
    ----------
    source : str or Path
        ``"datamodel"``, a saved index folder, a hub folder or a description file.
    semantic : bool, default True
        Build with embeddings (ignored for a saved index, which keeps what it was built with).
    embedder : Embedder, optional
        Sentence encoder; default multilingual-e5-small.
    cache_dir : path, "default" or None
        Embedding cache root.

    Returns
    -------
    SearchIndex
    """
    if str(source) != DATAMODEL and (Path(source) / INDEX_JSON).is_file():
        return SearchIndex.load(source, embedder=embedder)
    documents = catalogue_documents(source)
    return SearchIndex.build(documents, semantic=semantic, embedder=embedder, cache_dir=cache_dir)
