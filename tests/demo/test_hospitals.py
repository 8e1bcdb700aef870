"""The demo hospitals: seeded, realistic extracts whose planted dirt is known row by row."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.codes import canonical_system
from cardiobox.demo.hospitals import (
    HOSPITALS,
    PLANTED_IN,
    QUARANTINED_KINDS,
    TABLES,
    DirtRates,
    HospitalExtract,
    generate_all,
    generate_hospital,
    load_profile,
)
from cardiobox.demo.hospitals.__main__ import main
from cardiobox.ingest.mapping import load_mapping

N = 200
SEED = 11
#: LOINC document types used for note types; they are not data-model variables.
DOCUMENT_TYPES = {("http://loinc.org", "18842-5"), ("http://loinc.org", "11488-4")}


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HospitalExtract]:
    return generate_all(tmp_path_factory.mktemp("hospitals"), n_patients=N, seed=SEED)


def read_table(h: HospitalExtract, table: str) -> list[dict[str, str]]:
    conv = h.manifest["conventions"]
    text = h.table_path(table).read_bytes().decode(conv["encoding"])
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=conv["delimiter"]))


def role(h: HospitalExtract, table: str, name: str) -> str:
    return load_profile(h.name).column(table, name)


def dirt_rows(h: HospitalExtract, table: str, kind: str) -> list[int]:
    return list(h.manifest["dirt"]["tables"].get(table, {}).get(kind, {}).get("rows", []))


def to_float(text: str, decimal: str) -> float:
    return float(text.replace(decimal, ".")) if decimal != "." else float(text)


# -- determinism ------------------------------------------------------------------------------


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a = generate_hospital("hospital_nl", tmp_path / "a", n_patients=120, seed=3)
    b = generate_hospital("hospital_nl", tmp_path / "b", n_patients=120, seed=3)
    c = generate_hospital("hospital_nl", tmp_path / "c", n_patients=120, seed=4)
    assert _digest(a.root) == _digest(b.root)
    assert (
        _digest(a.root)["extract/labuitslagen.csv"] != _digest(c.root)["extract/labuitslagen.csv"]
    )


def test_hospitals_differ_under_one_seed(hospitals: dict[str, HospitalExtract]) -> None:
    ages = {h.manifest["summary"]["mean_age_at_index"] for h in hospitals.values()}
    assert len(ages) == 3
    index = json.loads((next(iter(hospitals.values())).root.parent / "hospitals.json").read_text())
    assert sorted(index["hospitals"]) == sorted(HOSPITALS)


# -- manifest and files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSPITALS)
def test_manifest_matches_files(hospitals: dict[str, HospitalExtract], name: str) -> None:
    h = hospitals[name]
    assert h.tables == list(TABLES)
    assert h.manifest["n_patients"] == N and h.manifest["seed"] == SEED
    for table in TABLES:
        rows = read_table(h, table)
        info = h.manifest["tables"][table]
        assert len(rows) == info["rows"] == h.rows(table), table
        assert list(rows[0]) == info["columns"]
        assert hashlib.sha256(h.table_path(table).read_bytes()).hexdigest() == info["sha256"]
        assert h.mapping_path(table).is_file()
    assert h.rows("patients") == N
    assert h.rows("notes") == h.rows("encounters")  # one note per stay or visit
    for rel in h.manifest["truth"]:
        assert (h.root / rel).is_file()
    truth = list(csv.DictReader((h.root / "truth" / "notes.csv").open(encoding="utf-8")))
    assert len(truth) == h.rows("notes")


@pytest.mark.parametrize("name", HOSPITALS)
def test_expected_load_adds_up(hospitals: dict[str, HospitalExtract], name: str) -> None:
    h = hospitals[name]
    for table in TABLES:
        e = h.expected_load(table)
        assert e["rows_read"] == h.rows(table)
        assert e["rows_read"] == e["rows_loaded"] + e["rows_quarantined"]
        assert e["rows_quarantined"] == sum(h.planted(k, table) for k in QUARANTINED_KINDS)
        assert e["duplicate_rows"] == h.planted("duplicate_row", table)


# -- conventions ------------------------------------------------------------------------------


def test_spanish_conventions(hospitals: dict[str, HospitalExtract]) -> None:
    h = hospitals["hospital_es"]
    raw = h.table_path("labs").read_bytes()
    assert raw.startswith(b"id_resultado;nhc;episodio;fecha_extraccion;cod_prueba")
    assert b"\r\n" in raw
    with pytest.raises(UnicodeDecodeError):
        h.table_path("diagnoses").read_bytes().decode("utf-8")  # Latin-1: "Hipertensión"
    labs = read_table(h, "labs")
    crea = [r for r in labs if r["cod_prueba"] == "CREA"]
    assert crea and all(r["unidades"] == "mg/dL" for r in crea)
    assert any(re.fullmatch(r"\d+,\d+", r["resultado"]) for r in crea)  # decimal comma
    assert {r["unidades"] for r in labs if r["cod_prueba"] == "K"} == {"mEq/L"}
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", r["fecha_extraccion"]) for r in labs[:50])
    codes = [r["codigo_cie10"] for r in read_table(h, "diagnoses")]
    assert "I50.9" in codes or "I50.0" in codes
    assert all("." in c for c in codes if len(c) > 3)
    notes = read_table(h, "notes")
    assert notes[0]["tipo_informe"] in {"ALTA", "CEX"}


def test_dutch_conventions(hospitals: dict[str, HospitalExtract]) -> None:
    h = hospitals["hospital_nl"]
    raw = h.table_path("labs").read_bytes()
    assert raw.startswith(b"uitslagnummer,patientnummer,contactnummer,afnamemoment")
    assert b"\r\n" not in raw
    labs = read_table(h, "labs")
    units = {r["bepalingcode"]: r["eenheid"] for r in labs}
    assert units["KREA"] == "µmol/L" and units["HB"] == "mmol/L" and units["NTPROBNP"] == "pmol/L"
    hb = [r["uitslag"] for r in labs if r["bepalingcode"] == "HB"]
    assert any(re.fullmatch(r"\d+\.\d", v) for v in hb)  # decimal point, e.g. 8.1 mmol/L
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r["afnamemoment"]) for r in labs[:50]
    )
    codes = {r["icd10"] for r in read_table(h, "diagnoses")}
    assert codes & {"I500", "I501", "I509"} and not any("." in c for c in codes)
    hpk = {r["hpk"] for r in read_table(h, "medications")}
    assert all(c.isdigit() for c in hpk)


def test_swedish_conventions(hospitals: dict[str, HospitalExtract]) -> None:
    h = hospitals["hospital_se"]
    assert h.table_path("labs").suffix == ".tsv"
    assert h.table_path("labs").read_text(encoding="utf-8").split("\n")[0].split("\t")[:4] == [
        "provsvar_id",
        "patientid",
        "vårdkontakt_id",
        "provtagningstid",
    ]
    labs = read_table(h, "labs")
    units = {r["analyskod"]: r["enhet"] for r in labs}
    assert units["PNTPROBNP"] == "ng/L" and units["BHB"] == "g/L"
    k = [r["resultat"] for r in labs if r["analyskod"] == "PK"]
    assert any(re.fullmatch(r"\d,\d", v) for v in k)  # decimal comma, e.g. 4,3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", r["provtagningstid"]) for r in labs[:50])
    snomed = {r["snomed_ct"] for r in read_table(h, "diagnoses")}
    assert "84114007" in snomed or "42343007" in snomed or "85232009" in snomed
    assert all(c.isdigit() for c in snomed)
    lvidd = [r["lvidd"] for r in read_table(h, "echo")]
    assert any(re.fullmatch(r"\d,\d", v) for v in lvidd)  # centimetres: 5,8


@pytest.mark.parametrize(
    ("name", "phrases"),
    [
        ("hospital_es", ["No edemas.", "Niega dolor torácico.", "NYHA", "FEVI"]),
        ("hospital_nl", ["Geen oedeem.", "Geen pijn op de borst.", "NYHA", "LVEF"]),
        ("hospital_se", ["Inga ödem.", "Ingen bröstsmärta.", "NYHA", "EF"]),
    ],
)
def test_notes_in_the_hospital_language(
    hospitals: dict[str, HospitalExtract], name: str, phrases: list[str]
) -> None:
    h = hospitals[name]
    texts = [r[role(h, "notes", "text")] for r in read_table(h, "notes")]
    joined = "\n".join(texts)
    for phrase in phrases:
        assert phrase in joined, phrase
    assert sum("\n" in t for t in texts) == len(texts)  # multi-line notes
    truth = list(csv.DictReader((h.root / "truth" / "notes.csv").open(encoding="utf-8")))
    assert {t["oedema"] for t in truth} >= {"present", "absent"}


# -- planted dirt -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSPITALS)
def test_dirt_counts_are_the_planted_rates(
    hospitals: dict[str, HospitalExtract], name: str
) -> None:
    h = hospitals[name]
    rates = h.manifest["dirt"]["rates"]
    for kind, tables in PLANTED_IN.items():
        for table in tables:
            entry = h.manifest["dirt"]["tables"][table][kind]
            base = h.rows(table) - h.planted("duplicate_row", table)
            assert entry["count"] == round(rates[kind] * base) == len(entry["rows"]), (table, kind)
            assert entry["lines"] == [r + 1 for r in entry["rows"]]
            assert entry["count"] > 0
    for table in ("labs", "vitals", "echo"):
        seen: list[int] = []
        for kind in PLANTED_IN:
            seen += dirt_rows(h, table, kind)
        assert len(seen) == len(set(seen)), f"{table}: kinds share rows"
        assert all(1 <= r <= h.rows(table) for r in seen)


def _lab_tests(name: str) -> dict[str, tuple[str, float]]:
    """Local lab code -> (dictionary variable, factor from canonical to local unit)."""
    p = load_profile(name)
    return {t.code: (var, t.factor) for var, t in p.labs.items()}


@pytest.mark.parametrize("name", HOSPITALS)
def test_dirt_is_where_the_manifest_says(hospitals: dict[str, HospitalExtract], name: str) -> None:
    h = hospitals[name]
    p = load_profile(name)
    d = load_dictionary()
    dec = p.csv.decimal
    labs = read_table(h, "labs")
    tests = _lab_tests(name)
    code, value, when = role(h, "labs", "code"), role(h, "labs", "value"), role(h, "labs", "time")
    impossible = set(dirt_rows(h, "labs", "impossible_value"))
    unknown = set(dirt_rows(h, "labs", "unknown_code"))
    broken = set(dirt_rows(h, "labs", "unparsable_date"))
    dups = dirt_rows(h, "labs", "duplicate_row")
    late = set(dirt_rows(h, "labs", "event_after_death"))
    for i, row in enumerate(labs, start=1):
        if i in unknown:
            assert row[code] not in tests
            continue
        var, factor = tests[row[code]]
        lo, hi = d[var].range or (float("-inf"), float("inf"))
        canonical = to_float(row[value], dec) / factor
        assert (i in impossible) == (not lo <= canonical <= hi), (i, row)
        try:
            datetime.strptime(row[when], p.formats.datetime)
            parsed = True
        except ValueError:
            parsed = False
        assert parsed == (i not in broken), (i, row[when])
    for r in dups:
        assert labs[r - 1] == labs[r - 2]
    # Events after death: dated after the patient's death; nothing else is.
    pid = role(h, "patients", "patient")
    death = {
        r[pid]: datetime.strptime(r[role(h, "patients", "death_date")], p.formats.date)
        for r in read_table(h, "patients")
        if r[role(h, "patients", "death_date")]
    }
    lab_pid = role(h, "labs", "patient")
    for i, row in enumerate(labs, start=1):
        if i in broken or row[lab_pid] not in death:
            continue
        t = datetime.strptime(row[when], p.formats.datetime)
        assert (t.date() > death[row[lab_pid]].date()) == (i in late), (i, row)
    # Vitals and echo: impossible values are exactly the rows out of range.
    vit = read_table(h, "vitals")
    sbp, spo2 = role(h, "vitals", "sbp"), role(h, "vitals", "spo2")
    bad = {
        i
        for i, r in enumerate(vit, start=1)
        if to_float(r[sbp], dec) > 350 or to_float(r[spo2], dec) > 100
    }
    assert bad == set(dirt_rows(h, "vitals", "impossible_value"))
    for r in dirt_rows(h, "vitals", "duplicate_row"):
        assert vit[r - 1] == vit[r - 2]
    lvef = role(h, "echo", "lvef")
    echo_bad = {i for i, r in enumerate(read_table(h, "echo"), 1) if to_float(r[lvef], dec) > 95}
    assert echo_bad == set(dirt_rows(h, "echo", "impossible_value"))


@pytest.mark.parametrize("name", HOSPITALS)
def test_nothing_else_after_death(hospitals: dict[str, HospitalExtract], name: str) -> None:
    h = hospitals[name]
    p = load_profile(name)
    pid = role(h, "patients", "patient")
    death = {
        r[pid]: datetime.strptime(r[role(h, "patients", "death_date")], p.formats.date).date()
        for r in read_table(h, "patients")
        if r[role(h, "patients", "death_date")]
    }
    for table, column, fmt in [
        ("encounters", "end", p.formats.datetime),
        ("vitals", "time", p.formats.datetime),
        ("echo", "time", p.formats.datetime),
        ("ecg", "time", p.formats.datetime),
        ("nyha", "time", p.formats.datetime),
        ("medications", "start", p.formats.date),
        ("notes", "time", p.formats.datetime),
    ]:
        col, tp = role(h, table, column), role(h, table, "patient")
        for r in read_table(h, table):
            if r[tp] in death:
                assert datetime.strptime(r[col], fmt).date() <= death[r[tp]], (table, r)


def test_dirt_rates_are_configurable(tmp_path: Path) -> None:
    clean = generate_hospital("hospital_se", tmp_path / "clean", 80, 1, DirtRates.none())
    assert all(v == 0 for v in clean.manifest["dirt"]["totals"].values())
    assert all(clean.expected_load(t)["rows_quarantined"] == 0 for t in TABLES)
    dirty = generate_hospital("hospital_se", tmp_path / "dirty", 80, 1, DirtRates(0.05, 0, 0, 0, 0))
    base = dirty.rows("labs")
    assert dirty.planted("impossible_value", "labs") == round(0.05 * base)
    assert dirty.planted("unknown_code") == 0
    with pytest.raises(ValueError, match=r"between 0 and 0\.2"):
        DirtRates(impossible_value=0.5)


# -- mappings and concept maps ----------------------------------------------------------------


def _concept_map_targets(h: HospitalExtract) -> list[tuple[str, str, str, str]]:
    """(mapping, local code, system, code) for every concept-map entry of every mapping."""
    out = []
    for table in TABLES:
        path = h.mapping_path(table)
        mapping = load_mapping(path)
        for name, spec in mapping.concept_maps.items():
            if spec.file:
                with (path.parent / spec.file).open(encoding="utf-8", newline="") as f:
                    for row in csv.DictReader(f):
                        out.append((name, row["local_code"], row["system"], row["code"]))
            for local, target in (spec.inline or {}).items():
                out.append((name, local, target.get("system", ""), target["code"]))
    return out


@pytest.mark.parametrize("name", HOSPITALS)
def test_every_mapping_loads(hospitals: dict[str, HospitalExtract], name: str) -> None:
    h = hospitals[name]
    for table in TABLES:
        mapping = load_mapping(h.mapping_path(table))
        assert mapping.name.startswith(name.replace("_", "-"))
        assert mapping.timezone == h.manifest["timezone"]
        source = (h.mapping_path(table).parent / str(mapping.source.path)).resolve()
        assert source == h.table_path(table).resolve()
        assert mapping.source.encoding == h.manifest["conventions"]["encoding"]
        assert mapping.source.decimal == h.manifest["conventions"]["decimal"]


@pytest.mark.parametrize("name", HOSPITALS)
def test_concept_maps_reach_the_dictionary(
    hospitals: dict[str, HospitalExtract], name: str
) -> None:
    d = load_dictionary()
    answers = {(a.system, a.code) for v in d for a in v.answers}
    genders = {"male", "female", "other", "unknown"}
    for cmap, local, system, code in _concept_map_targets(hospitals[name]):
        sys_uri = canonical_system(system) if system else ""
        found = (
            (system and d.find_code(system, code) is not None)
            or (sys_uri, code) in answers
            or (sys_uri, code) in DOCUMENT_TYPES
            or (not system and code in genders)
        )
        assert found, f"{name}: concept map {cmap} sends {local!r} to {system}|{code}"


@pytest.mark.parametrize("name", HOSPITALS)
def test_local_codes_are_mapped_except_the_planted_ones(
    hospitals: dict[str, HospitalExtract], name: str
) -> None:
    h = hospitals[name]
    targets = _concept_map_targets(h)
    lab_map = {
        local for cmap, local, _s, _c in targets if cmap in ("pruebas", "bepalingen", "analyser")
    }
    labs = read_table(h, "labs")
    code = role(h, "labs", "code")
    unknown = set(dirt_rows(h, "labs", "unknown_code"))
    unmapped = {i for i, r in enumerate(labs, 1) if r[code] not in lab_map}
    assert unmapped == unknown
    d = load_dictionary()
    # Diagnoses and medications: every code reaches a dictionary variable.
    dx = {local: (s, c) for cmap, local, s, c in targets if cmap in ("icd10", "snomed_icd10")}
    for local in {r[role(h, "diagnoses", "code")] for r in read_table(h, "diagnoses")}:
        system, target = dx.get(local, ("icd-10", local))
        assert d.find_code(system, target) is not None, local
    meds = {local: c for cmap, local, _s, c in targets if cmap == "hpk"}
    for local in {r[role(h, "medications", "code")] for r in read_table(h, "medications")}:
        assert d.find_code("atc", meds.get(local, local)) is not None, local


# -- clinical plausibility --------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSPITALS)
def test_cohort_is_clinically_plausible(hospitals: dict[str, HospitalExtract], name: str) -> None:
    s = hospitals[name].manifest["summary"]
    assert 70 <= s["mean_age_at_index"] <= 84
    assert 0.4 <= s["male_share"] <= 0.75
    assert s["phenotypes"]["HFrEF"] > s["phenotypes"]["HFmrEF"]
    assert 0.08 <= s["readmission_30d_after_index"] <= 0.35
    assert 0.3 <= s["readmission_1y_after_index"] <= 0.7
    assert 0.1 <= s["mortality_1y_after_index"] <= 0.45
    assert 0 < s["in_hospital_deaths"] < s["deaths"] < s["patients"]
    assert 4 <= s["median_length_of_stay_days"] <= 10
    prev = s["comorbidity_prevalence"]
    assert prev["hypertension"] > prev["copd"] and 0.25 <= prev["af"] <= 0.65


def test_labs_tell_a_heart_failure_story(hospitals: dict[str, HospitalExtract]) -> None:
    h = hospitals["hospital_es"]
    moments = {}
    nyha = read_table(h, "nyha")
    for r in nyha:
        moments.setdefault(r["momento"], []).append(["I", "II", "III", "IV"].index(r["clase_nyha"]))
    mean = {k: sum(v) / len(v) for k, v in moments.items()}
    assert mean["INGRESO"] > mean["ALTA"]  # patients improve during the stay
    ntp = sorted(
        float(r["resultado"].replace(",", "."))
        for i, r in enumerate(read_table(h, "labs"), 1)
        if r["cod_prueba"] == "NTPRO" and i not in set(dirt_rows(h, "labs", "impossible_value"))
    )
    assert 1000 < ntp[len(ntp) // 2] < 10000  # median NT-proBNP of a heart-failure cohort
    meds = {r["codigo_atc"][:5] for r in read_table(h, "medications")}
    assert {"C03CA", "C07AB", "C03DA", "B01AF"} <= meds  # loop, beta-blocker, MRA, DOAC


# -- command line -----------------------------------------------------------------------------


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(tmp_path), "--patients", "40", "--hospital", "hospital_nl", "--json"]
    assert main([*argv, "--unknown-code", "0.02"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hospital_nl"]["rows"]["patients"] == 40
    manifest = json.loads((tmp_path / "hospital_nl" / "manifest.json").read_text())
    assert manifest["dirt"]["rates"]["unknown_code"] == 0.02
    assert (tmp_path / "hospitals.json").is_file()


# -- ingestion and the quality report ---------------------------------------------------------


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[HospitalExtract, Path, Any]:
    from cardiobox.ingest import engine

    root = tmp_path_factory.mktemp("ingest")
    h = generate_hospital("hospital_se", root / "hospital_se", n_patients=80, seed=SEED)
    store = root / "se.duckdb"
    reports = {t: engine.run_mapping(h.mapping_path(t), store) for t in TABLES}
    return h, store, reports


@pytest.mark.slow
def test_ingest_accounts_for_every_row(ingested: tuple[HospitalExtract, Path, Any]) -> None:
    h, store, reports = ingested
    rules = {"range": "impossible_value", "unknown-code": "unknown_code"}
    for table, r in reports.items():
        e = h.expected_load(table)
        assert r.rows_read == r.rows_loaded + r.rows_quarantined == e["rows_read"], table
        assert r.rows_quarantined == e["rows_quarantined"], (table, r.quarantine_by_rule)
        for rule, kind in rules.items():
            assert r.quarantine_by_rule.get(rule, 0) == h.planted(kind, table), (table, rule)
        other = sum(n for rule, n in r.quarantine_by_rule.items() if rule not in rules)
        assert other == h.planted("unparsable_date", table), (table, r.quarantine_by_rule)
    # Exact duplicates load idempotently: each adds nothing.
    assert reports["labs"].resources_unchanged == h.planted("duplicate_row", "labs")

    from cardiobox.store import SiteStore

    with SiteStore(store, read_only=True) as s:
        quarantined = s.quarantine(None)
        assert s.stats()["patients"] == 80
    lines: dict[str, set[int]] = {}
    for q in quarantined:
        lines.setdefault(Path(q["file"]).name, set()).add(q["line"])
    for table in TABLES:
        expected = {
            line
            for kind in QUARANTINED_KINDS
            for line in h.manifest["dirt"]["tables"].get(table, {}).get(kind, {}).get("lines", [])
        }
        assert lines.get(h.table_path(table).name, set()) == expected, table


@pytest.mark.slow
def test_quality_report_finds_the_planted_dirt(
    ingested: tuple[HospitalExtract, Path, Any],
) -> None:
    from cardiobox import quality

    h, store, _ = ingested
    result = quality.run_quality({"se": str(store)})
    checks = {c.id: c for c in result.checks}
    assert checks["after-death.observation"].numerator == h.planted("event_after_death")
    for check_id in ("after-death.encounter-start", "after-death.encounter-end"):
        assert checks[check_id].numerator == 0
    quarantine = result.sites[0].quarantine
    by_rule: dict[str, int] = {}
    for q in quarantine:
        by_rule[q["rule"]] = by_rule.get(q["rule"], 0) + q["items"]
    assert by_rule.get("range") == h.planted("impossible_value")
    assert by_rule.get("unknown-code") == h.planted("unknown_code")
    assert sum(by_rule.values()) == sum(h.planted(k) for k in QUARANTINED_KINDS)


def test_quarantine_lines_of_a_windows_file(tmp_path: Path) -> None:
    from cardiobox.ingest import engine
    from cardiobox.store import SiteStore

    h = generate_hospital("hospital_es", tmp_path / "es", n_patients=40, seed=SEED)
    engine.run_mapping(h.mapping_path("labs"), tmp_path / "es.duckdb")
    with SiteStore(tmp_path / "es.duckdb", read_only=True) as s:
        got = {q["line"] for q in s.quarantine(None)}
    expected = {
        line
        for kind in QUARANTINED_KINDS
        for line in h.manifest["dirt"]["tables"]["labs"][kind]["lines"]
    }
    assert got == expected
