"""Benchmark: 1,000,000 lab rows through a mapping with code look-up and unit conversion.

End to end (`cardiobox.ingest.engine.run_mapping`: read the CSV, look codes up, convert units,
parse dates with time zones, pseudonymise, build FHIR R5 Observations, validate them against
FHIR and the data model, store) in rows/s, against a plain row-by-row Python mapping that
builds and validates ``fhir.resources`` objects, on a sample. Before any figure is reported,
the stored Observations of the sample's rows are compared with the baseline's (code, time,
value to 1e-9 relative, unit).

Run: ``python benchmarks/ingest.py [--n 1000000] [--sample 20000]``; prints a table and writes
``benchmarks/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import print_table, run_step, write_result

TARGETS = {"rows_per_s": 100_000, "speedup": 20}

CODES = {  # local code: (LOINC, display, [(unit, typical value)])
    "K": ("2823-3", "Potassium", [("mEq/L", 4.2), ("mmol/L", 4.2)]),
    "NA": ("2951-2", "Sodium", [("mmol/L", 139.0)]),
    "NTPRO": ("33762-6", "NT-proBNP", [("pg/mL", 1500.0), ("ng/L", 1500.0), ("pmol/L", 177.0)]),
    "CREA": ("2160-0", "Creatinine", [("mg/dL", 1.1), ("umol/L", 97.0)]),
    "HB": ("718-7", "Hemoglobin", [("g/dL", 13.0), ("g/L", 130.0), ("mmol/L", 8.1)]),
}

MAPPING = """cardiobox_mapping: 1
name: bench-labs
source: {format: csv, path: labs.csv, delimiter: ";", decimal: ","}
timezone: Europe/Madrid
patient: nhc
concept_maps: {lab_tests: lab_tests.csv}
resources:
  - id: lab
    type: Observation
    code: {expr: prueba, map: lab_tests}
    value: {expr: resultado, type: decimal}
    unit: unidad
    effective: {expr: fecha, format: "%d/%m/%Y %H:%M"}
"""


def write_extract(folder: Path, n: int, seed: int = 3) -> None:
    """A Spanish-style lab extract: ';', decimal comma, dd/mm/yyyy HH:MM, mixed units."""
    rng = np.random.default_rng(seed)
    codes = np.array(list(CODES))
    which = rng.integers(0, len(codes), n)
    local = codes[which]
    units = np.empty(n, dtype=object)
    values = np.empty(n, dtype=float)
    for i, code in enumerate(codes):
        sel = which == i
        options = CODES[code][2]
        pick = rng.integers(0, len(options), int(sel.sum()))
        units[sel] = np.array([u for u, _ in options], dtype=object)[pick]
        typical = np.array([v for _, v in options])[pick]
        values[sel] = np.round(typical * rng.uniform(0.8, 1.2, int(sel.sum())), 2)
    seconds = rng.integers(0, 5 * 365 * 24 * 3600, n).astype("timedelta64[s]")
    stamp = np.datetime64("2019-01-01T00:00:00") + seconds
    dates = pa.array(stamp.astype("datetime64[s]")).cast(pa.timestamp("s"))
    text_dates = pc.strftime(dates, format="%d/%m/%Y %H:%M")
    table = pa.table(
        {
            "nhc": pa.array([f"{p:07d}" for p in rng.integers(0, 50_000, n)]),
            "fecha": text_dates,
            "prueba": pa.array(local.tolist()),
            "resultado": pc.replace_substring(
                pa.array(values).cast(pa.string()), pattern=".", replacement=","
            ),
            "unidad": pa.array(units.tolist()),
        }
    )
    pacsv.write_csv(
        table,
        folder / "labs.csv",
        pacsv.WriteOptions(delimiter=";", quoting_style="none"),
    )
    with (folder / "lab_tests.csv").open("w", encoding="utf-8") as fh:
        fh.write("local_code,system,code,display\n")
        for code, (loinc, display, _) in CODES.items():
            fh.write(f"{code},http://loinc.org,{loinc},{display}\n")
    (folder / "labs.yaml").write_text(MAPPING, encoding="utf-8")


def step_ingest(folder: str) -> dict[str, Any]:
    from cardiobox.ingest.engine import run_mapping

    t, cpu = time.perf_counter(), time.process_time()
    rep = run_mapping(Path(folder) / "labs.yaml", Path(folder) / "site.duckdb")
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        # CPU time of every thread: less sensitive than wall time to a busy shared machine
        "cpu_seconds": time.process_time() - cpu,
        "rows_read": rep.rows_read,
        "rows_loaded": rep.rows_loaded,
        "rows_quarantined": rep.rows_quarantined,
        "resources_created": rep.resources_created,
        "rows_per_s": rep.rows_read / seconds,
        "peak_memory_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }


def step_row_by_row(folder: str, sample: int) -> dict[str, Any]:
    """The straightforward alternative: one Python loop iteration and one fhir.resources
    Observation per row (code look-up, unit conversion and time zone done per row)."""
    import hashlib
    import hmac

    from fhir.resources.observation import Observation

    from cardiobox.ingest.units import conversion

    key = b"k" * 32
    codes = {code: (loinc, display) for code, (loinc, display, _) in CODES.items()}
    variables = {
        "K": "potassium",
        "NA": "sodium",
        "NTPRO": "nt_probnp",
        "CREA": "creatinine",
        "HB": "hemoglobin",
    }
    tz = ZoneInfo("Europe/Madrid")
    conv_cache: dict[tuple[str, str], Any] = {}
    with (Path(folder) / "labs.csv").open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        rows = [row for _, row in zip(range(sample), reader, strict=False)]
    t = time.perf_counter()
    out = []
    for row in rows:
        loinc, display = codes[row["prueba"]]
        k = (variables[row["prueba"]], row["unidad"])
        if k not in conv_cache:
            conv_cache[k] = conversion(*k)
        c = conv_cache[k]
        value = float(row["resultado"].replace(",", ".")) * c.factor + c.offset
        when = datetime.strptime(row["fecha"], "%d/%m/%Y %H:%M").replace(tzinfo=tz)
        pid = hmac.new(key, ("Patient|" + row["nhc"]).encode(), hashlib.sha256).hexdigest()[:32]
        obs = Observation.model_validate(
            {
                "resourceType": "Observation",
                "id": hashlib.md5(json.dumps(row).encode()).hexdigest(),
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": loinc, "display": display}]
                },
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": when.isoformat(),
                "valueQuantity": {
                    "value": round(value, 6),
                    "unit": c.to_unit,
                    "system": "http://unitsofmeasure.org",
                    "code": c.to_unit,
                },
            }
        )
        out.append(obs.model_dump_json())
    seconds = time.perf_counter() - t
    observations = []
    for row, text in zip(rows, out, strict=True):
        essentials = _essentials(json.loads(text))
        # A local time in the hour that a change of summer time repeats or skips has two
        # readings (fold 0 and 1); either one is right.
        local = datetime.strptime(row["fecha"], "%d/%m/%Y %H:%M")
        other = local.replace(tzinfo=tz, fold=1).isoformat()
        observations.append([*essentials, other if other != essentials[1] else None])
    return {
        "seconds": seconds,
        "rows": len(rows),
        "rows_per_s": len(rows) / seconds,
        "observations": observations,
    }


def _essentials(obs: dict[str, Any]) -> list[Any]:
    """What the two ways of mapping a row must agree on: code, time, value, unit."""
    q = obs["valueQuantity"]
    return [obs["code"]["coding"][0]["code"], obs["effectiveDateTime"], q["value"], q["code"]]


def compare(folder: str, baseline: list[list[Any]]) -> int:
    """Check the store's Observations of the sample's rows against the baseline's.

    Returns the number of rows compared; raises AssertionError on the first difference. A
    local time at a change of summer time may have either of its two readings.
    """
    import duckdb

    con = duckdb.connect(str(Path(folder) / "site.duckdb"), read_only=True)
    stored = con.execute(
        "SELECT source_line, resource FROM resources WHERE source_line <= ? ORDER BY 1",
        [len(baseline) + 1],  # line 1 is the header
    ).fetchall()
    con.close()
    assert [line for line, _ in stored] == list(range(2, len(baseline) + 2)), "rows missing"
    for (line, text), expected in zip(stored, baseline, strict=True):
        code, when, value, unit = _essentials(json.loads(text))
        assert [code, unit] == [expected[0], expected[3]], (line, text)
        assert when in (expected[1], expected[4]), (line, text)
        assert abs(value - expected[2]) <= 1e-9 * max(1.0, abs(expected[2])), (line, text)
    return len(stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="Lab rows to generate.")
    parser.add_argument("--sample", type=int, default=20_000, help="Row-by-row sample size.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_extract(Path(tmp), args.n)
        generated = time.perf_counter() - t
        # The extract is on disk before the load starts, as a hospital's monthly extract is:
        # the generator's dirty pages are not left to be written back during the load.
        os.sync()
        ingest = run_step("ingest", "ingest", tmp)
        baseline = run_step("ingest", "row_by_row", tmp, args.sample)
        compared = compare(tmp, baseline.pop("observations"))
    speedup = ingest["rows_per_s"] / baseline["rows_per_s"]
    result = {
        "benchmark": "ingest",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "n": args.n,
        "generate_seconds": generated,
        "ingest": ingest,
        "row_by_row": baseline,
        "rows_compared_with_baseline": compared,
        "speedup": speedup,
        "targets": TARGETS,
    }
    rows = [
        (
            "ingest, end to end",
            f"{ingest['rows_per_s']:,.0f} rows/s",
            "≥ 100,000 rows/s",
            ingest["rows_per_s"] >= TARGETS["rows_per_s"],
        ),
        ("row-by-row Python + fhir.resources", f"{baseline['rows_per_s']:,.0f} rows/s", "", None),
        ("speed-up", f"{speedup:,.1f}×", "≥ 20×", speedup >= TARGETS["speedup"]),
        ("peak memory", f"{ingest['peak_memory_gb']:.2f} GB", "", None),
    ]
    print(
        f"\nIngestion benchmark: {args.n:,} lab rows "
        f"(ingest {ingest['seconds']:.1f} s, CPU {ingest['cpu_seconds']:.1f} s; "
        f"{ingest['rows_quarantined']} quarantined; "
        f"the first {compared:,} rows agree with the row-by-row mapping)\n"
    )
    print_table(rows)
    write_result("ingest", result)


if __name__ == "__main__":
    main()
