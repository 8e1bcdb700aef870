"""Exports: CSV-W (CSV + its table description), Opal/Mica dictionary (xlsx and CSV), JSON-LD."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from openpyxl import load_workbook
from tests.catalogue.stores import sample_description

from cardiobox.catalogue.export import (
    CATEGORY_HEADER,
    VARIABLE_HEADER,
    write_csvw,
    write_jsonld,
    write_mica,
)
from cardiobox.catalogue.model import DatasetDescription
from cardiobox.catalogue.rdf import from_graph, parse_rdf


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_csvw_table_and_metadata(sample: DatasetDescription, tmp_path: Path) -> None:
    table, meta_path = write_csvw(sample, tmp_path / "csvw")
    rows = _rows(table)
    assert [r["variable"] for r in rows] == ["lvef", "nyha_class", "stroke"]
    lvef = rows[0]
    assert lvef["site"] == "hospital_x" and lvef["label_es"] == "Fracción de eyección"
    assert lvef["unit"] == "%" and lvef["coding_systems"] == "LOINC"
    assert lvef["codes"] == "http://loinc.org|10230-1; http://loinc.org|18043-0"
    assert lvef["patients"] == "120" and lvef["completeness_pct"] == "80.0"
    assert lvef["years"] == "2019 2020" and lvef["mean"] == "41.5" and lvef["n"] == "300"
    assert rows[1]["answers"] == "LA28404-4=?; LA28405-1=70"
    assert rows[2]["patients"] == ""  # withheld
    meta = json.loads(meta_path.read_text("utf-8"))
    assert meta["@context"][0] == "http://www.w3.org/ns/csvw" and meta["url"] == "variables.csv"
    columns = [c["name"] for c in meta["tableSchema"]["columns"]]
    assert columns == list(rows[0])
    assert meta["tableSchema"]["primaryKey"] == ["site", "variable"]
    assert meta["tableSchema"]["aboutUrl"] == sample.iri + "/variable/{variable}"


def test_csvw_of_several_sites(tmp_path: Path) -> None:
    a = sample_description()
    b = sample_description(site="hospital_y", iri="https://hospital-y.example/dataset")
    table, meta_path = write_csvw([a, b], tmp_path)
    assert len(_rows(table)) == 6
    assert "aboutUrl" not in json.loads(meta_path.read_text("utf-8"))["tableSchema"]


def test_mica_workbook(sample: DatasetDescription, tmp_path: Path) -> None:
    (path,) = write_mica(sample, tmp_path / "dictionary.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Variables", "Categories"]
    variables = [list(r) for r in wb["Variables"].iter_rows(values_only=True)]
    assert tuple(variables[0]) == VARIABLE_HEADER
    by_name = {r[1]: dict(zip(VARIABLE_HEADER, r, strict=True)) for r in variables[1:]}
    assert by_name["lvef"]["valueType"] == "decimal" and by_name["lvef"]["unit"] == "%"
    assert (
        by_name["lvef"]["entityType"] == "Participant" and by_name["lvef"]["table"] == "hospital_x"
    )
    assert by_name["lvef"]["label:es"] == "Fracción de eyección"
    assert by_name["nyha_class"]["valueType"] == "text"
    assert by_name["stroke"]["valueType"] == "boolean"
    categories = [list(r) for r in wb["Categories"].iter_rows(values_only=True)]
    assert tuple(categories[0]) == CATEGORY_HEADER
    assert [(r[1], r[2]) for r in categories[1:]] == [
        ("nyha_class", "LA28404-4"),
        ("nyha_class", "LA28405-1"),
    ]


def test_mica_csv_files(sample: DatasetDescription, tmp_path: Path) -> None:
    written = write_mica(sample, tmp_path / "mica")
    assert [p.name for p in written] == ["variables.csv", "categories.csv"]
    assert len(_rows(written[0])) == 3 and len(_rows(written[1])) == 2
    assert _rows(written[1])[1]["label:en"] == "II"


def test_jsonld_file_reads_back(sample: DatasetDescription, tmp_path: Path) -> None:
    path = write_jsonld(sample, tmp_path / "d.jsonld")
    assert from_graph(parse_rdf(path)) == [sample]
