"""Every language folder holds the same data files, and each file is valid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cardiobox.nlp.context import (
    CATEGORIES,
    NUM_TOKEN,
    Role,
    find_context_terms,
    load_context_rules,
)
from cardiobox.nlp.deid import load_deid_data
from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.languages import LANGUAGES, language_dir, load_language_file
from cardiobox.nlp.lexicon import load_drug_lexicon
from cardiobox.nlp.measurements import load_measurement_lexicon
from cardiobox.nlp.sections import SECTION_NAMES, load_section_rules

LANG_ROOT = language_dir("es").parent

#: Files whose schema a component validates on load; other files must at least be mappings.
#: (tokenizer.yaml is read by cardiobox.nlp.doc without a schema.)
VALIDATORS: dict[str, Callable[[str], Any]] = {
    "context": load_context_rules,
    "sections": load_section_rules,
    "deid": load_deid_data,
    "drugs": load_drug_lexicon,
    "measurements": load_measurement_lexicon,
}
#: Files whose header comment (what they hold, cardiobox, the licence) is checked here.
COMMENTED = ("context", "sections")


def data_files(lang: str) -> set[str]:
    return {p.name for p in language_dir(lang).iterdir() if not p.name.startswith(".")}


def test_folders_are_exactly_the_languages() -> None:
    folders = {p.name for p in LANG_ROOT.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders == set(LANGUAGES)


def test_every_language_has_the_same_files() -> None:
    reference = data_files(LANGUAGES[0])
    assert {f"{stem}.yaml" for stem in VALIDATORS} <= reference
    for lang in LANGUAGES[1:]:
        assert data_files(lang) == reference, lang


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_file_is_a_yaml_mapping(lang: str) -> None:
    for name in sorted(data_files(lang)):
        path: Path = language_dir(lang) / name
        assert path.suffix == ".yaml", path
        assert isinstance(load_language_file(lang, path.stem), dict)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("stem", COMMENTED)
def test_files_open_with_a_header_comment(lang: str, stem: str) -> None:
    lines = (language_dir(lang) / f"{stem}.yaml").read_text(encoding="utf-8").splitlines()
    header = " ".join(
        line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))]
    )
    assert "cardiobox" in header
    assert "Apache-2.0" in header


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("stem", sorted(VALIDATORS))
def test_every_file_validates(lang: str, stem: str) -> None:
    VALIDATORS[stem](lang)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_context_lists_are_rich(lang: str) -> None:
    rules = load_context_rules(lang)
    counts = {c: len(list(getattr(rules.triggers, c).items())) for c in CATEGORIES}
    assert counts["negated"] >= 40, counts
    assert min(counts.values()) >= 15, counts
    assert len(rules.pseudo) >= 15
    assert len(rules.terminations.all) >= 15


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_term_finds_itself(lang: str) -> None:
    # a term the note's tokenizer or sentencizer would split otherwise could never match
    rules = load_context_rules(lang)
    entries: list[tuple[str, Role]] = [(t, ("pseudo", None, None)) for t in rules.pseudo]
    entries += [(t, ("termination", None, None)) for t in rules.terminations.all]
    for category in CATEGORIES:
        entries += [
            (t, ("trigger", category, d)) for d, t in getattr(rules.triggers, category).items()
        ]
        entries += [
            (t, ("termination", category, None)) for t in getattr(rules.terminations, category)
        ]
    for term, role in entries:
        text = " ".join("3" if p == NUM_TOKEN else p.replace("*", "a") for p in term.split())
        doc = make_doc(text, lang)
        found = [(m.start, m.end, m.roles) for m in find_context_terms(doc)]
        assert any(s == 0 and e == len(doc) and role in r for s, e, r in found), (term, found)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_section_has_headers(lang: str) -> None:
    rules = load_section_rules(lang)
    named = {name for name, phrases in rules.headers.items() if phrases}
    assert set(SECTION_NAMES) - {"other"} <= named
