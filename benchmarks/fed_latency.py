"""Benchmark: round latency of one federated task on three runtimes, for 4 and 50 sites.

The task is ``logreg`` (exact Newton–Raphson, one round per iteration, the gradient and the
Hessian summed under secure aggregation) with 8 covariates, on synthetic site tables: 200 rows
per site, covariates drawn from a fixed-seed normal distribution and a 0/1 outcome from a
logistic model. Every site's policy is the default one with ``min_sites: 2``. Measured, each
in a fresh process, after one warm-up run with the same sites:

1. the in-process runtime (``cardiobox.federated.run``), 4 and 50 sites;
2. Flower's deployment runtime with real processes on 127.0.0.1 — a SuperLink and one
   SuperNode per site (TLS and SuperNode authentication on), each run submitted with
   ``flwr run`` as ``cardiobox fed run --superlink`` does — 4 sites (50 with ``--deploy-50``);
3. Flower's Ray simulation (``flwr.simulation.run_simulation``) with 4 and 50 virtual
   SuperNodes, cardiobox's hub over the simulation's grid and one ``SiteNode`` per virtual
   SuperNode (see ``benchmarks/fed_latency_apps.py``), with one Ray actor: a node's masking
   key lives in the actor that made it, so every message of a site must reach that actor. A
   check run with two actors shows what happens otherwise.

A round's latency is ``RunReport.round_seconds`` (the hub sends the request, the sites compute,
mask and log, the hub unmasks the sums and takes the Newton step); end to end is the hub's
whole run, set-up round included (not the start of the processes or of Ray, reported apart).
All runtimes must give the same coefficients (to 1e-8). The target: the in-process runtime at
least 10× faster than the Ray simulation.

Run: ``python benchmarks/fed_latency.py [--quick] [--deploy-50] [--json]`` (needs
``pip install -e '.[bench]'`` for ``flwr[simulation]``); writes
``benchmarks/results/fed_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, Row, print_table, run_step, write_result

SEED = 20261128
ROWS_PER_SITE = 200
COVARIATES = [f"x{i}" for i in range(1, 9)]
#: The logistic model the outcome is drawn from: intercept, then one weight per covariate.
TRUE_BETA = np.array([-0.3, 0.8, -0.5, 0.4, 0.0, 0.3, -0.2, 0.6, 0.1])
TASK = "logreg"
PARAMS: dict[str, Any] = {"outcome": "y", "covariates": COVARIATES, "tol": 1e-8}
MIN_SITES = 2
TARGET_RATIO = 10.0
#: A step's output or its figures, by "runtime, N sites".
ByRuntime = dict[str, dict[str, Any]]
#: Measured runs (after the warm-up run) per runtime: full, and with --quick.
RUNS = {"in-process": (5, 2), "deployment": (2, 1), "ray-simulation": (3, 1)}


# -- data ------------------------------------------------------------------------------------------
def write_sites(folder: Path, n_sites: int) -> dict[str, Path]:
    """Write ``n_sites`` site CSVs into ``folder`` (site i: rows 200·i to 200·(i+1) of one draw)."""
    from benchmarks.fed_latency_apps import site_name

    rng = np.random.default_rng(SEED)
    n = n_sites * ROWS_PER_SITE
    x = rng.normal(size=(n, len(COVARIATES)))
    eta = TRUE_BETA[0] + x @ TRUE_BETA[1:]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join([*COVARIATES, "y"])
    sites = {}
    for i in range(n_sites):
        rows = slice(i * ROWS_PER_SITE, (i + 1) * ROWS_PER_SITE)
        path = folder / f"{site_name(i)}.csv"
        np.savetxt(path, np.column_stack([x[rows], y[rows]]), delimiter=",", header=header,
                   comments="", fmt=["%.6f"] * len(COVARIATES) + ["%d"])  # fmt: skip
        sites[site_name(i)] = path
    return sites


def site_csvs(folder: Path) -> dict[str, Path]:
    """The site CSVs in ``folder`` by site name."""
    return {p.stem: p for p in sorted(folder.glob("site_*.csv"))}


# -- the three runtimes (each a step in a fresh process) --------------------------------------
class _OneAtATime:
    """A transport calling each site's ``handle`` in turn in this thread, timing every reply."""

    def __init__(self, nodes: list[Any]):
        self.nodes = {n.name: n for n in nodes}
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def sites(self) -> list[str]:
        return sorted(self.nodes)

    def exchange(self, requests: dict[str, bytes], timeout: float) -> dict[str, bytes | Exception]:
        out: dict[str, bytes | Exception] = {}
        for site, data in requests.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            out[site] = self.nodes[site].handle(data)
            self.cpu.append(time.thread_time() - c0)
            self.seconds.append(time.perf_counter() - t0)
        return out


def site_work(nodes: list[Any]) -> dict[str, float]:
    """The sites' own work: one more run, the sites answering one at a time, each reply timed.

    Every runtime pays it (policy checks, the site's sums, masks against its neighbours, the
    audit entry synced to disk); what a runtime adds on top of it is its own cost. Each reply's
    processor time is timed too: the rest of its wall time is the wait for the disk's sync.
    """
    from cardiobox.federated import Hub

    transport = _OneAtATime(nodes)
    report = Hub(transport, min_sites=MIN_SITES).run(TASK, PARAMS)
    replies = np.array(transport.seconds[len(nodes) :])  # the rounds, not the set-up
    processor = np.array(transport.cpu[len(nodes) :])
    return {
        "reply_median_s": float(np.median(replies)),
        "reply_cpu_median_s": float(np.median(processor)),
        "per_round_s": float(replies.sum() / report.rounds),
        "cpu_per_round_s": float(processor.sum() / report.rounds),
    }


def step_in_process(folder: str, runs: int) -> dict[str, Any]:
    """One warm-up run, then ``runs`` runs, on the same in-process nodes; then the site work."""
    from benchmarks.fed_latency_apps import report_dict
    from cardiobox.federated import make_nodes, run
    from cardiobox.privacy.policy import SitePolicy

    nodes = make_nodes(site_csvs(Path(folder)), SitePolicy(min_sites=MIN_SITES))
    reports = [report_dict(run(TASK, nodes, PARAMS, min_sites=MIN_SITES)) for _ in range(runs + 1)]
    return {"reports": reports, "site_work": site_work(nodes)}


def _deploy_app(into: Path) -> Path:
    """cardiobox's Flower App, with the ServerApp that also reports per-round seconds."""
    stock = 'serverapp = "cardiobox.federated.flower.serverapp:app"'
    text = resources.files("cardiobox.federated.flower").joinpath("app", "pyproject.toml")
    project = text.read_text(encoding="utf-8")
    if stock not in project:
        raise RuntimeError(f"cardiobox's Flower App no longer holds {stock!r}")
    app = into / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(
        project.replace(stock, 'serverapp = "benchmarks.fed_latency_apps:deploy_server"'),
        encoding="utf-8",
    )
    return app


def _submit(superlink: str, ca: Path, work: Path) -> Any:
    """``flwr run`` of the task, as ``cardiobox.federated.flower.submit.submit`` does it."""
    from cardiobox.federated.flower import processes, submit

    home = processes.cli_home(work / "flwr-home", superlink, ca)
    report = (work / "report.json").resolve()
    config = {"task": TASK, "params": json.dumps(PARAMS), "report": str(report),
              "min-sites": MIN_SITES, "timeout": 120.0}  # fmt: skip
    run_config = work / "run-config.toml"
    run_config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
    out = processes.flwr(
        home, "run", str(_deploy_app(work)), processes.CONNECTION, "--run-config", str(run_config)
    )
    return submit.Submitted(int(str(out["run-id"])), report, home)


def _rss_mb(pids: list[int]) -> float:
    """The resident memory of these processes together, in MB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def step_deployment(folder: str, runs: int) -> dict[str, Any]:
    """A SuperLink and one SuperNode per site on 127.0.0.1; a warm-up run, then ``runs`` runs."""
    import orjson

    from cardiobox.federated.flower import processes, submit
    from cardiobox.federated.flower.certs import dev_certificates, node_keypair
    from cardiobox.federated.flower.site import SiteConfig

    root = Path(folder)
    # The SuperLink's ServerApp process imports benchmarks.fed_latency_apps.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    csvs = site_csvs(root)
    certs = dev_certificates(root / "certs")
    policy = root / "policy.yaml"
    policy.write_text(f"cardiobox_policy: 1\nmin_sites: {MIN_SITES}\n")
    started: list[processes.FlowerProcess] = []
    try:
        t0 = time.perf_counter()
        superlink = processes.start_superlink(root / "hub", certs)
        started.append(superlink)
        admin = processes.cli_home(root / "admin", superlink.address, certs.ca)
        keys = {name: node_keypair(root / "keys", name) for name in csvs}
        processes.register_nodes(admin, {name: k.public for name, k in keys.items()})
        for name, csv in csvs.items():
            config = SiteConfig(
                name, csv, superlink.address, certs.ca, keys[name].private, policy=policy,
                state=root / f"{name}.audit.duckdb", workdir=root / f"flower-{name}",
            )  # fmt: skip
            started.append(processes.start_supernode(config, root / f"site-{name}", wait=False))
        for site in started[1:]:
            processes.wait_connected(site, timeout=300)
        startup = time.perf_counter() - t0
        reports, walls = [], []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            pending = _submit(superlink.address, certs.ca, root / f"run-{i}")
            submit.wait_report(pending, wait=900)
            walls.append(time.perf_counter() - t0)
            reports.append(orjson.loads(pending.report.read_bytes())["report"])
        memory = {p.name: _rss_mb([p.pid, *p.descendants()]) for p in started}
        return {"reports": reports, "startup_seconds": startup, "submit_to_report_seconds": walls,
                "superlink_rss_mb": memory.pop(superlink.name),
                "site_rss_mb": float(np.mean(list(memory.values())))}  # fmt: skip
    finally:
        processes.stop_all(started)


def step_simulation(folder: str, n_sites: int, runs: int, actors: int) -> dict[str, Any]:
    """Flower's Ray simulation with ``n_sites`` virtual SuperNodes and ``actors`` Ray actors."""
    import ray
    from flwr.simulation import run_simulation

    from benchmarks import fed_latency_apps as apps

    os.environ[apps.DATA_ENV] = folder
    job = apps.SimulationJob(TASK, PARAMS, runs + 1, MIN_SITES)
    apps.configure_simulation(job)
    backend: dict[str, dict[str, Any]] = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},  # one actor per CPU given to Ray
        "init_args": {"num_cpus": actors},
    }
    t0 = time.perf_counter()
    try:
        run_simulation(apps.sim_server, apps.sim_client, n_sites, backend_config=backend)
    finally:
        ray.shutdown()
    wall = time.perf_counter() - t0
    hub = sum(r["seconds"] for r in job.reports)
    return {"reports": job.reports, "excluded": {str(k): v for k, v in job.excluded.items()},
            "actors": actors, "simulation_seconds": wall,
            "startup_and_teardown_seconds": wall - hub}  # fmt: skip


# -- figures -------------------------------------------------------------------------------------
def summarise(out: dict[str, Any]) -> dict[str, Any]:
    """Round latency (median, p90) and end to end over the measured runs (the first is warm-up)."""
    measured = out["reports"][1:]
    rounds = [s for r in measured for s in r["round_seconds"]]
    return {
        "round_median_s": float(np.median(rounds)),
        "round_p90_s": float(np.percentile(rounds, 90)),
        "end_to_end_s": float(np.median([r["seconds"] for r in measured])),
        "rounds_per_run": measured[-1]["rounds"],
        "measured_runs": len(measured),
        "sites": len(measured[-1]["sites"]),
        "failed": measured[-1]["failed"],
        "coefficients": (measured[-1]["result"] or {}).get("coefficients"),
        **({"site_work": out["site_work"]} if "site_work" in out else {}),
    }


def timings(report: dict[str, Any]) -> dict[str, Any]:
    """What the JSON keeps of each run (the first of each runtime is the warm-up)."""
    keep = ("seconds", "round_seconds", "rounds", "failed")
    return {**{k: report[k] for k in keep}, "sites": len(report["sites"])}


def max_coef_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The largest difference between two runs' coefficients (inf when one has none)."""
    if not a["coefficients"] or not b["coefficients"]:
        return float("inf")
    return float(max(abs(a["coefficients"][k] - b["coefficients"][k]) for k in a["coefficients"]))


def _time(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _ratio_rows(results: ByRuntime, n: int) -> list[Row]:
    """Ray simulation (target) and deployment (no target) against in-process, for ``n`` sites."""
    rows: list[Row] = []
    fast = results.get(f"in-process, {n} sites")
    for runtime, target in (("ray simulation", TARGET_RATIO), ("deployment", None)):
        slow = results.get(f"{runtime}, {n} sites")
        if fast is None or slow is None:
            continue
        for what, key in (("round median", "round_median_s"), ("end to end", "end_to_end_s")):
            ratio = slow[key] / fast[key]
            rows.append((f"{runtime} / in-process, {n} sites, {what}", f"{ratio:,.1f}×",
                         f"≥ {target:g}×" if target else "",
                         ratio >= target if target else None))  # fmt: skip
    return rows


def table(results: ByRuntime) -> list[Row]:
    """The rows: each runtime's latency, the ratios, and the agreement of the coefficients."""
    rows: list[Row] = []
    for key, s in results.items():
        latency = f"{_time(s['round_median_s'])} / {_time(s['round_p90_s'])}"
        rows.append((f"{key}: round median / p90", latency, "", None))
        rows.append((f"{key}: end to end ({s['rounds_per_run']} rounds + set-up)",
                     _time(s["end_to_end_s"]), "", None))  # fmt: skip
        if "site_work" in s:
            work = s["site_work"]
            rows.append((f"{key}: the sites' own work a round, one site at a time",
                         f"{_time(work['per_round_s'])} ({_time(work['reply_median_s'])} a site)",
                         "", None))  # fmt: skip
            rows.append((f"{key}: of which processor time (a site's reply)",
                         f"{_time(work['cpu_per_round_s'])} ({_time(work['reply_cpu_median_s'])})",
                         "", None))  # fmt: skip
    for n in (4, 50):
        rows += _ratio_rows(results, n)
    for key, s in results.items():
        reference = results[f"in-process, {key.rsplit(', ', 1)[1]}"]
        if s is not reference:
            diff = max_coef_diff(s, reference)
            rows.append((f"{key}: max |coef − in-process|", f"{diff:.1e}", "≤ 1e-8", diff <= 1e-8))
    return rows


def step(name: str, *args: Any) -> dict[str, Any]:
    """Run ``step_<name>`` in a fresh process; on failure, show the end of its error output."""
    try:
        return run_step("fed_latency", name, *args)
    except subprocess.CalledProcessError as exc:
        print(exc.stderr[-4000:], file=sys.stderr)
        raise


def _actor_check(out: dict[str, Any]) -> dict[str, Any]:
    """What the two-actor run shows: sites dropped because their key was in the other actor."""
    last = out["reports"][-1]
    return {
        "actors": out["actors"],
        "sites_in_last_run": last["sites"],
        "failed_in_last_run": last["failed"],
        "error": last.get("error"),
    }


def measure(quick: bool, deploy_50: bool) -> tuple[ByRuntime, dict[str, Any] | None]:
    """Every step, each on its own site files: the measured runtimes, and the two-actor check."""
    runs = {k: v[1] if quick else v[0] for k, v in RUNS.items()}
    deployed = (4, 50) if deploy_50 else (4,)
    simulated = (4,) if quick else (4, 50)
    plan: list[tuple[str, str, int, tuple[int, ...]]] = [
        ("in-process", "in_process", n, (runs["in-process"],)) for n in (4, 50)
    ]
    plan += [("deployment", "deployment", n, (runs["deployment"],)) for n in deployed]
    plan += [("ray simulation", "simulation", n, (n, runs["ray-simulation"], 1)) for n in simulated]
    steps: ByRuntime = {}
    with tempfile.TemporaryDirectory(prefix="cardiobox-fed-latency-") as tmp:
        for label, name, n, args in plan:
            print(f"{label}, {n} sites ...", flush=True)
            folder = Path(tmp) / f"{name}-{n}"
            write_sites(folder, n)
            steps[f"{label}, {n} sites"] = step(name, str(folder), *args)
        if quick:
            return steps, None
        print("ray simulation, 4 sites, two actors ...", flush=True)
        write_sites(Path(tmp) / "two-actors", 4)
        return steps, step("simulation", str(Path(tmp) / "two-actors"), 4, 1, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs; no 50-site Ray run, no two-actor check"
    )
    parser.add_argument(
        "--deploy-50", action="store_true", help="also start 50 SuperNodes (about 100 processes)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()
    steps, check = measure(args.quick, args.deploy_50)
    results = {key: summarise(out) for key, out in steps.items()}
    print()
    rows = table(results)
    print_table(rows)
    apart = ("reports", "site_work")
    result = {
        "task": TASK, "params": PARAMS, "rows_per_site": ROWS_PER_SITE, "quick": args.quick,
        "results": results,
        "setup": {key: {k: v for k, v in out.items() if k not in apart}
                  for key, out in steps.items()},
        "runs": {key: [timings(r) for r in out["reports"]] for key, out in steps.items()},
        "two_actor_check": _actor_check(check) if check else None,
    }  # fmt: skip
    if check:
        print(f"\ntwo Ray actors: {json.dumps(result['two_actor_check'], indent=1)}")
    write_result("fed_latency", result)
    if args.json:
        print(json.dumps(result))
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
