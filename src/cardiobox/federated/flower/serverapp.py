"""The hub half on Flower's deployment runtime: a ServerApp that runs one cardiobox task.

The run config (``flwr run --run-config``; see :mod:`cardiobox.federated.flower.submit`) says
what to run and where to write the outcome:

``task``
    The task's name (``count``, ``describe``...).
``params``
    The task's parameters as a JSON object.
``report``
    The path, on the hub's machine, of the JSON report written when the run ends.
``min-sites``
    Stop when fewer sites remain (0: the task's default).
``timeout``
    Seconds each site has to answer one request.

The report is ``{"cardiobox_report": 1, "status": "ok" | "error", "error": {"message", "rule"}
or null, "report": RunReport.to_dict() or null, "excluded": {node id: why}}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from flwr.app import Context, UserConfig
from flwr.serverapp import Grid, ServerApp

from cardiobox.errors import CardioboxError
from cardiobox.federated.flower.transport import FlowerTransport
from cardiobox.federated.hub import Hub, RunError

REPORT_VERSION = 1


class RunConfigError(CardioboxError):
    """A run config the ServerApp cannot use."""


def _get(config: UserConfig, key: str, kind: type | tuple[type, ...]) -> Any:
    value = config.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RunConfigError(
            f"run config {key!r} is missing or of the wrong type (got {value!r})", "bad-run-config"
        )
    return value


def parse_run_config(config: UserConfig) -> tuple[str, dict[str, Any], Path, int | None, float]:
    """(task, params, report path, min_sites, timeout) from a run config.

    Raises
    ------
    RunConfigError
        Naming the key that is missing or malformed.
    """
    task = _get(config, "task", str)
    try:
        params = orjson.loads(_get(config, "params", str))
    except orjson.JSONDecodeError as exc:
        raise RunConfigError(f"run config 'params' is not JSON: {exc}", "bad-run-config") from exc
    if not isinstance(params, dict):
        raise RunConfigError("run config 'params' must be a JSON object", "bad-run-config")
    report = _get(config, "report", str)
    if not report:
        raise RunConfigError("run config 'report' must name the report file", "bad-run-config")
    min_sites = int(_get(config, "min-sites", int))
    timeout = float(_get(config, "timeout", (int, float)))
    if timeout <= 0:
        raise RunConfigError("run config 'timeout' must be > 0", "bad-run-config")
    return task, params, Path(report), (min_sites or None), timeout


def write_report(path: Path, outcome: dict[str, Any]) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps({"cardiobox_report": REPORT_VERSION, **outcome}))
    os.replace(tmp, path)


def _error(message: str, rule: str) -> dict[str, Any]:
    error = {"message": message, "rule": rule}
    return {"status": "error", "error": error, "report": None, "excluded": {}}


def run_task(grid: Grid, config: UserConfig) -> dict[str, Any]:
    """Run the task the run config names over the grid; the report's content."""
    task, params, _, min_sites, timeout = parse_run_config(config)
    transport = FlowerTransport(grid, hello_timeout=timeout)
    try:
        report = Hub(transport, timeout=timeout, min_sites=min_sites).run(task, params)
        outcome: dict[str, Any] = {"status": "ok", "error": None, "report": report.to_dict()}
    except RunError as exc:
        outcome = {**_error(exc.message, exc.rule), "report": exc.report.to_dict()}
    except CardioboxError as exc:  # parameters the task rejects: nothing was sent
        outcome = _error(exc.message, exc.rule)
    return {**outcome, "excluded": {str(k): v for k, v in transport.excluded.items()}}


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the task and write its report where the run config says (also when it fails)."""
    report_path = str(context.run_config.get("report", ""))
    failure: Exception | None = None
    try:
        outcome = run_task(grid, context.run_config)
    except CardioboxError as exc:
        outcome = _error(exc.message, exc.rule)
    except Exception as exc:  # a bug: say so in the report, and let Flower mark the run failed
        outcome, failure = _error(f"the hub failed: {type(exc).__name__}: {exc}", "internal"), exc
    if report_path:
        write_report(Path(report_path), outcome)
    if failure is not None:
        raise failure
