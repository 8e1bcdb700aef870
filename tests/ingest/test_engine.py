"""Running mappings: resources built, accounting, idempotence, pseudonyms, bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from cardiobox.cdm.validation import validate_resource
from cardiobox.errors import InputError
from cardiobox.ingest.engine import check_mapping, run_mapping
from cardiobox.store import SiteStore


def resources(db: Path, rt: str | None = None) -> list[dict[str, object]]:
    with SiteStore(db, read_only=True) as store:
        sql = "SELECT resource FROM resources"
        rows = store.con.execute(
            sql + (" WHERE resource_type = ?" if rt else "") + " ORDER BY source_line",
            [rt] if rt else [],
        ).fetchall()
    return [orjson.loads(r[0]) for r in rows]


def _refused(mapping: Path, tmp_path: Path) -> InputError:
    """The error a load of ``mapping`` into a new store stops with."""
    with pytest.raises(InputError) as err:
        run_mapping(mapping, tmp_path / "s.duckdb")
    return err.value


def test_worked_example(extract: Path, tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    rep = run_mapping(extract, db)
    assert rep.rows_read == rep.rows_loaded + rep.rows_quarantined == 5
    assert rep.rows_quarantined == 0
    obs = resources(db, "Observation")
    by_code = {o["code"]["coding"][0]["code"]: o for o in obs}
    k = by_code["2823-3"]
    assert k["valueQuantity"] == {
        "value": 4.1,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert k["effectiveDateTime"] == "2024-02-03T08:15:00+01:00"  # winter time in Madrid
    assert by_code["2160-0"]["effectiveDateTime"] == "2024-07-05T23:05:00+02:00"  # summer
    crea = by_code["2160-0"]["valueQuantity"]
    assert crea["unit"] == "umol/L" and crea["value"] == pytest.approx(1.2 * 88.4, rel=1e-3)
    hb = by_code["718-7"]["valueQuantity"]
    assert hb["unit"] == "g/dL" and hb["value"] == pytest.approx(8.1 / 0.6206, rel=1e-4)
    assert k["category"][0]["coding"][0]["code"] == "laboratory"
    for o in obs:  # every built resource is valid against FHIR R5 and the data model
        assert validate_resource(o).errors == []
    patients = resources(db, "Patient")
    assert sorted(p["gender"] for p in patients) == ["female", "female", "female", "male"]
    with SiteStore(db, read_only=True) as store:
        prov = store.con.execute(
            "SELECT source_file, source_line, provenance FROM resources "
            "WHERE resource_type = 'Observation' ORDER BY source_line LIMIT 1"
        ).fetchall()[0]
    assert prov[0].endswith("labs.csv") and prov[1] == 2
    assert json.loads(prov[2]) == {"mapping": "hospital-a-labs", "block": "lab"}


def test_local_ids_never_enter_the_store(extract: Path, tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    run_mapping(extract, db)
    blob = db.read_bytes()
    for local in (b"000123", b"000456"):
        assert local not in blob
    refs = {o["subject"]["reference"] for o in resources(db, "Observation")}
    assert all(len(r.split("/")[1]) == 32 for r in refs)


def test_pseudonyms_stable_and_key_checked(extract: Path, tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    first = run_mapping(extract, db)
    assert first.key_created and Path(first.key_file or "").exists()
    ids = sorted(p["id"] for p in resources(db, "Patient"))
    other = tmp_path / "other.key"
    other.write_text("ab" * 32 + "\n", encoding="ascii")
    with pytest.raises(InputError, match="another site key") as err:
        run_mapping(extract, db, key_file=other)
    assert err.value.rule == "site-key"
    # Same key, another store: same pseudonyms.
    run_mapping(extract, tmp_path / "b.duckdb", key_file=first.key_file)
    assert sorted(p["id"] for p in resources(tmp_path / "b.duckdb", "Patient")) == ids


def test_idempotent_and_dry_run(extract: Path, tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    dry = run_mapping(extract, db, dry_run=True)
    assert dry.dry_run and dry.resources_created == 9
    with SiteStore(db, read_only=True) as store:
        assert store.stats()["resources"] == 0
    assert not (tmp_path / "site.duckdb.key").exists()
    first = run_mapping(extract, db)
    again = run_mapping(extract, db)
    assert first.resources_created == 9
    assert again.resources_created == 0 and again.resources_updated == 0
    assert again.rows_loaded == 5


def test_bad_values_quarantine_the_row(extract: Path, tmp_path: Path) -> None:
    src = extract.parent / "labs.csv"
    src.write_bytes(
        (
            src.read_bytes().decode("latin-1")
            + "000500;0;31/02/2024 10:00;K;4;mmol/L\n"  # impossible date
            + "000501;0;01/02/2024 10:00;XYZ;4;mmol/L\n"  # local code missing from the map
            + "000502;0;01/02/2024 10:00;K;4;kg\n"  # unit that cannot be converted
            + "000503;0;01/02/2024 10:00;K;cuatro;mmol/L\n"  # not a number
            + "000504;0;01/02/2024 10:00;K;40;mmol/L\n"  # implausible (store's range rule)
            + "000505;0;01/02/2024\n"  # malformed line
            + "000506;7;01/02/2024 10:00;K;4;mmol/L\n"  # sex code missing from the map
        ).encode("latin-1")
    )
    db = tmp_path / "site.duckdb"
    rep = run_mapping(extract, db)
    assert rep.rows_read == 12
    assert rep.rows_loaded == 5 and rep.rows_quarantined == 7
    assert rep.quarantine_by_rule == {
        "unparsable-date": 1,
        "unknown-code": 2,
        "unit-conversion": 1,
        "not-a-number": 1,
        "range": 1,
        "malformed-row": 1,
    }
    with SiteStore(db, read_only=True) as store:
        q = {r["line"]: r for r in store.quarantine(None)}
        raw = dict(store.con.execute("SELECT source_line, raw FROM quarantine").fetchall())
    assert q[7]["element"] == "fecha" and "31/02/2024" in q[7]["message"]
    assert (
        q[8]["rule"] == "unknown-code"
        and '"XYZ" is not in concept map lab_tests' in q[8]["message"]
    )
    assert q[9]["element"] == "unidad" and "kg" in q[9]["message"]
    assert q[10]["rule"] == "not-a-number" and "cuatro" in q[10]["message"]
    assert q[11]["rule"] == "range"
    assert q[12]["rule"] == "malformed-row"
    assert q[13]["element"] == "sexo"
    # The quarantine keeps the source row itself; nothing of a rejected row is stored.
    assert json.loads(raw[8])["prueba"] == "XYZ"
    assert raw[12] == "000505;0;01/02/2024"
    stored_lines = {
        o
        for (o,) in SiteStore(db, read_only=True)
        .con.execute("SELECT DISTINCT source_line FROM resources")
        .fetchall()
    }
    assert stored_lines.isdisjoint({7, 8, 9, 10, 11, 12, 13})


def test_check_lists_concept_map_work(extract: Path) -> None:
    src = extract.parent / "labs.csv"
    src.write_bytes(
        src.read_bytes()
        + b"000501;0;01/02/2024 10:00;XYZ;4;mmol/L\n"
        + b"000502;0;01/02/2024 10:00;XYZ;5;mmol/L\n"
    )
    report = check_mapping(extract)
    assert not report.ok
    assert report.unmapped_codes == [{"concept_map": "lab_tests", "local_code": "XYZ", "rows": 2}]
    assert report.problems[0]["rule"] == "unknown-code" and report.problems[0]["rows"] == 2


def test_missing_column_is_named(extract: Path, tmp_path: Path) -> None:
    extract.write_text(extract.read_text().replace("unit: unidad", "unit: unidades"))
    err = _refused(extract, tmp_path)
    assert err.rule == "unknown-column"
    assert "unidades" in err.message and "resources[lab].unit" in err.message


def test_wrong_encoding_is_reported(extract: Path, tmp_path: Path) -> None:
    extract.write_text(extract.read_text().replace("encoding: latin-1", "encoding: utf-16"))
    err = _refused(extract, tmp_path)
    assert err.rule == "source-format"


def _as_utf8(extract: Path, body: bytes, end: bytes = b"\n") -> None:
    """The extract's mapping reads UTF-8, and the file holds ``body`` after the header."""
    extract.write_text(extract.read_text().replace("encoding: latin-1", "encoding: utf-8"))
    header = (extract.parent / "labs.csv").read_bytes().split(b"\n")[0]
    (extract.parent / "labs.csv").write_bytes(header + end + body)


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_invalid_byte_quarantines_its_row(extract: Path, tmp_path: Path, end: bytes) -> None:
    """One byte that is not UTF-8 costs its own row, named by its line; the rest load."""
    good = b"000123;1;03/02/2024 08:15;K;4,1;mEq/L" + end
    bad = b"000124;1;03/02/2024 08:15;K;4,\xf1;mEq/L" + end
    _as_utf8(extract, good * 700 + bad + good * 3, end)
    db = tmp_path / "s.duckdb"
    rep = run_mapping(extract, db)
    assert (rep.rows_read, rep.rows_loaded, rep.rows_quarantined) == (704, 703, 1)
    assert rep.quarantine_by_rule == {"malformed-row": 1}
    with SiteStore(db, read_only=True) as store:
        assert store.quarantine(None)[0]["line"] == 702
        # the rows after it keep their own lines (identical rows are one resource: the last)
        assert store.con.execute("SELECT max(source_line) FROM resources").fetchall() == [(705,)]


def test_invalid_byte_is_not_blamed_on_the_header(extract: Path, tmp_path: Path) -> None:
    _as_utf8(extract, b"000124;1;03/02/2024 08:15;K;4,\xf1;mEq/L\n")
    rep = run_mapping(extract, tmp_path / "s.duckdb")
    assert (rep.rows_read, rep.rows_quarantined) == (1, 1)
    assert rep.examples["malformed-row"][0].startswith(f"{extract.parent / 'labs.csv'}:2: ")


def test_invalid_byte_in_the_header(extract: Path, tmp_path: Path) -> None:
    _as_utf8(extract, b"")
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes().replace(b"fecha", b"fe\xf1cha"))
    err = _refused(extract, tmp_path)
    assert err.rule == "source-format" and err.location.line == 1


def test_windows_1252(extract: Path, tmp_path: Path) -> None:
    """A file written by Windows: its text is read right, lines and all; a byte that
    windows-1252 leaves undefined quarantines its own row."""
    extract.write_text(extract.read_text().replace("encoding: latin-1", "encoding: windows-1252"))
    src = extract.parent / "labs.csv"
    lines = src.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b";1850;", b";1850\x81;")  # undefined in windows-1252
    lines[4] = lines[4].replace(b"1,2", b"1,2\x93")  # a curly quote: "1,2“" is no number
    src.write_bytes(b"\r\n".join(lines))
    db = tmp_path / "s.duckdb"
    rep = run_mapping(extract, db)
    assert (rep.rows_read, rep.rows_loaded, rep.rows_quarantined) == (5, 3, 2)
    assert rep.source == str(src)
    with SiteStore(db, read_only=True) as store:
        by_line = {q["line"]: q for q in store.quarantine(None)}
    assert sorted(by_line) == [3, 5]
    assert "windows-1252 leaves undefined" in by_line[3]["message"]
    assert by_line[5]["rule"] == "not-a-number" and "1,2\u201c" in by_line[5]["message"]
    assert all(q["file"] == str(src) for q in by_line.values())


def test_windows_bytes_in_a_latin_1_file(extract: Path, tmp_path: Path) -> None:
    """DuckDB reads no byte 0x80-0x9F as Latin-1: the error names the line and the remedy."""
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes().replace(b"1,2", b"1,2\x93"))
    err = _refused(extract, tmp_path)
    assert err.rule == "source-format" and err.location.line == 5
    assert "0x93" in err.message and "windows-1252" in err.message


def test_wrong_delimiter_is_hinted(extract: Path, tmp_path: Path) -> None:
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes().replace(b";", b","))
    err = _refused(extract, tmp_path)
    assert err.rule == "unknown-column"
    assert "read as one column, which holds ','" in err.message


def test_duplicate_column_names(extract: Path, tmp_path: Path) -> None:
    """Named twice, whatever the case of the letters (DuckDB's names ignore it)."""
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes().replace(b"sexo;", b"FECHA;", 1))
    err = _refused(extract, tmp_path)
    assert err.rule == "source-columns" and err.location.line == 1
    assert "'fecha' twice (columns 2 and 3" in err.message
    # listed in the mapping instead: the mapping's own error, at its line
    extract.write_text(
        extract.read_text().replace(
            "  encoding: latin-1\n",
            "  encoding: latin-1\n  columns: [nhc, sexo, fecha, prueba, Sexo, unidad]\n",
        )
    )
    err = _refused(extract, tmp_path)
    assert err.rule == "mapping-schema" and err.location.file == str(extract)
    assert "['Sexo', 'sexo'] more than once" in err.message


def test_unclosed_quote_keeps_the_tail(extract: Path, tmp_path: Path) -> None:
    """A quote opened and never closed runs to the end of the file: DuckDB drops that last
    record silently; the load quarantines it whole, with its line, and counts it."""
    src = extract.parent / "labs.csv"
    lines = src.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b";138;", b';"138;')  # line 4 of 6
    src.write_bytes(b"\n".join([*lines[:2], b"", *lines[2:]]))  # and a blank line 3
    db = tmp_path / "s.duckdb"
    rep = run_mapping(extract, db)
    assert (rep.rows_read, rep.rows_loaded, rep.rows_quarantined) == (3, 2, 1)
    with SiteStore(db, read_only=True) as store:
        (bad,) = store.quarantine(None)
        loaded = store.con.execute("SELECT DISTINCT source_line FROM resources ORDER BY 1")
        assert [line for (line,) in loaded.fetchall()] == [2, 4]
    assert bad["line"] == 5 and bad["rule"] == "malformed-row"
    assert "unclosed quote" in bad["message"] and "3 lines" in bad["message"]


def test_unclosed_quote_in_the_header(extract: Path, tmp_path: Path) -> None:
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes().replace(b";unidad", b';"unidad', 1))
    err = _refused(extract, tmp_path)
    assert err.rule == "source-format" and err.location.line == 1
    assert "not closed" in err.message


def test_source_override(extract: Path, tmp_path: Path) -> None:
    other = tmp_path / "march.csv"
    other.write_bytes(
        b"nhc;sexo;fecha;prueba;resultado;unidad\n000999;1;01/03/2024 09:00;K;3,9;mmol/L\n"
    )
    rep = run_mapping(extract, tmp_path / "s.duckdb", source=other)
    assert rep.rows_read == 1 and rep.source == str(other)


def test_killed_load_leaves_store_unchanged(extract: Path, tmp_path: Path) -> None:
    db = tmp_path / "site.duckdb"
    run_mapping(extract, db)
    with SiteStore(db, read_only=True) as store:
        before = store.con.execute(
            "SELECT count(*), string_agg(content_hash, ',' ORDER BY id) FROM resources"
        ).fetchall()
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes() + b"000777;1;01/03/2024 09:00;K;3,9;mmol/L\n")
    script = textwrap.dedent(f"""
        import os, signal
        from cardiobox.store import SiteStore
        from cardiobox.ingest.engine import run_mapping
        SiteStore._commit = lambda self: os.kill(os.getpid(), signal.SIGKILL)
        run_mapping({str(extract)!r}, {str(db)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    with SiteStore(db, read_only=True) as store:
        after = store.con.execute(
            "SELECT count(*), string_agg(content_hash, ',' ORDER BY id) FROM resources"
        ).fetchall()
    assert after == before
    rerun = run_mapping(extract, db)
    assert rerun.resources_created == 2 and rerun.rows_read == 6


def test_random_corruption_keeps_accounting(extract: Path, tmp_path: Path) -> None:
    """Property: corrupt random cells; every row is loaded or quarantined, the store stays
    valid."""
    rng = random.Random(11)
    lines = (extract.parent / "labs.csv").read_bytes().decode("latin-1").splitlines()
    header, body = lines[0], lines[1:] * 8
    junk = ["", "?", "x;y", "99/99/9999 99:99", "-1", "1e999", "K", "ñ", "0,0,0", '"']
    for trial in range(4):
        rows = []
        for line in body:
            cells = line.split(";")
            if rng.random() < 0.4:
                cells[rng.randrange(len(cells))] = rng.choice(junk)
            rows.append(";".join(cells))
        (extract.parent / "labs.csv").write_bytes(
            ("\n".join([header, *rows]) + "\n").encode("latin-1")
        )
        db = tmp_path / f"s{trial}.duckdb"
        rep = run_mapping(extract, db)
        assert rep.rows_read == rep.rows_loaded + rep.rows_quarantined
        # A cell that opens a quote runs on over the next lines, as CSV says: records, not
        # lines, are counted then; without stray quotes every line is a row.
        if not any('"' in r for r in rows):
            assert rep.rows_read == len(rows)
        with SiteStore(db, read_only=True) as store:
            assert store.con.execute(
                "SELECT count(*) FROM quarantine WHERE raw IS NULL OR raw = ''"
            ).fetchall() == [(0,)]
        for res in resources(db):
            assert validate_resource(res).errors == [], res


def test_quoted_multiline_field_is_one_row(extract: Path, tmp_path: Path) -> None:
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes() + b'000600;1;01/03/2024 09:00;K;"3,9\n";mmol/L\n')
    rep = run_mapping(extract, tmp_path / "s.duckdb")
    assert rep.rows_read == 6


def test_lines_of_rows_over_several_lines(extract: Path, tmp_path: Path) -> None:
    """Rows are numbered by the line they start on, rejected ones too, in a file whose quoted
    values span lines, up to an unclosed quote that takes the rest of the file."""
    src = extract.parent / "labs.csv"
    header, *rows = src.read_bytes().decode("latin-1").strip().split("\n")
    text = "\n".join(
        [
            header,
            rows[0].replace(";mEq/L", ';"mEq\n/L"'),  # lines 2-3: a unit over two lines
            rows[1],  # line 4
            "x;y",  # line 5: too few fields
            rows[2].replace(";138;", ';"138;'),  # line 6: never closed
            rows[3],  # line 7, in the unclosed record
        ]
    )
    src.write_bytes((text + "\n").encode("latin-1"))
    db = tmp_path / "s.duckdb"
    rep = run_mapping(extract, db)
    assert (rep.rows_read, rep.rows_loaded, rep.rows_quarantined) == (4, 2, 2)
    with SiteStore(db, read_only=True) as store:
        lines = {q["line"]: q["rule"] for q in store.quarantine(None)}
        loaded = store.con.execute("SELECT DISTINCT source_line FROM resources ORDER BY 1")
        assert [line for (line,) in loaded.fetchall()] == [2, 4]
    assert lines == {5: "malformed-row", 6: "malformed-row"}
