"""Submit a cardiobox task to a SuperLink with ``flwr run`` and read back its report.

The run is the Flower App shipped in ``cardiobox/federated/flower/app`` (a ``pyproject.toml``
whose components are :mod:`~cardiobox.federated.flower.serverapp` and
:mod:`~cardiobox.federated.flower.clientapp`); the task, its parameters and the report's path
travel as the run config. The ServerApp runs at the hub, beside the SuperLink, and writes the
report there: this function must run on the hub's machine.

Example
-------
>>> report = run_on_flower("count", {"where": "age > 60"}, "127.0.0.1:9093",
...                        root_cert="certs/ca.crt")                        # doctest: +SKIP
>>> report.result["per_site"]                                               # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from cardiobox.errors import CardioboxError
from cardiobox.federated.flower.processes import CONNECTION, cli_home, flwr
from cardiobox.federated.hub import RunError, RunReport
from cardiobox.federated.task import TaskError, get_task

#: Seconds between two looks at the run's status while its report is not there.
STATUS_EVERY = 15.0


class FlowerRunError(CardioboxError):
    """A Flower run that ended without a cardiobox report (the ServerApp failed, or timed out)."""


@dataclass(frozen=True)
class Submitted:
    """A run submitted to a SuperLink.

    Parameters
    ----------
    run_id : int
        Flower's run id.
    report : Path
        Where the ServerApp writes the report.
    home : Path
        The ``FLWR_HOME`` of the ``flwr`` commands that reach the SuperLink.
    """

    run_id: int
    report: Path
    home: Path


def _toml_value(value: str | int | float) -> str:
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return orjson.dumps(value).decode().replace("\x7f", "\\u007f")
    return repr(value)


def _app_dir(into: Path) -> Path:
    """A copy of the Flower App project (``flwr run`` builds its bundle from a folder)."""
    app = into / "app"
    app.mkdir(parents=True, exist_ok=True)
    source = resources.files("cardiobox.federated.flower").joinpath("app", "pyproject.toml")
    (app / "pyproject.toml").write_bytes(source.read_bytes())
    return app


def submit(
    task: str,
    params: dict[str, Any],
    superlink: str,
    root_cert: str | Path,
    *,
    workdir: str | Path,
    min_sites: int | None = None,
    timeout: float = 120.0,
) -> Submitted:
    """Start a run of ``task`` at the SuperLink; do not wait for it.

    Parameters
    ----------
    task : str
        The task's name.
    params : dict
        Its parameters (checked here first, as the hub will).
    superlink : str
        The SuperLink's ``host:port``.
    root_cert : str or Path
        The CA certificate of the SuperLink's TLS certificate.
    workdir : str or Path
        A folder for the ``flwr`` configuration, the app copy and the report.
    min_sites : int, optional
        Stop when fewer sites remain (the task's default when absent).
    timeout : float
        Seconds each site has to answer one request.

    Raises
    ------
    TaskError
        For parameters the task rejects.
    FlowerProcessError
        When ``flwr run`` fails (SuperLink unreachable, TLS refused...).
    """
    get_task(task).parse(params)
    work = Path(workdir)
    home = cli_home(work / "flwr-home", superlink, root_cert)
    report = (work / f"report-{uuid.uuid4().hex}.json").resolve()
    config: dict[str, str | int | float] = {
        "task": task,
        "params": orjson.dumps(params).decode(),
        "report": str(report),
        "min-sites": int(min_sites or 0),
        "timeout": float(timeout),
    }
    run_config = work / f"run-{report.stem}.toml"
    run_config.write_text(
        "".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items()), encoding="utf-8"
    )
    out = flwr(home, "run", str(_app_dir(work)), CONNECTION, "--run-config", str(run_config))
    return Submitted(int(str(out["run-id"])), report, home)


def report_from_dict(obj: dict[str, Any]) -> RunReport:
    """A :class:`RunReport` from its :meth:`RunReport.to_dict` form."""
    return RunReport(
        run_id=obj["run_id"],
        task=obj["task"],
        params=obj["params"],
        result=obj.get("result"),
        sites=list(obj.get("sites", [])),
        refused=dict(obj.get("refused", {})),
        failed=dict(obj.get("failed", {})),
        rounds=int(obj.get("rounds", 0)),
        seconds=float(obj.get("seconds", 0.0)),
        rho=dict(obj.get("rho_spent", {})),
    )


def _status(run: Submitted) -> str:
    out = flwr(run.home, "list", CONNECTION, "--run-id", str(run.run_id))
    runs = out.get("runs")
    if isinstance(runs, list) and runs and isinstance(runs[0], dict):
        return f"{runs[0].get('status', '?')} ({runs[0].get('status-details', '')})"
    return "unknown"


def wait_report(run: Submitted, wait: float = 3600.0) -> RunReport:
    """Wait for a submitted run's report and return it.

    Raises
    ------
    RunError
        When the run stopped (too few sites...); its ``report`` says why.
    TaskError
        When the hub rejected the parameters.
    FlowerRunError
        When the run ended without a report, or none came within ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    next_status = time.monotonic() + STATUS_EVERY
    while not run.report.exists():
        now = time.monotonic()
        if now >= deadline:
            raise FlowerRunError(
                f"no report from run {run.run_id} after {wait:g} s (status {_status(run)})",
                "no-report",
            )
        if now >= next_status:
            status = _status(run)
            if status.startswith("finished") and not run.report.exists():
                time.sleep(1.0)  # the report is written before the run finishes; look again
                if not run.report.exists():
                    raise FlowerRunError(
                        f"run {run.run_id} ended without a report: {status}", "no-report"
                    )
            next_status = time.monotonic() + STATUS_EVERY
        time.sleep(0.2)
    outcome = orjson.loads(run.report.read_bytes())
    error = outcome.get("error") or {}
    report = outcome.get("report")
    if outcome.get("status") == "ok" and isinstance(report, dict):
        return report_from_dict(report)
    message = str(error.get("message", "the run failed"))
    rule = str(error.get("rule", "error"))
    if isinstance(report, dict):
        raise RunError(message, rule, report_from_dict(report))
    if rule in ("bad-params", "unknown-task"):
        raise TaskError(message, rule)
    raise FlowerRunError(message, rule)


def run_on_flower(
    task: str,
    params: dict[str, Any],
    superlink: str,
    root_cert: str | Path,
    *,
    min_sites: int | None = None,
    timeout: float = 120.0,
    wait: float = 3600.0,
    workdir: str | Path | None = None,
) -> RunReport:
    """Run ``task`` on Flower's deployment runtime and return its report.

    Parameters
    ----------
    task : str
        ``count``, ``describe``, ``crosstab``, ``km``, ``logreg``, ``linreg``, ``cox``...
    params : dict
        The task's parameters.
    superlink : str
        The SuperLink's ``host:port`` (``cardiobox hub start`` prints it).
    root_cert : str or Path
        The CA certificate of the SuperLink's TLS certificate.
    min_sites : int, optional
        Stop when fewer sites remain (the task's default when absent).
    timeout : float
        Seconds each site has to answer one request.
    wait : float
        Seconds to wait for the whole run.
    workdir : str or Path, optional
        Where to keep the run's files (default: a temporary folder, removed afterwards).

    Raises
    ------
    TaskError
        For parameters the task rejects.
    RunError
        When too few sites remain (its ``report`` says why).
    FlowerRunError
        When the run ends without a report.
    """
    tmp = None if workdir is not None else tempfile.mkdtemp(prefix="cardiobox-flower-")
    work = Path(workdir if workdir is not None else str(tmp))
    try:
        run = submit(
            task, params, superlink, root_cert, workdir=work, min_sites=min_sites, timeout=timeout
        )
        return wait_report(run, wait)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
