"""Benchmark: the Study-1-like feature set on 100,000 patients with 5,000,000 Observations.

End to end, ``cardiobox.cohort.extract(hf_admissions.yaml, store, features=hf_features.yaml,
out=...)`` — the cohort (first primary heart-failure inpatient admission of each adult) over
the store's fact tables, every column of the feature set (demographics,
first-in-stay vitals and labs, LVEF, NYHA, ECG, 44 phenotype flags, 2 × 32 medication flags,
BMI, eGFR, death, CV death and heart-failure readmission at 30 days and 1 year), the metadata
and the Parquet file — in seconds, against a straightforward pandas implementation of the same
columns from the same store: every resource read with DuckDB and parsed with ``orjson`` in a
Python loop (timed separately, and part of the baseline's end-to-end figure), then merges,
sorts and group-bys. The baseline computes all 146 columns of the table but ``row_id``, so the
ratio compares like with like; before any figure is reported the two tables are joined on the
patient and compared cell by cell (numbers to 1e-9, NULL equal to NULL).

The fact tables (patients, encounters and one row per recorded value of a data-model variable,
:mod:`cardiobox.store.facts`) are load-time work: every load refreshes them for the resources
it wrote, in its own transaction. This benchmark writes its resources by SQL, past the loaders,
so it builds them with ``SiteStore.reindex()`` — the same refresh code, over every resource —
and reports that time on its own line as load-time indexing, next to the extraction.

The data: a synthetic site store written straight into the store's ``resources`` table with
DuckDB SQL that builds the FHIR R5 JSON text — no validation, as this benchmark measures feature
extraction, not loading (``views.py`` and ``ingest.py`` measure loading; a sample of these
resources passes ``SiteStore.import_fhir`` without a quarantined item or a warning). 100,000
patients (sex, birth date, 1 % under 18, a quarter deceased), 1–3 encounters each (92 %
inpatient, with ``actualPeriod``; 0.5 % still open), a primary diagnosis per encounter (heart
failure, I50.x/I11.0/I13.0, for 85 %; another primary diagnosis otherwise, half of those with a
secondary I50.9), about three comorbidity Conditions per patient (5 % with a year-only onset,
2 % of all Conditions refuted), about four MedicationStatements (ATC codes, before or during a
stay), and the Observations: vitals and labs as single values (LOINC codes, canonical UCUM
units), NYHA class as a coded LOINC answer, ECGs (LOINC 34534-8) with QRS-duration and
atrial-fibrillation components, echocardiograms (LOINC 34552-0) with an LVEF component, and the
cause of death of the deceased; 88 % dated inside a stay with an encounter reference, 12 % in
the 500 days before an admission without one. Everything comes from numpy with a fixed seed.

Run: ``python benchmarks/features.py [--patients 100000] [--observations 5000000]
[--baseline-patients N]``; prints a table and writes ``benchmarks/results/features.json``.
``--baseline-patients`` times the pandas baseline on the first N patients only and scales its
time linearly to the full store (for quick runs; the full-size run in the docs does not use it).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import cardiobox
from cardiobox.cdm.codes import (
    ATC,
    DT4H_ECG_PARAMETER,
    ICD10,
    LOINC,
    PRIMARY_DIAGNOSIS_EXT,
    UCUM,
    V3_ACT_CODE,
)

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, print_table, run_step, write_result

LIBRARY = ROOT / "src" / "cardiobox" / "cohort" / "library"
COHORT = LIBRARY / "hf_admissions.yaml"
FEATURES = LIBRARY / "hf_features.yaml"
TARGETS = {"speedup": 10}
#: Columns that must be mostly filled, or the resources were not read as meant.
SANITY = ["sbp_admission", "creatinine_admission", "nt_probnp_admission", "age", "death_1y"]
SEED = 20261128

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
TZ = "+01:00"

# Observation kinds: (kind, share, LOINC code, display, category, unit, mean, sd, lo, hi, decimals)
# "q" single quantity; "nyha" coded answer; "ecg"/"echo" panels with components.
OBS_KINDS: list[tuple[str, float, str, str, str, str, float, float, float, float, int]] = [
    ("q", 0.16, "8480-6", "Systolic blood pressure", "vital-signs", "mm[Hg]", 125, 22, 60, 240, 0),
    ("q", 0.16, "8462-4", "Diastolic blood pressure", "vital-signs", "mm[Hg]", 72, 13, 30, 140, 0),
    ("q", 0.16, "8867-4", "Heart rate", "vital-signs", "/min", 82, 18, 30, 200, 0),
    ("q", 0.08, "29463-7", "Body weight", "vital-signs", "kg", 78, 17, 35, 200, 1),
    ("q", 0.02, "8302-2", "Body height", "vital-signs", "cm", 168, 10, 140, 205, 0),
    ("q", 0.05, "33762-6", "NT-proBNP", "laboratory", "pg/mL", 0, 0, 20, 70000, 0),
    ("q", 0.08, "2160-0", "Creatinine", "laboratory", "umol/L", 110, 45, 30, 900, 0),
    ("q", 0.08, "2823-3", "Potassium", "laboratory", "mmol/L", 4.3, 0.55, 2.5, 7.5, 1),
    ("q", 0.08, "2951-2", "Sodium", "laboratory", "mmol/L", 138, 4, 115, 160, 0),
    ("q", 0.07, "718-7", "Hemoglobin", "laboratory", "g/dL", 12.5, 2, 6, 19, 1),
    ("nyha", 0.02, "88020-3", "NYHA functional class", "exam", "", 0, 0, 0, 0, 0),
    ("ecg", 0.02, "34534-8", "12-lead ECG", "vital-signs", "ms", 110, 25, 60, 220, 0),
    ("echo", 0.02, "34552-0", "Echocardiogram", "imaging", "%", 40, 13, 10, 80, 0),
]
NYHA = ["LA28404-4", "LA28405-1", "LA28406-9", "LA28407-7"]
HF_PRIMARY = ["I50.0", "I50.1", "I50.9", "I50.23", "I50.33", "I11.0", "I13.0"]
OTHER_PRIMARY = ["J18.9", "J44.1", "N17.9", "A41.9", "K92.2"]
COMORBID = [
    "I10", "I48.0", "I48.2", "E11.9", "E10.9", "N18.3", "J44.9", "I25.10", "I21.4", "E78.5",
    "E66.9", "D50.9", "G47.33", "I63.9", "C78.0", "I35.0", "F32.9", "E03.9", "I70.2", "K70.3",
]  # fmt: skip
DRUGS = [
    "C07AB07", "C07AG02", "C09AA05", "C09CA01", "C09DX04", "C03DA01", "C03CA01", "B01AF01",
    "B01AA03", "B01AC06", "C10AA05", "A10BA02", "A10BK01", "C01AA05", "C01BD01", "C08CA01",
]  # fmt: skip
CAUSES = ["I50.9", "I21.9", "I46.9", "C34.9", "J18.9", "N18.5"]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


# -- data ---------------------------------------------------------------------------------------


def _ts(base: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    return base + np.round(seconds).astype("int64").astype("timedelta64[s]")


def _draw(rng: np.random.Generator, n_patients: int, n_obs: int) -> dict[str, pa.Table]:
    """The synthetic site's rows as Arrow tables (one per resource type), from a fixed seed."""
    day = 86_400.0
    n = n_patients
    pid = np.arange(n)
    female = rng.random(n) < 0.45
    n_enc = rng.choice([1, 2, 3], size=n, p=[0.5, 0.3, 0.2])
    first = _ts(np.datetime64("2016-01-01T00:00:00", "s"), rng.uniform(0, 7.5 * 365 * day, n))
    age = np.where(rng.random(n) < 0.01, rng.uniform(8, 18, n), rng.normal(74, 11, n).clip(19, 99))
    birth = _ts(first, -age * 365.25 * day).astype("datetime64[D]")

    # encounters: consecutive stays separated by gaps
    e_pat = np.repeat(pid, n_enc)
    n_e = len(e_pat)
    starts_of = np.concatenate([[0], np.cumsum(n_enc)[:-1]])
    los = (rng.gamma(2.0, 3.5, n_e) + 0.3) * day
    gap = (rng.exponential(200, n_e) + 2) * day
    step = los + gap
    cum = np.cumsum(step) - step
    offset = cum - np.repeat(cum[starts_of], n_enc)
    e_start = _ts(np.repeat(first, n_enc), offset)
    e_class = np.where(rng.random(n_e) < 0.92, "IMP", "EMER")
    los = np.where(e_class == "EMER", rng.uniform(0.1, 0.9, n_e) * day, los)
    e_end = _ts(e_start, los)
    open_stay = rng.random(n_e) < 0.005
    last_end = e_end[starts_of + n_enc - 1]
    dead = rng.random(n) < 0.25
    death = _ts(last_end, rng.exponential(400, n) * day).astype("datetime64[D]")

    patients = pa.table(
        {
            "i": pid,
            "gender": np.where(female, "female", "male"),
            "birth": birth.astype(str),
            "death": pa.array(death.astype(str), mask=~dead),
        }
    )
    encounters = pa.table(
        {
            "i": np.arange(n_e),
            "p": e_pat,
            "cls": e_class,
            "start": e_start,
            "stop": pa.array(e_end, mask=open_stay),
        }
    )

    # conditions: a primary diagnosis per encounter (+ a secondary HF code for some), comorbidities
    hf = rng.random(n_e) < 0.85
    primary_code = np.where(hf, rng.choice(HF_PRIMARY, n_e), rng.choice(OTHER_PRIMARY, n_e)).astype(
        object
    )
    secondary = ~hf & (rng.random(n_e) < 0.5)
    n_com = rng.poisson(3, n)
    c_pat = np.repeat(pid, n_com)
    n_c = len(c_pat)
    c_first = np.repeat(first, n_com)
    c_when = _ts(c_first, np.where(rng.random(n_c) < 0.75, -1, 1) * rng.exponential(900, n_c) * day)
    c_date = c_when.astype("datetime64[D]").astype(str)
    c_date = np.where(rng.random(n_c) < 0.05, c_date.astype("U4"), c_date)  # some year-only
    conditions_enc = pa.table(
        {
            "i": np.arange(n_e + int(secondary.sum())),
            "p": np.concatenate([e_pat, e_pat[secondary]]),
            "e": np.concatenate([np.arange(n_e), np.arange(n_e)[secondary]]),
            "code": np.concatenate([primary_code, np.full(int(secondary.sum()), "I50.9")]),
            "is_primary": np.concatenate(
                [np.ones(n_e, bool), np.zeros(int(secondary.sum()), bool)]
            ),
            "onset": np.concatenate([e_start, e_start[secondary]]),
        }
    )
    conditions_com = pa.table(
        {"i": np.arange(n_c), "p": c_pat, "code": rng.choice(COMORBID, n_c), "onset": c_date}
    )

    # medication statements: anchored to one of the patient's stays, before it or during it
    n_med = rng.poisson(4, n)
    m_pat = np.repeat(pid, n_med)
    n_m = len(m_pat)
    m_enc = starts_of[m_pat] + (rng.random(n_m) * n_enc[m_pat]).astype(int)
    during = rng.random(n_m) < 0.4
    m_off = np.where(during, rng.random(n_m) * los[m_enc], -rng.uniform(1, 730, n_m) * day)
    medications = pa.table(
        {
            "i": np.arange(n_m),
            "p": m_pat,
            "e": pa.array(m_enc, mask=~during),
            "code": rng.choice(DRUGS, n_m),
            "start": _ts(e_start[m_enc], m_off),
        }
    )

    # observations: the cause of death of the deceased, then the rest spread over the stays
    dead_ids = pid[dead]
    n_rest = n_obs - len(dead_ids)
    shares = np.array([k[1] for k in OBS_KINDS])
    kind = rng.choice(len(OBS_KINDS), size=n_rest, p=shares / shares.sum())
    o_enc = rng.integers(0, n_e, n_rest)
    inside = rng.random(n_rest) < 0.88
    stay = np.where(open_stay[o_enc], 3 * day, los[o_enc])
    o_off = np.where(inside, rng.random(n_rest) * stay, -rng.uniform(1, 500, n_rest) * day)
    mean = np.array([k[6] for k in OBS_KINDS])[kind]
    sd = np.array([k[7] for k in OBS_KINDS])[kind]
    lo = np.array([k[8] for k in OBS_KINDS])[kind]
    hi = np.array([k[9] for k in OBS_KINDS])[kind]
    dec = np.array([k[10] for k in OBS_KINDS])[kind]
    value = rng.normal(mean, sd)
    is_bnp = kind == [k[2] for k in OBS_KINDS].index("33762-6")  # NT-proBNP: log-normal
    value[is_bnp] = rng.lognormal(np.log(2500), 1.1, int(is_bnp.sum()))
    value = np.round(value.clip(lo, hi) * 10.0**dec) / 10.0**dec
    observations = pa.table(
        {
            "i": np.arange(n_rest),
            "kind": kind.astype(np.int32),
            "p": e_pat[o_enc],
            "e": pa.array(o_enc, mask=~inside),
            "t": _ts(e_start[o_enc], o_off),
            "value": value,
            "answer": rng.integers(0, 4, n_rest).astype(np.int32),
            "flag": rng.random(n_rest) < 0.25,
            "lvef_code": rng.choice(["8806-2", "18043-0"], n_rest),
        }
    )
    deaths = pa.table(
        {
            "p": dead_ids,
            "t": death[dead].astype("datetime64[s]"),
            "cause": rng.choice(CAUSES, len(dead_ids)),
        }
    )
    return {
        "patients": patients,
        "encounters": encounters,
        "conditions_enc": conditions_enc,
        "conditions_com": conditions_com,
        "medications": medications,
        "observations": observations,
        "deaths": deaths,
        "kinds": pa.table(
            {
                "kind": np.arange(len(OBS_KINDS), dtype=np.int32),
                "k": [k[0] for k in OBS_KINDS],
                "code": [k[2] for k in OBS_KINDS],
                "display": [k[3] for k in OBS_KINDS],
                "category": [k[4] for k in OBS_KINDS],
                "unit": [k[5] for k in OBS_KINDS],
            }
        ),
    }


def _lit(text: str) -> str:
    """SQL literal of a piece of JSON text."""
    return "'" + text.replace("'", "''") + "'"


def _cat(*parts: str) -> str:
    return " || ".join(parts)


def _coding(system: str, code_sql: str) -> str:
    return _cat(_lit('{"coding":[{"system":"' + system + '","code":"'), code_sql, _lit('"}]}'))


def _dt(sql: str) -> str:
    return f"strftime({sql}, '%Y-%m-%dT%H:%M:%S{TZ}')"


def _member(name: str, value_sql: str) -> str:
    return _cat(_lit(f',"{name}":'), value_sql)


def _opt(name: str, value_sql: str) -> str:
    """A member that is left out when its value is NULL."""
    return f"coalesce({_member(name, value_sql)}, '')"


def _str(sql: str) -> str:
    return _cat("'\"'", sql, "'\"'")


def _ref(kind: str, sql: str) -> str:
    return _cat(_lit('{"reference":"' + kind + "/"), sql, _lit('"}'))


def _quantity(value_sql: str, unit_sql: str) -> str:
    return _cat(
        _lit('{"value":'),
        f"{value_sql}::VARCHAR",
        _lit(',"unit":"'),
        unit_sql,
        _lit(f'","system":"{UCUM}","code":"'),
        unit_sql,
        _lit('"}'),
    )


def _component(system: str, code_sql: str, value_member: str) -> str:
    return _cat(_lit('{"code":'), _coding(system, code_sql), value_member, _lit("}"))


def _insert_sql() -> list[str]:
    """INSERT statements writing every resource as FHIR R5 JSON text."""
    head = (
        "INSERT INTO resources SELECT rt, rid, pid, 'R5', doc, NULL, md5(doc), 'bench', "
        "NULL, NULL, NULL, NULL FROM (SELECT *, "
    )
    subject = _member("subject", _ref("Patient", "'p' || p"))

    def resource(rt: str, rid: str, *members: str) -> str:
        return _cat(
            _lit('{"resourceType":"' + rt + '","id":"'), rid, _lit('"'), *members, _lit("}")
        )

    refuted = "CASE WHEN hash(rid, 'v') % 50 = 0 THEN 'refuted' ELSE 'confirmed' END"

    def condition(ext: str, category: str, *rest: str) -> str:
        return resource(
            "Condition",
            "rid",
            ext,
            _member("clinicalStatus", _coding(COND_CLINICAL, "'active'")),
            _member("verificationStatus", _coding(COND_VERIFICATION, refuted)),
            _member("category", _cat("'['", _coding(COND_CATEGORY, _lit(category)), "']'")),
            _member("code", _coding(ICD10, "code")),
            subject,
            *rest,
        )

    def observation(*rest: str) -> str:
        return resource(
            "Observation",
            "rid",
            _member("status", _lit('"final"')),
            _member("category", _cat("'['", _coding(OBS_CATEGORY, "category"), "']'")),
            _member(
                "code",
                _cat(
                    _lit('{"coding":[{"system":"'),
                    "system",
                    _lit('","code":"'),
                    "code",
                    _lit('","display":"'),
                    "display",
                    _lit('"}]}'),
                ),
            ),
            subject,
            *rest,
        )

    primary = _member(
        "extension",
        _cat(
            _lit('[{"url":"' + PRIMARY_DIAGNOSIS_EXT + '","valueBoolean":'),
            "is_primary::VARCHAR",
            "'}]'",
        ),
    )
    nyha_list = "[" + ", ".join(_lit(c) for c in NYHA) + "]"
    quantity = _member("valueQuantity", _quantity("value", "unit"))
    nyha = _member("valueCodeableConcept", _coding(LOINC, f"{nyha_list}[answer + 1]"))
    qrs = _component(LOINC, "'8633-0'", _member("valueQuantity", _quantity("value", "'ms'")))
    af = _component(DT4H_ECG_PARAMETER, "'ECG-AF'", _member("valueBoolean", "flag::VARCHAR"))
    ecg = _member("component", _cat("'['", qrs, "','", af, "']'"))
    lvef = _component(LOINC, "lvef_code", _member("valueQuantity", _quantity("value", "'%'")))
    echo = _member("component", _cat("'['", lvef, "']'"))
    value = f"CASE k WHEN 'q' THEN {quantity} WHEN 'nyha' THEN {nyha} WHEN 'ecg' THEN {ecg} "
    value += f"ELSE {echo} END"
    return [
        head
        + f"""'Patient' AS rt, 'p' || i AS rid, 'p' || i AS pid, {
            resource(
                "Patient",
                "rid",
                _member("gender", _str("gender")),
                _member("birthDate", _str("birth")),
                _opt("deceasedDateTime", _str("death")),
            )
        } AS doc FROM patients)""",
        head
        + f"""'Encounter' AS rt, 'e' || i AS rid, 'p' || p AS pid, {
            resource(
                "Encounter",
                "rid",
                _member(
                    "status",
                    _str("CASE WHEN stop IS NULL THEN 'in-progress' ELSE 'completed' END"),
                ),
                _member("class", _cat("'['", _coding(V3_ACT_CODE, "cls"), "']'")),
                subject,
                _member(
                    "actualPeriod",
                    _cat(
                        _lit('{"start":'),
                        _str(_dt("start")),
                        _opt("end", _str(_dt("stop"))),
                        "'}'",
                    ),
                ),
            )
        } AS doc FROM encounters)""",
        head
        + f"""'Condition' AS rt, 'p' || p AS pid, {
            condition(
                primary,
                "encounter-diagnosis",
                _member("encounter", _ref("Encounter", "'e' || e")),
                _member("onsetDateTime", _str(_dt("onset"))),
            )
        } AS doc FROM (SELECT *, 'c' || i AS rid FROM conditions_enc))""",
        head
        + f"""'Condition' AS rt, 'p' || p AS pid, {
            condition("''", "problem-list-item", _member("onsetDateTime", _str("onset")))
        } AS doc FROM (SELECT *, 'k' || i AS rid FROM conditions_com))""",
        head
        + f"""'MedicationStatement' AS rt, 'p' || p AS pid, {
            resource(
                "MedicationStatement",
                "rid",
                _member("status", _lit('"recorded"')),
                _member("medication", _cat(_lit('{"concept":'), _coding(ATC, "code"), "'}'")),
                subject,
                _opt("encounter", _ref("Encounter", "'e' || e")),
                _member("effectivePeriod", _cat(_lit('{"start":'), _str(_dt("start")), "'}'")),
            )
        } AS doc FROM (SELECT *, 'm' || i AS rid FROM medications))""",
        head
        + f"""'Observation' AS rt, 'p' || p AS pid, {
            observation(
                _opt("encounter", _ref("Encounter", "'e' || e")),
                _member("effectiveDateTime", _str(_dt("t"))),
                value,
            )
        } AS doc FROM (SELECT *, 'o' || i AS rid, '{LOINC}' AS system
            FROM observations JOIN kinds USING (kind)))""",
        head
        + f"""'Observation' AS rt, 'p' || p AS pid, {
            observation(
                _member("effectiveDateTime", _str(_dt("t"))),
                _member("valueCodeableConcept", _coding(ICD10, "cause")),
            )
        } AS doc FROM (SELECT *, 'od' || p AS rid, 'exam' AS category, '{LOINC}' AS system,
            '79378-6' AS code, 'Cause of death' AS display FROM deaths))""",
    ]


def step_generate(db: str, n_patients: int, n_obs: int) -> dict[str, Any]:
    """Write the synthetic site store; return counts and seconds."""
    import duckdb

    from cardiobox.store import SiteStore

    t0 = time.perf_counter()
    tables = _draw(np.random.default_rng(SEED), n_patients, n_obs)
    drawn = time.perf_counter() - t0
    SiteStore(db).close()
    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    for name, table in tables.items():
        con.register(name, table)
    for sql in _insert_sql():
        con.execute(sql)
    counts = dict(
        con.execute(
            "SELECT resource_type, count(*) FROM resources GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    con.execute("CHECKPOINT")
    con.close()
    return {
        "seconds": time.perf_counter() - t0,
        "draw_seconds": drawn,
        "resources": counts,
        "store_bytes": Path(db).stat().st_size,
    }


def step_validate(db: str, n: int = 2000) -> dict[str, Any]:
    """Import a random sample of the written resources with full validation (must all pass)."""
    import duckdb

    from cardiobox.store import SiteStore

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(db, read_only=True)
        con.execute("SET enable_progress_bar = false")
        sample = con.execute(
            f"SELECT resource FROM resources USING SAMPLE {int(n)} ROWS (reservoir, 7)"
        ).fetchall()
        con.close()
        path = Path(tmp) / "sample.ndjson"
        path.write_text("".join(text + "\n" for (text,) in sample), encoding="utf-8")
        with SiteStore(Path(tmp) / "check.duckdb") as store:
            report = store.import_fhir(path, fhir_version="R5")
            warnings = store.con.execute("SELECT count(*) FROM findings").fetchall()[0][0]
    return {
        "read": report.read,
        "stored": report.stored,
        "quarantined": report.quarantined,
        "warnings": int(warnings),
    }


def step_index(db: str) -> dict[str, Any]:
    """Build the store's fact tables (load-time work: ``SiteStore.reindex``, one transaction)."""
    from cardiobox.store import SiteStore

    t = time.perf_counter()
    with SiteStore(db) as store:
        refresh = store.reindex()
        facts = dict(
            store.con.execute("SELECT resource_type, count(*) FROM facts GROUP BY 1").fetchall()
        )
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "mode": refresh.mode,
        "resources": refresh.resources,
        "facts": refresh.facts,
        "facts_by_type": facts,
        "resources_per_s": refresh.resources / seconds,
        "store_bytes": Path(db).stat().st_size,
        "peak_memory_gb": _peak_gb(),
    }


def step_engine(db: str, out: str) -> dict[str, Any]:
    """Time ``cardiobox.cohort.extract`` end to end; the table is written to ``out``."""
    from cardiobox.cohort import extract

    t = time.perf_counter()
    result = extract(COHORT, db, features=FEATURES, out=out)
    seconds = time.perf_counter() - t
    assert result.table is not None
    table = result.table
    nulls = {c: table.column(c).null_count / max(table.num_rows, 1) for c in table.column_names}
    return {
        "seconds": seconds,
        "rows": table.num_rows,
        "columns": table.num_columns,
        "rows_per_s": table.num_rows / seconds,
        "peak_memory_gb": _peak_gb(),
        "attrition": [vars(a) for a in result.attrition],
        "warnings": result.warnings,
        "null_share": nulls,
    }


def step_breakdown(db: str) -> dict[str, Any]:
    """Where the extraction's time goes: opening the store, cohort, feature query."""
    from cardiobox.cdm import load_dictionary
    from cardiobox.cohort import api
    from cardiobox.cohort.compile import compile_cohort, compile_features
    from cardiobox.cohort.definition import CohortDefinition, FeatureSet, load_definition

    dictionary = load_dictionary()
    cohort = load_definition(COHORT)
    feature_set = load_definition(FEATURES)
    assert isinstance(cohort, CohortDefinition) and isinstance(feature_set, FeatureSet)
    compiled = compile_cohort(cohort, dictionary)
    features = compile_features(feature_set, dictionary)
    t0 = time.perf_counter()
    con, warnings = api._open(db)
    t1 = time.perf_counter()
    api._prepare(con, compiled)
    api._follow_up_extent(con)
    t2 = time.perf_counter()
    table = con.sql(features.sql(compiled.final)).to_arrow_table()
    t3 = time.perf_counter()
    con.close()
    return {
        "open_seconds": t1 - t0,
        "cohort_seconds": t2 - t1,
        "feature_query_seconds": t3 - t2,
        "feature_query_groups": len(features.windows) + len(features.pivots),
        "rows": table.num_rows,
        "warnings": warnings,
    }


# -- the pandas baseline ------------------------------------------------------------------------
#
# What a data scientist would write without the engine: read every resource, parse it with
# orjson, pull the fields out in a Python loop, then pandas. Code sets come from the data
# dictionary (the same lists the engine uses); windows, tie-breaks (time, then resource id),
# partial dates, censoring and rounding follow the feature set's documented meaning.


def _code_sets(
    variables: list[Any],
) -> dict[str, list[tuple[frozenset[str], tuple[str, ...], bool]]]:
    """{variable: [(systems, members, hierarchical)]} for the given dictionary variables."""
    from cardiobox.cdm import codes as codesys

    out: dict[str, list[tuple[frozenset[str], tuple[str, ...], bool]]] = {}
    for v in variables:
        for cs in v.codes:
            systems = codesys.EQUIVALENT_SYSTEMS.get(cs.system, frozenset({cs.system}))
            members = tuple(c.replace(".", "").upper() if cs.hierarchical else c for c in cs.codes)
            out.setdefault(v.id, []).append((systems, members, cs.hierarchical))
    return out


def _local_time(text: Any) -> Any:
    """FHIR date/dateTime text → local timestamp (year → 1 July, year-month → the 15th)."""
    import pandas as pd

    s = pd.Series(text, dtype="string")
    n = s.str.len()
    s = s.where(n != 4, s + "-07-01").where(n != 7, s + "-15")
    s = s.str.slice(0, 19).str.replace("T", " ", regex=False)
    return pd.to_datetime(s, format="ISO8601", errors="coerce")


def _ref_id(ref: str | None, kind: str) -> str | None:
    if not ref:
        return None
    head, _, rid = ref.rpartition("/")
    return rid if head.endswith(kind) else None


def _read(db: str, patients: int | None) -> dict[str, Any]:
    """Read and parse the resources the features need into pandas DataFrames."""
    import duckdb
    import orjson
    import pandas as pd

    from cardiobox.cdm import load_dictionary
    from cardiobox.cdm.dictionary import Category

    dictionary = load_dictionary()
    observed = [v for v in dictionary if v.resource == "Observation"]
    obs_vars = {
        (system, code): var
        for var, sets in _code_sets(observed).items()
        for systems, members, _ in sets
        for system in systems
        for code in members
    }
    answers = {
        (v.id, a.system, a.code): float(a.value)
        for v in dictionary
        for a in v.answers
        if isinstance(a.value, int | float)
    }
    con = duckdb.connect(db, read_only=True)
    con.execute("SET enable_progress_bar = false")
    where = "resource_type = ?"
    if patients is not None:
        where += f" AND patient_id IN (SELECT 'p' || range FROM range({int(patients)}))"

    def scan(rtype: str) -> Any:
        cur = con.execute(f"SELECT id, patient_id, resource FROM resources WHERE {where}", [rtype])
        while batch := cur.fetchmany(200_000):
            for rid, pid, text in batch:
                yield rid, pid, orjson.loads(text)

    pat = [
        (rid, d.get("gender"), d.get("birthDate"), d.get("deceasedDateTime"))
        for rid, _, d in scan("Patient")
    ]
    patients_df = pd.DataFrame(pat, columns=["patient_id", "sex", "birth", "death"])
    enc = []
    for rid, pid, d in scan("Encounter"):
        cls = (d.get("class") or [{}])[0].get("coding", [{}])[0].get("code")
        period = d.get("actualPeriod") or {}
        enc.append((rid, pid, cls, period.get("start"), period.get("end")))
    encounters = pd.DataFrame(enc, columns=["encounter_id", "patient_id", "class", "start", "end"])

    obs: list[tuple[Any, ...]] = []
    for rid, pid, d in scan("Observation"):
        t = d.get("effectiveDateTime") or d.get("effectiveInstant")
        if t is None:
            t = (d.get("effectivePeriod") or {}).get("start")
        eid = _ref_id((d.get("encounter") or {}).get("reference"), "Encounter")
        for node in (d, *d.get("component", ())):
            seen = set()
            for c in (node.get("code") or {}).get("coding", ()):
                var = obs_vars.get((c.get("system"), c.get("code")))
                if var is None or var in seen:
                    continue
                seen.add(var)
                code = system = None
                value = None
                if "valueQuantity" in node:
                    value = node["valueQuantity"].get("value")
                elif "valueInteger" in node:
                    value = node["valueInteger"]
                elif "valueBoolean" in node:
                    value = 1.0 if node["valueBoolean"] else 0.0
                elif "valueCodeableConcept" in node:
                    coding = (node["valueCodeableConcept"].get("coding") or [{}])[0]
                    code, system = coding.get("code"), coding.get("system")
                    value = answers.get((var, system, code))
                obs.append((rid, pid, eid, var, t, value, code))
    observations = pd.DataFrame(
        obs, columns=["id", "patient_id", "encounter_id", "variable", "t", "value", "code"]
    )

    def coded(rtype: str, path: tuple[str, ...], dates: tuple[str, ...]) -> Any:
        rows = []
        for rid, pid, d in scan(rtype):
            ver = ((d.get("verificationStatus") or {}).get("coding") or [{}])[0].get("code")
            if ver in ("refuted", "entered-in-error"):
                continue
            t = None
            for key in dates:
                parent, _, leaf = key.rpartition(".")
                node = (d.get(parent) or {}) if parent else d
                if node.get(leaf) is not None:
                    t = node[leaf]
                    break
            primary = any(
                e.get("url") == PRIMARY_DIAGNOSIS_EXT and e.get("valueBoolean") is True
                for e in d.get("extension", ())
            )
            eid = _ref_id((d.get("encounter") or {}).get("reference"), "Encounter")
            node = d
            for key in path:
                node = node.get(key) or {}
            for c in node.get("coding", ()):
                rows.append((rid, pid, eid, t, primary, c.get("system"), c.get("code")))
        return pd.DataFrame(
            rows, columns=["id", "patient_id", "encounter_id", "t", "is_primary", "system", "code"]
        )

    conditions = coded(
        "Condition", ("code",), ("onsetDateTime", "onsetPeriod.start", "recordedDate")
    )
    medications = coded(
        "MedicationStatement",
        ("medication", "concept"),
        ("effectiveDateTime", "effectivePeriod.start"),
    )
    con.close()
    phenotypes = [v for v in dictionary if v.category == Category("phenotype")]
    groups = [v for v in dictionary if v.category == Category("medication_group")]
    return {
        "patients": patients_df,
        "encounters": encounters,
        "observations": observations,
        "conditions": _match(conditions, _code_sets(phenotypes)),
        "medications": _match(medications, _code_sets(groups)),
        "phenotypes": [v.id for v in phenotypes],
        "groups": [v.id for v in groups],
    }


def _match(rows: Any, code_sets: dict[str, Any]) -> Any:
    """Coded rows → one row per (resource, variable) whose code set holds the code."""
    import pandas as pd

    flat = rows["code"].str.replace(" ", "").str.replace(".", "").str.strip().str.upper()
    parts = []
    for var, sets in code_sets.items():
        hit = pd.Series(False, index=rows.index)
        for systems, members, hierarchical in sets:
            in_system = rows["system"].isin(systems)
            hit |= in_system & (
                flat.str.startswith(members) if hierarchical else rows["code"].isin(members)
            )
        columns = ["id", "patient_id", "encounter_id", "t", "is_primary"]
        parts.append(rows.loc[hit, columns].assign(variable=var))
    facts = pd.concat(parts, ignore_index=True)
    facts = facts.sort_values("is_primary", ascending=False).drop_duplicates(["id", "variable"])
    return facts.reset_index(drop=True)


def _whole_years(birth: Any, day: Any) -> Any:
    """Complete years from birth to day (a month-end day completes a later-day anniversary)."""
    years = day.dt.year - birth.dt.year
    before = (day.dt.month < birth.dt.month) | (
        (day.dt.month == birth.dt.month) & (day.dt.day < birth.dt.day) & ~day.dt.is_month_end
    )
    return years - before.astype(int)


def _round(x: Any, digits: int) -> Any:
    """Round half away from zero (as SQL does)."""
    import numpy as np

    p = 10.0**digits
    return np.sign(x) * np.floor(np.abs(x) * p + 0.5) / p


def _compute(data: dict[str, Any]) -> Any:
    """The feature set's columns from the parsed resources (one row per cohort patient)."""
    import numpy as np
    import pandas as pd

    pats = data["patients"].copy()
    pats["birth_date"] = _local_time(pats["birth"]).dt.normalize()
    pats["death_date"] = _local_time(pats["death"]).dt.normalize()
    enc = data["encounters"].copy()
    enc["start"] = _local_time(enc["start"])
    enc["end"] = _local_time(enc["end"])
    obs = data["observations"].copy()
    obs["t"] = _local_time(obs["t"])
    obs["value"] = pd.to_numeric(obs["value"], errors="coerce")
    cond = data["conditions"].copy()
    cond["t"] = _local_time(cond["t"])
    meds = data["medications"].copy()
    meds["t"] = _local_time(meds["t"])

    # cohort: first primary-HF inpatient admission of each adult
    hf_encs = cond.loc[(cond["variable"] == "heart_failure") & cond["is_primary"], "encounter_id"]
    inpatient = (enc["class"] == "IMP") & enc["start"].notna()
    hf_admissions = enc[inpatient & enc["encounter_id"].isin(set(hf_encs.dropna()))]
    c = hf_admissions.merge(pats, on="patient_id", how="left")
    c = c.rename(columns={"start": "index_time", "end": "stay_end"})
    c["age"] = _whole_years(c["birth_date"], c["index_time"].dt.normalize())
    c = c[c["age"] >= 18]
    c = c.sort_values(["patient_id", "index_time", "encounter_id"]).drop_duplicates("patient_id")
    c = c.set_index("patient_id")
    c["stay_to"] = c["stay_end"].fillna(c["index_time"])
    c["year_before"] = c["index_time"] - pd.DateOffset(years=1)
    keys = c[["index_time", "stay_to", "year_before"]]
    out: dict[str, Any] = {}
    out["encounter_id"] = c["encounter_id"]
    out["index_time"] = c["index_time"]
    out["age"] = c["age"]
    out["sex"] = c["sex"]
    out["length_of_stay"] = (c["stay_end"] - c["index_time"]).dt.total_seconds() / 86400.0

    # observations: first/last/max per window, ties broken by the resource id
    o = obs.merge(keys, left_on="patient_id", right_index=True)
    o = o.sort_values(["patient_id", "variable", "t", "id"])
    stay = (o["t"] >= o["index_time"]) & (o["t"] <= o["stay_to"])
    valued = o["value"].notna()

    def agg(mask: Any, how: str) -> Any:
        g = o.loc[mask & valued].groupby(["patient_id", "variable"], sort=False)["value"]
        return getattr(g, how)().unstack().reindex(c.index)

    first = agg(stay, "first")
    last_stay = agg(stay, "last")
    for name, var in [
        ("sbp_admission", "systolic_bp"),
        ("dbp_admission", "diastolic_bp"),
        ("heart_rate_admission", "heart_rate"),
        ("weight_admission", "body_weight"),
    ]:
        out[name] = first[var]
    out["height"] = agg(o["t"] <= o["index_time"], "last")["body_height"]
    out["height_any"] = agg(pd.Series(True, index=o.index), "last")["body_height"]
    out["nt_probnp_admission"] = first["nt_probnp"]
    out["nt_probnp_max_stay"] = agg(stay, "max")["nt_probnp"]
    for name, var in [
        ("creatinine_admission", "creatinine"),
        ("potassium_admission", "potassium"),
        ("sodium_admission", "sodium"),
        ("hemoglobin_admission", "hemoglobin"),
    ]:
        out[name] = first[var]
    in_year = (o["t"] >= o["year_before"]) & (o["t"] <= o["index_time"])
    out["lvef_last_year"] = agg(in_year, "last")["lvef"]
    out["lvef_stay"] = last_stay["lvef"]
    out["nyha_admission"] = first["nyha_class"]
    out["qrs_duration"] = last_stay["qrs_duration"]
    # max of the ECG's AF flag (1/0) over the stay; no ECG in the stay: missing
    out["ecg_atrial_fibrillation"] = (
        o.loc[stay & (o["variable"] == "ecg_atrial_fibrillation")]
        .groupby("patient_id")["value"]
        .max()
        .reindex(c.index)
    )

    # conditions and medications
    cf = cond.merge(keys, left_on="patient_id", right_index=True)
    hf = cf[cf["variable"] == "heart_failure"]
    before = hf[hf["t"] < hf["index_time"]]
    out["previous_hf_records"] = before.groupby("patient_id").size().reindex(c.index, fill_value=0)
    first_hf = hf.groupby("patient_id")["t"].min()
    out["days_since_first_hf"] = (out["index_time"] - first_hf).dt.total_seconds() / 86400.0

    def flags(facts: Any, mask: Any, variables: list[str], prefix: str) -> None:
        hit = facts.loc[mask, ["patient_id", "variable"]].drop_duplicates()
        table = pd.crosstab(hit["patient_id"], hit["variable"]).astype(bool)
        table = table.reindex(index=c.index, columns=variables, fill_value=False)
        for v in variables:
            out[prefix + v] = table[v]

    flags(cf, cf["t"] <= cf["index_time"], data["phenotypes"], "hx_")
    mf = meds.merge(keys, left_on="patient_id", right_index=True)
    flags(mf, mf["t"] < mf["index_time"], data["groups"], "med_before_")
    during = (mf["t"] >= mf["index_time"]) & (mf["t"] <= mf["stay_to"])
    flags(mf, during, data["groups"], "med_stay_")

    # derived
    out["bmi"] = _round(out["weight_admission"] / (out["height_any"] / 100.0) ** 2, 2)
    female = out["sex"] == "female"
    scr = out["creatinine_admission"] / 88.42
    kappa = female.map({True: 0.7, False: 0.9})
    alpha = female.map({True: -0.241, False: -0.302})
    egfr = (
        142
        * np.minimum(scr / kappa, 1) ** alpha
        * np.maximum(scr / kappa, 1) ** -1.2
        * 0.9938 ** out["age"]
        * female.map({True: 1.012, False: 1.0})
    )
    out["egfr_admission"] = _round(egfr, 1).where(out["sex"].isin(["female", "male"]))

    # outcomes
    # follow-up ends at the latest date in the data (records, stays, deaths)
    latest = [obs["t"], cond["t"], meds["t"], enc["start"], enc["end"], pats["death_date"]]
    censor = max(x.max() for x in latest).normalize()
    death = c["death_date"]
    cod = o[o["variable"] == "cause_of_death"]
    cv = cod["code"].str.upper().str.startswith("I").groupby(cod["patient_id"]).max()
    cv = cv.reindex(c.index)
    imp_hf = hf_admissions[["patient_id", "encounter_id", "start"]].merge(
        c[["encounter_id"]].rename(columns={"encounter_id": "index_encounter"}),
        left_on="patient_id",
        right_index=True,
    )
    imp_hf = imp_hf[imp_hf["encounter_id"] != imp_hf["index_encounter"]]

    def outcome(name: str, kind: str, horizon: Any, from_stay_end: bool = False) -> None:
        origin = c["stay_end"].fillna(c["index_time"]) if from_stay_end else c["index_time"]
        day0 = origin.dt.normalize()
        end = origin + horizon
        end_day = end.dt.normalize()
        death_in = (death >= day0) & (death <= end_day)
        death_days = (death - day0).dt.days
        followed = np.minimum((end_day - day0).dt.days, (censor - day0).dt.days)
        quiet = (censor >= end_day) | (death > end_day)
        if kind == "readmission":
            later = imp_hf.merge(origin.rename("origin"), left_on="patient_id", right_index=True)
            later = later[later["start"] > later["origin"]]
            nxt = later.groupby("patient_id")["start"].min().reindex(c.index)
            hit = nxt <= end
            event = np.select([hit, death_in, quiet], [1, 0, 0], np.nan)
            to_next = (nxt.dt.normalize() - day0).dt.days
            days = np.where(hit, to_next, np.where(death_in, death_days, followed))
        else:
            if kind == "cv_death":
                conds = [death_in & cv.eq(True), death_in & cv.eq(False), death_in, quiet]
                event = np.select(conds, [1, 0, np.nan, 0], np.nan)
            else:
                event = np.select([death_in, quiet], [1, 0], np.nan)
            days = np.where(death_in, death_days, followed)
        out[name] = pd.Series(event, index=c.index)
        out[name + "_days"] = pd.Series(days, index=c.index)

    outcome("death_30d", "death", pd.Timedelta(days=30))
    outcome("death_1y", "death", pd.DateOffset(years=1))
    outcome("cv_death_1y", "cv_death", pd.DateOffset(years=1))
    outcome("hf_readmission_30d", "readmission", pd.Timedelta(days=30), from_stay_end=True)
    outcome("hf_readmission_1y", "readmission", pd.DateOffset(years=1), from_stay_end=True)
    return pd.DataFrame(out, index=c.index).reset_index()


def step_baseline(db: str, out: str, patients: int | None) -> dict[str, Any]:
    """Time the pandas baseline (reading and computing); the table is written to ``out``."""
    t = time.perf_counter()
    data = _read(db, patients)
    read = time.perf_counter() - t
    table = _compute(data)
    seconds = time.perf_counter() - t
    table.to_parquet(out)
    return {
        "seconds": seconds,
        "read_seconds": read,
        "compute_seconds": seconds - read,
        "patients_read": patients,
        "rows": len(table),
        "columns": table.shape[1],
        "observation_facts": len(data["observations"]),
        "peak_memory_gb": _peak_gb(),
    }


def step_compare(engine_out: str, baseline_out: str, patients: int | None) -> dict[str, Any]:
    """Compare the two tables on the columns both compute, joined on the patient.

    With ``patients`` (a baseline on the first N patients) only those patients' rows count.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    eng = pq.read_table(engine_out).to_pandas()
    base = pd.read_parquet(baseline_out)
    if patients is not None:
        eng = eng[eng["patient_id"].isin({f"p{k}" for k in range(patients)})]
    e = eng.set_index("patient_id")
    b = base.set_index("patient_id")
    rows = e.index.union(b.index)
    common = [col for col in e.columns if col in b.columns]
    per_column = {}
    equal_cells = 0
    for col in common:
        x = e[col].reindex(rows)
        y = b[col].reindex(rows)
        if pd.api.types.is_datetime64_any_dtype(x) or not pd.api.types.is_numeric_dtype(x):
            same = (x == y) | (x.isna() & y.isna())
        else:
            xf = x.astype("float64")
            yf = y.astype("float64")
            same = pd.Series(np.isclose(xf, yf, rtol=1e-9, atol=1e-9), index=rows) | (
                xf.isna() & yf.isna()
            )
        per_column[col] = float(same.mean())
        equal_cells += int(same.sum())
    below = {k: round(v, 4) for k, v in per_column.items() if v < 0.99}
    return {
        "engine_rows": len(e),
        "baseline_rows": len(b),
        "rows_in_both": int(e.index.intersection(b.index).size),
        "engine_columns_compared": len(common),
        "compared_columns_that_vary": sum(int(e[col].nunique() > 1) for col in common),
        "engine_columns_not_compared": [col for col in e.columns if col not in b.columns],
        "cells_agree": equal_cells / max(len(rows) * len(common), 1),
        "worst_column": min(per_column, key=per_column.get) if per_column else None,
        "worst_column_agree": min(per_column.values()) if per_column else None,
        "columns_below_99": below,
        "per_column": per_column,
    }


def _commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when ``src/`` has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return (head + ("+dirty" if dirty else "")) or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000, help="Patients to generate.")
    parser.add_argument(
        "--observations", type=int, default=5_000_000, help="Observations to generate."
    )
    parser.add_argument(
        "--baseline-patients",
        type=int,
        default=None,
        help="Time the pandas baseline on the first N patients and scale linearly.",
    )
    args = parser.parse_args()
    commit = _commit()
    with tempfile.TemporaryDirectory() as tmp:
        db = f"{tmp}/site.duckdb"
        gen = run_step("features", "generate", db, args.patients, args.observations)
        print(
            f"generated {sum(gen['resources'].values()):,} resources in {gen['seconds']:.1f} s",
            flush=True,
        )
        valid = run_step("features", "validate", db)
        if valid["quarantined"] or valid["warnings"]:
            raise SystemExit(f"the synthetic resources do not pass validation: {valid}")
        index = run_step("features", "index", db)
        print(f"load-time indexing: {index['seconds']:.1f} s", flush=True)
        engine = run_step("features", "engine", db, f"{tmp}/engine.parquet")
        print(f"engine: {engine['seconds']:.1f} s", flush=True)
        empty = [c for c in SANITY if engine["null_share"].get(c, 1) > 0.5]
        if not engine["rows"] or empty:
            raise SystemExit(f"the engine read the store wrongly: {engine['rows']} rows, {empty}")
        parts = run_step("features", "breakdown", db)
        base = run_step(
            "features", "baseline", db, f"{tmp}/baseline.parquet", args.baseline_patients
        )
        print(f"baseline: {base['seconds']:.1f} s", flush=True)
        agree = run_step(
            "features",
            "compare",
            f"{tmp}/engine.parquet",
            f"{tmp}/baseline.parquet",
            args.baseline_patients,
        )
    scale = args.patients / args.baseline_patients if args.baseline_patients else 1.0
    base_seconds = base["seconds"] * scale
    speedup = base_seconds / engine["seconds"]
    # What a store pays once (or a load, for its own resources), next to the extraction.
    speedup_with_index = base_seconds / (engine["seconds"] + index["seconds"])
    result = {
        "benchmark": "features",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "commit": commit,
        "cardiobox_from": str(Path(cardiobox.__file__).parent),
        "patients": args.patients,
        "observations": args.observations,
        "baseline_patients": args.baseline_patients,
        "generate": gen,
        "validated_sample": valid,
        "index": index,
        "engine": engine,
        "engine_breakdown": parts,
        "baseline": base,
        "baseline_seconds_full_size": base_seconds,
        "speedup": speedup,
        "speedup_with_index": speedup_with_index,
        "agreement": agree,
        "targets": TARGETS,
    }
    rows = [
        (
            "load-time indexing: fact tables from the JSON (once per store)",
            f"{index['seconds']:,.1f} s",
            "",
            None,
        ),
        ("engine: extraction, end to end", f"{engine['seconds']:,.1f} s", "", None),
        (
            "  open the store and its fact tables (2nd run)",
            f"{parts['open_seconds']:,.1f} s",
            "",
            None,
        ),
        ("  cohort (2nd run)", f"{parts['cohort_seconds']:,.1f} s", "", None),
        ("  feature query (2nd run)", f"{parts['feature_query_seconds']:,.1f} s", "", None),
        ("engine rows/s", f"{engine['rows_per_s']:,.0f} rows/s", "", None),
        (
            "pandas baseline, end to end" + (" (scaled)" if scale != 1 else ""),
            f"{base_seconds:,.1f} s",
            "",
            None,
        ),
        ("  reading + orjson", f"{base['read_seconds'] * scale:,.1f} s", "", None),
        ("  pandas", f"{base['compute_seconds'] * scale:,.1f} s", "", None),
        (
            "speed-up: extraction vs pandas",
            f"{speedup:,.1f}×",
            "≥ 10×",
            speedup >= TARGETS["speedup"],
        ),
        (
            "  with the one-off indexing added to the extraction",
            f"{speedup_with_index:,.1f}×",
            "",
            None,
        ),
        (
            "cells that agree",
            f"{agree['cells_agree']:.2%}",
            "≥ 99 %",
            agree["cells_agree"] >= 0.99,
        ),
        (
            f"worst column ({agree['worst_column']})"
            if agree["worst_column_agree"] < 1
            else "worst column (all agree)",
            f"{agree['worst_column_agree']:.2%}",
            "",
            None,
        ),
        ("indexing peak memory", f"{index['peak_memory_gb']:.2f} GB", "", None),
        ("engine peak memory", f"{engine['peak_memory_gb']:.2f} GB", "", None),
        ("pandas peak memory", f"{base['peak_memory_gb']:.2f} GB", "", None),
    ]
    print(
        f"\nFeature-extraction benchmark: {args.patients:,} patients, "
        f"{args.observations:,} Observations; cohort {engine['rows']:,} rows × "
        f"{engine['columns']} columns, {agree['engine_columns_compared']} of them compared "
        f"with the baseline ({agree['compared_columns_that_vary']} not constant)\n"
    )
    print_table(rows)
    if agree["columns_below_99"]:
        print("\ncolumns below 99 % agreement:")
        for col, share in agree["columns_below_99"].items():
            print(f"  {col}: {share:.2%}")
    write_result("features", result)


if __name__ == "__main__":
    main()
