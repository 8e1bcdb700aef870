"""The generated data-dictionary page (docs/data-dictionary.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.docs import compress_codes, format_number, main, render_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"


def test_committed_page_is_up_to_date() -> None:
    committed = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    fresh = render_markdown()
    assert committed == fresh, (
        "docs/data-dictionary.md is out of date with the data dictionary; "
        "run `make docs` and commit the result"
    )


def test_page_has_every_section_and_variable() -> None:
    page = render_markdown()
    d = load_dictionary()
    for title in ["## Condition phenotypes", "## Laboratory results", "## Symptoms"]:
        assert title in page
    for v in d:
        assert f"`{v.id}`" in page
    assert "ICD-10 I10–I13, I15, I16" in page
    assert "Fracción de eyección del ventrículo izquierdo" in page


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["I20", "I21", "I22", "I23", "I24", "I25"], ["I20–I25"]),
        (["I21", "I22"], ["I21", "I22"]),
        (["I10", "I11", "I12", "I13", "I15", "I16"], ["I10–I13", "I15", "I16"]),
        (["Q23.0", "Q23.1", "Q23.2", "Z95.2"], ["Q23.0–Q23.2", "Z95.2"]),
        (["C09AA01", "C09AA02", "C09AA03", "C09BA01"], ["C09AA01–C09AA03", "C09BA01"]),
        (["I09", "I10", "I11"], ["I09–I11"]),
        (["I9", "I10", "I11"], ["I9", "I10", "I11"]),
        (["0JH604", "0JH605", "0JH606"], ["0JH604–0JH606"]),
        (["A"], ["A"]),
        ([], []),
    ],
)
def test_compress_codes(codes: list[str], expected: list[str]) -> None:
    assert compress_codes(codes) == expected


def test_format_number() -> None:
    assert format_number(1000000.0) == "1000000"
    assert format_number(0.2) == "0.2"
    assert format_number(-10) == "-10"


def test_main_writes_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "page.md"
    assert main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_markdown()
    assert "wrote" in capsys.readouterr().out
