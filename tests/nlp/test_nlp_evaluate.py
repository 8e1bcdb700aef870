"""Strict and lenient span scores, checked against counts worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobox.nlp.corpus import CorpusError, Span
from cardiobox.nlp.evaluate import read_predictions, score

GOLD = {
    "d1": [Span(0, 10, "DISEASE"), Span(20, 30, "SYMPTOM"), Span(40, 45, "MEDICATION")],
    "d2": [Span(5, 15, "DISEASE")],
}
PRED = {
    "d1": [Span(0, 10, "DISEASE"), Span(22, 30, "SYMPTOM"), Span(50, 55, "MEDICATION")],
    "d2": [Span(5, 15, "SYMPTOM")],
}


def test_strict_counts_by_hand() -> None:
    s = score(GOLD, PRED)
    assert (s.strict["DISEASE"].tp, s.strict["DISEASE"].predicted, s.strict["DISEASE"].gold) == (
        1,
        1,
        2,
    )
    assert s.strict["SYMPTOM"].tp == 0 and s.strict["SYMPTOM"].predicted == 2
    micro = s.micro()
    assert (micro.tp, micro.predicted, micro.gold) == (1, 4, 4)
    assert micro.f1 == pytest.approx(0.25)


def test_lenient_counts_overlap_of_same_type_only() -> None:
    s = score(GOLD, PRED)
    # SYMPTOM 22-30 overlaps gold 20-30; the d2 SYMPTOM overlaps a DISEASE only.
    assert s.lenient["SYMPTOM"].tp == 1 and s.lenient["SYMPTOM"].found == 1
    micro = s.micro("lenient")
    assert micro.precision == pytest.approx(2 / 4)
    assert micro.recall == pytest.approx(2 / 4)


def test_documents_without_predictions_count_as_misses() -> None:
    s = score(GOLD, {"d1": PRED["d1"]})
    assert s.micro().gold == 4


def test_predictions_for_unknown_documents_are_refused() -> None:
    with pytest.raises(CorpusError, match="same split"):
        score(GOLD, {"zz": []})


def test_label_filter_and_empty_types() -> None:
    s = score(GOLD, PRED, labels=["MEDICATION", "PROCEDURE"])
    assert set(s.strict) == {"MEDICATION", "PROCEDURE"}
    assert s.strict["PROCEDURE"].f1 == 0.0


def test_reads_cardioccc_prediction_tsvs(tmp_path: Path) -> None:
    (tmp_path / "DISEASE.tsv").write_text(
        "filename\tlabel\tstart_span\tend_span\ttext\nd1\tENFERMEDAD\t0\t10\tx\n", encoding="utf-8"
    )
    assert read_predictions(tmp_path) == {"d1": [Span(0, 10, "DISEASE")]}
    (tmp_path / "bad.tsv").write_text("filename\tlabel\nd1\tX\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad\.tsv:2"):
        read_predictions(tmp_path)


def test_reads_brat_fragments_without_the_texts(tmp_path: Path) -> None:
    (tmp_path / "n1.ann").write_text(
        "T1\tDISEASE 0 7;8 17\tTest de Synacthen\nT2\tMEDICATION 20 30\tfurosemida\n"
        "A1\tNegated T1\n",
        encoding="utf-8",
    )
    (tmp_path / "n2.ann").write_text("", encoding="utf-8")  # a note with nothing found
    assert read_predictions(tmp_path) == {
        "n1": [Span(0, 17, "DISEASE"), Span(20, 30, "MEDICATION")],
        "n2": [],
    }


@pytest.mark.parametrize("offsets", ["10;20 30", "10 x;20 30", "30 20", "-5 3", "10 20 30", "0 5;"])
def test_malformed_offsets_without_the_texts_name_file_and_line(
    tmp_path: Path, offsets: str
) -> None:
    (tmp_path / "n1.ann").write_text(
        f"T1\tMEDICATION 0 4\tfuro\nT2\tDISEASE {offsets}\tx\n", encoding="utf-8"
    )
    with pytest.raises(CorpusError, match="unreadable brat line") as info:
        read_predictions(tmp_path)
    assert info.value.location.line == 2 and info.value.location.file.endswith("n1.ann")
