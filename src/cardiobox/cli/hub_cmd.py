"""`cardiobox hub`: run a federation's hub (Flower SuperLink, TLS and SuperNode authentication)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from cardiobox.cli.output import console, fail
from cardiobox.errors import CardioboxError

app = typer.Typer(
    help="The hub of a federation: sites connect to it, researchers submit tasks to it.",
    no_args_is_help=True,
)


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the hub as Ctrl-C does: the SuperLink too


@app.command()
def start(
    certs: Annotated[
        Path | None,
        typer.Option(
            "--certs",
            help="Folder with the TLS files ca.crt, server.pem and server.key (with --dev-certs: "
            "where to write new ones; default WORKDIR/certs).",
        ),
    ] = None,
    dev_certs: Annotated[
        bool,
        typer.Option(
            "--dev-certs",
            help="Make a self-signed CA and a certificate for localhost/127.0.0.1 and --host "
            "(tests and demos only).",
        ),
    ] = False,
    authorized_keys: Annotated[
        Path | None,
        typer.Option(
            "--authorized-keys",
            help="CSV with columns site,public_key (an OpenSSH key, or a .pub file): the only "
            "SuperNodes allowed to connect, registered under their site names.",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="The port sites and `flwr` connect to.")
    ] = 9093,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="The hub's logs and Flower configuration.")
    ] = Path(".cardiobox-hub"),
) -> None:
    """Start the SuperLink and keep it running until stopped (Ctrl-C)."""
    from cardiobox.federated.flower import certs as tls
    from cardiobox.federated.flower import processes

    folder = certs or workdir / "certs"
    try:
        if dev_certs:
            loopback = ("localhost", "127.0.0.1", "::1")
            extra = () if host in (*loopback, "0.0.0.0", "::") else (host,)
            files = tls.dev_certificates(folder, hosts=(*loopback, *extra))
        elif certs is not None:
            files = tls.ServerCertificates(
                folder / "ca.crt", folder / "server.pem", folder / "server.key"
            )
            missing = [str(p) for p in (files.ca, files.cert, files.key) if not p.is_file()]
            if missing:
                raise fail(f"--certs {folder}: missing {', '.join(missing)}")
        else:
            raise fail(
                "TLS is required: give --certs DIR (ca.crt, server.pem, server.key) or --dev-certs"
            )
        keys = (
            tls.read_authorized_keys(authorized_keys, workdir / "authorized")
            if authorized_keys
            else {}
        )
        superlink = processes.start_superlink(workdir, files, host=host, port=port)
    except CardioboxError as exc:
        raise fail(exc) from None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        home = processes.cli_home(workdir / "admin", superlink.address, files.ca).resolve()
        ca = files.ca.resolve()
        for site, node_id in processes.register_nodes(home, keys).items():
            console.print(f"registered site [bold]{escape(site)}[/] (SuperNode {node_id})")
        console.print(
            f"SuperLink on [bold]{superlink.address}[/] (TLS, CA {escape(str(ca))}; "
            f"log {escape(str(superlink.log.resolve()))})\n"
            f"sites:  cardiobox node start --site NAME --data FILE --superlink "
            f"{superlink.address} --root-cert {escape(str(ca))} --auth-key NAME.key\n"
            f"more sites:  FLWR_HOME={escape(str(home))} flwr supernode register NAME.pub "
            f"{processes.CONNECTION} --name NAME"
        )
        if not keys:
            console.print(
                "[yellow]warning:[/] no SuperNode key registered yet: no site can connect"
            )
        while superlink.alive():
            time.sleep(0.5)
        raise fail(superlink.fail("stopped"))
    except KeyboardInterrupt:
        console.print("stopping the SuperLink")
    except CardioboxError as exc:
        raise fail(exc) from None
    finally:
        superlink.stop()
