"""`cardiobox fed`: run federated tasks over sites, and read a site's audit log."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out
from cardiobox.errors import CardioboxError, InputError

if TYPE_CHECKING:
    from cardiobox.federated.hub import RunReport

app = typer.Typer(
    help="Federated analysis: each site computes under its own policy, the hub aggregates.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


def _sites(specs: list[str]) -> dict[str, Path]:
    sites: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(
                f"--site {spec!r}: write NAME=PATH (a site store or a CSV/Parquet table)",
                rule="bad-option",
            )
        if name in sites:
            raise InputError(f"--site {name!r} is given twice", rule="bad-option")
        sites[name] = Path(path)
    if not sites:
        raise InputError("give at least one --site NAME=PATH", rule="bad-option")
    return sites


def _params(text: str) -> dict[str, Any]:
    source = Path(text[1:]) if text.startswith("@") else None
    try:
        raw = source.read_bytes() if source else text.encode()
        obj = orjson.loads(raw)
    except FileNotFoundError:
        raise InputError(f"--params: no such file {source}", rule="bad-option") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"--params is not valid JSON: {exc}", rule="bad-option") from exc
    if not isinstance(obj, dict):
        raise InputError("--params must be a JSON object", rule="bad-option")
    return obj


def _fmt(v: Any) -> str:
    if v is None:
        return "suppressed"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _print_result(task: str, report: dict[str, Any]) -> None:
    result = report["result"] or {}
    if task == "count":
        t = Table(title=f"{task}: per site", title_justify="left")
        t.add_column("site")
        t.add_column("n", justify="right")
        for site, n in result["per_site"].items():
            t.add_row(escape(site), _fmt(n))
        t.add_row("[bold]total[/]", f"[bold]{result.get('total')}[/]")
        out.print(t)
    elif isinstance(result.get("coefficients"), dict):
        t = Table(title=f"{task}: {result.get('n', '?')} rows at {len(report['sites'])} sites",
                  title_justify="left")  # fmt: skip
        cols = [k for k in ("coefficients", "std_errors", "ci_lower", "ci_upper", "p_values",
                            "hazard_ratios") if isinstance(result.get(k), dict)]  # fmt: skip
        t.add_column("term")
        for c in cols:
            t.add_column(c.replace("_", " "), justify="right")
        for term in result["coefficients"]:
            t.add_row(escape(term), *(_fmt(result[c].get(term)) for c in cols))
        out.print(t)
    else:
        out.print_json(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode())
    for kind in ("refused", "failed"):
        for site, why in report.get(kind, {}).items():
            out.print(f"[yellow]site {escape(site)} {kind}:[/] {escape(why)}")
    out.print(
        f"[dim]run {report['run_id']}: {report['rounds']} round(s), "
        f"{report['seconds']:.2f} s, sites {', '.join(report['sites'])}[/]"
    )


def _run(
    task: str,
    site: list[str],
    params: dict[str, Any],
    policy: Path | None,
    min_sites: int | None,
    timeout: float,
    superlink: str | None,
    root_cert: Path | None,
    as_json: bool,
) -> Any:
    if superlink is None:
        from cardiobox.federated import run as fed_run

        return fed_run(
            task,
            _sites(site),
            params,
            policy,
            timeout=timeout,
            min_sites=min_sites,
            progress=None if as_json else (lambda _r, m: console.print(f"[dim]{escape(m)}[/]")),
        )
    if site or policy is not None:
        raise InputError(
            "with --superlink the sites are the nodes connected to the hub, each with its own "
            "policy: give neither --site nor --policy",
            rule="bad-option",
        )
    if root_cert is None:
        raise InputError("--superlink needs --root-cert (the hub's CA certificate)", "bad-option")
    try:
        from cardiobox.federated.flower.submit import run_on_flower
    except ImportError:
        raise InputError(
            "Flower is not installed: pip install 'cardiobox[flower]'", "missing-dependency"
        ) from None
    if not as_json:
        console.print(f"[dim]submitting {escape(task)} to the hub at {escape(superlink)}[/]")
    return run_on_flower(task, params, superlink, root_cert, min_sites=min_sites, timeout=timeout)


@app.command()
def run(
    task: Annotated[
        str, typer.Argument(help="count, describe, crosstab, km, logreg, linreg, cox, mlp, gbt")
    ],
    site: Annotated[
        list[str] | None,
        typer.Option(
            "--site",
            "-s",
            help="A site as NAME=PATH (a site store or a CSV/Parquet table); repeat.",
        ),
    ] = None,
    params: Annotated[
        str, typer.Option("--params", "-p", help="The task's parameters: JSON, or @file.json.")
    ] = "{}",
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Site policy YAML applied at every simulated site."),
    ] = None,
    min_sites: Annotated[
        int | None, typer.Option("--min-sites", help="Stop when fewer sites remain.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per site per round.")
    ] = 120.0,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write report.html (tables and plots) and report.json of the run into DIR.",
            metavar="DIR",
        ),
    ] = None,
    superlink: Annotated[
        str | None,
        typer.Option(
            "--superlink",
            help="Run on Flower's deployment runtime: the hub's SuperLink HOST:PORT (the sites "
            "are the nodes connected to it; give no --site).",
        ),
    ] = None,
    root_cert: Annotated[
        Path | None,
        typer.Option("--root-cert", help="With --superlink: the CA certificate of its TLS."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a federated task over sites: simulated here, or the nodes of a Flower hub.

    Each site checks the request against its policy, computes on its own data and logs the
    release in its audit log; vectors are summed by secure aggregation, so the hub sees only
    sums. Example: cardiobox fed run logreg --site a=a.csv --site b=b.csv --site c=c.csv
    --params '{"outcome": "num", "covariates": ["age", "sex"]}'. With --superlink the task
    runs on Flower's deployment runtime (cardiobox hub start / node start).
    """
    from cardiobox.federated import RunError

    try:
        report = _run(task, site or [], _params(params), policy, min_sites, timeout, superlink,
                      root_cert, as_json)  # fmt: skip
    except RunError as exc:
        if report_dir is not None:
            _write_report(exc.report, report_dir, as_json)
        if as_json:
            emit_json({"error": exc.message, "rule": exc.rule, **exc.report.to_dict()})
            raise typer.Exit(1) from None
        raise fail(exc, as_json, code=1) from None
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if report_dir is not None:
        _write_report(report, report_dir, as_json)
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    _print_result(task, data)


def _write_report(report: RunReport, folder: Path, as_json: bool) -> None:
    from cardiobox.federated.report import write_report

    try:
        html = write_report(report, folder)
    except OSError as exc:
        raise fail(
            InputError(f"--report {folder}: cannot write the report: {exc}", rule="bad-option"),
            as_json,
        ) from None
    console.print(f"[dim]report written to {escape(str(html))} (and report.json)[/]")


@app.command()
def tasks(as_json: JsonOption = False) -> None:
    """List the federated tasks and their parameters."""
    from cardiobox.federated import TASKS, get_task

    get_task("count")  # registers the built-ins
    rows: list[dict[str, Any]] = []
    for name in sorted(TASKS):
        task = TASKS[name]
        fields = task.params_model.model_fields
        rows.append(
            {
                "task": name,
                "summary": (type(task).__doc__ or "").strip().splitlines()[0],
                "params": sorted(fields),
                "secure_sum": task.uses_secure_sum,
            }
        )
    if as_json:
        emit_json(rows)
        return
    t = Table(title="federated tasks", title_justify="left")
    for c in ("task", "what it computes", "parameters"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["task"], escape(r["summary"]), ", ".join(r["params"]))
    out.print(t)


@app.command()
def audit(
    state: Annotated[
        Path,
        typer.Argument(
            help="A site store, or the audit file beside a table (<table>.cardiobox-audit.duckdb)."
        ),
    ],
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show the last N entries.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show a site's audit log, check its hash chain and the privacy budget spent."""
    from cardiobox.privacy.audit import AuditLog

    if not state.exists():
        raise fail(InputError(f"no such file: {state}", rule="missing-input"), as_json)
    log = AuditLog(state)
    entries = log.entries()
    broken = log.verify()
    spent = log.spent()
    if as_json:
        emit_json(
            {
                "entries": len(entries),
                "chain_intact": broken is None,
                "first_broken_entry": broken,
                "rho_spent": spent,
                "last": [
                    {
                        k: getattr(e, k)
                        for k in (
                            "seq",
                            "at",
                            "run_id",
                            "task",
                            "round",
                            "outcome",
                            "rule",
                            "reason",
                            "rho",
                        )
                    }
                    for e in entries[-limit:]
                ],
            }
        )
        return
    t = Table(title=f"audit log of {state.name}: last {min(limit, len(entries))} of {len(entries)}",
              title_justify="left")  # fmt: skip
    for c in ("seq", "at", "task", "round", "outcome", "rule / reason", "rho"):
        t.add_column(c)
    for e in entries[-limit:]:
        why = " ".join(x for x in (f"[{e.rule}]" if e.rule else "", e.reason or "") if x)
        t.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.task, str(e.round),
                  e.outcome, escape(why), f"{e.rho:g}")  # fmt: skip
    out.print(t)
    verdict = "[green]intact[/]" if broken is None else f"[red]broken at entry {broken}[/]"
    out.print(f"hash chain {verdict}; rho spent {spent:g}")
    if broken is not None:
        raise typer.Exit(1)
