from __future__ import annotations

import json
from pathlib import Path

import typer
from tests.catalogue.stores import sample_description
from typer.testing import CliRunner

from cardiobox.catalogue.rdf import to_turtle
from cardiobox.cli.catalogue_search_cmd import search

# The command is registered under `cardiobox catalogue`; here it runs in an app of its own.
app = typer.Typer()
app.command()(search)


@app.callback()
def _group() -> None:
    """Catalogue commands."""


runner = CliRunner()


def _json(*args: str) -> object:
    result = runner.invoke(app, ["search", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_hits_name_id_label_score_site_and_variable() -> None:
    hits = _json("serum potassium", "--catalogue", "datamodel", "--lexical", "--k", "3")
    assert isinstance(hits, list) and len(hits) == 3
    first = hits[0]
    assert first["variable_id"] == "potassium" and first["id"] == "variable::potassium"
    assert set(first) == {"id", "label", "score", "site", "kind", "variable_id"}
    assert first["site"] is None


def test_labels_in_the_language_asked() -> None:
    hits = _json("potasio", "-c", "datamodel", "--lexical", "--lang", "nl", "--k", "1")
    assert hits == [
        {
            "id": "variable::potassium",
            "label": "Kalium",
            "score": hits[0]["score"],
            "site": None,
            "kind": "variable",
            "variable_id": "potassium",
        }
    ]


def test_a_description_file_and_a_saved_index(tmp_path: Path) -> None:
    ttl = tmp_path / "hospital_x.ttl"
    ttl.write_text(to_turtle(sample_description()), encoding="utf-8")
    saved = tmp_path / "index"
    hits = _json("ejectiefractie", "-c", str(ttl), "--lexical", "--save-index", str(saved))
    assert hits[0]["id"] == "variable:hospital_x:lvef" and hits[0]["site"] == "hospital_x"
    assert _json("ejectiefractie", "-c", str(saved)) == hits
    table = runner.invoke(app, ["search", "ejectiefractie", "-c", str(saved), "--lang", "sv"])
    assert table.exit_code == 0 and "Vänsterkammarens" in table.stdout


def test_bad_input_exits_2_with_a_json_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "kalium", "-c", "datamodel", "--lang", "de", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["rule"] == "lang"
    result = runner.invoke(app, ["search", "kalium", "-c", str(tmp_path / "no.ttl"), "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["rule"] == "missing-input"
    result = runner.invoke(app, ["search", "  ", "-c", "datamodel", "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["rule"] == "query-empty"
    result = runner.invoke(app, ["search", "kalium", "-c", "datamodel", "--k", "0"])
    assert result.exit_code == 2
