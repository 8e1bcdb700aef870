"""Entry point of the ``cardiobox`` command line."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

import cardiobox
from cardiobox import __version__

_PACKAGE = str(Path(cardiobox.__file__).parent)
_default_format = warnings.formatwarning

app = typer.Typer(
    name="cardiobox",
    help="Open toolbox for multi-site cardiology research.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cardiobox {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """cardiobox: harmonise hospital data into one cardiology data model and analyse it."""
    warnings.formatwarning = _format_warning


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """cardiobox's own warnings as ``warning: message`` lines (no source file and line).

    They are meant for the person at the terminal (a note in another language, a setting
    ignored); warnings raised by libraries keep Python's format.
    """
    if filename.startswith(_PACKAGE):
        return f"warning: {message}\n"
    return _default_format(message, category, filename, lineno, line)


def _register() -> None:
    # Imported here so that `cardiobox --help` stays fast and each group is one module.
    from cardiobox.cli import (
        catalogue_cmd,
        cdm_cmd,
        cohort_cmd,
        demo_cmd,
        fed_cmd,
        hub_cmd,
        ingest_cmd,
        nlp_cmd,
        node_cmd,
        quality_cmd,
        store_cmd,
        synth_cmd,
        views_cmd,
    )

    app.add_typer(store_cmd.app, name="store")
    app.add_typer(views_cmd.app, name="views")
    app.add_typer(cdm_cmd.app, name="cdm")
    app.add_typer(quality_cmd.app, name="quality")
    app.add_typer(ingest_cmd.app, name="ingest")
    app.add_typer(cohort_cmd.app, name="cohort")
    app.add_typer(fed_cmd.app, name="fed")
    app.add_typer(hub_cmd.app, name="hub")
    app.add_typer(node_cmd.app, name="node")
    app.add_typer(synth_cmd.app, name="synth")
    app.add_typer(nlp_cmd.app, name="nlp")
    app.add_typer(catalogue_cmd.app, name="catalogue")
    app.command("demo")(demo_cmd.demo)


_register()
