"""`cardiobox store`: create site stores, import FHIR, inspect and export them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out, progress
from cardiobox.errors import CardioboxError
from cardiobox.store import SiteStore
from cardiobox.store.importer import ImportReport

app = typer.Typer(
    help="Site store: import FHIR data, see what is stored and quarantined, export it.",
    no_args_is_help=True,
)

SiteOption = Annotated[
    Path, typer.Option("--site", "-s", help="The site store (a DuckDB file).", show_default=False)
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


def _print_import(report: ImportReport) -> None:
    table = Table(title=f"Import {report.load_id}", title_justify="left")
    table.add_column("resource type")
    table.add_column("stored", justify="right")
    table.add_column("quarantined", justify="right")
    for rt, counts in sorted(report.by_type.items()):
        q = counts["quarantined"]
        table.add_row(rt, f"{counts['stored']:,}", f"[red]{q:,}[/]" if q else "0")
    out.print(table)
    ok = report.read == report.stored + report.quarantined
    out.print(
        f"read [bold]{report.read:,}[/] = stored [green]{report.stored:,}[/] "
        f"(created {report.created:,}, updated {report.updated:,}, "
        f"unchanged {report.unchanged:,}) + quarantined [red]{report.quarantined:,}[/]"
        + ("" if ok else "  [bold red](MISMATCH)[/]")
    )
    if report.quarantine_by_rule:
        rules = ", ".join(f"{r}: {n}" for r, n in report.quarantine_by_rule.items())
        out.print(f"quarantine by rule: {rules}  (see `cardiobox store quarantine`)")
    if report.warnings:
        out.print(f"[yellow]{report.warnings:,} warnings[/] stored beside the resources")
    rate = report.read / report.seconds if report.seconds else 0
    out.print(f"{report.seconds:.2f} s, {rate:,.0f} resources/s")


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="NDJSON files, bulk-export folders, Bundles or single resources (.json).",
            show_default=False,
        ),
    ],
    site: SiteOption,
    fhir_version: Annotated[
        str | None,
        typer.Option(
            "--fhir-version",
            help="R4, R4B or R5. Default: read from meta.profile (US Core → R4, DT4H → R5).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import FHIR resources into a site store (atomic, idempotent).

    Every item read is either stored or quarantined with a reason; R4 resources of the data
    model's types are converted to R5 and their original is kept.
    """
    try:
        with SiteStore(site) as store, progress(enabled=not as_json) as bar:
            task = bar.add_task("importing", total=None, rate="")
            started = time.perf_counter()
            done = 0

            def on_progress(phase: str, n: int, total: int | None) -> None:
                nonlocal done
                done += n if phase == "reading" else 0
                elapsed = time.perf_counter() - started
                rate = f"{done / elapsed:,.0f} items/s" if phase == "reading" and elapsed else ""
                bar.update(
                    task,
                    description=phase,
                    total=total if phase == "reading" else None,
                    completed=done if phase == "reading" else 0,
                    rate=rate,
                )

            report = store.import_fhir(paths, fhir_version=fhir_version, progress=on_progress)
            bar.update(task, description="done", total=1, completed=1, rate="")
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_import(report)


@app.command()
def stats(site: SiteOption, as_json: JsonOption = False) -> None:
    """Counts per resource type, patients, FHIR releases, quarantine and warnings."""
    try:
        with SiteStore(site, read_only=True) as store:
            s = store.stats()
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(s)
        return
    table = Table(title=f"Site store {s['store']}", title_justify="left")
    table.add_column("resource type")
    table.add_column("resources", justify="right")
    table.add_column("patients", justify="right")
    for rt, c in s["by_type"].items():
        table.add_row(rt, f"{c['resources']:,}", f"{c['patients']:,}")
    out.print(table)
    versions = ", ".join(f"{v}: {n:,}" for v, n in s["fhir_versions"].items())
    out.print(
        f"{s['resources']:,} resources of {s['patients']:,} patients; FHIR releases: "
        f"{versions or '-'}; converted to R5: {s['converted_to_r5']:,}; "
        f"earlier versions kept: {s['history']:,}"
    )
    out.print(
        f"quarantined: [red]{s['quarantined']:,}[/]"
        + (
            f" ({', '.join(f'{r}: {n}' for r, n in s['quarantine_by_rule'].items())})"
            if s["quarantine_by_rule"]
            else ""
        )
        + f"; warnings: {s['warnings']:,}; loads: {s['loads']}"
    )


@app.command()
def reindex(site: SiteOption, as_json: JsonOption = False) -> None:
    """Rebuild the fact tables that cohorts read, from every resource, in one transaction.

    Loads keep them up to date themselves; this is for a store written by an older cardiobox
    or changed by other means (cohort extraction also rebuilds stale tables by itself).
    """
    try:
        with SiteStore(site) as store:
            refresh = store.reindex()
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    result = {
        "mode": refresh.mode,
        "resources": refresh.resources,
        "facts": refresh.facts,
        "seconds": round(refresh.seconds, 2),
    }
    if as_json:
        emit_json(result)
        return
    out.print(
        f"fact tables rebuilt: {refresh.resources:,} resources read, {refresh.facts:,} facts, "
        f"{refresh.seconds:.1f} s"
    )


@app.command()
def quarantine(
    site: SiteOption,
    limit: Annotated[int, typer.Option(help="How many items to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show rejected items: file, line, resource, element, rule and message."""
    try:
        with SiteStore(site, read_only=True) as store:
            rows = store.quarantine(limit)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json({"items": rows, "shown": len(rows)})
        return
    table = Table(title="Quarantine", title_justify="left", show_lines=False)
    for col in ("where", "resource", "element", "rule", "message"):
        table.add_column(col, overflow="fold")
    for r in rows:
        where = f"{Path(r['file']).name if r['file'] else '?'}"
        where += f":{r['line']}" if r["line"] is not None else ""
        where += f" entry {r['entry']}" if r["entry"] is not None else ""
        resource = f"{r['resource_type'] or '?'}/{r['resource_id'] or '?'}"
        table.add_row(
            escape(where),
            escape(resource),
            escape(r["element"] or ""),
            r["rule"],
            escape(r["message"]),
        )
    out.print(table)


@app.command()
def export(
    site: SiteOption,
    folder: Annotated[Path, typer.Argument(help="Output folder (one <Type>.ndjson per type).")],
    original: Annotated[
        bool, typer.Option(help="Write resources as received (R4 stays R4) instead of R5.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export the store as NDJSON files, one per resource type (a bulk-export folder)."""
    try:
        with SiteStore(site, read_only=True) as store:
            counts = store.export_ndjson(folder, original=original)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json({"folder": str(folder), "by_type": counts, "resources": sum(counts.values())})
    else:
        console.print(f"wrote {sum(counts.values()):,} resources to {folder}/")
