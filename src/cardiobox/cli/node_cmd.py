"""`cardiobox node`: join a federation as a site (Flower SuperNode with cardiobox's executor)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cardiobox.cli.output import console, fail
from cardiobox.errors import CardioboxError

app = typer.Typer(
    help="A site of a federation: answers the hub's tasks under the site's own policy.",
    no_args_is_help=True,
)


@app.command()
def start(
    site: Annotated[
        str,
        typer.Option("--site", help="The site's name (its key is registered under it at the hub)."),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="The site store (.duckdb) or table (CSV, Parquet) to answer from."
        ),
    ],
    superlink: Annotated[
        str, typer.Option("--superlink", help="The hub's SuperLink address, HOST:PORT.")
    ],
    root_cert: Annotated[
        Path,
        typer.Option("--root-cert", help="The CA certificate of the hub's TLS certificate (PEM)."),
    ],
    auth_key: Annotated[
        Path,
        typer.Option(
            "--auth-key",
            help="The site's private key (OpenSSH; see `cardiobox node keygen`). The hub "
            "registers its public half.",
        ),
    ],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="The site's policy (YAML); the default policy when absent."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="The audit log and ledger file (default: beside the data)."),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Flower's files (default: DATA.cardiobox-flower/)."),
    ] = None,
) -> None:
    """Connect to the hub over TLS and answer its tasks until stopped (Ctrl-C)."""
    from cardiobox.federated.flower.site import SiteConfig, run_site

    config = SiteConfig(site, data, superlink, root_cert, auth_key, policy, state, workdir)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll
    console.print(
        f"site [bold]{escape(site)}[/] → SuperLink {escape(superlink)} (TLS, key "
        f"{escape(str(auth_key))}); Ctrl-C stops it"
    )
    try:
        code = run_site(config)
    except CardioboxError as exc:
        raise fail(exc) from None
    if code != 0:
        raise fail("the SuperNode stopped (see its log above)", code=code)


@app.command()
def keygen(
    site: Annotated[str, typer.Option("--site", help="The site's name (the files' stem).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The folder to write SITE.key and SITE.pub into.")
    ] = Path("."),
) -> None:
    """Make the site's SuperNode key pair; send only SITE.pub to the hub."""
    from cardiobox.federated.flower.certs import node_keypair

    try:
        keys = node_keypair(out, site)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(f"private key {escape(str(keys.private))} (keep it at the site)")
    console.print(f"public key  {escape(str(keys.public))} (send it to the hub)")
