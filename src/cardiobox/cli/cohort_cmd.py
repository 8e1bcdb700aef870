"""`cardiobox cohort`: count, explain and extract cohorts and their feature tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from cardiobox.cli.output import emit_json, fail, out, progress
from cardiobox.errors import CardioboxError

app = typer.Typer(
    help="Cohorts and feature sets: analysis-ready tables from a site store.",
    no_args_is_help=True,
)

DefinitionArg = Annotated[
    str,
    typer.Argument(
        help="Cohort definition: a YAML file, or a built-in name (cardiobox cohort library).",
        show_default=False,
    ),
]
SiteOption = Annotated[
    Path, typer.Option("--site", "-s", help="The site store (a DuckDB file).", show_default=False)
]
FeaturesOption = Annotated[
    str | None,
    typer.Option("--features", "-f", help="Feature set: a YAML file or a built-in name."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


def _attrition_table(result: Any) -> Table:
    t = Table(title=f"cohort {result.name}: attrition", title_justify="left")
    for col, justify in (
        ("step", "right"),
        ("kind", "left"),
        ("criterion", "left"),
        ("rows", "right"),
        ("patients", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for a in result.attrition:
        t.add_row(str(a.step), a.kind, escape(a.label), f"{a.rows:,}", f"{a.patients:,}")
    return t


def _warnings(result: Any) -> None:
    for w in result.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")


@app.command()
def count(definition: DefinitionArg, site: SiteOption, as_json: JsonOption = False) -> None:
    """Count a cohort at a site, with its attrition table (patients left after each step)."""
    from cardiobox.cohort import api
    from cardiobox.cohort.library import resolve

    try:
        result = api.count(resolve(definition), site)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(result.to_dict())
        return
    out.print(_attrition_table(result))
    out.print(f"[bold]{result.rows:,}[/] rows, [bold]{result.patients:,}[/] patients")
    _warnings(result)


@app.command()
def explain(
    definition: DefinitionArg,
    site: SiteOption,
    features: FeaturesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the SQL a cohort (and a feature set) compiles to, and the attrition table."""
    from cardiobox.cohort import api
    from cardiobox.cohort.library import resolve

    try:
        result = api.explain(resolve(definition), site, resolve(features) if features else None)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(result.to_dict())
        return
    out.print(Syntax(result.sql, "sql", word_wrap=True))
    out.print(_attrition_table(result))
    _warnings(result)


@app.command()
def extract(
    definition: DefinitionArg,
    site: SiteOption,
    features: FeaturesOption = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the table as Parquet (and OUT.metadata.json beside it)."
        ),
    ] = None,
    min_cell: Annotated[
        int, typer.Option("--min-cell", help="Smallest count shown in the metadata summaries.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Extract a cohort's analysis table: one row per index event, one column per feature."""
    from cardiobox.cohort import api
    from cardiobox.cohort.library import resolve

    try:
        with progress(enabled=not as_json) as bar:
            task = bar.add_task("building facts, cohort and features", total=None, rate="")
            result = api.extract(
                resolve(definition),
                site,
                resolve(features) if features else None,
                out_path,
                min_cell,
            )
            bar.update(task, description="done", total=1, completed=1)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(result.to_dict())
        return
    out.print(_attrition_table(result))
    assert result.table is not None
    cols = Table(title="columns", title_justify="left")
    for c in ("column", "type", "unit", "missing"):
        cols.add_column(c)
    for c in result.metadata["columns"]:
        cols.add_row(c["name"], c["type"], c["unit"] or "", f"{c['missing']}")
    out.print(cols)
    out.print(
        f"{result.table.num_rows:,} rows × {result.table.num_columns} columns"
        + (f" → {escape(result.out)} (+ .metadata.json)" if result.out else "")
    )
    _warnings(result)


@app.command()
def library(as_json: JsonOption = False) -> None:
    """List the built-in cohort definitions and feature sets."""
    from cardiobox.cohort.definition import CohortDefinition, load_definition
    from cardiobox.cohort.library import library_dir, library_names

    items = []
    for name in library_names():
        d = load_definition(library_dir() / f"{name}.yaml")
        kind = "cohort" if isinstance(d, CohortDefinition) else "feature set"
        items.append({"name": name, "kind": kind, "description": " ".join(d.description.split())})
    if as_json:
        emit_json({"definitions": items})
        return
    t = Table(title="built-in definitions", title_justify="left")
    for c in ("name", "kind", "description"):
        t.add_column(c, overflow="fold")
    for i in items:
        t.add_row(i["name"], i["kind"], escape(i["description"]))
    out.print(t)
