"""`cardiobox cdm` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="cdm commands.", no_args_is_help=True)
