"""`cardiobox catalogue`: HealthDCAT-AP descriptions of site data: build, check, export, publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out
from cardiobox.errors import CardioboxError, InputError, Location

app = typer.Typer(
    help="The metadata catalogue: aggregate-only HealthDCAT-AP descriptions of each site's "
    "data, SHACL validation, exports (JSON-LD, CSV-W, Opal/Mica) and the hub's harvest.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of text.")
]
EXPORT_FORMATS = ("jsonld", "csvw", "mica")


def _profile_path(store: Path, profile: Path | None) -> Path:
    """``--profile``, or ``<store>.catalogue.yaml`` / ``catalogue.yaml`` beside the store."""
    if profile is not None:
        return profile
    for candidate in (
        store.with_name(store.stem + ".catalogue.yaml"),
        store.parent / "catalogue.yaml",
    ):
        if candidate.exists():
            return candidate
    raise InputError(
        "no site profile: give --profile PROFILE.yaml (or put <store>.catalogue.yaml beside "
        "the store); publisher, contact point, legal basis and purpose come from it, never "
        "from guesses",
        rule="missing-profile",
        location=Location(file=str(store)),
    )


@app.command()
def build(
    site: Annotated[Path, typer.Option("--site", help="The site store (DuckDB).")],
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="The description to write: .ttl or .jsonld.")
    ],
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="The site profile YAML (default: <store>.catalogue.yaml beside the store).",
        ),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option("--features", help="An analysis table (Parquet/CSV) to describe too."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="The site policy (its min_cell_count applies; default 10)."),
    ] = None,
    quality_report: Annotated[
        Path | None,
        typer.Option(
            "--quality-report", help="The site's quality.json, summarised in the description."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build a site's description from its store: aggregates only, small cells withheld."""
    from cardiobox.catalogue.build import build_description
    from cardiobox.catalogue.profile import load_profile
    from cardiobox.catalogue.rdf import to_graph, to_jsonld
    from cardiobox.catalogue.validate import validate

    try:
        site_profile = load_profile(_profile_path(site, profile))
        description = build_description(
            site, site_profile, policy, features, quality_report=quality_report
        )
        graph = to_graph(description)
        report = validate(graph)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix.lower() in (".jsonld", ".json"):
            out_path.write_text(to_jsonld(graph), encoding="utf-8")
        else:
            out_path.write_text(graph.serialize(format="turtle"), encoding="utf-8")
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    summary = {
        "out": str(out_path),
        "site": description.site,
        "patients": description.number_of_unique_individuals,
        "variables": len(description.variables),
        "min_cell_count": description.min_cell_count,
        "conforms": report.conforms,
        "defaults_applied": site_profile.defaults_applied,
    }
    if as_json:
        emit_json(summary)
    else:
        patients = description.number_of_unique_individuals
        console.print(
            f"wrote {escape(str(out_path))}: {description.site}, "
            f"{'<' + str(description.min_cell_count) if patients is None else patients} patients, "
            f"{len(description.variables)} variables (counts below "
            f"{description.min_cell_count} withheld)"
        )
        if site_profile.defaults_applied:
            console.print(
                "[yellow]defaults applied[/] (not in the profile): "
                + ", ".join(site_profile.defaults_applied)
            )
    if not report.conforms:
        console.print(f"[red]the description does not conform:[/] {escape(report.summary())}")
        raise typer.Exit(1)


@app.command("validate")
def validate_cmd(
    file: Annotated[Path, typer.Argument(help="A description or catalogue: .ttl, .jsonld, .rdf.")],
    as_json: JsonOption = False,
) -> None:
    """Validate against the DCAT-AP, HealthDCAT-AP and cardiobox SHACL shapes.

    Exits with status 1 when the file does not conform, 2 when it cannot be read.
    """
    from cardiobox.catalogue.validate import validate

    try:
        report = validate(file)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.violations:
            t = Table(title=f"SHACL results of {file.name}", title_justify="left")
            for col in ("severity", "focus node", "path", "message"):
                t.add_column(col, overflow="fold")
            for v in report.violations:
                sev = f"[red]{v.severity}[/]" if v.severity == "Violation" else v.severity
                t.add_row(sev, escape(v.focus_node), escape(v.path or ""), escape(v.message))
            out.print(t)
        verdict = "[green]conforms[/]" if report.conforms else "[red]does not conform[/]"
        console.print(f"{escape(str(file))} {verdict}")
    if not report.conforms:
        raise typer.Exit(1)


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="A description or catalogue: .ttl, .jsonld, .rdf.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonld, csvw or mica.")],
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="jsonld: a file; csvw: a folder; mica: an .xlsx file or a folder for CSVs.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Export descriptions as JSON-LD, CSV-W (variable dictionary) or an Opal/Mica dictionary."""
    from cardiobox.catalogue.export import write_csvw, write_mica
    from cardiobox.catalogue.rdf import from_graph, parse_rdf, to_jsonld

    if fmt not in EXPORT_FORMATS:
        raise fail(
            CardioboxError(f"--format must be one of {', '.join(EXPORT_FORMATS)}", "bad-option"),
            as_json,
        )
    try:
        graph = parse_rdf(file)
        if fmt == "jsonld":
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(to_jsonld(graph), encoding="utf-8")
            written = [out_path]
        else:
            descriptions = from_graph(graph)
            if not descriptions:
                raise InputError(
                    "no dcat:Dataset in the file",
                    rule="no-dataset",
                    location=Location(file=str(file)),
                )
            writer = write_csvw if fmt == "csvw" else write_mica
            written = writer(descriptions, out_path)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json({"format": fmt, "files": [str(p) for p in written]})
        return
    console.print(f"wrote {', '.join(escape(str(p)) for p in written)}")


@app.command()
def publish(
    file: Annotated[
        Path, typer.Argument(help="A description (.ttl, .jsonld) or a site store to build from.")
    ],
    hub: Annotated[Path, typer.Option("--hub", help="The hub catalogue folder (created).")],
    site: Annotated[str, typer.Option("--site", help="The publishing site's name.")],
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Site profile, when FILE is a store.")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Site policy, when FILE is a store.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a site's description to a hub catalogue: validated, versioned, or refused.

    Exits with status 1 when the description is refused (the previous version stays).
    """
    from cardiobox.catalogue.hub import STORE_SUFFIXES, Hub

    try:
        catalogue = Hub(hub)
        if file.suffix.lower() in STORE_SUFFIXES and profile is None:
            profile = _profile_path(file, None)
        result = catalogue.publish(site, file, profile=profile, policy=policy)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(result.to_dict())
    elif result.accepted:
        console.print(f"[green]{escape(site)}[/]: {escape(result.message)}")
    else:
        console.print(f"[red]{escape(site)}[/]: {escape(result.message)}")
    if not result.accepted:
        raise typer.Exit(1)


# The search command lives in its own module (it loads the encoder only when asked).
from cardiobox.cli.catalogue_search_cmd import search  # noqa: E402

app.command("search")(search)
