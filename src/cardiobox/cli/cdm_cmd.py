"""`cardiobox cdm`: the cardiology data model — variables, codes, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cdm import LANGUAGES, Category, load_dictionary
from cardiobox.cdm.validation import validate_resource
from cardiobox.cli.output import emit_json, fail, out
from cardiobox.errors import CardioboxError, InputError, Location

app = typer.Typer(
    help="The cardiology data model: list variables, look up codes, validate resources.",
    no_args_is_help=True,
)


@app.command()
def variables(
    category: Annotated[
        str | None,
        typer.Option(help=f"One of: {', '.join(c.value for c in Category)}."),
    ] = None,
    lang: Annotated[str, typer.Option(help=f"Display language: {', '.join(LANGUAGES)}.")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List the data model's variables with their codes and units."""
    d = load_dictionary()
    if category is not None and category not in {c.value for c in Category}:
        raise fail(f"unknown category {category!r}", as_json)
    if lang not in LANGUAGES:
        raise fail(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}", as_json)
    items = [v for v in d if category is None or v.category == category]
    if as_json:
        emit_json({"variables": [v.model_dump(mode="json") for v in items], "count": len(items)})
        return
    table = Table(title=f"{len(items)} variables", title_justify="left")
    for col in ("id", "category", "name", "codes", "unit", "range"):
        table.add_column(col, overflow="fold")
    for v in items:
        codes = "; ".join(
            f"{cs.system.rsplit('/', 1)[-1]} {', '.join(cs.codes[:6])}"
            + ("…" if len(cs.codes) > 6 else "")
            for cs in v.codes
        )
        rng = f"{v.range[0]:g}–{v.range[1]:g}" if v.range else ""
        table.add_row(v.id, v.category.value, v.name(lang), codes, v.unit or "", rng)
    out.print(table)


@app.command()
def lookup(
    system: Annotated[str, typer.Argument(help="Code system URI or alias (loinc, icd-10, atc).")],
    code: Annotated[str, typer.Argument(help="The code, e.g. 33762-6 or I50.9.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Which data-model variables a code belongs to."""
    hits = load_dictionary().find_all(system, code)
    if as_json:
        emit_json({"system": system, "code": code, "variables": [v.id for v in hits]})
        return
    if not hits:
        out.print(f"{system}|{code} is not in any data-model variable")
        raise typer.Exit(1)
    for v in hits:
        out.print(f"[bold]{v.id}[/] ({v.category.value}): {v.name('en')}")


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="A resource (.json) or NDJSON file.")],
    fhir_version: Annotated[str, typer.Option("--fhir-version", help="R4, R4B or R5.")] = "R5",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Validate resources against FHIR and the data model, without storing them."""
    try:
        if not path.exists():
            raise InputError(f"no such file: {path}", "missing-input", Location(file=str(path)))
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines() if path.suffix in (".ndjson", ".jsonl") else [text]
        results: list[dict[str, Any]] = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                results.append(
                    {
                        "line": i,
                        "ok": False,
                        "findings": [
                            {
                                "rule": "invalid-json",
                                "element": None,
                                "message": str(exc),
                                "severity": "error",
                            }
                        ],
                    }
                )
                continue
            checked = validate_resource(resource, fhir_version)
            results.append(
                {"line": i, "ok": checked.ok, "findings": [f.to_dict() for f in checked.findings]}
            )
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    n_bad = sum(not r["ok"] for r in results)
    if as_json:
        emit_json({"file": str(path), "items": len(results), "invalid": n_bad, "results": results})
    else:
        for r in results:
            for f in r["findings"]:
                colour = "red" if f["severity"] == "error" else "yellow"
                out.print(
                    f"{escape(path.name)}:{r['line']} [{colour}]{f['severity']}[/] "
                    f"{escape(f.get('element') or '')} {escape('[' + f['rule'] + ']')} "
                    f"{escape(f['message'])}",
                    soft_wrap=True,
                )
        out.print(f"{len(results)} checked, {n_bad} invalid")
    if n_bad:
        raise typer.Exit(1)
