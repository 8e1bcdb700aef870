"""Benchmark: import 1,000,000 Observations into a site store and materialise the observation view.

Measures, each step in its own process (so that peak memory is the step's own):

* import: resources/s and peak memory;
* the standard ``observation`` view compiled to DuckDB SQL: rows/s and peak memory;
* the same ViewDefinition evaluated per resource in Python with fhirpathpy (the fallback
  path), on a 20,000-resource sample: rows/s; the ratio of the two.

Run: ``python benchmarks/views.py [--n 1000000] [--sample 20000]``; prints a table and writes
``benchmarks/results/views.json``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import print_table, run_step, write_result

TARGETS = {
    "import_resources_per_s": 50_000,
    "view_rows_per_s": 500_000,
    "speedup_vs_per_resource": 20,
    "peak_memory_gb": 4,
}


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def step_generate(path: str, n: int) -> dict[str, Any]:
    from benchmarks.synthetic import write_ndjson

    t = time.perf_counter()
    write_ndjson(Path(path), n)
    return {"seconds": time.perf_counter() - t, "bytes": Path(path).stat().st_size}


def step_import(path: str, db: str) -> dict[str, Any]:
    from cardiobox.store import SiteStore

    with SiteStore(db) as store:
        t = time.perf_counter()
        rep = store.import_fhir(path)
        seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "read": rep.read,
        "stored": rep.stored,
        "quarantined": rep.quarantined,
        "resources_per_s": rep.read / seconds,
        "peak_memory_gb": _peak_gb(),
        "store_bytes": Path(db).stat().st_size,
    }


def step_view(db: str) -> dict[str, Any]:
    from cardiobox.store import SiteStore
    from cardiobox.store.views import run_view
    from cardiobox.store.views.standard import load_standard_view

    view = load_standard_view("observation")
    with SiteStore(db, read_only=True) as store:
        t = time.perf_counter()
        table = run_view(store.con, view)
        seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "rows": table.num_rows,
        "columns": table.num_columns,
        "rows_per_s": table.num_rows / seconds,
        "peak_memory_gb": _peak_gb(),
    }


def step_per_resource(db: str, sample: int) -> dict[str, Any]:
    import orjson

    from cardiobox.store import SiteStore
    from cardiobox.store.views.fallback import evaluate_view
    from cardiobox.store.views.standard import load_standard_view

    view = load_standard_view("observation")
    with SiteStore(db, read_only=True) as store:
        docs = [
            orjson.loads(r[0])
            for r in store.con.execute(
                "SELECT resource FROM resources WHERE resource_type = 'Observation' LIMIT ?",
                [sample],
            ).fetchall()
        ]
    t = time.perf_counter()
    rows = evaluate_view(view, docs)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rows": len(rows), "rows_per_s": len(rows) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="Observations to generate.")
    parser.add_argument("--sample", type=int, default=20_000, help="Per-resource sample size.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, db = f"{tmp}/observations.ndjson", f"{tmp}/site.duckdb"
        gen = run_step("views", "generate", src, args.n)
        imp = run_step("views", "import", src, db)
        view = run_step("views", "view", db)
        per = run_step("views", "per_resource", db, args.sample)
    speedup = view["rows_per_s"] / per["rows_per_s"]
    peak = max(imp["peak_memory_gb"], view["peak_memory_gb"])
    result = {
        "benchmark": "views",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "n": args.n,
        "sample": args.sample,
        "generate": gen,
        "import": imp,
        "view": view,
        "per_resource": per,
        "speedup_vs_per_resource": speedup,
        "peak_memory_gb": peak,
        "targets": TARGETS,
    }
    rows = [
        (
            "import",
            f"{imp['resources_per_s']:,.0f} resources/s",
            "≥ 50,000 resources/s",
            imp["resources_per_s"] >= TARGETS["import_resources_per_s"],
        ),
        (
            "observation view (SQL)",
            f"{view['rows_per_s']:,.0f} rows/s",
            "≥ 500,000 rows/s",
            view["rows_per_s"] >= TARGETS["view_rows_per_s"],
        ),
        ("per-resource fhirpathpy", f"{per['rows_per_s']:,.0f} rows/s", "", None),
        (
            "speed-up SQL vs per-resource",
            f"{speedup:,.0f}×",
            "≥ 20×",
            speedup >= TARGETS["speedup_vs_per_resource"],
        ),
        ("peak memory", f"{peak:.2f} GB", "< 4 GB", peak < TARGETS["peak_memory_gb"]),
        ("store size", f"{imp['store_bytes'] / 1e6:,.0f} MB", "", None),
    ]
    print(
        f"\nSQL-on-FHIR benchmark: {args.n:,} Observations "
        f"(import {imp['seconds']:.1f} s, view {view['seconds']:.2f} s)\n"
    )
    print_table(rows)
    write_result("views", result)


if __name__ == "__main__":
    main()
