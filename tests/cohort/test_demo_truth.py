"""The Study-1-like cohort on the demo hospitals, checked against the generator's ground truth.

The three demo hospitals are generated (small, seeded), every table is ingested through its
mapping as ``cardiobox demo`` does (one site key for all, ``hospitals/site.key``), and the
library cohort ``hf_admissions.yaml`` is extracted with ``hf_features.yaml``. The generator
knows each patient's index admission and death date (``truth/patients.csv``, keyed by the
local patient id that every mapping pseudonymises as ``SiteKey.pseudonym("Patient", id)``).

Planted dirt (``dirt.py``) lives only in labs, vitals and echo: it never touches the
patients, encounters and diagnoses that define the cohort, its index and its deaths, so the
cohort and its death outcomes must agree with the truth exactly. The one place dirt shows is
a site's *inferred* follow-up end (the latest dated record, used when an outcome has no
``follow_up_end``): planted events after death lie after the generator's end of follow-up.
``test_inferred_follow_up_end_discrepancies_are_explained`` accounts for those discrepancies
one by one.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cardiobox.cohort import extract
from cardiobox.cohort.api import CohortResult
from cardiobox.cohort.definition import FeatureSet
from cardiobox.demo.hospitals import HOSPITALS, PLANTED_IN, TABLES, HospitalExtract, generate_all
from cardiobox.ingest.engine import IngestReport, run_mapping
from cardiobox.ingest.pseudonym import SiteKey, load_or_create_key

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "cardiobox" / "cohort" / "library"
N = 200
SEED = 11
#: The generator's end of follow-up (cardiobox.demo.hospitals.cohort.FOLLOW_UP_END).
FOLLOW_UP_END = dt.date(2024, 12, 31)
#: Tables the cohort, its index date and its deaths are read from.
COHORT_TABLES = {"patients", "encounters", "diagnoses"}
#: Long horizons, to exercise censoring (30 days and 1 year after an index admission, which
#: is at the latest 2023-06-30, never reach the end of follow-up).
LONG_HORIZONS = FeatureSet.model_validate(
    {
        "cardiobox_features": 1,
        "name": "death-long-horizons",
        "features": [
            {"name": "death_2y_fu", "outcome": "death", "horizon": "2 years",
             "follow_up_end": FOLLOW_UP_END.isoformat()},
            {"name": "death_5y_fu", "outcome": "death", "horizon": "5 years",
             "follow_up_end": FOLLOW_UP_END.isoformat()},
            {"name": "death_2y", "outcome": "death", "horizon": "2 years"},
            {"name": "death_5y", "outcome": "death", "horizon": "5 years"},
        ],
    }
)  # fmt: skip


@dataclass
class Site:
    """One demo hospital: its extract, store, key, ingestion reports, truth and cohort."""

    generated: HospitalExtract
    store: Path
    key: SiteKey
    reports: dict[str, IngestReport]
    truth: dict[str, dict[str, str]]  # by pseudonym
    result: CohortResult
    long: CohortResult

    def rows(self) -> list[dict[str, Any]]:
        assert self.result.table is not None
        rows: list[dict[str, Any]] = self.result.table.to_pylist()
        return rows


def _date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar arithmetic as DuckDB's ``+ INTERVAL n MONTH`` (31 Jan + 1 month = 28/29 Feb)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in range(day.day, 27, -1):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    return dt.date(year, month, day.day)


def horizon_end(index: dt.date, horizon: str) -> dt.date:
    n, unit = horizon.split()
    if unit.startswith("day"):
        return index + dt.timedelta(days=int(n))
    assert unit.startswith("year")
    return add_months(index, 12 * int(n))


def died_within(truth: dict[str, str], index: dt.date, end: dt.date) -> bool:
    death = _date(truth["death_date"])
    return death is not None and index <= death <= end


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Site]:
    root = tmp_path_factory.mktemp("demo")
    extracts = generate_all(root / "hospitals", n_patients=N, seed=SEED)
    key_file = root / "hospitals" / "site.key"  # as the tour: one key file for the demo
    out = {}
    for name, h in extracts.items():
        store = root / f"{name}.duckdb"
        reports = {t: run_mapping(h.mapping_path(t), store, key_file=key_file) for t in TABLES}
        key = load_or_create_key(key_file, create=False)
        with (h.root / "truth" / "patients.csv").open(encoding="utf-8", newline="") as fh:
            truth = {key.pseudonym("Patient", r["patient"]): r for r in csv.DictReader(fh)}
        result = extract(
            LIBRARY / "hf_admissions.yaml", store, features=LIBRARY / "hf_features.yaml"
        )
        long = extract(LIBRARY / "hf_admissions.yaml", store, features=LONG_HORIZONS)
        out[name] = Site(h, store, key, reports, truth, result, long)
    return out


@pytest.fixture(params=HOSPITALS)
def hospital(request: pytest.FixtureRequest, sites: dict[str, Site]) -> Site:
    return sites[request.param]


def test_ingestion_as_the_manifest_expects(hospital: Site) -> None:
    """Every table loads as the manifest says; the cohort's tables carry no dirt at all."""
    h = hospital.generated
    for table, rep in hospital.reports.items():
        e = h.expected_load(table)
        assert (rep.rows_read, rep.rows_loaded, rep.rows_quarantined) == (
            e["rows_read"],
            e["rows_loaded"],
            e["rows_quarantined"],
        ), table
    dirty = {t for tables in PLANTED_IN.values() for t in tables}
    assert not dirty & COHORT_TABLES
    assert not COHORT_TABLES & set(h.manifest["dirt"]["tables"])
    assert len(hospital.truth) == N


def test_attrition(hospital: Site) -> None:
    """Entry (HF admissions), inclusion (adults: all are, ages 32-99), selection (first)."""
    a = hospital.result.attrition
    assert [(r.step, r.kind) for r in a] == [(0, "entry"), (1, "inclusion"), (2, "selection")]
    indexed = sum(1 for t in hospital.truth.values() if t["index_admission"])
    admissions = sum(int(t["admissions"]) for t in hospital.truth.values())
    entry, adults, first = a
    # Every index admission is a primary HF admission; later admissions may be for other
    # reasons, so the entry has between one and all admissions per patient.
    assert indexed <= entry.rows <= admissions
    assert entry.patients == indexed == N
    assert (adults.rows, adults.patients) == (entry.rows, entry.patients)
    assert first.rows == first.patients == indexed
    assert (hospital.result.rows, hospital.result.patients) == (first.rows, first.patients)
    assert hospital.result.table is not None and hospital.result.table.num_rows == first.rows


def test_every_indexed_patient_once_with_the_true_index_date(hospital: Site) -> None:
    rows = hospital.rows()
    ids = [r["patient_id"] for r in rows]
    assert len(ids) == len(set(ids))
    indexed = {p for p, t in hospital.truth.items() if t["index_admission"]}
    assert set(ids) == indexed
    wrong = []
    for r in rows:
        t = hospital.truth[r["patient_id"]]
        if r["index_time"].date().isoformat() != t["index_admission"]:
            wrong.append((t["patient"], r["index_time"], t["index_admission"]))
    assert not wrong, wrong[:10]
    assert all(r["encounter_id"] for r in rows)


def test_deaths_agree_with_truth(hospital: Site) -> None:
    """death_30d / death_1y and their days against the true death date; no censoring (the
    horizons end by 2024-06-30, before the end of follow-up), so never NULL. Planted dirt
    explains no discrepancy here: it is in no table these columns read."""
    discrepancies = []
    for r in hospital.rows():
        t = hospital.truth[r["patient_id"]]
        index = r["index_time"].date()
        death = _date(t["death_date"])
        for col, horizon in (("death_30d", "30 days"), ("death_1y", "1 year")):
            end = horizon_end(index, horizon)
            assert end <= FOLLOW_UP_END  # followed over the whole horizon
            want = int(died_within(t, index, end))
            want_days = (death - index).days if want and death else (end - index).days
            if (r[col], r[col + "_days"]) != (want, want_days):
                discrepancies.append((t["patient"], col, index, t["death_date"], r[col]))
    assert discrepancies == []


def test_in_hospital_death_on_the_index_stay(hospital: Site) -> None:
    """A patient who died during the index stay (the only admission) died on its last day."""
    n = 0
    for r in hospital.rows():
        t = hospital.truth[r["patient_id"]]
        if t["in_hospital_death"] == "true" and t["admissions"] == "1":
            n += 1
            end = r["index_time"] + dt.timedelta(days=r["length_of_stay"])
            assert end.date().isoformat() == t["death_date"], t["patient"]
    assert n > 0


def test_readmission_needs_a_second_admission(hospital: Site) -> None:
    """Patients with one admission in truth are never readmitted (0, or NULL if censored)."""
    for r in hospital.rows():
        if hospital.truth[r["patient_id"]]["admissions"] == "1":
            assert r["hf_readmission_30d"] != 1 and r["hf_readmission_1y"] != 1


def test_censoring_at_the_follow_up_end(hospital: Site) -> None:
    """With follow_up_end the generator's date: 1 if death within the horizon, 0 if
    followed over it, NULL exactly where follow-up ends first."""
    assert hospital.long.table is not None
    counts: Counter[tuple[str, int | None]] = Counter()
    for r in hospital.long.table.to_pylist():
        t = hospital.truth[r["patient_id"]]
        index = r["index_time"].date()
        for col, horizon in (("death_2y_fu", "2 years"), ("death_5y_fu", "5 years")):
            end = horizon_end(index, horizon)
            if died_within(t, index, end):
                want: int | None = 1
            else:
                want = 0 if end <= FOLLOW_UP_END else None
            assert r[col] == want, (t["patient"], col, index, t["death_date"], r[col])
            if want is None:
                assert r[col + "_days"] == (FOLLOW_UP_END - index).days
            counts[(col, want)] += 1
    assert counts[("death_5y_fu", None)] > 0 and counts[("death_2y_fu", None)] > 0


def _extent(store: Path) -> tuple[dt.date, dt.date, int]:
    """The store's latest dated record (what the cohort takes as the end of follow-up when an
    outcome has none), the same without records dated after the patient's death, and the
    number of Observations dated after the patient's death."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{store}' AS site (READ_ONLY)")
        con.execute(
            """CREATE TEMP TABLE rec AS
            WITH r AS (
                SELECT patient_id, resource_type, json_extract_string(resource,
                    ['$.effectiveDateTime', '$.actualPeriod.start', '$.actualPeriod.end',
                     '$.recordedDate', '$.onsetDateTime', '$.effectivePeriod.start',
                     '$.authoredOn', '$.deceasedDateTime']) AS x
                FROM site.resources),
            dated AS (SELECT patient_id, resource_type, unnest(x) AS t FROM r)
            SELECT d.resource_type, TRY_CAST(left(d.t, 10) AS DATE) AS d,
                TRY_CAST(left(p.x[8], 10) AS DATE) AS death
            FROM dated d LEFT JOIN (SELECT patient_id, x FROM r WHERE resource_type = 'Patient')
                p USING (patient_id)
            WHERE d.t IS NOT NULL"""
        )
        (last, clean, after) = con.execute(
            """SELECT max(d), max(d) FILTER (WHERE death IS NULL OR d <= death),
                count(*) FILTER (WHERE resource_type = 'Observation' AND d > death)
            FROM rec"""
        ).fetchall()[0]
    finally:
        con.close()
    return last, clean, int(after)


def _inferred_end_discrepancies(hospital: Site) -> Counter[str]:
    """Rows whose long-horizon death differs without ``follow_up_end``, by explanation.

    Without follow_up_end, follow-up ends at the latest dated record in the store, leaving
    out records dated after their patient's death (such as the planted
    ``event_after_death`` laboratory results). Stays admitted before 2025 that end in January
    2025 (the generator lets them run) still extend it: a patient censored at 2024-12-31
    whose horizon ends before the inferred end is then reported as 0 (followed, alive)
    instead of NULL. Every such row must be explained, by cause.
    """
    assert hospital.long.table is not None
    last, clean, after_death = _extent(hospital.store)
    # Each planted event after death is one Observation dated after the patient's death;
    # nothing else in the store is (dirt kinds never share a row, so none is quarantined).
    assert after_death == hospital.generated.planted("event_after_death", "labs") > 0
    assert clean <= last
    by_cause: Counter[str] = Counter()
    for r in hospital.long.table.to_pylist():
        t = hospital.truth[r["patient_id"]]
        index = r["index_time"].date()
        for col, horizon in (("death_2y", "2 years"), ("death_5y", "5 years")):
            expected = r[col + "_fu"]  # checked against truth in the test above
            if r[col] == expected:
                continue
            end = horizon_end(index, horizon)
            # The only discrepancy: censored (NULL) at the true end, 0 at the inferred one.
            assert (expected, r[col]) == (None, 0), (t["patient"], col)
            assert FOLLOW_UP_END < end <= last, (t["patient"], col, end, last)
            assert not died_within(t, index, end)
            assert r[col + "_days"] == (end - index).days
            by_cause["stays past the end of follow-up" if end <= clean else "planted dirt"] += 1
    return by_cause


def test_inferred_follow_up_end_discrepancies_are_explained(hospital: Site) -> None:
    by_cause = _inferred_end_discrepancies(hospital)
    assert sum(by_cause.values()) <= 0.05 * 2 * N, by_cause  # small: the horizon ends within
    # the few weeks between 2024-12-31 and the latest record


def test_events_after_death_do_not_move_the_inferred_follow_up_end(
    sites: dict[str, Site],
) -> None:
    """Planted events dated after a death are errors: they never extend the follow-up the
    engine infers (only stays running past the generator's end of follow-up may)."""
    total: Counter[str] = Counter()
    for h in sites.values():
        total += _inferred_end_discrepancies(h)
    assert total["planted dirt"] == 0, total
