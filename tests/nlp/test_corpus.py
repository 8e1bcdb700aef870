"""Reading and writing annotated notes: brat folders and MultiCardioNER BIO lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobox.nlp.corpus import (
    CorpusError,
    Document,
    Span,
    bio_projection,
    read_bio,
    read_brat,
    write_brat,
)

TEXT = "Paciente con bloqueo AV (BAV) y disnea. Toma furosemida."


def _brat(folder: Path, name: str, text: str, ann: str) -> None:
    (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8")


def test_brat_reads_spans_and_spanish_test_labels(tmp_path: Path) -> None:
    _brat(
        tmp_path,
        "n1",
        TEXT,
        "T1\tENFERMEDAD 13 23\tbloqueo AV\nT2\tDISEASE 25 28\tBAV\nT3\tSINTOMA 32 38\tdisnea\n"
        "T4\tFARMACO 45 55\tfurosemida\n#1\tAnnotatorNotes T1\tnota\n",
    )
    corpus = read_brat(tmp_path)
    (doc,) = corpus.documents
    assert doc.doc_id == "n1"
    assert doc.spans == [
        Span(13, 23, "DISEASE"),
        Span(25, 28, "DISEASE"),
        Span(32, 38, "SYMPTOM"),
        Span(45, 55, "MEDICATION"),
    ]
    assert corpus.labels() == ["DISEASE", "MEDICATION", "SYMPTOM"]


def test_brat_out_of_range_and_mismatch_named_or_listed(tmp_path: Path) -> None:
    _brat(tmp_path, "bad", TEXT, "T1\tDISEASE 13 23\tbloqueo XX\nT2\tDISEASE 50 90\tlejos\n")
    with pytest.raises(CorpusError) as info:
        read_brat(tmp_path)
    assert info.value.rule == "span-text-mismatch"
    assert "bad.ann:1" in str(info.value)
    lenient = read_brat(tmp_path, strict=False)
    assert lenient.documents[0].spans == []
    assert [p.rule for p in lenient.problems] == ["span-text-mismatch", "span-out-of-range"]


def test_invalid_utf8_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_bytes(b"caf\xe9 con leche")
    with pytest.raises(CorpusError, match="not valid UTF-8 at byte 3"):
        read_brat(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such folder"):
        read_brat(tmp_path / "nope")


def test_bio_lines_keep_character_offsets(tmp_path: Path) -> None:
    text = "Takes aspirin (100 mg) and low-dose furosemide daily."
    # Converter tokens: Takes aspirin 100 mg and low dose furosemide daily .
    tags = "O B-FARMACO O O O O O B-FARMACO O O"
    path = tmp_path / "all_dev.csv"
    path.write_text(f"{text}|{tags}\n", encoding="utf-8")
    (doc,) = read_bio(path, "en").documents
    assert [doc.text[s.start : s.end] for s in doc.spans] == ["aspirin", "furosemide"]
    assert {s.label for s in doc.spans} == {"MEDICATION"}


def test_bio_length_mismatch_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("one two|O\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"x.csv:1.*2 tokens but 1 tags"):
        read_bio(path, "en")


def test_bio_projection_keeps_token_edges_only() -> None:
    text = "Hipertensión arterial (HTA) y disnea."
    # A prediction that includes the closing bracket loses it, as the gold conversion did.
    projected = bio_projection(text, [Span(0, 27, "DISEASE"), Span(30, 36, "SYMPTOM")])
    assert projected == [Span(0, 26, "DISEASE"), Span(30, 36, "SYMPTOM")]


def test_write_brat_round_trip(tmp_path: Path) -> None:
    docs = [Document("a:1", TEXT, [Span(32, 38, "SYMPTOM"), Span(13, 23, "DISEASE")])]
    write_brat(docs, tmp_path)
    back = read_brat(tmp_path)
    assert back.documents[0].doc_id == "a_1"
    assert back.documents[0].spans == sorted(docs[0].spans)


def test_brat_offsets_that_are_not_pairs_are_unreadable_lines(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Disnea y dolor.", encoding="utf-8")
    (tmp_path / "a.ann").write_text(
        "T1\tSYMPTOM 0 6\tDisnea\nT2\tSYMPTOM 9 14;\tdolor\nT3\tSYMPTOM 9 x\tdolor\n",
        encoding="utf-8",
    )
    corpus = read_brat(tmp_path, strict=False)
    assert [(s.start, s.end) for s in corpus.documents[0].spans] == [(0, 6)]
    assert [(p.rule, p.location.line) for p in corpus.problems] == [
        ("brat-syntax", 2),
        ("brat-syntax", 3),
    ]
