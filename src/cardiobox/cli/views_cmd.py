"""`cardiobox views` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="views commands.", no_args_is_help=True)
