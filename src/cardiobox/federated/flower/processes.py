"""Start and stop Flower's SuperLink and SuperNodes as subprocesses (hub, sites, tests).

Every process runs with telemetry and Flower's update check off, without installing app
dependencies at run time, with the Flower commands of this Python environment first on its
``PATH`` (the SuperLink and SuperNodes start ``flower-superexec``, ``flwr-serverapp`` and
``flwr-clientapp`` by name) and with its own ``FLWR_HOME``. Each writes its output to a log file
in its working folder. :meth:`FlowerProcess.stop` ends the process and the processes it started
(found by parent id), by PID, and waits for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from cardiobox.errors import CardioboxError
from cardiobox.federated.flower.certs import ServerCertificates

if TYPE_CHECKING:
    from cardiobox.federated.flower.site import SiteConfig

#: The name of the SuperLink connection in the ``flwr`` configuration cardiobox writes.
CONNECTION = "cardiobox"
LOOPBACK = "127.0.0.1"


class FlowerProcessError(CardioboxError):
    """A Flower process that did not start, or a ``flwr`` command that failed."""


def flower_bin(command: str) -> str:
    """The path of a Flower command installed beside this Python (else the bare name)."""
    candidate = Path(sys.executable).parent / command
    return str(candidate) if candidate.exists() else command


def flower_env(flwr_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Flower process: telemetry, update check and installs off."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            # SuperExec looks for new tasks this often (Flower's default is 1 s).
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every live process whose parent chain leads to ``pid`` (Linux ``/proc``; else none)."""
    parents: dict[int, int] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in found]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has ended: only its parent has not read its status yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class FlowerProcess:
    """A Flower process started by cardiobox.

    Parameters
    ----------
    name : str
        What it is, for messages (``superlink``, ``supernode hospital_a``...).
    popen : subprocess.Popen
        The process.
    log : Path
        The file its output goes to.
    address : str
        The address it serves (SuperLink: its Fleet/Control API; SuperNode: the SuperLink's).
    """

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    address: str
    _log_file: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def descendants(self) -> list[int]:
        """The ids of the live processes it started, and those they started."""
        return _children(self.pid) if self.alive() else []

    def log_text(self) -> str:
        """Everything the process has written so far."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """End the process and those it started: SIGTERM, then SIGKILL after ``grace`` s."""
        kids = _children(self.pid) if self.alive() else []
        if self.alive():
            _signal(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        self._end(kids, grace)

    def kill(self) -> None:
        """Kill the process and those it started at once (SIGKILL), as a crash would."""
        kids = _children(self.pid) if self.alive() else []
        for pid in [self.pid, *kids]:
            _signal(pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)
        self._end(kids, 1.0)

    def _end(self, kids: list[int], grace: float) -> None:
        for pid in kids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in kids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        close = getattr(self._log_file, "close", None)
        if close is not None:
            close()

    def fail(self, why: str) -> FlowerProcessError:
        """An error saying the process failed, with the end of its log."""
        tail = "\n".join(self.log_text().splitlines()[-20:])
        return FlowerProcessError(f"{self.name}: {why}; its log ends:\n{tail}", "flower-process")


def stop_all(processes: list[FlowerProcess], grace: float = 10.0) -> None:
    """Stop several processes at once (SIGTERM to all, then wait), the last started first."""
    kids = {p.pid: _children(p.pid) if p.alive() else [] for p in processes}
    for p in reversed(processes):
        if p.alive():
            _signal(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in reversed(processes):
        try:
            p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(p.pid, signal.SIGKILL)
            p.popen.wait(timeout=grace)
    for p in processes:
        p._end(kids[p.pid], 2.0)


def spawn(
    name: str, args: list[str], workdir: Path, env: dict[str, str], address: str
) -> FlowerProcess:
    """Start ``args`` in ``workdir``, its output to ``<name>.log`` there."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name.replace(' ', '-')}.log"
    out = log.open("ab")
    # A session of its own: a Ctrl-C in the terminal of `cardiobox hub start` reaches only
    # cardiobox, which then stops the process (and what it started) in order.
    popen = subprocess.Popen(
        args, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    return FlowerProcess(name, popen, log, address, out)


def _wait(process: FlowerProcess, ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.fail(f"exited with status {process.popen.returncode} before {what}")
        if ready():
            return
        time.sleep(0.1)
    process.stop()
    raise process.fail(f"not {what} after {timeout:g} s")


def _https_ok(url: str, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_superlink(
    workdir: str | Path,
    certs: ServerCertificates,
    *,
    host: str = LOOPBACK,
    port: int | None = None,
    node_auth: bool = True,
    timeout: float = 60.0,
) -> FlowerProcess:
    """Start a SuperLink with TLS (and SuperNode authentication) and wait until it serves.

    Parameters
    ----------
    workdir : str or Path
        Its working folder: the log, and ``flwr-home/`` where the ServerApp installs the app.
    certs : ServerCertificates
        The CA, certificate and key it serves TLS with.
    host : str
        The address to listen on (default loopback).
    port : int, optional
        The port of its HTTPS API (Fleet, Control and Runtime; default: a free one).
    node_auth : bool
        Accept only SuperNodes whose public key was registered (default true).
    timeout : float
        Seconds to wait for it to serve.

    Raises
    ------
    FlowerProcessError
        When it exits or does not serve in time (with the end of its log).
    """
    work = Path(workdir)
    port = port or free_port(host)
    args = [
        flower_bin("flower-superlink"),
        "--ssl-ca-certfile", str(certs.ca.resolve()),
        "--ssl-certfile", str(certs.cert.resolve()),
        "--ssl-keyfile", str(certs.key.resolve()),
        "--host", host,
        "--port", str(port),
        "--isolation", "subprocess",
        "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    if node_auth:
        args.append("--enable-supernode-auth")
    address = f"{host}:{port}"
    process = spawn("superlink", args, work, flower_env(work / "flwr-home"), address)
    url_host = LOOPBACK if host in ("0.0.0.0", "") else host
    _wait(
        process,
        lambda: _https_ok(f"https://{url_host}:{port}/health", certs.ca),
        timeout,
        "serving",
    )
    return process


def cli_home(directory: str | Path, superlink: str, root_cert: str | Path) -> Path:
    """A ``FLWR_HOME`` whose ``flwr`` configuration connects to ``superlink`` over TLS."""
    home = Path(directory)
    home.mkdir(parents=True, exist_ok=True)
    ca = Path(root_cert).resolve()
    for value, what in ((superlink, "SuperLink address"), (str(ca), "root certificate path")):
        if any(c in value for c in '"\\\n'):
            raise ValueError(f"{what} {value!r} must not hold quotes, backslashes or newlines")
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "{superlink}"\nroot-certificates = "{ca}"\n',
        encoding="utf-8",
    )
    return home


def _flwr_command(args: tuple[str, ...]) -> list[str]:
    return [flower_bin("flwr"), *args, "--format", "json"]


def _flwr_output(
    args: tuple[str, ...], code: int, stdout: bytes, stderr: bytes
) -> dict[str, object]:
    text = stdout.decode("utf-8", errors="replace")
    try:
        obj = orjson.loads(text[text.find("{") :]) if "{" in text else None
    except orjson.JSONDecodeError:
        obj = None
    if code != 0 or not isinstance(obj, dict) or obj.get("success") is False:
        err = stderr.decode("utf-8", errors="replace").strip()
        detail = obj.get("error-message") if isinstance(obj, dict) else None
        raise FlowerProcessError(
            f"`flwr {' '.join(args)}` failed (status {code}): "
            f"{detail or err[-2000:] or text[-2000:]}",
            "flwr-command",
        )
    return obj


def flwr(home: Path, *args: str, timeout: float = 120.0) -> dict[str, object]:
    """Run ``flwr ARGS --format json`` against the connection in ``home``; its JSON output.

    Raises
    ------
    FlowerProcessError
        When the command fails or does not print JSON.
    """
    done = subprocess.run(
        _flwr_command(args), env=flower_env(home), capture_output=True, timeout=timeout
    )
    return _flwr_output(args, done.returncode, done.stdout, done.stderr)


def register_nodes(home: Path, keys: dict[str, Path], timeout: float = 120.0) -> dict[str, int]:
    """Register SuperNode public keys (OpenSSH) under their site names, all at once.

    Parameters
    ----------
    home : Path
        The ``FLWR_HOME`` of the connection to the SuperLink (see :func:`cli_home`).
    keys : dict of str to Path
        Site name → its SuperNode's public key file.
    timeout : float
        Seconds to wait for the registrations.

    Returns
    -------
    dict of str to int
        Site name → its node id.

    Raises
    ------
    FlowerProcessError
        Naming the site whose registration failed.
    """
    calls = {
        site: ("supernode", "register", str(Path(key).resolve()), CONNECTION, "--name", site)
        for site, key in keys.items()
    }
    running = {
        site: subprocess.Popen(
            _flwr_command(args),
            env=flower_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for site, args in calls.items()
    }
    ids: dict[str, int] = {}
    try:
        for site, popen in running.items():
            stdout, stderr = popen.communicate(timeout=timeout)
            out = _flwr_output(calls[site], popen.returncode, stdout, stderr)
            ids[site] = int(str(out["node-id"]))
    finally:
        for popen in running.values():
            if popen.poll() is None:
                popen.kill()
                popen.wait()
    return ids


def start_supernode(
    config: SiteConfig, logdir: str | Path, *, wait: bool = True, timeout: float = 60.0
) -> FlowerProcess:
    """Start a site in the background: its process runs its SuperNode and its executor.

    Parameters
    ----------
    config : SiteConfig
        The site (see :class:`cardiobox.federated.flower.site.SiteConfig`).
    logdir : str or Path
        Where to write the site's log and its config file.
    wait : bool
        Wait until the SuperNode has connected (default true; else see
        :func:`wait_connected`).
    timeout : float
        Seconds to wait for it to connect.

    Raises
    ------
    FlowerProcessError
        When it exits or does not connect in time (with the end of its log).
    """
    from cardiobox.federated.flower.site import check_site

    check_site(config)
    folder = Path(logdir)
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / f"site-{config.site}.json"
    config_file.write_bytes(config.to_json())
    args = [sys.executable, "-m", "cardiobox.federated.flower.site", str(config_file)]
    home = folder / "flwr-home"
    process = spawn(f"site {config.site}", args, folder, flower_env(home), config.superlink)
    if wait:
        wait_connected(process, timeout)
    return process


def wait_connected(process: FlowerProcess, timeout: float = 60.0) -> None:
    """Wait until a SuperNode has connected to its SuperLink (it logs its node id then).

    Raises
    ------
    FlowerProcessError
        When it exits or does not connect in time (a key not registered at the hub, a
        certificate it does not trust...), with the end of its log.
    """
    _wait(process, lambda: "SuperNode ID:" in process.log_text(), timeout, "connected")
