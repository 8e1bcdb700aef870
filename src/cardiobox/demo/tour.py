"""The tour: each step shows one capability, on real data, and says which command does it.

Steps (later issues add more):

1. the cardiology data model: variables, code sets, seven languages;
2. a hospital site store built from a FHIR R4 bulk export (Synthea), with validation,
   R4 → R5 conversion, quarantine, and an idempotent second import;
3. SQL-on-FHIR views over the store;
4. validation of bad input, with the rule that each breaks.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from cardiobox.cdm import LANGUAGES, Category, load_dictionary
from cardiobox.cdm.validation import validate_resource
from cardiobox.demo.data import synthea_dir
from cardiobox.store import SiteStore
from cardiobox.store.views.standard import run_standard_view


def _step(console: Console, n: int, title: str, command: str) -> None:
    console.print()
    console.print(Panel.fit(f"[bold]{n}. {title}[/]\n[dim]$ {command}[/]", border_style="blue"))


def data_model(console: Console) -> dict[str, Any]:
    """Step 1: the data dictionary, its code sets and its seven languages."""
    d = load_dictionary()
    counts = Counter(v.category.value for v in d)
    table = Table(title=f"The cardiology data model: {len(d)} variables", title_justify="left")
    table.add_column("category")
    table.add_column("variables", justify="right")
    table.add_column("example")
    for cat in Category:
        vs = d.by_category(cat)
        if vs:
            table.add_row(cat.value, str(len(vs)), escape(vs[0].name("en")))
    console.print(table)
    lvef = d.find_code("http://loinc.org", "8806-2")
    if lvef is not None:
        names = "; ".join(f"{lang}: {lvef.name(lang)}" for lang in LANGUAGES)
        console.print(f"LOINC 8806-2 is [bold]{lvef.id}[/], named in seven languages: {names}")
    hf = d["heart_failure"]
    console.print(
        f"Heart failure is an ICD-10 code set ({', '.join(hf.codes[0].codes)}); "
        f"I50.9 in it: {hf.matches('icd-10', 'I50.9')}, I13.1: {hf.matches('icd-10', 'I13.1')}"
    )
    return {"variables": len(d), "by_category": dict(counts)}


def site_store(console: Console, db: Path) -> dict[str, Any]:
    """Step 2: import the Synthea export twice; show counts, conversion and quarantine."""
    src = synthea_dir()
    with SiteStore(db) as store:
        first = store.import_fhir(src)
        second = store.import_fhir(src)
        stats = store.stats()
        quarantined = store.quarantine(3)
    table = Table(title=f"Site store {db}", title_justify="left")
    table.add_column("resource type")
    table.add_column("resources", justify="right")
    table.add_column("patients", justify="right")
    for rt, c in stats["by_type"].items():
        table.add_row(rt, f"{c['resources']:,}", f"{c['patients']:,}")
    console.print(table)
    console.print(
        f"first import: read {first.read:,} = stored {first.stored:,} + quarantined "
        f"{first.quarantined:,}; {stats['converted_to_r5']:,} R4 resources converted to R5 "
        f"(originals kept); {first.warnings:,} warnings (e.g. medications coded in RxNorm, "
        "not ATC)"
    )
    console.print(
        f"second import of the same export: created {second.created}, updated "
        f"{second.updated}, unchanged {second.unchanged:,}: imports are idempotent"
    )
    for q in quarantined:
        console.print(
            f"  quarantined {escape(Path(q['file']).name)}:{q['line']} "
            f"[red]{q['rule']}[/] {escape(q['message'])}"
        )
    return {
        "read": first.read,
        "stored": first.stored,
        "quarantined": first.quarantined,
        "second_import_unchanged": second.unchanged,
        "patients": stats["patients"],
    }


def views(console: Console, db: Path) -> dict[str, Any]:
    """Step 3: run standard SQL-on-FHIR views over the store."""
    with SiteStore(db, read_only=True) as store:
        conditions = run_standard_view(store.con, "condition")
        encounters = run_standard_view(store.con, "encounter")
        meds = run_standard_view(store.con, "medication")
    # Diagnoses (SNOMED "disorder"s) by the number of patients who have them.
    pairs = zip(
        conditions.column("display").to_pylist(),
        conditions.column("patient_id").to_pylist(),
        strict=True,
    )
    patients: dict[str, set[str]] = {}
    for display, pid in pairs:
        if display and display.endswith("(disorder)"):
            patients.setdefault(display, set()).add(pid)
    top = sorted(((d, len(p)) for d, p in patients.items()), key=lambda x: (-x[1], x[0]))[:8]
    table = Table(
        title=f"Standard view 'condition': {conditions.num_rows:,} rows; most common disorders",
        title_justify="left",
    )
    table.add_column("disorder")
    table.add_column("patients", justify="right")
    for display, n in top:
        table.add_row(escape(display), str(n))
    console.print(table)
    n_patients = len(pc.unique(encounters.column("patient_id")))
    console.print(
        f"Standard view 'encounter': {encounters.num_rows:,} rows of {n_patients} patients; "
        f"'medication': {meds.num_rows:,} rows"
    )
    return {
        "conditions": conditions.num_rows,
        "encounters": encounters.num_rows,
        "medications": meds.num_rows,
    }


def bad_input(console: Console) -> dict[str, Any]:
    """Step 4: validate broken resources and show the rule each breaks."""
    potassium = {
        "resourceType": "Observation",
        "id": "k1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-05-01",
    }
    cases = {
        "potassium 42 mmol/L": {
            **potassium,
            "valueQuantity": {"value": 42, "unit": "mmol/L", "code": "mmol/L"},
        },
        "potassium in mg/dL": {
            **potassium,
            "valueQuantity": {"value": 16, "unit": "mg/dL", "code": "mg/dL"},
        },
        "date 2024-13-45": {**potassium, "effectiveDateTime": "2024-13-45"},
    }
    out = {}
    for label, resource in cases.items():
        finding = validate_resource(resource).errors[0]
        console.print(
            f"  {label}: [red]{finding.rule}[/] at {finding.element}: {escape(finding.message)}"
        )
        out[label] = finding.rule
    return out


def run_tour(workdir: Path, console: Console, fresh: bool = True) -> dict[str, Any]:
    """Run every step; return a summary (also printed as ``--json``).

    Parameters
    ----------
    workdir : Path
        Folder for the demo's site store (``.demo`` by default).
    console : rich.console.Console
        Where the tour is printed.
    fresh : bool
        Start from an empty folder.
    """
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "synthea_site.duckdb"
    summary: dict[str, Any] = {"workdir": str(workdir)}
    _step(console, 1, "The cardiology data model", "cardiobox cdm variables --category lab")
    summary["data_model"] = data_model(console)
    _step(
        console,
        2,
        "A hospital site store from a FHIR R4 bulk export (Synthea, 13 patients)",
        f"cardiobox store import {synthea_dir()} --site {db}",
    )
    summary["site_store"] = site_store(console, db)
    _step(
        console,
        3,
        "SQL-on-FHIR views over the store",
        f"cardiobox views run condition --site {db} --out conditions.parquet",
    )
    summary["views"] = views(console, db)
    _step(
        console,
        4,
        "Bad input is rejected with the rule it breaks",
        "cardiobox cdm validate observation.json",
    )
    summary["bad_input"] = bad_input(console)
    console.print()
    console.print(
        f"[bold green]Tour done.[/] Explore: [bold]cardiobox store stats --site {db}[/], "
        f"[bold]cardiobox store quarantine --site {db}[/], [bold]cardiobox views list[/], "
        "[bold]cardiobox --help[/]"
    )
    return summary
