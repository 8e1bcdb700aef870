"""`cardiobox quality`: data-quality checks and report over site stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out, progress
from cardiobox.errors import CardioboxError, InputError, Location
from cardiobox.quality.engine import QualityResult, run_quality
from cardiobox.quality.report import write_report
from cardiobox.quality.spec import CATEGORIES, Check, load_checks
from cardiobox.quality.thresholds import load_thresholds

app = typer.Typer(
    help="Data quality: conformance, completeness and plausibility checks, and a report.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]
_SHOWN = 15


def _print_summary(result: QualityResult, html: Path, json_path: Path) -> None:
    summary = result.summary()
    table = Table(title="Data quality", title_justify="left")
    table.add_column("site")
    table.add_column("category")
    for col in ("fail", "pass", "n/a"):
        table.add_column(col, justify="right")
    for site in summary["sites"]:
        for cat in CATEGORIES:
            c = summary["by_site"][site]["by_category"][cat]
            table.add_row(
                escape(site),
                cat,
                f"[red]{c['fail']}[/]" if c["fail"] else "0",
                f"[green]{c['pass']}[/]",
                str(c["not-applicable"]),
            )
    out.print(table)
    failed = summary["failed"]
    if failed:
        worst = Table(title="Failing checks (worst first)", title_justify="left")
        worst.add_column("site", overflow="fold")
        worst.add_column("check", no_wrap=True, min_width=max(len(f["id"]) for f in failed))
        worst.add_column("severity")
        for col in ("failing", "%", "threshold"):
            worst.add_column(col, justify="right")
        for f in failed[:_SHOWN]:
            sev = f["severity"]
            worst.add_row(
                escape(f["site"]),
                escape(f["id"]),
                f"[red]{sev}[/]" if sev == "error" else f"[yellow]{sev}[/]",
                f"{f['numerator']:,} / {f['denominator']:,}",
                f"{f['pct_failing']:.2f}",
                f"{f['threshold']:g}",
            )
        out.print(worst)
        if len(failed) > _SHOWN:
            out.print(f"… and {len(failed) - _SHOWN} more in the report")
    else:
        out.print("[green]No check fails.[/]")
    console.print(f"wrote {html} and {json_path}")


@app.command()
def report(
    site: Annotated[
        list[Path],
        typer.Option(
            "--site", "-s", help="A site store (repeat for several sites).", show_default=False
        ),
    ],
    dest: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for quality.html and quality.json.", show_default=False
        ),
    ],
    thresholds: Annotated[
        Path | None,
        typer.Option(
            "--thresholds",
            help="YAML file overriding thresholds per category or check id (see docs/quality.md).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the data-quality checks over site stores and write an HTML and a JSON report.

    Exit status 0 even when checks fail (it is a report); 2 on errors such as a missing store.
    """
    try:
        checks = load_checks()
        limits = load_thresholds(thresholds, checks)
        with progress(enabled=not as_json) as bar:
            task = bar.add_task("checking", total=None, rate="")

            def on_progress(description: str, done: int, total: int) -> None:
                bar.update(task, description=description, completed=done, total=total)

            result = run_quality(site, thresholds=limits, checks=checks, progress=on_progress)
            bar.update(task, description="writing the report")
            html, json_path = write_report(result, dest)
            bar.update(task, description="done")
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    except OSError as exc:
        error = InputError(
            f"cannot write the report: {exc.strerror}",
            rule="output",
            location=Location(file=str(exc.filename or dest)),
        )
        raise fail(error, as_json) from None
    if as_json:
        emit_json({**result.summary(), "html": str(html), "json": str(json_path)})
    else:
        _print_summary(result, html, json_path)


@app.command("checks")
def list_checks(
    expand: Annotated[
        bool, typer.Option("--all", help="One row per generated check, not per generator.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the data-quality checks: id, category, subcategory, severity, threshold.

    Generated checks (one per variable, element or date source) are shown as one row per
    generator unless --all is given; --json always lists every check.
    """
    try:
        checks = load_checks()
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    limits = load_thresholds(None, checks)
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "category": c.category,
            "subcategory": c.subcategory,
            "severity": c.severity,
            "threshold": limits.resolve(c)[0],
            "generator": c.generator,
            "reads": list(c.reads),
            "description": c.description,
        }
        for c in checks.checks
    ]
    if as_json:
        emit_json({"checks": rows, "total": len(rows), "thresholds": dict(checks.thresholds)})
        return
    shown: list[tuple[str, Check]] = []
    for fam in checks.families:
        if fam.template is None or expand:
            shown += [(c.id, c) for c in fam.checks]
        else:
            shown.append((f"{fam.template.id} ({len(fam.checks)} checks)", fam.template))
    table = Table(title=f"{len(rows)} data-quality checks", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=max(len(label) for label, _ in shown))
    for col in ("category", "subcategory", "severity", "max %", "description"):
        table.add_column(col, overflow="fold")
    for label, c in shown:
        table.add_row(
            escape(label),
            c.category,
            c.subcategory,
            c.severity,
            f"{limits.resolve(c)[0]:g}",
            escape(c.description),
        )
    out.print(table)
