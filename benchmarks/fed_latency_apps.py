"""Flower apps of ``benchmarks/fed_latency.py``, for the comparison only (not cardiobox's own).

- :data:`sim_server` and :data:`sim_client`: cardiobox's hub (``Hub`` over a
  ``FlowerTransport``) and a ClientApp answering with one ``SiteNode`` per virtual SuperNode,
  for Flower's Ray simulation (``flwr.simulation.run_simulation``). The ClientApp maps
  ``node_config["partition-id"]`` to a site CSV and keeps the node in a dict of the Ray actor's
  process, so that its masking key outlives the set-up round — which holds only while every
  message of a partition reaches the same actor: run the simulation with one actor.
- :data:`deploy_server`: cardiobox's ServerApp for the deployment runtime, unchanged but for
  the report, which also holds the per-round seconds (``RunReport.to_dict`` leaves them out).

The hub runs in the driver (simulation) or in Flower's ServerApp process (deployment), so what
it must run is set here by :func:`configure_simulation` or read from the run config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from cardiobox.errors import CardioboxError
from cardiobox.federated.flower import serverapp
from cardiobox.federated.flower.transport import FlowerTransport, pack, unpack
from cardiobox.federated.hub import Hub, RunError, RunReport
from cardiobox.federated.node import SiteNode
from cardiobox.federated.wire import WireError
from cardiobox.privacy.policy import SitePolicy

#: Environment variable naming the folder of the site CSVs (Ray actors inherit it).
DATA_ENV = "CARDIOBOX_FED_LATENCY_DATA"
#: Seconds between two polls of the in-memory SuperLink for replies. Flower's own
#: ``InMemoryGrid.send_and_receive`` waits 0.1 s; a short poll keeps our hub's share small.
SIM_POLL = 0.005


def site_name(index: int) -> str:
    """The name of site ``index`` (also its CSV's stem)."""
    return f"site_{index:02d}"


def report_dict(report: RunReport) -> dict[str, Any]:
    """A run report as JSON, with its per-round seconds."""
    return {**report.to_dict(), "round_seconds": list(report.round_seconds)}


# -- Ray simulation: hub ---------------------------------------------------------------------------
@dataclass
class SimulationJob:
    """What the simulation's ServerApp runs, and what it found."""

    task: str
    params: dict[str, Any]
    runs: int
    min_sites: int = 2
    reports: list[dict[str, Any]] = field(default_factory=list)
    excluded: dict[int, str] = field(default_factory=dict)


_JOB: SimulationJob | None = None


def configure_simulation(job: SimulationJob) -> None:
    """Set the job of the next simulation (the ServerApp runs in a thread of this process)."""
    global _JOB
    _JOB = job


sim_server = ServerApp()


@sim_server.main()
def _sim_main(grid: Grid, context: Context) -> None:
    """Run the task ``runs`` times over the simulation grid, one hub for all of them."""
    job = _JOB
    if job is None:
        raise RuntimeError("configure_simulation() was not called before the simulation")
    transport = FlowerTransport(grid, hello_timeout=120.0, poll=SIM_POLL)
    hub = Hub(transport, min_sites=job.min_sites)
    for _ in range(job.runs):
        try:
            job.reports.append(report_dict(hub.run(job.task, job.params)))
        except RunError as exc:
            job.reports.append({**report_dict(exc.report), "error": exc.message})
    job.excluded = dict(transport.excluded)


# -- Ray simulation: sites -------------------------------------------------------------------------
#: This process's site nodes, by partition id (one process per Ray actor).
_NODES: dict[int, SiteNode] = {}


def _sim_node(context: Context) -> SiteNode:
    partition = int(context.node_config["partition-id"])
    if partition not in _NODES:
        folder = Path(os.environ[DATA_ENV])
        name = site_name(partition)
        # An audit file per actor process: two actors never fight over one DuckDB lock.
        state = folder / f"{name}.actor-{os.getpid()}.duckdb"
        _NODES[partition] = SiteNode(name, folder / f"{name}.csv", SitePolicy(min_sites=2), state)
    return _NODES[partition]


sim_client = ClientApp()


@sim_client.query("cardiobox_hello")
def _sim_hello(message: Message, context: Context) -> Message:
    name = site_name(int(context.node_config["partition-id"]))
    hello = orjson.dumps({"cardiobox": 1, "kind": "hello", "site": name})
    return Message(pack(hello), reply_to=message)


@sim_client.query("cardiobox")
def _sim_answer(message: Message, context: Context) -> Message:
    node = _sim_node(context)
    try:
        request = unpack(message.content)
    except WireError:
        request = b""
    return Message(pack(node.handle(request)), reply_to=message)


# -- deployment runtime: hub -----------------------------------------------------------------------
deploy_server = ServerApp()


@deploy_server.main()
def _deploy_main(grid: Grid, context: Context) -> None:
    """cardiobox's ServerApp, writing the per-round seconds into the report too."""
    task, params, report_path, min_sites, timeout = serverapp.parse_run_config(context.run_config)
    transport = FlowerTransport(grid, hello_timeout=timeout)
    outcome: dict[str, Any]
    try:
        report = Hub(transport, timeout=timeout, min_sites=min_sites).run(task, params)
        outcome = {"status": "ok", "error": None, "report": report_dict(report)}
    except RunError as exc:
        error = {"message": exc.message, "rule": exc.rule}
        outcome = {"status": "error", "error": error, "report": report_dict(exc.report)}
    except CardioboxError as exc:
        error = {"message": exc.message, "rule": exc.rule}
        outcome = {"status": "error", "error": error, "report": None}
    excluded = {str(k): v for k, v in transport.excluded.items()}
    serverapp.write_report(report_path, {**outcome, "excluded": excluded})
