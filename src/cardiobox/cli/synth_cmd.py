"""`cardiobox synth`: differentially private synthetic data — domains, fit, sample, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out
from cardiobox.errors import CardioboxError

app = typer.Typer(
    help="Synthetic data under differential privacy (MST, AIM) with an honest quality report.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


def _domain_arg(domain: str, noted_later: bool = False) -> Any:
    """A domain file, or a built-in template's name.

    ``noted_later``: the command records and prints the fit's notes, which say so when the
    domain was drafted from data, so loading it does not warn as well.
    """
    import warnings

    from cardiobox.synth.domain import DerivedDomainWarning, load_domain
    from cardiobox.synth.templates import template, template_names

    if Path(domain).exists():
        with warnings.catch_warnings():
            if noted_later:
                warnings.simplefilter("ignore", DerivedDomainWarning)
            return load_domain(domain)
    if domain in template_names():
        return template(domain)
    from cardiobox.errors import InputError

    raise InputError(
        f"no such domain file, and no built-in template {domain!r} "
        f"(built-in: {', '.join(template_names())})",
        rule="missing-input",
    )


@app.command()
def domain(
    table: Annotated[Path, typer.Argument(help="A CSV/TSV/Parquet table.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The domain YAML to write.")],
    bins: Annotated[int, typer.Option("--bins", help="Bins per numeric column.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Draft a domain from a table — marked as derived from the data, to be reviewed.

    A domain drafted from the private data is NOT private (its bounds and categories come from
    the rows): replace its bounds with public ones (the data dictionary's plausible ranges,
    `cardiobox synth templates`) before a release, then set derived_from_data: false.
    """
    import warnings

    from cardiobox import tableio
    from cardiobox.synth.draft import draft_domain

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drafted = draft_domain(tableio.read_table(table), bins=bins, name=table.stem)
        drafted.save(out_path)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json({"out": str(out_path), "columns": drafted.names, "derived_from_data": True})
        return
    console.print(
        f"wrote {escape(str(out_path))}: {len(drafted.columns)} columns. [yellow]Drafted from "
        "the data: not private — review it and replace the bounds with public ones.[/]"
    )


@app.command()
def templates(as_json: JsonOption = False) -> None:
    """List the built-in domain templates (public metadata, no data needed)."""
    from cardiobox.synth.templates import template, template_names

    rows = [{"name": n, "columns": list(template(n).names)} for n in template_names()]
    if as_json:
        emit_json(rows)
        return
    t = Table(title="built-in domains", title_justify="left")
    t.add_column("name")
    t.add_column("columns")
    for r in rows:
        t.add_row(str(r["name"]), escape(", ".join(r["columns"])))
    out.print(t)


@app.command()
def fit(
    table: Annotated[Path, typer.Argument(help="The private table (CSV/TSV/Parquet).")],
    domain: Annotated[
        str, typer.Option("--domain", "-d", help="Domain YAML, or a built-in template's name.")
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The model JSON to write.")],
    mechanism: Annotated[str, typer.Option("--mechanism", "-m", help="mst or aim.")] = "mst",
    epsilon: Annotated[float, typer.Option("--epsilon", help="ε of (ε, δ)-DP.")] = 1.0,
    delta: Annotated[float, typer.Option("--delta", help="δ of (ε, δ)-DP.")] = 1e-5,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed, for a repeatable fit.")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="The site's policy: the fit must fit its budget, and is charged to the ledger "
            "beside the table.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit MST or AIM to a table under (ε, δ)-differential privacy and save the model."""
    from cardiobox.privacy.policy import load_policy
    from cardiobox.synth.api import fit as synth_fit

    if mechanism not in ("mst", "aim"):
        raise fail(CardioboxError("--mechanism must be mst or aim", "bad-option"), as_json)
    try:
        site_policy = load_policy(policy) if policy is not None else None
        model = synth_fit(
            table, _domain_arg(domain, noted_later=True), mechanism, epsilon, delta, seed,  # type: ignore[arg-type]
            policy=site_policy,
        )  # fmt: skip
        model.save(out_path)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    summary = {"out": str(out_path), "guarantee": model.guarantee.to_dict(), **model.fitted}
    if as_json:
        emit_json(summary)
        return
    g = model.guarantee
    console.print(
        f"fitted {g.mechanism.upper()} on {model.fitted['rows']:,} rows × "
        f"{model.fitted['columns']} columns in {model.fitted['seconds']:.2f} s: "
        f"(ε={g.epsilon:g}, δ={g.delta:g})-DP (ρ={g.rho:.4g}); wrote {escape(str(out_path))}"
    )
    for note in model.fitted.get("notes", []):
        console.print(f"[yellow]note:[/] {escape(note)}")


@app.command()
def sample(
    model_path: Annotated[Path, typer.Argument(help="A model written by cardiobox synth fit.")],
    n: Annotated[int, typer.Option("--n", "-n", help="Rows to sample.")],
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="CSV or Parquet; <out>.synth.json beside it.")
    ],
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampling.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Sample synthetic rows (post-processing: no privacy cost) with the guarantee beside them."""
    from cardiobox.synth.api import SynthModel, write_sample

    try:
        model = SynthModel.load(model_path)
        path = write_sample(model, n, out_path, seed)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json({"out": str(path), "rows": n, "guarantee": model.guarantee.to_dict()})
        return
    console.print(
        f"wrote {n:,} synthetic rows to {escape(str(path))} (guarantee and domain in "
        f"{escape(path.name)}.synth.json)"
    )


def _side_file(synthetic: Path) -> dict[str, Any]:
    import orjson

    side = synthetic.with_name(synthetic.name + ".synth.json")
    if not side.exists():
        return {}
    loaded: dict[str, Any] = orjson.loads(side.read_bytes())
    return loaded


@app.command()
def report(
    real: Annotated[Path, typer.Option("--real", help="The real table the model was fitted on.")],
    synthetic: Annotated[Path, typer.Option("--synthetic", help="The synthetic table.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html/json.")],
    holdout: Annotated[
        Path | None,
        typer.Option(
            "--holdout",
            help="Real rows set aside before fitting (the noise floor and the privacy measures "
            "need them).",
        ),
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="A binary column for the utility measures.")
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option("--domain", "-d", help="Domain (default: the one beside the synthetic file)."),
    ] = None,
    thresholds: Annotated[
        Path | None, typer.Option("--thresholds", help="Release-gate thresholds (YAML/JSON).")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", help="A column left out of the utility models (it carries the outcome)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Quality report of a synthetic table: fidelity, utility and privacy, and the release gate.

    Exits with status 1 when the release gate fails (the synthetic data must not be published).
    """
    from cardiobox import tableio
    from cardiobox.errors import InputError
    from cardiobox.synth.domain import Domain
    from cardiobox.synth.evaluate import evaluate, split_holdout
    from cardiobox.synth.gate import DEFAULT_THRESHOLDS, check_release
    from cardiobox.synth.report import write_report

    limits: Any = thresholds if thresholds is not None else DEFAULT_THRESHOLDS
    notes: list[str] = []
    try:
        side = _side_file(synthetic)
        if domain is not None:
            dom = _domain_arg(domain)
        elif "domain" in side:
            dom = Domain.from_dict(side["domain"], source=f"{synthetic}.synth.json")
        else:
            raise InputError(
                "no --domain, and no <synthetic>.synth.json beside the synthetic table",
                rule="missing-input",
            )
        names = list(dom.names)
        train = tableio.read_table(real).select(names)
        syn = tableio.read_table(synthetic).select(names)
        if holdout is not None:
            hold = tableio.read_table(holdout).select(names)
        else:
            train, hold = split_holdout(train, 0.3, seed=0)
            notes.append(
                "no --holdout: 30 % of --real stands in for it, but the synthesizer saw those "
                "rows, so the noise floor is right and the privacy measures understate the risk"
            )
        result = evaluate(
            train, syn, hold, dom, outcome=outcome, guarantee=side.get("guarantee"),
            exclude=exclude or (),
        )  # fmt: skip
        page = write_report(result, out_dir, thresholds=limits)
        gate = check_release(result, limits)
    except (CardioboxError, KeyError) as exc:
        err = exc if isinstance(exc, CardioboxError) else InputError(f"no column {exc}", "column")
        raise fail(err, as_json) from None
    summary = {"report": str(page), "gate": gate.to_dict(), "notes": notes}
    if as_json:
        emit_json(summary)
    else:
        verdict = "[green]passed[/]" if gate.passed else "[red]FAILED[/]"
        console.print(f"release gate {verdict}; report: {escape(str(page))}")
        for failure in gate.failures:
            console.print(f"[red]✗[/] {escape(str(failure))}")
        for note in notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
    if not gate.passed:
        raise typer.Exit(1)


def _export_domain(domain: str | None, synthetic: Path) -> Any:
    """``--domain`` (a file, a template, a feature set's name) or the one beside the table."""
    from cardiobox.errors import InputError
    from cardiobox.synth.domain import Domain
    from cardiobox.synth.templates import domain_for_feature_set, template_names

    if domain is None:
        side = _side_file(synthetic)
        if "domain" not in side:
            raise InputError(
                "no --domain, and no <synthetic>.synth.json beside the synthetic table",
                rule="missing-input",
            )
        return Domain.from_dict(side["domain"], source=f"{synthetic}.synth.json")
    if Path(domain).exists() and Path(domain).suffix in (".yaml", ".yml", ".json"):
        return _domain_arg(domain)
    if domain in template_names():
        return _domain_arg(domain)
    return domain_for_feature_set(domain)


@app.command()
def export(
    synthetic: Annotated[Path, typer.Argument(help="A synthetic table (CSV/TSV/Parquet).")],
    site: Annotated[Path, typer.Option("--site", help="The site store to load it into.")],
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain",
            "-d",
            help="Domain YAML, a built-in template, or a feature set (hf_features); default: "
            "the domain beside the synthetic file.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic dates.")] = 0,
    id_prefix: Annotated[
        str, typer.Option("--id-prefix", help="Patients are PREFIX-1 … PREFIX-N.")
    ] = "synth",
    as_json: JsonOption = False,
) -> None:
    """Load synthetic admissions into a site store as FHIR resources (the CardioSynth database).

    Each row becomes a synthetic patient with an inpatient heart-failure admission,
    observations, history, medication and outcomes, tagged as synthetic; the cohort tools
    then run on the store unchanged.
    """
    from cardiobox import tableio
    from cardiobox.synth.fhir import to_store

    try:
        dom = _export_domain(domain, synthetic)
        table = tableio.read_table(synthetic)
        report = to_store(table, dom, site, seed=seed, id_prefix=id_prefix)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    summary = {"site": str(site), "rows": table.num_rows, **report.to_dict()}
    if as_json:
        emit_json(summary)
        return
    console.print(
        f"loaded {table.num_rows:,} synthetic admissions into {escape(str(site))}: read "
        f"{report.read:,} resources = stored {report.stored:,} + quarantined "
        f"{report.quarantined:,}"
    )
