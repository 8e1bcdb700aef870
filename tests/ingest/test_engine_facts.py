"""The fact values a mapping gives with its Observations agree with the text it builds.

The engine hands the store, with each Observation, the values that the fact tables read
(``facts_x``), computed from the typed columns instead of parsing the text it just wrote. They
must be what ``json_extract_string`` finds in that text, and the fact tables a load writes
must equal a rebuild from the stored resources.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import duckdb
import pytest

from cardiobox.demo.hospitals import TABLES, HospitalExtract, generate_all
from cardiobox.duck import sql_str
from cardiobox.ingest.engine import MappingRun, run_mapping
from cardiobox.ingest.mapping import load_mapping
from cardiobox.ingest.pseudonym import SiteKey
from cardiobox.store import SiteStore
from cardiobox.store.facts import FACT_TABLES, OBSERVATION_PATHS, build_facts

#: 1-based positions of numbers in the list: JSON rewrites their text (1.50 → 1.5).
NUMBERS = (4, 5)


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HospitalExtract]:
    return generate_all(tmp_path_factory.mktemp("hospitals"), n_patients=60, seed=11)


def _same(i: int) -> str:
    given, parsed = f"facts_x[{i}]", f"x[{i}]"
    if i in NUMBERS:
        given, parsed = f"TRY_CAST({given} AS DOUBLE)", f"TRY_CAST({parsed} AS DOUBLE)"
    return f"{given} IS NOT DISTINCT FROM {parsed}"


def test_given_values_are_those_in_the_built_text(hospitals: dict[str, HospitalExtract]) -> None:
    paths = ", ".join(sql_str(p) for p in OBSERVATION_PATHS)
    agree = " AND ".join(_same(i) for i in range(1, len(OBSERVATION_PATHS) + 1))
    checked = 0
    for h in hospitals.values():
        for table in TABLES:
            path = h.mapping_path(table)
            key = SiteKey(secrets.token_bytes(32), path)
            run = MappingRun(load_mapping(path), path, None, key, lambda _p, _n, _t: None)
            con = duckdb.connect()
            run.prepare(con)
            n, given, wrong = con.execute(
                f"""SELECT count(*), count(facts_x), count(*) FILTER (WHERE NOT ({agree}))
                FROM (SELECT facts_x, json_extract_string(raw, [{paths}]) AS x
                      FROM _stage_data WHERE rt = 'Observation' AND errs IS NULL)"""
            ).fetchall()[0]
            example = con.execute(
                f"""SELECT raw, facts_x FROM (SELECT raw, facts_x,
                    json_extract_string(raw, [{paths}]) AS x FROM _stage_data
                    WHERE rt = 'Observation' AND errs IS NULL) WHERE NOT ({agree}) LIMIT 1"""
            ).fetchall()
            con.close()
            assert given == n, f"{h.name} {table}: an Observation without its fact values"
            assert wrong == 0, f"{h.name} {table}: {example}"
            checked += n
    assert checked > 1000


def test_loads_write_the_facts_a_rebuild_gives(
    hospitals: dict[str, HospitalExtract], tmp_path: Path
) -> None:
    key = tmp_path / "site.key"
    for h in hospitals.values():
        db = tmp_path / f"{h.name}.duckdb"
        for table in TABLES:
            run_mapping(h.mapping_path(table), db, key_file=key)
        with SiteStore(db) as store:
            names = {t: f"rebuilt_{t}" for t in FACT_TABLES}
            build_facts(store.con, names)
            for t in FACT_TABLES:
                stored = store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                rebuilt = store.con.execute(f"SELECT * FROM {names[t]} ORDER BY ALL").fetchall()
                assert stored == rebuilt, f"{h.name}: {t}"
            assert store.con.execute("SELECT count(*) FROM facts").fetchall()[0][0] > 100


MAPPING = """cardiobox_mapping: 1
name: kinds
source: {format: csv, path: rows.csv}
timezone: Europe/Madrid
patient: pid
resources:
  - id: obs
    type: Observation
    effective: {expr: day, format: "%Y-%m-%d"}
    encounter: stay
    repeat:
      - {name: vessels, variable: fluoroscopy_vessel_count, value: {expr: vessels, type: integer}}
      - {name: nyha, variable: nyha_class, value: nyha}
      - {name: fbs, variable: fasting_glucose_over_120, value: {expr: fbs, type: boolean}}
      - {name: qrs, variable: qrs_duration, value: {expr: qrs, type: decimal}, unit: {const: ms}}
"""
ROWS = """pid,day,stay,vessels,nyha,fbs,qrs
p1,2024-03-31,e1,0,2,1,98.50
p1,2024-04-01,,3.0,,0,
p2,,e2,,4,,120
p3,2023-12-31,e3,2,1,yes,1e2
"""


def test_every_kind_of_value_agrees_and_loads_as_a_rebuild(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(ROWS, encoding="utf-8")
    path = tmp_path / "kinds.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    paths = ", ".join(sql_str(p) for p in OBSERVATION_PATHS)
    agree = " AND ".join(_same(i) for i in range(1, len(OBSERVATION_PATHS) + 1))
    run = MappingRun(
        load_mapping(path), path, None, SiteKey(b"k" * 32, path), lambda _p, _n, _t: None
    )
    con = duckdb.connect()
    run.prepare(con)
    found = con.execute(
        f"""SELECT count(*) FILTER (WHERE NOT ({agree})), count(x[5]), count(x[6]),
            count(x[8]), count(x[4]), count(*) FILTER (WHERE errs IS NULL)
        FROM (SELECT facts_x, errs, json_extract_string(raw, [{paths}]) AS x
              FROM _stage_data WHERE errs IS NULL)"""
    ).fetchall()[0]
    con.close()
    # nothing disagrees; integers, booleans, coded answers and quantities were all seen
    assert found[0] == 0 and all(n > 0 for n in found[1:5]), found
    db = tmp_path / "site.duckdb"
    rep = run_mapping(path, db, key_file=tmp_path / "site.key")
    assert rep.rows_read == 4
    assert_facts_as_rebuilt(db)
    # A second load that adds rows (the first one's facts are kept, ranks recomputed).
    (tmp_path / "rows.csv").write_text(
        ROWS + "p1,2024-02-01,e1,1,3,0,101.25\np4,2024-05-05,,2,2,1,90\n", encoding="utf-8"
    )
    rep = run_mapping(path, db, key_file=tmp_path / "site.key")
    assert rep.resources_created == 8 and rep.resources_unchanged == 12
    assert_facts_as_rebuilt(db)


def assert_facts_as_rebuilt(db: Path) -> None:
    with SiteStore(db) as store:
        names = {t: f"rebuilt_{t}" for t in FACT_TABLES}
        build_facts(store.con, names)
        for t in FACT_TABLES:
            stored = store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            assert stored == store.con.execute(f"SELECT * FROM {names[t]} ORDER BY ALL").fetchall()
        assert store.con.execute("SELECT count(*) FROM facts").fetchall()[0][0] >= 8
