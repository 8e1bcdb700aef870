"""The store's fact tables: refreshed by every load, equal to a rebuild, atomic with the load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cardiobox.store import SiteStore
from cardiobox.store import facts as facts_mod
from cardiobox.store.facts import (
    ENCOUNTERS,
    FACT_TABLES,
    FACTS,
    PATIENTS,
    FactsRefresh,
    build_facts,
    facts_status,
)

LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
UCUM = "http://unitsofmeasure.org"


def patient(pid: str, born: str = "1950-02-03") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": born}


def stay(eid: str, pid: str, start: str, end: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "class": [{"coding": [{"system": ACT, "code": "IMP"}]}],
        "actualPeriod": {"start": start, "end": end},
    }


def sbp(oid: str, pid: str, value: float, at: str | None) -> dict[str, Any]:
    """A systolic blood pressure (``at``: effectiveDateTime, or undated when None)."""
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
        "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
    }
    if at is not None:
        r["effectiveDateTime"] = at
    return r


def condition(
    cid: str, pid: str, icd: str, at: str, encounter: str | None = None
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": ICD10, "code": icd}]},
        "onsetDateTime": at,
    }
    if encounter is not None:
        r["encounter"] = {"reference": f"Encounter/{encounter}"}
    return r


def load(store: SiteStore, folder: Path, resources: list[dict[str, Any]]) -> None:
    """Import the resources as one NDJSON file (one load); every one must be stored."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"load{len(list(folder.iterdir()))}.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in resources) + "\n", encoding="utf-8")
    report = store.import_fhir(path, fhir_version="R5")
    assert report.quarantined == 0, report.examples


def rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def assert_equal_to_rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """The stored tables hold exactly what a rebuild from every resource gives."""
    names = {t: f"rebuilt_{t}" for t in FACT_TABLES}
    build_facts(con, names)
    for table in FACT_TABLES:
        assert rows(con, table) == rows(con, names[table]), table


@pytest.fixture
def modes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The mode of each refresh that a load runs."""
    seen: list[str] = []
    real = facts_mod.refresh_facts

    def spy(
        con: duckdb.DuckDBPyConnection, load_id: str | None = None, written: str | None = None
    ) -> FactsRefresh:
        result = real(con, load_id, written)
        seen.append(result.mode)
        return result

    monkeypatch.setattr("cardiobox.store.site_store.refresh_facts", spy)
    return seen


def test_loads_keep_the_fact_tables_equal_to_a_rebuild(tmp_path: Path, modes: list[str]) -> None:
    with SiteStore(tmp_path / "site.duckdb") as store:
        load(
            store,
            tmp_path / "in",
            [
                patient("p1"),
                patient("p2", born="1960"),
                stay("e1", "p1", "2020-06-01T10:00:00Z", "2020-06-05T10:00:00Z"),
                sbp("o1", "p1", 120, "2020-06-01T12:00:00Z"),
                sbp("o2", "p1", 130, "2020-06-02T12:00:00Z"),
                sbp("o3", "p2", 140, "2020-06-03"),
                condition("c1", "p1", "I50.9", "2020-06-01", encounter="e1"),
                condition("c2", "p2", "I10", "2019-01-01"),
            ],
        )
        assert_equal_to_rebuild(store.con)
        # Updates: a value, a code that now means another variable, an Observation moved to
        # another patient, a birth date, an encounter's end; and new records, one tied in time
        # with a kept one and one undated.
        load(
            store,
            tmp_path / "in",
            [
                patient("p2", born="1961-04"),
                stay("e1", "p1", "2020-06-01T10:00:00Z", "2020-06-07T10:00:00Z"),
                sbp("o1", "p1", 125, "2020-06-01T12:00:00Z"),
                sbp("o3", "p1", 140, "2020-06-03"),
                condition("c2", "p2", "E11.9", "2019-01-01"),
                sbp("o0", "p1", 110, "2020-06-02T12:00:00Z"),
                sbp("o9", "p2", 150, None),
                patient("p3"),
                sbp("o4", "p3", 100, "2021-01-01T08:00:00Z"),
            ],
        )
        assert_equal_to_rebuild(store.con)
        # The same input again changes nothing.
        load(
            store, tmp_path / "again", [patient("p3"), sbp("o4", "p3", 100, "2021-01-01T08:00:00Z")]
        )
        assert_equal_to_rebuild(store.con)
        assert facts_status(store.con) is None
    # The first load builds the tables (a store without them), later ones only their changes.
    assert modes == ["full", "incremental", "none"]


def test_ranks_put_dated_records_first_by_time_then_undated_ties_by_id(tmp_path: Path) -> None:
    with SiteStore(tmp_path / "site.duckdb") as store:
        load(
            store,
            tmp_path / "in",
            [
                patient("p1"),
                sbp("o3", "p1", 101, "2020-01-01T10:00:00Z"),
                sbp("o1", "p1", 102, "2020-01-01T10:00:00Z"),
                sbp("o2", "p1", 103, "2020-01-01T09:00:00Z"),
                sbp("o5", "p1", 104, None),
                sbp("o4", "p1", 105, None),
                condition("c1", "p1", "I50.9", "2019-01-01"),
            ],
        )
        ranked = store.con.execute(
            f"SELECT id, ord FROM {FACTS} WHERE variable = 'systolic_bp' ORDER BY ord"
        ).fetchall()
        assert ranked == [("o2", 1), ("o1", 2), ("o3", 3), ("o4", 4), ("o5", 5)]
        # Ranks are per patient and variable.
        assert store.con.execute(f"SELECT ord FROM {FACTS} WHERE id = 'c1'").fetchall() == [(1,)]


def test_status_says_when_the_tables_cannot_be_used_and_reindex_mends_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SiteStore(tmp_path / "site.duckdb") as store:
        load(store, tmp_path / "in", [patient("p1"), sbp("o1", "p1", 120, "2020-01-01")])
        assert facts_status(store.con) is None
        # Resources written by other means than a load: the tables are behind.
        store.con.execute(
            "INSERT INTO resources SELECT resource_type, 'o2', patient_id, fhir_version, "
            "replace(resource, '\"o1\"', '\"o2\"'), NULL, content_hash, 'raw', NULL, NULL, "
            "NULL, NULL FROM resources WHERE id = 'o1'"
        )
        assert "resources changed" in str(facts_status(store.con))
        refresh = store.reindex()
        assert (refresh.mode, refresh.resources, refresh.facts) == ("full", 3, 2)
        assert facts_status(store.con) is None
        assert_equal_to_rebuild(store.con)
        # Another data dictionary or fact SQL (another cardiobox version).
        monkeypatch.setattr(facts_mod, "facts_fingerprint", lambda dictionary=None: "other")
        assert "another cardiobox version" in str(facts_status(store.con))
        monkeypatch.undo()
        # A store written by an older cardiobox: no fact tables; the next load builds them.
        for table in FACT_TABLES:
            store.con.execute(f"DROP TABLE {table}")
        assert "no fact tables" in str(facts_status(store.con))
        load(store, tmp_path / "in", [patient("p9")])
        assert facts_status(store.con) is None
        assert_equal_to_rebuild(store.con)


def _digest(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    return (
        rows(con, "resources"),
        *(rows(con, t) for t in (PATIENTS, ENCOUNTERS, FACTS)),
        rows(con, "store_info"),
    )


@pytest.mark.parametrize("failing", ["refresh", "commit"])
def test_a_failed_load_leaves_resources_and_fact_tables_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    with SiteStore(tmp_path / "site.duckdb") as store:
        load(store, tmp_path / "in", [patient("p1"), sbp("o1", "p1", 120, "2020-01-01")])
        before = _digest(store.con)

        def fail(*args: object, **kwargs: object) -> None:
            raise RuntimeError("killed")

        if failing == "refresh":
            monkeypatch.setattr("cardiobox.store.site_store.refresh_facts", fail)
        else:
            monkeypatch.setattr(SiteStore, "_commit", fail)
        with pytest.raises(RuntimeError, match="killed"):
            load(store, tmp_path / "in", [sbp("o1", "p1", 999, "2021-01-01"), patient("p2")])
        assert _digest(store.con) == before


def test_incremental_refresh_of_a_converted_r4_store(tmp_path: Path, synthea_store: Path) -> None:
    """Synthea (R4, converted): new records of an existing patient, tied in time with theirs."""
    path = tmp_path / "site.duckdb"
    shutil.copy(synthea_store, path)
    with SiteStore(path) as store:
        assert facts_status(store.con) is None
        pid, t = store.con.execute(
            f"SELECT patient_id, strftime(t, '%Y-%m-%dT%H:%M:%S') FROM {FACTS} "
            "WHERE t IS NOT NULL ORDER BY patient_id, t LIMIT 1"
        ).fetchall()[0]
        before = store.con.execute(
            f"SELECT count(*) FROM {FACTS} WHERE patient_id = ?", [pid]
        ).fetchall()[0][0]
        load(store, tmp_path / "in", [sbp("zz1", pid, 111, t + "Z"), sbp("aa1", pid, 112, t + "Z")])
        after = store.con.execute(
            f"SELECT count(*) FROM {FACTS} WHERE patient_id = ?", [pid]
        ).fetchall()[0][0]
        assert after == before + 2
        assert_equal_to_rebuild(store.con)
