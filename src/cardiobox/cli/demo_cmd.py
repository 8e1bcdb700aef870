"""`cardiobox demo`: the guided tour."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cardiobox.cli.output import console, emit_json, fail
from cardiobox.errors import CardioboxError


def demo(
    workdir: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo's site store.")
    ] = Path(".demo"),
    patients: Annotated[
        int, typer.Option("--patients", help="Patients per demo hospital (10,000 for full size).")
    ] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the tour's summary as one JSON object.")
    ] = False,
) -> None:
    """Run the guided tour on the demo data shipped with cardiobox.

    Builds a hospital site store from a FHIR R4 bulk export, shows validation, conversion,
    quarantine and SQL-on-FHIR views, and prints the command behind each step.
    """
    from cardiobox.demo.tour import run_tour

    printer = Console(stderr=True, quiet=True) if as_json else console
    try:
        summary = run_tour(workdir, printer, n_patients=patients)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(summary)
