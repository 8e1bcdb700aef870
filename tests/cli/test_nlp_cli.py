"""`cardiobox nlp`: evaluate, annotate and deid from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardiobox.cli.main import app

runner = CliRunner()


def _notes(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.txt").write_text(
        "Paciente con insuficiencia cardíaca. Niega disnea. Toma furosemida. FEVI 35 %.",
        encoding="utf-8",
    )
    (folder / "b.txt").write_text("Sin dolor torácico.", encoding="utf-8")
    return folder


def test_annotate_brat_then_evaluate_against_itself(tmp_path: Path) -> None:
    notes = _notes(tmp_path / "notes")
    out = tmp_path / "brat"
    result = runner.invoke(
        app,
        [
            "nlp",
            "annotate",
            str(notes),
            "--lang",
            "es",
            "--format",
            "brat",
            "--out",
            str(out),
            "--model",
            "lexicon",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["notes"] == 2 and summary["negated"] >= 2
    ann = (out / "a.ann").read_text(encoding="utf-8")
    assert "DISEASE" in ann and "Negated" in ann
    result = runner.invoke(
        app, ["nlp", "evaluate", "--gold", str(out), "--pred", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["strict"]["micro"]["f1"] == 1.0


def test_annotate_jsonl_and_fhir(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        json.dumps({"id": "n1", "patient_id": "p1", "text": "No toma furosemida."}) + "\n",
        encoding="utf-8",
    )
    for fmt, name in (("jsonl", "annotations.jsonl"), ("fhir", "resources.ndjson")):
        out = tmp_path / fmt
        result = runner.invoke(
            app,
            [
                "nlp",
                "annotate",
                str(notes),
                "--lang",
                "es",
                "--format",
                fmt,
                "--out",
                str(out),
                "--model",
                "lexicon",
            ],
        )
        assert result.exit_code == 0, result.output
        first = json.loads((out / name).read_text(encoding="utf-8").splitlines()[0])
        if fmt == "jsonl":
            assert first["entities"][0]["negated"] is True
        else:
            assert first["resourceType"] == "MedicationStatement"
            assert first["subject"]["reference"] == "Patient/p1"


def test_annotate_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n', encoding="utf-8")
    result = runner.invoke(
        app, ["nlp", "annotate", str(bad), "--lang", "es", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output and "note-schema" in result.output
    result = runner.invoke(
        app, ["nlp", "annotate", str(bad), "--lang", "de", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "not supported" in result.output


def test_deid_command(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "x.txt").write_text(
        "Paciente Juan Pérez García, ingresa el 12/03/2021. Teléfono 612 345 678.",
        encoding="utf-8",
    )
    result = runner.invoke(
        app,
        [
            "nlp",
            "deid",
            str(notes),
            "--lang",
            "es",
            "--out",
            str(tmp_path / "out"),
            "--mode",
            "mask",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "x.txt").read_text(encoding="utf-8")
    assert "Pérez" not in text and "612 345 678" not in text and "12/03/2021" not in text


def test_annotate_with_the_transformer_option(tmp_path: Path) -> None:
    notes = _notes(tmp_path / "notes")
    result = runner.invoke(
        app,
        ["nlp", "annotate", str(notes), "--lang", "es", "--format", "jsonl", "--out",
         str(tmp_path / "out"), "--model", "transformer", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["entity_source"] == "transformer" and summary["notes"] == 2
    assert summary["entities"].get("MEDICATION", 0) >= 1


def test_train_transformer_wants_the_spanish_notes(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["nlp", "train", "--lang", "nl", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
         "--transformer"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--lang es" in result.output


def test_train_transformer_on_a_few_notes(tmp_path: Path) -> None:
    train = tmp_path / "data" / "cardioccc_es" / "train"
    train.mkdir(parents=True)
    notes = [
        "Inicia tratamiento con bisoprolol por disnea.",
        "Se mantiene bisoprolol; refiere disnea leve.",
        "Continúa con bisoprolol. Sin disnea.",
        "Paciente estable, toma bisoprolol y niega disnea.",
    ] * 3
    for i, text in enumerate(notes):
        (train / f"n{i}.txt").write_text(text, encoding="utf-8")
        drug, symptom = text.index("bisoprolol"), text.index("disnea")
        (train / f"n{i}.ann").write_text(
            f"T1\tMEDICATION {drug} {drug + 10}\tbisoprolol\n"
            f"T2\tSYMPTOM {symptom} {symptom + 6}\tdisnea\n",
            encoding="utf-8",
        )
    out = tmp_path / "tagger"
    result = runner.invoke(
        app,
        ["nlp", "train", "--lang", "es", "--data", str(tmp_path / "data"), "--out", str(out),
         "--transformer", "--hidden", "16", "--max-epochs", "5", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["notes"] + meta["dev_notes"] == len(notes) and meta["layer"] == 6
    assert (out / "taggers.npz").is_file() and (out / "meta.json").is_file()
    result = runner.invoke(
        app,
        ["nlp", "annotate", str(train), "--lang", "es", "--format", "jsonl", "--out",
         str(tmp_path / "ann"), "--model", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entity_source"] == "transformer"


def test_spans_across_line_breaks_are_written_as_brat_fragments(tmp_path: Path) -> None:
    from cardiobox.nlp.corpus import read_brat
    from cardiobox.nlp.notes_io import brat_span_fields

    text = "Test de\nSynacthen normal.\r\nFEVI\u2028baja"
    assert brat_span_fields(text, 0, 17) == ("0 7;8 17", "Test de Synacthen")
    assert brat_span_fields(text, 5, 17) == ("5 7;8 17", "de Synacthen")
    assert brat_span_fields(text, 18, 36) == ("18 25;27 31;32 36", "normal. FEVI baja")
    assert brat_span_fields(text, 8, 17) == ("8 17", "Synacthen")
    # written, the .ann file reads back with the same spans
    (tmp_path / "n.txt").write_text(text, encoding="utf-8", newline="")
    spans = {"DISEASE": (0, 17), "SYMPTOM": (27, 36)}
    lines = [
        f"T{i}\t{label} {chr(9).join(brat_span_fields(text, *span))}"
        for i, (label, span) in enumerate(spans.items(), start=1)
    ]
    (tmp_path / "n.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = read_brat(tmp_path).documents[0].spans
    assert [(s.start, s.end, s.label) for s in read] == [(0, 17, "DISEASE"), (27, 36, "SYMPTOM")]


def test_cardiobox_warnings_print_as_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from cardiobox.cli.main import _format_warning, run
    from cardiobox.nlp.langid import LanguageMismatchWarning

    mine = _format_warning("note 1 reads as Czech", LanguageMismatchWarning, "/any/file.py", 3)
    assert mine == "warning: note 1 reads as Czech\n"
    # a library's warning keeps Python's format, even when raised from cardiobox's code
    theirs = _format_warning("x", FutureWarning, "/site/cardiobox/store/db.py", 3, "")
    assert theirs.startswith("/site/cardiobox/store/db.py:3: FutureWarning: x")
    before = warnings.formatwarning
    monkeypatch.setattr("sys.argv", ["cardiobox", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        run(prog_name="cardiobox")
    assert exit_info.value.code == 0
    assert warnings.formatwarning is before  # the command puts Python's format back


def test_annotate_into_a_store_keeps_negation_as_refuted(tmp_path: Path) -> None:
    from cardiobox.store.site_store import SiteStore

    notes = tmp_path / "notes.jsonl"
    text = "Niega dolor torácico. Antecedente de insuficiencia cardíaca. No fibrilación auricular."
    notes.write_text(
        json.dumps({"id": "n1", "patient_id": "p1", "text": text}) + "\n", encoding="utf-8"
    )
    site = tmp_path / "site.duckdb"
    SiteStore(site).close()
    args = ["nlp", "annotate", str(notes), "--lang", "es", "--site", str(site), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["store"]["quarantined"] == 0
    with SiteStore(site, read_only=True) as store:
        rows = store.con.execute(
            """SELECT resource->>'$.verificationStatus.coding[0].code',
                   resource->>'$.code.coding[0].display', resource
            FROM resources WHERE resource_type = 'Condition'"""
        ).fetchall()
        statuses = {status for status, _, _ in rows}
        assert "refuted" in statuses and "confirmed" in statuses
        for status, _, resource in rows:
            span = json.loads(resource)["extension"]
            assert span, "every stored finding points at its note and span"
            if status == "refuted":
                refuted_id = json.loads(resource)["id"]
        # a refuted condition is no fact: cohorts never count it
        facts = store.con.execute(
            "SELECT id FROM facts WHERE resource_type = 'Condition'"
        ).fetchall()
        assert (refuted_id,) not in facts


def _gold_of_two_notes(tmp_path: Path) -> Path:
    gold = tmp_path / "gold"
    gold.mkdir()
    for name in ("a", "b"):
        (gold / f"{name}.txt").write_text("Toma furosemida.", encoding="utf-8")
        (gold / f"{name}.ann").write_text("T1\tMEDICATION 5 15\tfurosemida\n", encoding="utf-8")
    return gold


def test_evaluate_counts_gold_notes_without_a_prediction(tmp_path: Path) -> None:
    gold, pred = _gold_of_two_notes(tmp_path), tmp_path / "pred"
    pred.mkdir()
    (pred / "a.ann").write_text("T1\tMEDICATION 5 15\tfurosemida\n", encoding="utf-8")
    result = runner.invoke(app, ["nlp", "evaluate", "--gold", str(gold), "--pred", str(pred)])
    assert result.exit_code == 0, result.output
    assert "1 of 2 gold notes have no prediction" in " ".join(result.output.split())
    args = ["nlp", "evaluate", "--gold", str(gold), "--pred", str(pred), "--json"]
    summary = json.loads(runner.invoke(app, args).stdout)
    assert summary["documents"] == {"gold": 2, "predicted": 1, "without_prediction": 1}
    assert summary["strict"]["micro"]["recall"] == 0.5


def test_evaluate_cannot_tell_missing_notes_from_tsv_predictions(tmp_path: Path) -> None:
    gold, pred = _gold_of_two_notes(tmp_path), tmp_path / "pred"
    pred.mkdir()
    (pred / "MEDICATION.tsv").write_text(
        "filename\tlabel\tstart_span\tend_span\ttext\na\tMEDICATION\t5\t15\tfurosemida\n",
        encoding="utf-8",
    )
    args = ["nlp", "evaluate", "--gold", str(gold), "--pred", str(pred), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # TSVs list only the notes with spans: b may have been annotated and found nothing
    assert summary["documents"] == {"gold": 2, "predicted": 1, "without_prediction": None}
