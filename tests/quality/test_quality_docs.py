"""docs/quality.md lists the checks of checks.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobox.quality import load_checks
from cardiobox.quality.docs import BEGIN, END, render_checks_markdown, update_page

PAGE = Path(__file__).resolve().parents[2] / "docs" / "quality.md"


def test_committed_page_is_current() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert update_page(text) == text, (
        "docs/quality.md is out of date with checks.yaml or the data dictionary; run "
        "`python -m cardiobox.quality.docs docs/quality.md`"
    )


def test_every_check_is_listed() -> None:
    block = render_checks_markdown()
    assert block.startswith(BEGIN) and block.endswith(END)
    for fam in load_checks().families:
        if fam.generator is None:
            assert f"`{fam.checks[0].id}`" in block
        else:
            assert fam.template is not None and f"`{fam.template.id}`" in block
            assert all(f"`{c.subject}`" in block for c in fam.checks)


def test_page_needs_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        update_page("# no markers\n")
