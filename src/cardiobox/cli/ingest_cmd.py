"""`cardiobox ingest`: load hospital extracts through declarative mappings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import emit_json, fail, out, progress
from cardiobox.errors import CardioboxError

app = typer.Typer(
    help="Ingestion: map a hospital extract (CSV, Parquet, Excel, SQL) into the data model.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


@app.command()
def run(
    mapping: Annotated[Path, typer.Argument(help="The mapping YAML file.", show_default=False)],
    site: Annotated[
        Path,
        typer.Option("--site", "-s", help="The site store (a DuckDB file).", show_default=False),
    ],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Read this file instead of the mapping's source."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show what would be created and the first errors; write nothing."
        ),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="The site's secret key for pseudonyms "
            "(default: $CARDIOBOX_SITE_KEY or STORE.key).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Apply a mapping to its source and load the result into a site store.

    Every source row is loaded or quarantined (rows_read = rows_loaded + rows_quarantined);
    loads are atomic and idempotent.
    """
    from cardiobox.ingest.engine import run_mapping

    try:
        with progress(enabled=not as_json) as bar:
            task = bar.add_task("ingesting", total=None, rate="")
            started = time.perf_counter()
            rows = 0

            def on_progress(phase: str, n: int, total: int | None) -> None:
                nonlocal rows
                if phase == "reading source":
                    rows += n
                elapsed = time.perf_counter() - started
                rate = f"{rows / elapsed:,.0f} rows/s" if rows and elapsed else ""
                bar.update(task, description=phase, rate=rate)

            report = run_mapping(mapping, site, source, dry_run, key_file, on_progress)
            # The rate over the whole load: the last phases write, after every row was read.
            overall = f"{report.rows_read / report.seconds:,.0f} rows/s" if report.seconds else ""
            bar.update(task, description="done", total=1, completed=1, rate=overall)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(report.to_dict())
        return
    if report.key_created:
        out.print(
            f"[yellow]created a new site key at {report.key_file}: keep it safe and apart "
            "from the store[/]"
        )
    title = f"{'DRY RUN: ' if report.dry_run else ''}mapping {report.mapping} ← {report.source}"
    table = Table(title=title, title_justify="left")
    table.add_column("resource type")
    table.add_column("resources", justify="right")
    for rt, n in sorted(report.resources_by_type.items()):
        table.add_row(rt, f"{n:,}")
    out.print(table)
    out.print(
        f"rows read [bold]{report.rows_read:,}[/] = loaded [green]{report.rows_loaded:,}[/] + "
        f"quarantined [red]{report.rows_quarantined:,}[/]; resources created "
        f"{report.resources_created:,}, updated {report.resources_updated:,}, unchanged "
        f"{report.resources_unchanged:,}"
    )
    for rule, examples in report.examples.items():
        out.print(f"[red]{rule}[/] ({report.quarantine_by_rule.get(rule, 0):,} rows)")
        for e in examples:
            out.print(f"  {escape(e)}", soft_wrap=True)
    rate = report.rows_read / report.seconds if report.seconds else 0
    out.print(
        f"{report.seconds:.2f} s, {rate:,.0f} rows/s"
        + ("  (nothing was written)" if report.dry_run else "")
    )


@app.command()
def check(
    mapping: Annotated[Path, typer.Argument(help="The mapping YAML file.", show_default=False)],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Check against this file instead of the mapping's source."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Lint a mapping against its source, writing nothing.

    Reports unknown columns and variables, values that would be quarantined, local codes
    missing from concept maps, and units that cannot be converted.
    """
    from cardiobox.ingest.engine import check_mapping

    try:
        report = check_mapping(mapping, source)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(report.to_dict())
    else:
        out.print(
            f"mapping [bold]{report.mapping}[/] on {escape(report.source)}: {report.rows:,} rows, "
            f"{report.resources:,} resources would be built; {report.malformed_rows} malformed rows"
        )
        if report.problems:
            t = Table(title="values that would quarantine rows", title_justify="left")
            for col in ("rule", "column", "rows", "example"):
                t.add_column(col, overflow="fold")
            for p in report.problems:
                t.add_row(
                    p["rule"], escape(p["column"]), f"{p['rows']:,}", escape(p["examples"][0])
                )
            out.print(t)
        if report.unmapped_codes:
            t = Table(title="concept-map work: local codes without a mapping", title_justify="left")
            for col in ("concept map", "local code", "rows"):
                t.add_column(col)
            for u in report.unmapped_codes:
                t.add_row(u["concept_map"], escape(str(u["local_code"])), f"{u['rows']:,}")
            out.print(t)
        for u in report.unit_problems:
            out.print(f"[red]unit[/] {escape(str(u['message']))}")
        out.print("[green]ok[/]" if report.ok else "[red]problems found[/]")
    if not report.ok:
        raise typer.Exit(1)
