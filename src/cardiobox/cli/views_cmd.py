"""`cardiobox views`: run SQL-on-FHIR ViewDefinitions over a site store."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
import pyarrow as pa
import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out
from cardiobox.errors import CardioboxError, InputError, Location
from cardiobox.store.views import CompiledView, compile_view, load_view, run_view
from cardiobox.store.views.standard import (
    compile_standard_view,
    is_standard_view,
    list_standard_views,
    standard_view_names,
    union_sql,
)

app = typer.Typer(
    help="SQL-on-FHIR views: run ViewDefinitions over a site store, check conformance.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]
ViewArgument = Annotated[
    str,
    typer.Argument(
        help="A ViewDefinition JSON file, or the name of a standard view "
        "(see `cardiobox views list`).",
        show_default=False,
    ),
]
SourceOption = Annotated[str, typer.Option("--source", help="Table holding the resources.")]
_SHOWN = 20


def _compile(view: str, source: str) -> list[CompiledView]:
    path = Path(view)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise InputError(
                "no such ViewDefinition file", rule="not-found", location=Location(file=view)
            )
        return [compile_view(load_view(path), source)]
    if is_standard_view(view):
        return compile_standard_view(view, source)
    raise InputError(
        f"{view!r} is neither a ViewDefinition file nor a standard view "
        f"({', '.join(standard_view_names())})",
        rule="not-found",
        location=Location(file=view),
    )


def _csv_ready(table: pa.Table) -> pa.Table:
    # CSV has no lists: write list cells as JSON arrays.
    columns = []
    for col in table.columns:
        if pa.types.is_list(col.type):
            values = [None if v is None else orjson.dumps(v).decode() for v in col.to_pylist()]
            columns.append(pa.array(values, type=pa.string()))
        else:
            columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _write(table: pa.Table, dest: Path) -> None:
    suffix = dest.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, dest)
    elif suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(_csv_ready(table), dest)
    else:
        raise InputError(
            f"cannot write {suffix or 'files without an extension'}: use .parquet or .csv",
            rule="output-format",
            location=Location(file=str(dest)),
        )


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]null[/]"
    if isinstance(value, list):
        return escape(orjson.dumps(value).decode())
    return escape(str(value))


def _print_rows(table: pa.Table, shown: int) -> None:
    grid = Table(title=f"first {min(shown, table.num_rows)} of {table.num_rows:,} rows",
                 title_justify="left")  # fmt: skip
    for name in table.column_names:
        grid.add_column(name, overflow="fold")
    for row in table.slice(0, shown).to_pylist():
        grid.add_row(*(_cell(row[n]) for n in table.column_names))
    out.print(grid)


@app.command("run")
def run(
    view: ViewArgument,
    site: Annotated[
        Path,
        typer.Option("--site", "-s", help="The site store (a DuckDB file).", show_default=False),
    ],
    dest: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the rows to FILE.parquet or FILE.csv."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="Keep only the first N rows.")
    ] = None,
    source: SourceOption = "resources",
    as_json: JsonOption = False,
) -> None:
    """Run a ViewDefinition over a site store (opened read-only).

    Without --out, prints the first rows as a table.
    """
    if dest is not None and dest.suffix.lower() not in (".parquet", ".csv"):
        raise fail(
            InputError(
                "use an output file ending in .parquet or .csv",
                rule="output-format",
                location=Location(file=str(dest)),
            ),
            as_json,
        )
    if not site.is_file():
        raise fail(
            InputError("no such site store", rule="not-found", location=Location(file=str(site))),
            as_json,
        )
    start = time.perf_counter()
    try:
        compiled = _compile(view, source)
        con = duckdb.connect(str(site), read_only=True)
    except CardioboxError as exc:
        raise fail(exc, as_json) from exc
    except duckdb.Error as exc:
        raise fail(f"cannot open {site}: {exc}", as_json) from exc
    try:
        tables = []
        for c in compiled:
            if limit is not None and not c.uses_fallback:
                c = replace(c, sql=f"SELECT * FROM (\n{c.sql}\n) LIMIT {limit}")
            tables.append(run_view(con, c))
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if limit is not None:
            table = table.slice(0, limit)
        if dest is not None:
            _write(table, dest)
    except CardioboxError as exc:
        raise fail(exc, as_json) from exc
    except (duckdb.Error, OSError) as exc:
        raise fail(str(exc), as_json) from exc
    finally:
        con.close()
    seconds = time.perf_counter() - start
    if as_json:
        emit_json(
            {
                "rows": table.num_rows,
                "columns": table.column_names,
                "out": str(dest) if dest is not None else None,
                "seconds": round(seconds, 3),
            }
        )
        return
    if dest is None:
        _print_rows(table, limit if limit is not None else _SHOWN)
    rate = table.num_rows / seconds if seconds else 0.0
    fallback = " (fhirpathpy fallback)" if any(c.uses_fallback for c in compiled) else ""
    console.print(
        f"{table.num_rows:,} rows × {table.num_columns} columns in {seconds:.2f} s "
        f"({rate:,.0f} rows/s){fallback}"
    )
    if dest is not None:
        console.print(f"wrote {escape(str(dest))}")


@app.command("sql")
def sql(view: ViewArgument, source: SourceOption = "resources") -> None:
    """Print the DuckDB SQL a ViewDefinition compiles to."""
    try:
        compiled = _compile(view, source)
    except CardioboxError as exc:
        raise fail(exc) from exc
    for c in compiled:
        if c.uses_fallback:
            typer.echo(
                f"-- {c.view.name or c.view.resource}: evaluated per resource with the "
                f"fhirpathpy fallback ({c.fallback_reason}); this query reads its input"
            )
    typer.echo(union_sql(compiled))


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the standard views of the data model."""
    views = list_standard_views()
    if as_json:
        emit_json(
            {
                "views": [
                    {
                        "name": v.name,
                        "resources": list(v.resources),
                        "title": v.title,
                        "columns": list(v.columns),
                        "members": list(v.members),
                    }
                    for v in views
                ]
            }
        )
        return
    table = Table(title=f"{len(views)} standard views", title_justify="left")
    for col in ("name", "resources", "columns", "title"):
        table.add_column(col, overflow="fold")
    for v in views:
        table.add_row(v.name, ", ".join(v.resources), ", ".join(v.columns), escape(v.title))
    out.print(table)


@app.command("conformance")
def conformance(
    directory: Annotated[
        Path,
        typer.Argument(help="Folder with the SQL-on-FHIR v2 test files.", show_default=False),
    ],
    as_json: JsonOption = False,
) -> None:
    """Run the SQL-on-FHIR v2 conformance suite.

    Exit status 0 when every test tagged shareable passes, 1 otherwise.
    """
    from cardiobox.store.views.conformance import iter_suite, run_conformance

    if not directory.is_dir() or not any(True for _ in iter_suite(directory)):
        raise fail(
            InputError(
                "no SQL-on-FHIR test files (*.json with 'tests') in this folder",
                rule="not-found",
                location=Location(file=str(directory)),
            ),
            as_json,
        )
    report = run_conformance(directory)
    ok = report.all_pass("shareable")
    if as_json:
        emit_json(report.to_dict())
        raise typer.Exit(0 if ok else 1)
    table = Table(title="SQL-on-FHIR v2 conformance", title_justify="left")
    for col, justify in (("file", "left"), ("passed", "right"), ("failed", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, counts in report.by_file.items():
        failed = counts["failed"]
        table.add_row(name, str(counts["passed"]), f"[red]{failed}[/]" if failed else "0")
    out.print(table)
    for r in report.results:
        if not r.passed:
            out.print(f"[red]FAIL[/] {escape(r.name)}: {escape(r.reason)}")
    tags = ", ".join(
        f"{tag} {c['passed']}/{c['total']}" for tag, c in sorted(report.by_tag.items())
    )
    out.print(f"passed {report.passed}/{report.total} ({tags})")
    raise typer.Exit(0 if ok else 1)
