"""A site's process on Flower's deployment runtime: its SuperNode and the executor beside it.

:func:`run_site` checks the site's files, starts ``flower-supernode`` (TLS to the SuperLink,
authenticated by the site's key, ``--isolation process``, its Runtime API on the loopback) as a
child, and serves the SuperNode's tasks in this process with cardiobox's ClientApp
(:mod:`cardiobox.federated.flower.executor`) until it receives SIGTERM or SIGINT, or the
SuperNode exits; then it stops the SuperNode. ``cardiobox node start`` runs it in the
foreground; :func:`cardiobox.federated.flower.processes.start_supernode` runs it in the
background as ``python -m cardiobox.federated.flower.site CONFIG.json``.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import orjson

from cardiobox.errors import CardioboxError, InputError, Location
from cardiobox.federated.flower.processes import LOOPBACK, flower_bin, flower_env, free_port


@dataclass(frozen=True)
class SiteConfig:
    """How a site joins a federation.

    Parameters
    ----------
    site : str
        The site's name (the name its public key is registered under at the hub).
    source : Path
        The site store or analysis table it answers from.
    superlink : str
        The SuperLink's ``host:port``.
    root_cert : Path
        The CA certificate that signed the SuperLink's TLS certificate.
    auth_key : Path
        The SuperNode's private key (OpenSSH, NIST curve), whose public half the hub registered.
    policy : Path, optional
        The site's policy file (the default policy when absent).
    state : Path, optional
        The audit log and ledger file (default: beside the source).
    workdir : Path, optional
        Where Flower keeps its files for this site (default: ``<source>.cardiobox-flower/``).
    runtime_port : int, optional
        The loopback port of the SuperNode's Runtime API (default: a free one).
    """

    site: str
    source: Path
    superlink: str
    root_cert: Path
    auth_key: Path
    policy: Path | None = None
    state: Path | None = None
    workdir: Path | None = None
    runtime_port: int | None = None

    def to_json(self) -> bytes:
        """The config as JSON (paths as strings)."""
        return orjson.dumps({k: str(v) if v is not None else None for k, v in asdict(self).items()})

    @staticmethod
    def from_json(data: bytes) -> SiteConfig:
        """Inverse of :meth:`to_json`."""
        obj = orjson.loads(data)

        def path(key: str) -> Path | None:
            return Path(obj[key]) if obj.get(key) else None

        return SiteConfig(
            site=str(obj["site"]),
            source=Path(obj["source"]),
            superlink=str(obj["superlink"]),
            root_cert=Path(obj["root_cert"]),
            auth_key=Path(obj["auth_key"]),
            policy=path("policy"),
            state=path("state"),
            workdir=path("workdir"),
            runtime_port=int(obj["runtime_port"]) if obj.get("runtime_port") else None,
        )


def check_site(config: SiteConfig) -> None:
    """Check the site's files before anything starts (exists, readable, policy valid).

    Raises
    ------
    InputError
        Naming the missing or invalid file.
    """
    from cardiobox.privacy.policy import load_policy

    files = {"source": config.source, "root certificate": config.root_cert,
             "auth key": config.auth_key}  # fmt: skip
    for what, path in files.items():
        if not path.is_file():
            raise InputError(f"{what}: no such file", "missing-input", Location(file=str(path)))
    if config.policy is not None:
        load_policy(config.policy)
    if not config.site or any(c in config.site for c in "'\n"):
        raise InputError(f"site name {config.site!r} must be non-empty, without quotes", "bad-site")


def node_config(config: SiteConfig) -> str:
    """The SuperNode's ``--node-config`` (TOML literal strings, read by the ClientApp).

    Raises
    ------
    InputError
        For a path with a single quote or a newline (a TOML literal string cannot hold them).
    """
    values = {
        "site": config.site,
        "source": str(config.source.resolve()),
        "policy": str(config.policy.resolve()) if config.policy else "",
        "state": str(config.state.resolve()) if config.state else "",
    }
    for key, value in values.items():
        if "'" in value or "\n" in value:
            raise InputError(f"{key} {value!r} must not hold a quote or a newline", "bad-path")
    return " ".join(f"{k}='{v}'" for k, v in values.items())


def _workdir(config: SiteConfig) -> Path:
    if config.workdir is not None:
        return config.workdir
    return config.source.with_name(config.source.name + ".cardiobox-flower")


def supernode_command(config: SiteConfig, runtime_port: int) -> list[str]:
    """The ``flower-supernode`` command line of the site."""
    return [
        flower_bin("flower-supernode"),
        "--superlink", config.superlink,
        "--root-certificates", str(config.root_cert.resolve()),
        "--auth-supernode-private-key", str(config.auth_key.resolve()),
        "--node-config", node_config(config),
        "--isolation", "process",
        "--host", LOOPBACK,
        "--port", str(runtime_port),
    ]  # fmt: skip


def _serving(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(f"http://{LOOPBACK}:{port}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)


def run_site(config: SiteConfig, stop: threading.Event | None = None) -> int:
    """Run the site until stopped; 0 when stopped, 1 when the SuperNode exited by itself.

    Parameters
    ----------
    config : SiteConfig
        The site.
    stop : threading.Event, optional
        Set it to stop the site (SIGTERM and SIGINT set it too when this runs in the main
        thread).

    Raises
    ------
    InputError
        For missing or invalid site files (checked before anything starts).
    """
    from cardiobox.federated.flower import clientapp, executor

    check_site(config)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _on_signal(_sig: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    port = config.runtime_port or free_port()
    work = _workdir(config)
    work.mkdir(parents=True, exist_ok=True)
    supernode = subprocess.Popen(
        supernode_command(config, port),
        env=flower_env(work / "flwr-home"),
        cwd=work,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # stopped by this process, in order, not by the terminal
    )
    try:
        while not _serving(port):
            if supernode.poll() is not None or stop.is_set():
                return 0 if stop.is_set() else 1
            time.sleep(0.1)
        clientapp.serve_in_this_process()
        executor.serve(
            f"{LOOPBACK}:{port}", clientapp.app, stop, alive=lambda: supernode.poll() is None
        )
        return 0 if stop.is_set() else 1
    finally:
        _stop(supernode)


def main(argv: list[str] | None = None) -> int:
    """``python -m cardiobox.federated.flower.site CONFIG.json`` (see ``start_supernode``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cardiobox.federated.flower.site CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll
    try:
        return run_site(SiteConfig.from_json(Path(args[0]).read_bytes()))
    except CardioboxError as exc:
        print(f"cardiobox site: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
