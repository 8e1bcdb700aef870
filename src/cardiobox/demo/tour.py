"""The tour: each step shows one capability, on real data, and says which command does it.

Steps (later issues add more):

1. the cardiology data model: variables, code sets, seven languages;
2. a hospital site store built from a FHIR R4 bulk export (Synthea), with validation,
   R4 → R5 conversion, quarantine, and an idempotent second import;
3. SQL-on-FHIR views over the store;
4. validation of bad input, with the rule that each breaks;
5. three demo hospitals (Spanish, Dutch, Swedish extracts, each its own conventions and
   planted dirt) generated, loaded through their mappings, and checked by quality reports;
6. a real dataset: UCI Heart Disease, four hospitals, loaded through the example mappings;
7. cohorts and feature sets: analysis-ready tables;
8. federated analysis across the demo hospitals: a feasibility count, an exact logistic
   regression and Kaplan–Meier curves, with each site's policy and audit log;
9. CardioSynth: a differentially private synthetic copy of one demo hospital (MST at ε = 1),
   its quality report and release gate, loaded into a store the cohort tools read.
"""

from __future__ import annotations

import math
import shutil
import time
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
from cardiobox.demo.data import examples_dir, synthea_dir
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


def hospitals(console: Console, workdir: Path, n_patients: int) -> dict[str, Any]:
    """Step 5: generate three hospitals, ingest every table, write quality reports."""
    from cardiobox.demo.hospitals import TABLES, generate_all
    from cardiobox.ingest.engine import run_mapping
    from cardiobox.quality.engine import run_quality
    from cardiobox.quality.report import write_report

    extracts = generate_all(workdir / "hospitals", n_patients=n_patients)
    table = Table(
        title=f"Demo hospitals: {n_patients:,} patients each, loaded through their mappings",
        title_justify="left",
    )
    for col in (
        "hospital",
        "rows",
        "loaded",
        "quarantined",
        "planted",
        "resources",
        "failing checks",
    ):
        table.add_column(col, justify="left" if col == "hospital" else "right")
    out: dict[str, Any] = {}
    key = workdir / "hospitals" / "site.key"
    for h in extracts.values():
        store = workdir / f"{h.name}.duckdb"
        read = loaded = quarantined = created = 0
        for t in TABLES:
            rep = run_mapping(h.mapping_path(t), store, key_file=key)
            read += rep.rows_read
            loaded += rep.rows_loaded
            quarantined += rep.rows_quarantined
            created += rep.resources_created
        planted = sum(h.planted(k) for k in ("impossible_value", "unknown_code", "unparsable_date"))
        result = run_quality([store])
        html, _json = write_report(result, workdir / f"{h.name}_quality")
        failing = sum(1 for c in result.checks if c.status == "fail")
        table.add_row(
            h.name.removeprefix("hospital_"),
            f"{read:,}",
            f"{loaded:,}",
            f"{quarantined:,}",
            f"{planted:,}",
            f"{created:,}",
            str(failing),
        )
        out[h.name] = {
            "rows_read": read,
            "rows_loaded": loaded,
            "rows_quarantined": quarantined,
            "planted_quarantinable": planted,
            "resources": created,
            "quality_failing": failing,
            "report": str(html),
        }
    console.print(table)
    console.print(
        "Each hospital's quarantine holds exactly its planted impossible values, unknown codes "
        "and unparsable dates; its quality report (HTML) flags the planted events after death."
    )
    return out


def uci(console: Console, workdir: Path) -> dict[str, Any]:
    """Step 6: load the four UCI Heart Disease hospitals through the example mappings."""
    from cardiobox.ingest.engine import run_mapping

    root = examples_dir() / "uci_heart_disease"
    out: dict[str, Any] = {}
    for site in ("cleveland", "hungarian", "switzerland", "va"):
        rep = run_mapping(
            root / f"{site}.yaml",
            workdir / f"uci_{site}.duckdb",
            key_file=workdir / "hospitals" / "site.key",
        )
        out[site] = {
            "rows_read": rep.rows_read,
            "rows_loaded": rep.rows_loaded,
            "rows_quarantined": rep.rows_quarantined,
        }
    console.print(
        "UCI Heart Disease: "
        + "; ".join(f"{s} {v['rows_loaded']}/{v['rows_read']} rows" for s, v in out.items())
        + " loaded, every row accounted for"
    )
    return out


def cohorts(console: Console, workdir: Path) -> dict[str, Any]:
    """Step 7: the Study-1-like cohort and features at each hospital; the UCI columns."""
    from cardiobox.cohort import extract
    from cardiobox.cohort.library import resolve

    table = Table(
        title="Heart-failure admissions (built-in hf_admissions + hf_features)",
        title_justify="left",
    )
    for col in ("hospital", "admissions", "patients", "columns", "death 1 y", "HF readm. 30 d"):
        table.add_column(col, justify="left" if col == "hospital" else "right")
    out: dict[str, Any] = {}
    for store in sorted(workdir.glob("hospital_*.duckdb")):
        result = extract(
            resolve("hf_admissions"),
            store,
            features=resolve("hf_features"),
            out=workdir / f"{store.stem}_hf.parquet",
        )
        assert result.table is not None
        t = result.table

        def rate(col: str, t: Any = t) -> str:
            known = [v for v in t.column(col).to_pylist() if v is not None]
            return f"{100 * sum(known) / len(known):.1f} %" if known else "–"

        entry = result.attrition[0]
        table.add_row(
            store.stem.removeprefix("hospital_"),
            f"{entry.rows:,}",
            f"{result.patients:,}",
            str(t.num_columns),
            rate("death_1y"),
            rate("hf_readmission_30d"),
        )
        out[store.stem] = {"rows": result.rows, "columns": t.num_columns, "out": result.out}
    console.print(table)
    uci = extract(
        examples_dir() / "uci_heart_disease" / "cohort.yaml",
        workdir / "uci_cleveland.duckdb",
        features=examples_dir() / "uci_heart_disease" / "features.yaml",
        out=workdir / "uci_cleveland.parquet",
    )
    assert uci.table is not None
    out["uci_cleveland"] = {"rows": uci.rows, "columns": uci.table.column_names}
    console.print(
        f"UCI Cleveland rebuilt from the data model: {uci.rows} rows, columns "
        + " ".join(
            c
            for c in uci.table.column_names
            if c not in ("row_id", "encounter_id", "index_time", "patient_id")
        )
        + f" → {uci.out} (+ metadata JSON, small cells suppressed)"
    )
    return out


def _refusals(console: Console, what: str, exc: Any) -> dict[str, Any]:
    """Print why the sites would not run an analysis (small demos make small cells)."""
    reasons = {**exc.report.refused, **exc.report.failed}
    console.print(f"[yellow]{what}: the sites refused[/] — " + escape(
        "; ".join(f"{s}: {r}" for s, r in reasons.items())
    ))  # fmt: skip
    return {"refused": reasons}


def _logreg_table(console: Console, report: Any) -> dict[str, Any]:
    res = report.result
    table = Table(
        title=f"Death within a year, logistic regression on {res['n']:,} admissions at "
        f"{len(report.sites)} hospitals (exact: equals the pooled fit)",
        title_justify="left",
    )
    for col in ("term", "odds ratio", "95 % CI", "p"):
        table.add_column(col, justify="left" if col == "term" else "right")
    for term, beta in res["coefficients"].items():
        lo, hi = res["ci_lower"][term], res["ci_upper"][term]
        table.add_row(
            term,
            f"{math.exp(beta):.3f}",
            f"{math.exp(lo):.3f}–{math.exp(hi):.3f}",
            f"{res['p_values'][term]:.2g}",
        )
    console.print(table)
    return {"n": res["n"], "rounds": report.rounds, "coefficients": res["coefficients"]}


def _km_line(console: Console, report: Any) -> dict[str, Any]:
    res = report.result
    times = res["times"]
    console.print(
        "Kaplan–Meier, survival after admission by sex (time grid of 30 days, summed risk "
        "tables): "
        + "; ".join(
            f"{g} {100 * v['survival'][times.index(180)]:.1f} % at 180 d, "
            f"{100 * v['survival'][-1]:.1f} % at 360 d"
            for g, v in res["groups"].items()
        )
        + f"; log-rank p = {res['logrank']['p']:.2g}"
    )
    return {"groups": list(res["groups"]), "logrank": res["logrank"]}


def federated(console: Console, workdir: Path) -> dict[str, Any]:
    """Step 8: a feasibility count, a logistic regression and a Kaplan–Meier curve across sites."""
    from cardiobox.federated import RunError, make_nodes
    from cardiobox.federated import run as fed_run

    stores = {
        p.stem.removeprefix("hospital_"): p for p in sorted(workdir.glob("hospital_*.duckdb"))
    }
    # One node per hospital, each with the default policy (cells of 10, three sites, no DP
    # budget) and its audit log inside its own store; the nodes keep their cohort tables.
    nodes = make_nodes(stores)
    study = {"cohort": "hf_admissions", "features": "hf_features"}
    out: dict[str, Any] = {}

    count = fed_run("count", nodes, {**study, "where": "age >= 75 AND lvef_stay < 40"})
    assert count.result is not None
    per_site = count.result["per_site"]
    console.print(
        "Feasibility: admissions aged 75+ with LVEF < 40 % — "
        + ", ".join(f"{s} {'<10' if n is None else n}" for s, n in per_site.items())
        + f"; total {count.result['total']} (counts below 10 never leave a site)"
    )
    out["count"] = count.result

    covariates = ["age", "lvef_stay", "egfr_admission", "sbp_admission"]
    try:
        logreg = fed_run(
            "logreg", nodes, {**study, "outcome": "death_1y", "covariates": covariates}
        )
        out["logreg"] = _logreg_table(console, logreg)
    except RunError as exc:
        out["logreg"] = _refusals(console, "Logistic regression", exc)
    km_params = {**study, "duration": "death_1y_days", "event": "death_1y", "group": "sex",
                 "step": 30, "max_time": 360}  # fmt: skip
    try:
        out["km"] = _km_line(console, fed_run("km", nodes, km_params))
    except RunError as exc:
        out["km"] = _refusals(console, "Kaplan–Meier", exc)
    audit = nodes[0].audit
    out["audit_entries"] = len(audit.entries())
    console.print(
        f"Every request is logged at the site: {nodes[0].name} holds {out['audit_entries']} "
        f"audit entries, hash chain {'intact' if audit.verify() is None else 'BROKEN'} "
        f"(cardiobox fed audit {stores[nodes[0].name]})"
    )
    return out


#: The key columns of an analysis table: identifiers and calendar times are not synthesized.
KEY_COLUMNS = ("row_id", "patient_id", "encounter_id", "index_time")


def _auroc(result: Any, kind: str) -> str:
    """``TSTR / TRTR`` AUROC of one model of the utility measures, or why there is none."""
    if result.utility is None:
        return "–"
    for m in result.utility.models:
        if m.model == kind:
            if m.tstr is None or m.trtr is None:
                return "n/a (" + "; ".join(m.notes[:1]) + ")" if m.notes else "n/a"
            return f"{m.tstr:.2f} / {m.trtr:.2f}"
    return "–"


def synthetic(console: Console, workdir: Path) -> dict[str, Any]:
    """Step 9: a DP synthetic copy of hospital_es, its quality report, loaded into a store."""
    import time

    from cardiobox import tableio
    from cardiobox.cohort import count
    from cardiobox.cohort.library import resolve
    from cardiobox.errors import CardioboxError
    from cardiobox.synth.api import fit
    from cardiobox.synth.evaluate import evaluate, split_holdout
    from cardiobox.synth.fhir import to_store
    from cardiobox.synth.gate import check_release
    from cardiobox.synth.report import write_report
    from cardiobox.synth.templates import domain_for_feature_set

    source = workdir / "hospital_es_hf.parquet"
    real = tableio.read_table(source)
    real = real.drop([c for c in KEY_COLUMNS if c in real.column_names])
    domain = domain_for_feature_set("hf_features")
    out: dict[str, Any] = {"rows": real.num_rows}
    try:
        # the holdout is set aside before fitting: rows the synthesizer saw are no holdout
        train, holdout = split_holdout(real, 0.3, seed=0)
        started = time.perf_counter()
        model = fit(train, domain, "mst", epsilon=1.0, delta=1e-5, seed=1)
        seconds = time.perf_counter() - started
        syn = model.sample(real.num_rows, seed=2)
        g = model.guarantee
        outcomes = [c.name for c in domain.columns if c.name.startswith(("death_", "cv_death_",
                    "hf_readmission_")) and c.name != "death_1y"]  # fmt: skip
        result = evaluate(
            train,
            syn,
            holdout,
            domain,
            outcome="death_1y",
            guarantee=g.to_dict(),
            seed=0,
            exclude=outcomes,
        )
        page = write_report(result, workdir / "synthetic_es_report")
        gate = check_release(result)
        store = workdir / "synthetic_es.duckdb"
        tableio.write_table(syn, workdir / "synthetic_es.parquet")
        loaded = to_store(syn, domain, store, id_prefix="synth-es")
        counted = count(resolve("hf_admissions"), store)
    except CardioboxError as exc:  # tiny demos make tables too small to split or model
        console.print(f"[yellow]CardioSynth skipped:[/] {escape(exc.message)}")
        return {**out, "refused": exc.message}
    two = result.fidelity.two_way_mean
    console.print(
        f"MST fitted on {train.num_rows:,} admissions × {len(domain.columns)} columns in "
        f"{seconds:.2f} s: (ε={g.epsilon:g}, δ={g.delta:g})-DP (ρ={g.rho:.3g}); "
        f"{syn.num_rows:,} synthetic admissions sampled"
    )
    console.print(
        f"mean 2-way TVD {two.synthetic or 0:.3f} (noise floor, real train vs holdout: "
        f"{two.noise_floor or 0:.3f}; independent columns: {two.independent or 0:.3f}); "
        f"death within a year, AUROC TSTR / TRTR: logistic regression "
        f"{escape(_auroc(result, 'logistic_regression'))}, gradient boosting "
        f"{escape(_auroc(result, 'gradient_boosting'))}; membership-inference AUROC "
        f"{result.privacy.mia_auroc:.2f}"
    )
    verdict = "[green]passed[/]" if gate.passed else "[red]refused[/]"
    console.print(
        f"release gate {verdict}; report {escape(str(page))}. Synthetic store "
        f"{escape(str(store))}: {loaded.stored:,} resources, {loaded.quarantined} quarantined; "
        f"the cohort tool counts {counted.rows:,} synthetic heart-failure admissions"
    )
    for failure in gate.failures:
        console.print(f"  [red]✗[/] {escape(str(failure))}")
    return {
        **out,
        "fit_seconds": seconds,
        "guarantee": g.to_dict(),
        "synthetic_rows": syn.num_rows,
        "two_way_tvd": {"synthetic": two.synthetic, "noise_floor": two.noise_floor},
        "utility": {m.model: {"tstr": m.tstr, "trtr": m.trtr}
                    for m in (result.utility.models if result.utility else [])},
        "mia_auroc": result.privacy.mia_auroc,
        "gate_passed": gate.passed,
        "report": str(page),
        "store": str(store),
        "resources": loaded.stored,
        "quarantined": loaded.quarantined,
        "cohort_rows": counted.rows,
    }  # fmt: skip


#: The language of each demo hospital's notes.
NOTE_LANGUAGES = {"hospital_es": "es", "hospital_nl": "nl", "hospital_se": "sv"}


def notes(console: Console, workdir: Path) -> dict[str, Any]:
    """Step 10: each hospital's notes, in its language, into structured facts in its store."""
    from cardiobox.nlp.annotate import annotate_notes
    from cardiobox.nlp.notes_io import store_notes
    from cardiobox.nlp.pipeline import NotePipeline
    from cardiobox.store.site_store import SiteStore

    table = Table(
        title="Clinical notes → data model, in each hospital's language", title_justify="left"
    )
    for col in ("hospital", "notes", "diseases", "symptoms (absent)", "drugs", "measures",
                "stored", "notes/s"):  # fmt: skip
        table.add_column(col, justify="left" if col == "hospital" else "right")
    out: dict[str, Any] = {}
    for name, lang in NOTE_LANGUAGES.items():
        path = workdir / f"{name}.duckdb"
        if not path.exists():
            continue
        pipeline = NotePipeline(lang)
        with SiteStore(path) as store:
            found = list(store_notes(store.con, lang))
            summary = annotate_notes(found, pipeline, fmt="fhir", site=store)
        with SiteStore(path, read_only=True) as store:
            absent = store.con.execute(
                "SELECT count(*) FROM resources WHERE resource_type = 'Observation' AND "
                "resource->>'valueBoolean' = 'false' AND id LIKE 'nlp-%'"
            ).fetchall()[0][0]
        e = summary["entities"]
        table.add_row(
            f"{name.removeprefix('hospital_')} ({lang}, {summary['entity_source']})",
            f"{summary['notes']:,}",
            f"{e.get('DISEASE', 0):,}",
            f"{e.get('SYMPTOM', 0):,} ({absent:,})",
            f"{e.get('MEDICATION', 0):,}",
            f"{summary['measurements']:,}",
            f"{summary.get('store', {}).get('stored', 0):,}",
            f"{summary['notes_per_second']}",
        )
        out[name] = {**summary, "absent_symptoms": absent}
    console.print(table)
    console.print(
        "Negation is kept: a denied symptom is stored as an Observation with value false, a "
        "ruled-out disease as a refuted Condition; every resource points at its note and span."
    )
    return out


#: Notes per hospital that the transformer option reads in the tour (about 0.3 s a note).
TRANSFORMER_NOTES = 5


def transformer_option(console: Console, workdir: Path) -> dict[str, Any]:
    """The transformer option on a few Dutch and Swedish notes, next to the lexicon's finds."""
    from cardiobox.nlp.notes_io import store_notes
    from cardiobox.nlp.pipeline import NotePipeline
    from cardiobox.store.site_store import SiteStore

    table = Table(
        title="The transformer option (multilingual-e5-small, a tagger trained on Spanish notes) "
        f"on {TRANSFORMER_NOTES} notes each",
        title_justify="left",
    )
    for col in ("hospital", "entities: lexicon", "transformer", "both (same span and type)",
                "notes/s"):  # fmt: skip
        table.add_column(col, justify="left" if col == "hospital" else "right")
    out: dict[str, Any] = {}
    for name, lang in NOTE_LANGUAGES.items():
        path = workdir / f"{name}.duckdb"
        if lang == "es" or not path.exists():
            continue
        with SiteStore(path, read_only=True) as store:
            texts = [n.text for n in store_notes(store.con, lang)][:TRANSFORMER_NOTES]
        found = {}
        for source in ("lexicon", "transformer"):
            pipeline = NotePipeline(lang, model=None if source == "lexicon" else source)
            pipeline("Warm-up.")  # loads the encoder's layers before the timing
            started = time.perf_counter()
            found[source] = {
                (i, s.start_char, s.end_char, s.label_)
                for i, doc in enumerate(pipeline.pipe(texts))
                for s in doc.spans["entities"]
            }
            rate = len(texts) / max(time.perf_counter() - started, 1e-9)
        both = len(found["lexicon"] & found["transformer"])
        table.add_row(
            f"{name.removeprefix('hospital_')} ({lang})",
            str(len(found["lexicon"])),
            str(len(found["transformer"])),
            str(both),
            f"{rate:.1f}",
        )
        out[name] = {
            "notes": len(texts),
            "lexicon": len(found["lexicon"]),
            "transformer": len(found["transformer"]),
            "both": both,
            "notes_per_second": round(rate, 2),
        }
    console.print(table)
    console.print(
        "No Dutch or Swedish notes were annotated for training: the transformer option's tagger "
        "learnt from Spanish notes only and reads the others through a multilingual encoder "
        "([bold]cardiobox nlp annotate --model transformer[/]). It is slow on a CPU and is not "
        "the default; docs/nlp.md has its scores."
    )
    return out


#: Multilingual queries the catalogue step asks; each should find LVEF first.
CATALOGUE_QUERIES = ("fracción de eyección", "ejectiefractie", "ejektionsfraktion")


def catalogue(console: Console, workdir: Path) -> dict[str, Any]:
    """Step 11: each hospital describes its data (HealthDCAT-AP); the hub harvests; search."""
    from cardiobox.catalogue.hub import Hub
    from cardiobox.catalogue.search_sources import open_index
    from cardiobox.demo.hospitals.profile import data_dir

    hub = Hub(workdir / "catalogue_hub")
    table = Table(
        title="The federation's catalogue (HealthDCAT-AP, SHACL-validated)", title_justify="left"
    )
    for col in ("site", "accepted", "variables", "individuals", "message"):
        table.add_column(col, justify="left" if col in ("site", "message") else "right")
    out: dict[str, Any] = {"sites": {}}
    for name in NOTE_LANGUAGES:
        store = workdir / f"{name}.duckdb"
        if not store.exists():
            continue
        result = hub.publish(name, store, profile=data_dir(name) / "catalogue.yaml")
        variables = individuals = 0
        if result.accepted:
            d = hub.description(name)
            variables, individuals = len(d.variables), d.number_of_unique_individuals or 0
        table.add_row(name, "yes" if result.accepted else "[red]no[/]", f"{variables:,}",
                      f"{individuals:,}", escape(result.message.split(" (")[0]))  # fmt: skip
        out["sites"][name] = {"accepted": result.accepted, "variables": variables}
    console.print(table)
    index = open_index(hub.path)
    for query in CATALOGUE_QUERIES:
        hits = index.search(query, k=3)
        top = ", ".join(f"{h.variable_id or h.id} @ {h.site}" for h in hits[:2])
        console.print(f"search [bold]{escape(query)}[/] → {escape(top)}")
        out.setdefault("searches", {})[query] = [h.variable_id for h in hits]
    return out


def run_tour(
    workdir: Path, console: Console, fresh: bool = True, n_patients: int = 1000
) -> dict[str, Any]:
    """Run every step; return a summary (also printed as ``--json``).

    Parameters
    ----------
    workdir : Path
        Folder for the demo's site store (``.demo`` by default).
    console : rich.console.Console
        Where the tour is printed.
    fresh : bool
        Start from an empty folder.
    n_patients : int
        Patients per demo hospital.
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
    _step(
        console,
        5,
        "Three hospitals' extracts, mapped into the data model, quality-checked",
        "cardiobox ingest run MAPPING.yaml --site STORE; cardiobox quality report --site STORE "
        "--out DIR",
    )
    summary["hospitals"] = hospitals(console, workdir, n_patients)
    _step(
        console,
        6,
        "A real multi-site dataset: UCI Heart Disease, four hospitals",
        "cardiobox ingest run examples/uci_heart_disease/cleveland.yaml --site cleveland.duckdb",
    )
    summary["uci"] = uci(console, workdir)
    _step(
        console,
        7,
        "Cohorts and feature sets: analysis-ready tables",
        "cardiobox cohort extract hf_admissions --site STORE --features hf_features "
        "--out hf.parquet",
    )
    summary["cohorts"] = cohorts(console, workdir)
    _step(
        console,
        8,
        "Federated analysis across the hospitals, privacy enforced at each site",
        "cardiobox fed run logreg --site es=hospital_es.duckdb --site nl=... --site se=... "
        '--params \'{"cohort": "hf_admissions", "features": "hf_features", '
        '"outcome": "death_1y", "covariates": ["age"]}\'',
    )
    summary["federated"] = federated(console, workdir)
    _step(
        console,
        9,
        "CardioSynth: a synthetic copy of a demo hospital",
        "cardiobox synth fit hf.parquet --domain DOMAIN.yaml --epsilon 1 --out model.json; "
        "cardiobox synth sample ...; cardiobox synth report ...; "
        "cardiobox synth export synthetic.parquet --domain hf_features --site synthetic.duckdb",
    )
    summary["synth"] = synthetic(console, workdir)
    _step(
        console,
        10,
        "Clinical notes in Spanish, Dutch and Swedish, read into the data model",
        "cardiobox nlp annotate --site hospital_es.duckdb --lang es --format fhir",
    )
    summary["notes"] = notes(console, workdir)
    summary["transformer_option"] = transformer_option(console, workdir)
    _step(
        console,
        11,
        "A catalogue of the federation: what each hospital holds, searchable in seven languages",
        "cardiobox catalogue build --site hospital_es.duckdb --out es.ttl; cardiobox catalogue "
        'publish es.ttl --hub hub/ --site hospital_es; cardiobox catalogue search "fracción de '
        'eyección" --catalogue hub/',
    )
    summary["catalogue"] = catalogue(console, workdir)
    console.print()
    console.print(
        f"[bold green]Tour done.[/] Explore: [bold]cardiobox store stats --site {db}[/], "
        f"[bold]cardiobox store quarantine --site {db}[/], [bold]cardiobox views list[/], "
        f"quality reports in [bold]{workdir}/*_quality/quality.html[/], "
        f"analysis tables in [bold]{workdir}/*.parquet[/], [bold]cardiobox cohort library[/], "
        f"[bold]cardiobox fed audit {workdir}/hospital_es.duckdb[/], the synthetic-data report "
        f"in [bold]{workdir}/synthetic_es_report/report.html[/], notes read into facts: "
        f"[bold]cardiobox nlp annotate --help[/], the catalogue hub in "
        f"[bold]{workdir}/catalogue_hub[/] ([bold]cardiobox catalogue search QUERY --catalogue "
        f"{workdir}/catalogue_hub[/]), [bold]cardiobox --help[/]"
    )
    return summary
