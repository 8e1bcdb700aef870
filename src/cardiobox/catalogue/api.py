"""HTTP endpoints of catalogue search for the web UI (FastAPI).

``create_router(index)`` gives an :class:`fastapi.APIRouter` with

* ``GET /search?q=&lang=&k=&site=&kind=``: the best hits, and the facet counts over them;
* ``GET /variables/{variable_id}``: a data-model variable's labels and the sites holding it;

and, given a :class:`~cardiobox.catalogue.hub.Hub`, the dataset pages:

* ``GET /datasets``: each site's current version;
* ``GET /datasets/{site}``: a site's current description (the model as JSON, or JSON-LD with
  ``?format=jsonld``).

Every parameter is checked and bounded before the index sees it (a query of at most
:data:`~cardiobox.catalogue.search.MAX_QUERY_CHARS` characters, one of the seven languages,
``1 <= k <= 100``, at most :data:`MAX_SITES` sites); a bad request gets a 422 naming the
parameter and the rule.

Example
-------
>>> from fastapi import FastAPI
>>> app = FastAPI()
>>> app.include_router(create_router(index), prefix="/catalogue")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel

from cardiobox.catalogue.hub import Hub
from cardiobox.catalogue.rdf import to_jsonld
from cardiobox.catalogue.search import (
    MAX_K,
    MAX_QUERY_CHARS,
    SearchError,
    SearchIndex,
    display_label,
)

#: The seven languages, as a type FastAPI validates (kept equal to ``cdm.LANGUAGES``).
Language = Literal["en", "es", "it", "nl", "sv", "cs", "ro"]
#: Most sites one search may filter on.
MAX_SITES = 50
_MAX_SITE_CHARS = 200
_VARIABLE_ID = r"^[a-z][a-z0-9_]{0,63}$"
_SITE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class HitOut(BaseModel):
    """One hit (``variable_id`` is null on dataset hits)."""

    id: str
    label: str
    score: float
    site: str | None
    kind: str
    variable_id: str | None = None


class SearchOut(BaseModel):
    """The answer to ``GET /search``."""

    query: str
    lang: str | None
    k: int
    hits: list[HitOut]
    facets: dict[str, dict[str, int]]


class DocumentOut(BaseModel):
    """One catalogue document of a variable (one per site holding it)."""

    id: str
    site: str | None
    label: str
    facets: dict[str, list[str]]


class VariableOut(BaseModel):
    """The answer to ``GET /variables/{variable_id}``."""

    variable_id: str
    labels: dict[str, str]
    sites: list[str]
    documents: list[DocumentOut]


def create_router(index: SearchIndex, hub: Hub | None = None) -> APIRouter:
    """The catalogue search endpoints over ``index``, and the dataset pages of ``hub``.

    Parameters
    ----------
    index : SearchIndex
        A built or loaded index; it is only read.
    hub : Hub, optional
        The hub whose current descriptions ``GET /datasets`` serves.

    Returns
    -------
    fastapi.APIRouter
        ``GET /search``, ``GET /variables/{variable_id}`` and, with a hub, ``GET /datasets``
        and ``GET /datasets/{site}``; mount it under any prefix.
    """
    router = APIRouter(tags=["catalogue"])
    if hub is not None:
        _dataset_routes(router, hub)

    @router.get("/search", response_model=SearchOut)
    def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_QUERY_CHARS,
                description="Free text in any of the seven languages.",
            ),
        ],
        lang: Annotated[Language | None, Query(description="Language of the labels.")] = None,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of hits.")] = 10,
        site: Annotated[
            list[str] | None, Query(description="Keep hits of these sites (repeatable).")
        ] = None,
        kind: Annotated[
            Literal["variable", "dataset"] | None, Query(description="Keep one kind of hit.")
        ] = None,
    ) -> SearchOut:
        facets: dict[str, list[str]] = {}
        if site:
            if len(site) > MAX_SITES:
                raise _unprocessable("site", f"at most {MAX_SITES} sites, got {len(site)}")
            if any(len(s) > _MAX_SITE_CHARS for s in site):
                raise _unprocessable("site", f"a site name has at most {_MAX_SITE_CHARS} chars")
            facets["site"] = site
        if kind:
            facets["kind"] = [kind]
        try:
            hits = index.search(q, lang=lang, k=k, facets=facets)
        except SearchError as exc:
            raise _unprocessable("q", exc.message) from exc
        return SearchOut(
            query=q,
            lang=lang,
            k=k,
            hits=[HitOut(**h.to_dict()) for h in hits],
            facets=index.facet_counts(hits),
        )

    @router.get("/variables/{variable_id}", response_model=VariableOut)
    def variable(
        variable_id: Annotated[str, Path(pattern=_VARIABLE_ID, description="Data-model id.")],
        lang: Annotated[Language | None, Query(description="Language of the labels.")] = None,
    ) -> VariableOut:
        docs = index.variable_documents(variable_id)
        if not docs:
            raise HTTPException(404, f"no variable {variable_id!r} in the catalogue")
        labels: dict[str, str] = {}
        for doc in docs:  # the data model's names first, then any a site adds
            labels.update({k: v for k, v in doc.labels.items() if k not in labels})
        return VariableOut(
            variable_id=variable_id,
            labels=labels,
            sites=sorted({d.site for d in docs if d.site is not None}),
            documents=[
                DocumentOut(
                    id=d.id,
                    site=d.site,
                    label=display_label(d, lang),
                    facets={name: list(values) for name, values in d.facets.items()},
                )
                for d in docs
            ],
        )

    return router


def _dataset_routes(router: APIRouter, hub: Hub) -> None:
    """``GET /datasets`` and ``GET /datasets/{site}`` over the hub's current versions."""

    @router.get("/datasets")
    def datasets() -> list[dict[str, Any]]:
        return [
            {"site": site, "version": v.version, "published_at": v.published_at, "sha256": v.sha256}
            for site, v in hub.current().items()
        ]

    @router.get("/datasets/{site}", response_model=None)
    def dataset(
        site: Annotated[str, Path(pattern=_SITE, description="The publishing site.")],
        format: Annotated[Literal["json", "jsonld"], Query(description="Answer format.")] = "json",
    ) -> Response | dict[str, Any]:
        try:
            description = hub.description(site)
        except KeyError:
            raise HTTPException(404, f"site {site!r} has published no description") from None
        if format == "jsonld":
            return Response(to_jsonld(description), media_type="application/ld+json")
        return description.model_dump(mode="json")


def _unprocessable(parameter: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own shape, naming the query parameter."""
    return HTTPException(
        422, [{"loc": ["query", parameter], "msg": message, "type": "value_error"}]
    )
