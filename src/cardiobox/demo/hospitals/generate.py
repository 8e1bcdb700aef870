"""Generate a demo hospital's extract, its mappings, its truth tables and its manifest.

Layout of a generated hospital folder::

    <out>/
      extract/       one delimited file per table, in the hospital's conventions
      mappings/      one mapping per table (cardiobox_mapping: 1) and maps/ (concept maps)
      truth/         what the generator knows and an extract does not say (for tests)
      manifest.json  files, row counts, conventions, the planted dirt row by row, and the
                     expected outcome of ingesting each table
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cardiobox.demo.hospitals import clinical, textio
from cardiobox.demo.hospitals.cohort import (
    COMORBIDITIES,
    INPATIENT,
    MINUTES_PER_DAY,
    OUTPATIENT,
    PHENOTYPES,
    Cohort,
    simulate_cohort,
)
from cardiobox.demo.hospitals.dirt import PLANTED_IN, QUARANTINED_KINDS, DirtRates
from cardiobox.demo.hospitals.notes import FINDINGS, Notes, build_notes
from cardiobox.demo.hospitals.profile import (
    HOSPITALS,
    TABLES,
    Profile,
    data_dir,
    load_phrases,
    load_profile,
)
from cardiobox.demo.hospitals.render import Ids, Rendered, Renderer, make_ids

#: Bumped whenever the same seed would give different files.
GENERATOR_VERSION = 1
DEFAULT_SEED = 7
#: Tables whose records can span several lines (a quoted field with line breaks).
MULTILINE_TABLES = frozenset({"notes"})


@dataclass(frozen=True)
class HospitalExtract:
    """A generated demo hospital: where its files are and what its manifest says.

    Attributes
    ----------
    name : str
        The hospital (``hospital_es``, ...).
    root : Path
        Its folder.
    manifest : dict
        The content of ``manifest.json``.
    """

    name: str
    root: Path
    manifest: dict[str, Any]

    @property
    def manifest_path(self) -> Path:
        """Path of ``manifest.json``."""
        return self.root / "manifest.json"

    @property
    def tables(self) -> list[str]:
        """The tables of the extract."""
        return list(self.manifest["tables"])

    def table_path(self, table: str) -> Path:
        """The extract file of ``table``."""
        return self.root / str(self.manifest["tables"][table]["file"])

    def mapping_path(self, table: str) -> Path:
        """The mapping file that loads ``table``."""
        return self.root / str(self.manifest["tables"][table]["mapping"])

    def rows(self, table: str) -> int:
        """Number of records (rows after the header) of ``table``."""
        return int(self.manifest["tables"][table]["rows"])

    def planted(self, kind: str, table: str | None = None) -> int:
        """How many rows carry dirt of ``kind`` (in ``table``, or in all tables)."""
        tables = self.manifest["dirt"]["tables"]
        names = [table] if table else list(tables)
        return sum(int(tables.get(t, {}).get(kind, {}).get("count", 0)) for t in names)

    def expected_load(self, table: str) -> dict[str, Any]:
        """What ingesting ``table`` should report (rows read, loaded, quarantined, ...)."""
        return dict(self.manifest["expected_load"][table])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_mappings(name: str, dest: Path) -> list[str]:
    src = data_dir(name) / "mappings"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    return sorted(str(p.relative_to(dest.parent)) for p in dest.rglob("*") if p.is_file())


def _truth_notes(
    root: Path, notes: Notes, rendered: Rendered, renderer: Renderer, profile: Profile
) -> Path:
    t = notes.truth
    ns = profile.ids.note
    state = {1: "present", 0: "absent", -1: ""}
    enc = t["encounter"]
    cols: dict[str, pa.Array] = {
        "note": textio.identifiers(rendered.extra["numbers"], ns.prefix, ns.width),
        "patient": renderer.pid(notes.table["patient"]),
        "encounter": renderer.eid(enc),
        "kind": pa.array(t["kind"].tolist(), type=pa.string()),
        "nyha": pa.array(t["nyha"]),
        "nyha_discharge": textio.numbers(
            np.where(t["nyha_discharge"] > 0, t["nyha_discharge"], np.nan), 0, "."
        ),
        "lvef": textio.numbers(t["lvef"], 0, "."),
        "lvef_measured_here": pa.array(t["lvef_measured_here"]),
        "dyspnoea": textio.labels(["absent", "present"], t["dyspnoea"]),
    }
    for f in FINDINGS:
        cols[f] = pa.array([state[int(s)] for s in t[f]], type=pa.string())
    cols["rhythm"] = pa.array(t["rhythm"].tolist(), type=pa.string())
    order = np.argsort(rendered.extra["numbers"])
    take = pa.array(order)
    path = root / "truth" / "notes.csv"
    textio.write_delimited(path, {k: v.take(take) for k, v in cols.items()}, ",")
    return path


def _truth_patients(root: Path, cohort: Cohort, renderer: Renderer) -> Path:
    pts, enc = cohort.patients, cohort.encounters
    order = np.argsort(renderer.ids.patient)
    admissions = np.bincount(enc.patient[enc.kind == INPATIENT], minlength=pts.n)
    cols: dict[str, pa.Array] = {
        "patient": renderer.pid(order),
        "phenotype": textio.labels(list(PHENOTYPES), pts.phenotype[order]),
        "baseline_lvef": textio.numbers(pts.lvef[order], 0, "."),
        "index_admission": textio.times(pts.index_day[order] * MINUTES_PER_DAY, "%Y-%m-%d"),
        "admissions": pa.array(admissions[order]),
        "death_date": textio.times(
            np.maximum(pts.death_day[order], 0) * MINUTES_PER_DAY,
            "%Y-%m-%d",
            pts.death_day[order] < 0,
        ),
        "in_hospital_death": pa.array(pts.in_hospital_death[order]),
    }
    for c in COMORBIDITIES:
        cols[c] = pa.array(pts.comorbidity[c][order].astype(np.int64))
    path = root / "truth" / "patients.csv"
    textio.write_delimited(path, cols, ",")
    return path


def _summary(cohort: Cohort) -> dict[str, Any]:
    """Clinical figures of the generated cohort (for docs and plausibility tests)."""
    pts, enc = cohort.patients, cohort.encounters
    ip = np.flatnonzero(enc.kind == INPATIENT)
    # Readmission within 30 days / 1 year of each discharge alive.
    nxt = np.full(len(enc), -1, dtype=np.int64)
    p_ip = enc.patient[ip]
    same = p_ip[1:] == p_ip[:-1]
    nxt[ip[:-1][same]] = ip[1:][same]
    alive_ip = ip[~enc.died[ip]]
    gap = np.where(
        nxt[alive_ip] >= 0,
        (enc.start[np.maximum(nxt[alive_ip], 0)] - enc.end[alive_ip]) / MINUTES_PER_DAY,
        np.inf,
    )
    index = alive_ip[enc.number[alive_ip] == 0]
    index_gap = gap[enc.number[alive_ip] == 0]
    index_end_day = enc.end[index] // MINUTES_PER_DAY
    death = pts.death_day[enc.patient[index]]
    dead_1y = (death >= 0) & (death - index_end_day <= 365)
    los = (enc.end[ip] - enc.start[ip]) / MINUTES_PER_DAY
    return {
        "patients": pts.n,
        "phenotypes": {name: int((pts.phenotype == i).sum()) for i, name in enumerate(PHENOTYPES)},
        "mean_age_at_index": round(float(pts.age_index.mean()), 1),
        "male_share": round(float(pts.male.mean()), 3),
        "comorbidity_prevalence": {
            c: round(float(pts.comorbidity[c].mean()), 3) for c in COMORBIDITIES
        },
        "admissions": int(ip.size),
        "outpatient_visits": int((enc.kind == OUTPATIENT).sum()),
        "median_length_of_stay_days": round(float(np.median(los)), 1),
        "deaths": int((pts.death_day >= 0).sum()),
        "in_hospital_deaths": int(pts.in_hospital_death.sum()),
        "readmission_30d_after_index": round(float((index_gap <= 30).mean()), 3)
        if index.size
        else 0.0,
        "readmission_1y_after_index": round(float((index_gap <= 365).mean()), 3)
        if index.size
        else 0.0,
        "mortality_1y_after_index": round(float(dead_1y.mean()), 3) if index.size else 0.0,
    }


def generate_hospital(
    name: str,
    out_dir: str | Path,
    n_patients: int = 10_000,
    seed: int = DEFAULT_SEED,
    dirt: DirtRates | None = None,
) -> HospitalExtract:
    """Generate one demo hospital's extract, mappings, truth and manifest in ``out_dir``.

    Parameters
    ----------
    name : str
        One of :data:`HOSPITALS` (``hospital_es``, ``hospital_nl``, ``hospital_se``).
    out_dir : str or Path
        The hospital's folder; created if needed. Its ``extract/``, ``mappings/`` and
        ``truth/`` subfolders are replaced, nothing else in it is touched.
    n_patients : int
        Number of patients (default 10 000).
    seed : int
        Random seed (default 7). The same name, size, seed and dirt rates give
        byte-identical files.
    dirt : DirtRates, optional
        Share of rows that carry each kind of planted dirt (default: :class:`DirtRates`,
        about 1 % each); ``DirtRates.none()`` for a clean extract.

    Returns
    -------
    HospitalExtract
        Paths and manifest of the generated hospital.
    """
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    profile = load_profile(name)
    phrases = load_phrases(name)
    rates = dirt or DirtRates()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    streams = [
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, profile.number]).spawn(12)
    ]
    cohort = simulate_cohort(streams[0], n_patients, profile.cohort_params())
    canonical: dict[str, clinical.Table] = {
        "labs": clinical.labs(streams[1], cohort),
        "vitals": clinical.vitals(streams[2], cohort),
        "echo": clinical.echo(streams[3], cohort),
        "ecg": clinical.ecg(streams[4], cohort),
        "nyha": clinical.nyha(streams[5], cohort),
        "diagnoses": clinical.diagnoses(streams[6], cohort),
        "medications": clinical.medications(
            streams[7], cohort, profile.drug_preferences, profile.vka_share
        ),
    }
    notes = build_notes(streams[8], cohort, profile, phrases, canonical)
    ids: Ids = make_ids(streams[9], cohort, profile)
    renderer = Renderer(streams[10], cohort, profile, ids, rates)
    rendered: dict[str, Rendered] = {
        "patients": renderer.patients(),
        "encounters": renderer.encounters(),
        "diagnoses": renderer.diagnoses(canonical["diagnoses"]),
        "labs": renderer.labs(canonical["labs"]),
        "vitals": renderer.vitals(canonical["vitals"]),
        "echo": renderer.echo(canonical["echo"]),
        "ecg": renderer.ecg(canonical["ecg"]),
        "nyha": renderer.nyha(canonical["nyha"]),
        "medications": renderer.medications(canonical["medications"]),
        "notes": renderer.notes(notes),
    }

    for sub in ("extract", "truth"):
        if (root / sub).exists():
            shutil.rmtree(root / sub)
        (root / sub).mkdir()
    mapping_files = _copy_mappings(name, root / "mappings")
    csv = profile.csv
    tables: dict[str, Any] = {}
    dirt_tables: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for table in TABLES:
        r = rendered[table]
        rel = f"extract/{profile.file_name(table)}"
        n = textio.write_delimited(root / rel, r.columns, csv.delimiter, csv.encoding, csv.newline)
        tables[table] = {
            "file": rel,
            "mapping": f"mappings/{table}.yaml",
            "rows": n,
            "columns": list(r.columns),
            "multiline_records": table in MULTILINE_TABLES,
            "sha256": _sha256(root / rel),
        }
        if r.dirt:
            dirt_tables[table] = r.dirt
        quarantined = {k: r.dirt.get(k, {}).get("count", 0) for k in QUARANTINED_KINDS}
        q = sum(quarantined.values())
        expected[table] = {
            "rows_read": n,
            "rows_quarantined": q,
            "rows_loaded": n - q,
            "duplicate_rows": r.dirt.get("duplicate_row", {}).get("count", 0),
            "events_after_death": r.dirt.get("event_after_death", {}).get("count", 0),
            "quarantined_by_kind": {k: v for k, v in quarantined.items() if v},
        }
    truth_files = [
        _truth_notes(root, notes, rendered["notes"], renderer, profile),
        _truth_patients(root, cohort, renderer),
    ]
    totals = {
        kind: sum(t.get(kind, {}).get("count", 0) for t in dirt_tables.values())
        for kind in PLANTED_IN
    }
    manifest: dict[str, Any] = {
        "cardiobox_demo_hospital": 1,
        "generator_version": GENERATOR_VERSION,
        "name": profile.name,
        "title": profile.title,
        "city": profile.city,
        "country": profile.country,
        "language": profile.language,
        "timezone": profile.timezone,
        "seed": seed,
        "n_patients": n_patients,
        "conventions": {
            "delimiter": csv.delimiter,
            "decimal": csv.decimal,
            "encoding": csv.encoding,
            "newline": csv.newline,
            "datetime_format": profile.formats.datetime,
            "date_format": profile.formats.date,
            "diagnosis_coding": profile.diagnosis_coding,
            "medication_coding": profile.medication_coding,
            "lab_units": {a: t.unit for a, t in profile.labs.items()},
        },
        "tables": tables,
        "mappings": mapping_files,
        "truth": [str(p.relative_to(root)) for p in truth_files],
        "dirt": {
            "rates": rates.as_dict(),
            "planted_in": {k: list(v) for k, v in PLANTED_IN.items()},
            "numbering": "rows count records from 1 after the header; lines are file lines",
            "totals": totals,
            "tables": dirt_tables,
        },
        "expected_load": expected,
        "summary": _summary(cohort),
    }
    (root / "manifest.json").write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return HospitalExtract(name=profile.name, root=root, manifest=manifest)


def generate_all(
    out_dir: str | Path,
    n_patients: int = 10_000,
    seed: int = DEFAULT_SEED,
    dirt: DirtRates | None = None,
    hospitals: tuple[str, ...] = HOSPITALS,
) -> dict[str, HospitalExtract]:
    """Generate every demo hospital, each in ``out_dir / <name>``.

    Parameters
    ----------
    out_dir : str or Path
        Parent folder; each hospital gets its own subfolder.
    n_patients : int
        Patients per hospital (default 10 000).
    seed : int
        Random seed (default 7); each hospital draws its own stream from it.
    dirt : DirtRates, optional
        Planted dirt rates (default about 1 % each).
    hospitals : tuple of str
        Which hospitals (default all three).

    Returns
    -------
    dict
        The generated hospitals by name.
    """
    out = Path(out_dir)
    result = {
        name: generate_hospital(name, out / name, n_patients, seed, dirt) for name in hospitals
    }
    write_index(out, list(result), n_patients, seed)
    return result


def write_index(out_dir: Path, names: list[str], n_patients: int, seed: int) -> Path:
    """Write ``hospitals.json``: which hospitals ``out_dir`` holds and where their manifests are."""
    index = {
        "cardiobox_demo_hospitals": 1,
        "seed": seed,
        "n_patients": n_patients,
        "hospitals": {name: f"{name}/manifest.json" for name in names},
    }
    path = out_dir / "hospitals.json"
    path.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return path
