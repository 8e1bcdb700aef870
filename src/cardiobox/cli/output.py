"""Shared output helpers: rich console for people, one JSON object for programs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cardiobox.errors import CardioboxError

#: Human-facing output goes to stderr so that ``--json`` keeps stdout clean.
console = Console(stderr=True, highlight=False)
#: Tables and views meant to be read go to stdout.
out = Console(highlight=False)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (and nothing else)."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress display on stderr; disabled (invisible) when ``enabled`` is false."""
    bar = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with bar:
        yield bar


def fail(exc: CardioboxError | str, as_json: bool = False, code: int = 2) -> typer.Exit:
    """Report an error clearly and return the ``typer.Exit`` to raise.

    Parameters
    ----------
    exc : CardioboxError or str
        The error.
    as_json : bool
        Print ``{"error": ..., "rule": ..., "location": ...}`` on stdout as well.
    code : int
        Process exit status.
    """
    if as_json:
        if isinstance(exc, CardioboxError):
            loc = exc.location
            emit_json(
                {
                    "error": exc.message,
                    "rule": exc.rule,
                    "location": {k: v for k, v in vars(loc).items() if v is not None},
                }
            )
        else:
            emit_json({"error": str(exc)})
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(code)
