"""Entry point of the ``cardiobox`` command line."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import typer

from cardiobox import __version__

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


def run(prog_name: str | None = None) -> None:
    """The ``cardiobox`` command: the app, with cardiobox's own warnings as one line each."""
    python_format = warnings.formatwarning
    shown: set[tuple[type[Warning], object]] = set()

    def format_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        return _format_warning(message, category, filename, lineno, line, python_format, shown)

    warnings.formatwarning = format_warning
    try:
        app(prog_name=prog_name)
    finally:
        warnings.formatwarning = python_format


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
    python_format: Callable[..., str] = warnings.formatwarning,
    shown: set[tuple[type[Warning], object]] | None = None,
) -> str:
    """A warning of one of cardiobox's own categories as a ``warning: message`` line.

    They are meant for the person at the terminal (a note in another language, a domain
    derived from data); other warnings, a library's even when raised from cardiobox's code,
    keep Python's format (file, line and category). A category marked ``once_per_command``
    (the same note, whichever step raised it) is shown once per category and ``once_key`` of
    the warning (say, the domain it is about): the first one is added to ``shown``; later ones
    come out as nothing.
    """
    if category.__module__.split(".")[0] == "cardiobox":
        if getattr(category, "once_per_command", False) and shown is not None:
            key = (category, getattr(message, "once_key", None))
            if key in shown:
                return ""
            shown.add(key)
        return f"warning: {message}\n"
    return str(python_format(message, category, filename, lineno, line))


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
