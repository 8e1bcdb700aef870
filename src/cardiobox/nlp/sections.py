"""Section splitting: which part of a note (past history, exam, diagnosis...) a span is in.

A note's headers ("ANTECEDENTES PERSONALES", "Exploración física:", "HISTORY OF PRESENT
ILLNESS") are found with the phrases of ``lang/<code>/sections.yaml``, each listed under one
canonical section name (:data:`SECTION_NAMES`). A header counts when it

- stands alone on its line (an optional bullet or number before it, an optional colon and a
  roman or arabic numeral after it: ``Diagnóstico II:``);
- starts a line and is followed by a colon, with at most three qualifying words before the
  colon (``Analítica al ingreso: Hb 12``);
- starts a line with a capital letter and is followed by a capitalised word
  (``Enfermedad actual Consulta por disnea``);
- or starts a sentence in mid-line, with a capital letter, and is followed by a colon
  (``... sin fiebre. Enfermedad actual: disnea``).

Matching ignores case and accents. Each section's body, from the end of its header to the start
of the next, becomes one span in ``doc.spans["sections"]`` labelled with the canonical name;
text before the first header is in no section.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Annotated, Literal, get_args

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from spacy.tokens import Doc, Span

from cardiobox.nlp.doc import SECTIONS, note_text
from cardiobox.nlp.languages import load_language_model

SectionName = Literal[
    "chief_complaint",
    "present_illness",
    "past_history",
    "family_history",
    "medications",
    "allergies",
    "physical_exam",
    "tests",
    "imaging",
    "ecg",
    "echo",
    "labs",
    "evolution",
    "diagnosis",
    "treatment",
    "plan",
    "discharge",
    "other",
]

#: The canonical section names, in the order a note usually has them.
SECTION_NAMES: tuple[str, ...] = get_args(SectionName)

# ---------------------------------------------------------------------------------------------
# Case and accent folding that keeps every character at its offset
# ---------------------------------------------------------------------------------------------

# Letters without a canonical decomposition that still have an obvious ASCII base.
_EXTRA_FOLDS = {"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "İ": "I"}
_TABLE_SIZE = 0x250  # up to the end of Latin Extended-B


def _fold_tables() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """Code-point maps for case folding only, and for case and accent folding."""
    case = np.arange(_TABLE_SIZE, dtype=np.uint32)
    both = np.arange(_TABLE_SIZE, dtype=np.uint32)
    for code in range(_TABLE_SIZE):
        char = chr(code)
        lower = char.lower()
        if len(lower) == 1:
            case[code] = ord(lower)
        base = _EXTRA_FOLDS.get(char) or unicodedata.normalize("NFD", char)[0]
        if not base.isascii():
            base = char
        base = base.lower()
        both[code] = ord(base) if len(base) == 1 else case[code]
    return case, both


_CASE_TABLE, _FOLD_TABLE = _fold_tables()


def fold_text(text: str, accents: bool = True) -> str:
    """Lower-case ``text`` and strip its accents, keeping its length.

    Every character maps to exactly one character, so offsets into the folded text are
    offsets into ``text``.

    Parameters
    ----------
    text : str
        Any text.
    accents : bool
        Strip diacritics from Latin letters (``é`` → ``e``, ``ř`` → ``r``, ``ș`` → ``s``);
        default ``True``. With ``False`` only the case is folded.

    Returns
    -------
    str
        The folded text, ``len(result) == len(text)``.
    """
    if text.isascii():
        return text.lower()
    if len(text) <= _SHORT:
        return _fold_short(text, accents)
    return _fold(text, accents)


_SHORT = 80  # mentions and words repeat from note to note; whole notes do not


@lru_cache(maxsize=1 << 16)
def _fold_short(text: str, accents: bool) -> str:
    return _fold(text, accents)


def _fold(text: str, accents: bool) -> str:
    table = _FOLD_TABLE if accents else _CASE_TABLE
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).copy()
    latin = codes < _TABLE_SIZE
    codes[latin] = table[codes[latin]]
    folded = codes.tobytes().decode("utf-32-le")
    lowered = folded.lower()  # letters of other scripts
    if len(lowered) != len(folded):  # a letter whose lower case is longer: keep those as is
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in folded)
    return lowered


# ---------------------------------------------------------------------------------------------
# The language data: sections.yaml
# ---------------------------------------------------------------------------------------------

Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class SectionRules(BaseModel):
    """The header phrases of one language, listed under canonical section names.

    Parameters
    ----------
    headers : dict
        Canonical section name → the header phrases that open such a section. Every name
        except ``other`` must have at least one phrase, and a phrase may open one section only
        (compared after case and accent folding).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    headers: dict[SectionName, list[Phrase]] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete_and_unambiguous(self) -> SectionRules:
        present = {name for name, phrases in self.headers.items() if phrases}
        missing = [n for n in SECTION_NAMES if n != "other" and n not in present]
        if missing:
            raise ValueError(f"headers: no phrase for section(s) {', '.join(missing)}")
        seen: dict[str, str] = {}
        for name, phrases in self.headers.items():
            for phrase in phrases:
                key = " ".join(fold_text(phrase).split())
                if key in seen and seen[key] != name:
                    raise ValueError(
                        f"headers: {phrase!r} opens both {seen[key]!r} and {name!r}; keep one"
                    )
                seen[key] = name
        return self


@cache
def load_section_rules(lang: str) -> SectionRules:
    """Read and validate ``lang/<lang>/sections.yaml`` (cached).

    Parameters
    ----------
    lang : str
        Language code.

    Returns
    -------
    SectionRules
        The validated header phrases.

    Raises
    ------
    LanguageError
        When the file is missing or breaks the schema; the message names the file.
    """
    return load_language_model(lang, "sections", SectionRules)


# ---------------------------------------------------------------------------------------------
# Finding headers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A header found in a note: its character span and the section it opens."""

    start: int
    end: int
    name: str


_LEAD = r"[ \t]*(?:[-–•*·>]+[ \t]*|\d{1,2}[.)][ \t]+)?"
_NUMERAL = r"(?:[ \t]+(?:[ivx]{1,4}|\d{1,2}))?"
_QUALIFIER = r"(?:[ \t]+[^\W\d][\w\-/]*|[ \t]*\([^()\n]{1,20}\)){0,3}"


@dataclass(frozen=True)
class _Patterns:
    line: re.Pattern[str]
    inline: re.Pattern[str]
    names: dict[str, str]


@cache
def _patterns(lang: str) -> _Patterns:
    rules = load_section_rules(lang)
    names: dict[str, str] = {}
    for name, phrases in rules.headers.items():
        for phrase in phrases:
            names[" ".join(fold_text(phrase).split())] = name
    # Longest first, so that "antecedentes familiares" wins over "antecedentes".
    alternatives = "|".join(
        r"[ \t]+".join(re.escape(word) for word in key.split())
        for key in sorted(names, key=len, reverse=True)
    )
    head = rf"(?P<head>{alternatives})(?![\w])"
    line = re.compile(
        rf"^{_LEAD}{head}"
        rf"(?:{_NUMERAL}[ \t]*\.?[ \t]*:?[ \t]*(?=\n|$)"  # alone on its line
        rf"|{_QUALIFIER}[ \t]*\.?[ \t]*:"  # or followed by a colon
        rf"|[ \t]+(?P<next>\w))",  # or by a capitalised word (checked on the original text)
        re.MULTILINE,
    )
    inline = re.compile(rf"(?<=[.;][ \t]){head}{_NUMERAL}[ \t]*:")
    return _Patterns(line, inline, names)


def find_headers(text: str, lang: str) -> list[Header]:
    """Find the section headers of a note.

    Parameters
    ----------
    text : str
        The note.
    lang : str
        Its language code.

    Returns
    -------
    list of Header
        Headers in text order; ``end`` is just after the header (and its colon).
    """
    patterns = _patterns(lang)
    folded = fold_text(text)
    found: dict[int, Header] = {}
    for match in patterns.line.finditer(folded):
        start, end = match.start("head"), match.end()
        if match["next"] is not None:
            # "Enfermedad actual Consulta por disnea": a capitalised header, then a capital
            if not (text[start].isupper() and text[match.start("next")].isupper()):
                continue
            end = match.end("head")
        key = " ".join(match["head"].split())
        found[start] = Header(start, end, patterns.names[key])
    for match in patterns.inline.finditer(folded):
        if not text[match.start("head")].isupper():
            continue  # mid-line headers start a sentence with a capital letter
        key = " ".join(match["head"].split())
        found.setdefault(
            match.start("head"),
            Header(match.start("head"), match.end(), patterns.names[key]),
        )
    return [found[k] for k in sorted(found)]


class SectionSplitter:
    """Pipeline component that fills ``doc.spans["sections"]`` with one span per section body.

    The language comes from ``doc.lang_``. A body runs from the end of its header to the start
    of the next header, without the white space at either end; an empty body gets no span.
    """

    def __call__(self, doc: Doc) -> Doc:
        """Split ``doc`` into sections and return it.

        Parameters
        ----------
        doc : spacy.tokens.Doc
            A document made by :func:`cardiobox.nlp.doc.make_doc`.

        Returns
        -------
        spacy.tokens.Doc
            The same document, with ``doc.spans["sections"]`` filled.
        """
        text = note_text(doc)
        headers = find_headers(text, doc.lang_)
        spans: list[Span] = []
        for i, header in enumerate(headers):
            stop = headers[i + 1].start if i + 1 < len(headers) else len(text)
            body = text[header.end : stop]
            start = header.end + (len(body) - len(body.lstrip()))
            end = header.end + len(body.rstrip())
            if start >= end:
                continue
            span = doc.char_span(start, end, label=header.name, alignment_mode="expand")
            if span is not None and len(span) > 0:
                spans.append(span)
        doc.spans[SECTIONS] = spans
        return doc


def split_sections(doc: Doc) -> Doc:
    """Fill ``doc.spans["sections"]`` (see :class:`SectionSplitter`) and return ``doc``.

    Parameters
    ----------
    doc : spacy.tokens.Doc
        The document.

    Returns
    -------
    spacy.tokens.Doc
        The same document.
    """
    return SectionSplitter()(doc)


def section_of(span: Span) -> str | None:
    """Canonical name of the section that holds the start of ``span``, if any.

    Parameters
    ----------
    span : spacy.tokens.Span
        Any span of a document whose sections were split.

    Returns
    -------
    str or None
        The section name, or ``None`` when the span is outside every section (or the
        document has no ``"sections"`` group).
    """
    doc = span.doc
    if SECTIONS not in doc.spans:
        return None
    sections = doc.spans[SECTIONS]
    starts = [s.start for s in sections]
    i = bisect.bisect_right(starts, span.start) - 1
    if i >= 0 and span.start < sections[i].end:
        return str(sections[i].label_)
    return None


def token_sections(doc: Doc) -> list[str | None]:
    """Section name of every token of ``doc`` (``None`` outside every section).

    Parameters
    ----------
    doc : spacy.tokens.Doc
        A document whose sections were split.

    Returns
    -------
    list of str or None
        One entry per token.
    """
    names: list[str | None] = [None] * len(doc)
    if SECTIONS in doc.spans:
        for section in doc.spans[SECTIONS]:
            names[section.start : section.end] = [section.label_] * len(section)
    return names
