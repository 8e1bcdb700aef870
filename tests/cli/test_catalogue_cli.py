"""`cardiobox catalogue build|validate|export|publish` through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rdflib import URIRef
from rdflib import namespace as ns
from tests.catalogue.stores import CLEVELAND_PROFILE, make_cleveland_store
from typer.testing import CliRunner

from cardiobox.catalogue.rdf import parse_rdf
from cardiobox.cli.catalogue_cmd import app
from cardiobox.store import SiteStore

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cleveland_store(tmp_path_factory.mktemp("cleveland"))


@pytest.fixture(scope="module")
def description(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built") / "cleveland.ttl"
    result = runner.invoke(
        app, ["build", "--site", str(store), "--profile", str(CLEVELAND_PROFILE), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_build_writes_a_conforming_description(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonld"
    args = ["build", "--site", str(store), "--profile", str(CLEVELAND_PROFILE), "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["conforms"] is True and summary["site"] == "cleveland"
    assert summary["patients"] == 40 and summary["variables"] >= 10
    assert summary["defaults_applied"] == ["base_iri"]
    assert json.loads(out.read_text("utf-8"))["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"


def test_build_finds_the_profile_beside_the_store(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "site.duckdb"
    shutil.copy(store, copy)
    result = runner.invoke(app, ["build", "--site", str(copy), "--out", str(tmp_path / "x.ttl")])
    assert result.exit_code == 2 and "no site profile" in result.output
    shutil.copy(CLEVELAND_PROFILE, tmp_path / "site.catalogue.yaml")
    result = runner.invoke(app, ["build", "--site", str(copy), "--out", str(tmp_path / "x.ttl")])
    assert result.exit_code == 0, result.output
    assert "defaults applied" in result.output and "base_iri" in result.output


def test_build_errors(store: Path, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(CLEVELAND_PROFILE.read_text("utf-8").replace("country: USA", ""), "utf-8")
    out = ["--out", str(tmp_path / "x.ttl")]
    result = runner.invoke(app, ["build", "--site", str(store), "--profile", str(profile), *out])
    assert result.exit_code == 2 and "missing required field 'country'" in result.output
    empty = tmp_path / "empty.duckdb"
    SiteStore(empty).close()
    args = ["build", "--site", str(empty), "--profile", str(CLEVELAND_PROFILE), *out, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and json.loads(result.stdout)["rule"] == "empty-store"
    table = tmp_path / "t.csv"
    table.write_text("patient_id,unheard_of\np,1\n", "utf-8")
    args = ["build", "--site", str(store), "--profile", str(CLEVELAND_PROFILE), *out]
    result = runner.invoke(app, [*args, "--features", str(table)])
    assert result.exit_code == 2 and "unheard_of" in result.output


def test_validate(description: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(description), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["conforms"] is True
    assert {v["severity"] for v in report["violations"]} <= {"Warning"}
    g = parse_rdf(description)
    (ds,) = g.subjects(ns.RDF.type, ns.DCAT.Dataset)
    g.remove((ds, ns.DCTERMS.description, None))
    invalid = tmp_path / "invalid.ttl"
    invalid.write_text(g.serialize(format="turtle"), "utf-8")
    result = runner.invoke(app, ["validate", str(invalid), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["conforms"] is False
    (error,) = [v for v in report["violations"] if v["severity"] == "Violation"]
    assert error["path"] == "dct:description" and error["focus_node"] == str(ds)
    assert set(error) == {"focus_node", "path", "message", "severity", "value"}
    result = runner.invoke(app, ["validate", str(invalid)])
    assert result.exit_code == 1 and "does not conform" in " ".join(result.output.split())
    broken = tmp_path / "broken.ttl"
    broken.write_text("<a> <b> ", "utf-8")
    result = runner.invoke(app, ["validate", str(broken)])
    assert result.exit_code == 2 and "malformed turtle" in result.output


def test_export_formats(description: Path, tmp_path: Path) -> None:
    for fmt, out in (
        ("jsonld", tmp_path / "d.jsonld"),
        ("csvw", tmp_path / "csvw"),
        ("mica", tmp_path / "mica.xlsx"),
    ):
        args = ["export", str(description), "--format", fmt, "--out", str(out), "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert all(Path(f).exists() for f in json.loads(result.stdout)["files"])
    assert (tmp_path / "csvw" / "variables.csv-metadata.json").exists()
    result = runner.invoke(
        app, ["export", str(description), "-f", "xml", "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "jsonld, csvw, mica" in result.output


def test_publish(description: Path, tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    args = ["publish", str(description), "--hub", str(hub), "--site", "cleveland"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    assert first["accepted"] is True and first["version"]["site"] == "cleveland"
    broken = tmp_path / "broken.ttl"
    broken.write_text(description.read_text("utf-8")[:500], "utf-8")
    result = runner.invoke(app, ["publish", str(broken), "--hub", str(hub), "--site", "cleveland"])
    assert result.exit_code == 1 and "refused" in result.output and "stays" in result.output
    index = json.loads((hub / "index.json").read_text("utf-8"))
    assert len(index["cleveland"]) == 1
    g = parse_rdf(hub / index["cleveland"][0]["file"])
    assert (None, ns.RDF.type, ns.DCAT.Dataset) in g
    assert URIRef("https://cardiobox.org/catalogue/cleveland/dataset") in set(g.subjects())
