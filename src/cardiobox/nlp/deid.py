"""De-identification of clinical notes: find identifiers and mask them or replace them.

Identifiers are found by rules: regular expressions for the forms that are the same
everywhere (e-mails, URLs, IP addresses, numeric dates, long digit runs) and, from each
language's ``lang/<code>/deid.yaml``, cue words and patterns (titles such as ``Dr.`` or
``MUDr.``, field labels such as ``NHC:``, month names, street and hospital words, national
identifier and phone formats, postal codes) plus capitalised-word heuristics after the cues
and short lists of common first names, surnames and cities. Kinds: PERSON, DATE, AGE (over
89 only), ID, PHONE, EMAIL, URL (web and IP addresses), ADDRESS and PLACE.

Two replacement modes:

- ``mask``: each identifier becomes ``[KIND]``;
- ``surrogate``: each becomes a realistic fake of the same kind and written form. Dates move
  by one shift per patient (HMAC-SHA256 of the secret key and the patient id, within ±365
  days, never 0), so every note of a patient keeps its intervals; ``12/03/2021`` stays
  ``dd/mm/yyyy`` and ``3 de marzo de 2021`` stays words. Names, places and numbers map to
  the same surrogate wherever they recur for the patient (the choice is keyed by the HMAC
  too). Ages over 89 become the language's top code (``90+``).

The result keeps the offsets of each identifier in the original and in the new text, never
the original strings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import secrets
import unicodedata
import warnings
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from spacy.tokens import Doc

from cardiobox.errors import CardioboxError, Location
from cardiobox.nlp.doc import IDENTIFIERS, note_text
from cardiobox.nlp.langid import LanguageMismatchWarning, other_language
from cardiobox.nlp.languages import (
    LANGUAGE_NAMES,
    check_language,
    load_language_model,
)

__all__ = [
    "KINDS",
    "MODES",
    "DeidError",
    "DeidLanguageData",
    "DeidResult",
    "Identifier",
    "Replacement",
    "add_identifiers",
    "date_shift_days",
    "deid_files",
    "deidentify",
    "find_identifiers",
    "load_deid_data",
]

#: The kinds of identifier, as span labels.
KINDS: tuple[str, ...] = (
    "PERSON",
    "DATE",
    "AGE",
    "ID",
    "PHONE",
    "EMAIL",
    "URL",
    "ADDRESS",
    "PLACE",
)
#: Replacement modes of :func:`deidentify`.
MODES: tuple[str, ...] = ("mask", "surrogate")

_MAX_SHIFT_DAYS = 365
_MIN_AGE = 90  # ages up to 89 are not identifying (HIPAA Safe Harbor)


class DeidError(CardioboxError):
    """De-identification input that cannot be processed (bad mode, key, file or record)."""


# --------------------------------------------------------------------------------------
# Language data
# --------------------------------------------------------------------------------------


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NationalId(_Strict):
    """A national or hospital identifier format: a regex, and optionally its checksum."""

    name: str
    pattern: str
    checksum: Literal["nhs", "bsn"] | None = None

    _pattern = field_validator("pattern")(_check_regex)


class PostalCode(_Strict):
    """A postal code format; ``needs_city``: only a code followed by a town name counts."""

    pattern: str
    needs_city: bool = True

    _pattern = field_validator("pattern")(_check_regex)


class DeidLanguageData(_Strict):
    """Schema of ``lang/<code>/deid.yaml``; every language has the same keys.

    Word lists are matched whole-word; cue words and labels ignore case, name lists and
    place words are matched as written (capitalised). Fields holding regular expressions:
    ``national_ids[].pattern``, ``phone_patterns``, ``address_details``,
    ``postal_codes[].pattern``.
    """

    titles: list[str] = Field(min_length=1)
    person_cues: list[str] = Field(min_length=1)
    person_labels: list[str] = Field(min_length=1)
    name_particles: list[str]
    first_names: list[str] = Field(min_length=10)
    surnames: list[str] = Field(min_length=10)
    non_name_words: list[str]
    months: list[list[str]] = Field(min_length=1)
    ambiguous_months: list[str]
    ordinal_suffixes: dict[str, str]
    date_templates: list[str] = Field(min_length=1)
    date_cues: list[str]
    numeric_date_order: Literal["dmy", "mdy"]
    age_templates: list[str] = Field(min_length=1)
    age_top_coded: str = Field(min_length=1)
    id_labels: list[str] = Field(min_length=1)
    number_words: list[str]
    national_ids: list[NationalId]
    phone_labels: list[str] = Field(min_length=1)
    phone_patterns: list[str]
    address_labels: list[str] = Field(min_length=1)
    street_prefixes: list[str]
    street_suffixes: list[str]
    street_compounds: list[str]
    address_details: list[str]
    postal_codes: list[PostalCode]
    place_prefixes: list[str]
    place_suffixes: list[str]
    place_compounds: list[str]
    place_cues: list[str] = Field(min_length=1)
    place_particles: list[str]
    cities: list[str] = Field(min_length=5)
    #: Inflected forms of the cities ("Brně", "Stockholms"): found like them, never surrogates.
    city_forms: list[str] = Field(default_factory=list)
    eponym_nouns: list[str] = Field(min_length=1)
    surrogate_streets: list[str] = Field(min_length=5)

    @field_validator("months")
    @classmethod
    def _twelve(cls, value: list[list[str]]) -> list[list[str]]:
        for number, form in enumerate(value):
            if len(form) != 12:
                raise ValueError(f"month form {number} has {len(form)} names, not 12")
        return value

    @field_validator("date_templates")
    @classmethod
    def _has_month(cls, value: list[str]) -> list[str]:
        for template in value:
            if "{m}" not in template:
                raise ValueError(f"date template {template!r} has no {{m}}")
        return value

    @field_validator("age_templates")
    @classmethod
    def _has_number(cls, value: list[str]) -> list[str]:
        for template in value:
            if "{n}" not in template:
                raise ValueError(f"age template {template!r} has no {{n}}")
        return value

    @field_validator("ordinal_suffixes")
    @classmethod
    def _ordinal_keys(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {"default", *(str(day) for day in range(1, 32))}
        for key in value:
            if key not in allowed:
                raise ValueError(f"ordinal suffix key {key!r} is not 'default' or a day 1-31")
        return value

    @field_validator("phone_patterns", "address_details")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        return [_check_regex(item) for item in value]


@cache
def load_deid_data(lang: str) -> DeidLanguageData:
    """Read and validate ``lang/<lang>/deid.yaml`` (cached).

    Parameters
    ----------
    lang : str
        Language code.

    Returns
    -------
    DeidLanguageData
        The validated data.

    Raises
    ------
    LanguageError
        When the file is missing or breaks the schema; the message names the file and field.
    """
    return load_language_model(check_language(lang), "deid", DeidLanguageData)


# --------------------------------------------------------------------------------------
# Building blocks of the patterns
# --------------------------------------------------------------------------------------

_UPPER = "".join(c for c in map(chr, range(0x41, 0x250)) if c.isalpha() and c.isupper())
_LOWER = "".join(c for c in map(chr, range(0x61, 0x250)) if c.isalpha() and c.islower())
UP = f"[{re.escape(_UPPER)}]"
LO = f"[{re.escape(_LOWER)}]"
SP = r"[^\S\n]+"  # spaces that do not cross a line
_W_CORE = rf"{UP}(?:{LO}+{UP})?{LO}+"  # Smith, McDonald
#: A capitalised word: O'Brien, García-Moreno, Sant'Orsola, Mary's.
WORD = rf"{UP}(?:['’]{UP})?(?:{LO}+{UP})?{LO}+(?:[-'’]{_W_CORE})*(?:['’]s?)?"
CAPS = rf"{UP}{{2,}}(?:-{UP}{{2,}})*(?!\w)"  # GARCÍA
INITIAL = rf"{UP}\.(?:-?{UP}\.)*"  # J. or J.-P. or T.P.
ROMAN = r"[IVX]{1,4}(?!\w)"  # Carol I, Vittorio Emanuele II
_TOKEN = re.compile(rf"\d+|{WORD}|{CAPS}|{INITIAL}|{LO}+|{UP}")


def _alternation(words: Iterable[str], *, flexible_dot: bool = False) -> str:
    """Regex alternation of literal words, longest first; spaces match any run of spaces.

    With ``flexible_dot``, a word written with a final full stop also matches without it.
    """
    forms: set[str] = set()
    for word in words:
        word = word.strip()
        if not word:
            continue
        forms.add(word)
        if flexible_dot and word.endswith("."):
            forms.add(word[:-1])
    parts = [SP.join(re.escape(p) for p in w.split()) for w in sorted(forms, key=len, reverse=True)]
    return "(?:" + "|".join(parts) + ")" if parts else "(?!)"


def _fold(word: str) -> str:
    return word.casefold().rstrip(".")


# Romanian is written with comma-below ș ț or, in older fonts, cedilla ş ţ: read them alike.
_CEDILLA = str.maketrans("şţŞŢ", "șțȘȚ")


def _name_key(word: str) -> str:
    """How a name is looked up in the name and city lists."""
    return word.casefold().translate(_CEDILLA)


def _seq(word: str, particles: str, max_words: int) -> str:
    """Up to ``max_words`` name words, joined by spaces or hyphens, with particles between."""
    gap = rf"(?:{SP}|-)(?:{particles}{SP})*"
    return rf"(?:{particles}{SP})*(?:{word})(?:{gap}(?:{word})){{0,{max_words - 1}}}"


def _template_regex(template: str, slots: dict[str, str]) -> str:
    """Regex for a template such as ``{d} de {m} de {y}``: slots filled, the rest literal."""
    out: list[str] = []
    for piece in re.split(r"(\{[a-z]+\})", template):
        if piece.startswith("{") and piece.endswith("}"):
            out.append(slots[piece[1:-1]])
        elif piece:
            words = piece.split()
            literal = SP.join(re.escape(w) for w in words)
            if piece[:1].isspace():
                literal = SP + literal
            if piece[-1:].isspace() and words:
                literal += SP
            out.append(literal)
    return "".join(out)


# --------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------

# How much a rule is trusted when two candidates of equal length overlap.
_GENERIC, _PATTERN, _CUED = 1, 2, 3


@dataclass(frozen=True, slots=True)
class _DateParts:
    day: tuple[int, int] | None
    month: tuple[int, int] | None
    year: tuple[int, int] | None
    suffix: tuple[int, int] | None
    month_form: int | None  # index into the language's month forms; None: numeric month


@dataclass(frozen=True, slots=True)
class _Candidate:
    start: int
    end: int
    kind: str
    strength: int
    date: _DateParts | None = None


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier found in a text: ``text[start:end]`` is of kind ``kind``."""

    start: int
    end: int
    kind: str


# --------------------------------------------------------------------------------------
# The compiled rules of one language
# --------------------------------------------------------------------------------------
#
# Python's regex engine scans fast only for a pattern that starts with a literal or a
# character set; a pattern that starts with a lookbehind or an alternation of words ignoring
# case is tried at every character (about 0.2 s per MB each). So the rules are tried only
# where they can start: cue rules at the words that begin them (one pass over the words),
# number rules at the starts of digit runs (one pass), and the few others by scanning
# patterns that start with a character set, checking the character before in Python.

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?!\w)")
_URL = re.compile(r"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)[^\s<>\"'()\[\]]+")
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_DIGIT_ID = re.compile(r"(?<![\w.,/-])\d{7,}-?[A-Z]{0,2}(?!\w|[.,/-]\d)")
_LETTER_ID = re.compile(r"[A-Z]{1,4}-?\d{6,}[A-Z]?(?!\w|[.,/-]\d)")
_INTL_PHONE = re.compile(
    r"(?:\+|00(?=[1-9])|\(\s*(?:\+|00))\d{1,3}(?:\s*\))?(?:[ .-]?\(0\))?"
    r"[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){1,4}(?!\w)"
)
_LOOSE_PHONE = r"(?:\(\s*)?\+?\d[\d ().-]{4,20}\d"
_LOOSE_ID = r"(?=[\w./-]*\d)[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])|[ ](?=\d))*"
_END = r"(?![\w/-]|[.,]\d)"
_YEAR = r"(?:1[89]|20)\d{2}"
_NUM_YMD = re.compile(
    rf"(?<![\w./-])(?P<y>{_YEAR})(?P<s>[-/.])(?P<m>0?[1-9]|1[0-2])(?P=s)"
    rf"(?P<d>0?[1-9]|[12]\d|3[01]){_END}"
)
_NUM_DMY = re.compile(
    rf"(?<![\w./-])(?P<a>\d{{1,2}})(?P<s>[./-]|\.[^\S\n])(?P<b>\d{{1,2}})(?P=s)"
    rf"(?P<y>{_YEAR}|\d{{2}}){_END}"
)
# Month/year only up to 2039: "1/2048" is a titre, not a date.
_NUM_MY = re.compile(
    rf"(?<![\w./-])(?P<m>0?[1-9]|1[0-2])(?P<s>[./-])(?P<y>19\d{{2}}|20[0-3]\d){_END}"
)
_ADDRESS_STOP = re.compile(r"[\n;|\t]|\s-\s|\.\s+(?=\S)")
_MAX_ADDRESS = 120
_WORDS = re.compile(r"\w+")
_DIGIT_RUNS = re.compile(r"\d+")
_NEXT_WORD = re.compile(r"[^\S\n]*[-:]?[^\S\n]*(\w+)")
_DIGIT_LED = re.compile(r"\\d|\[[0-9]|[0-9]")  # a data-file regex that starts with a digit
_BACK_WINDOW = 160  # how far back a name ending in "Hospital" or "-sjukhuset" may start

_Emit = Callable[[str, re.Match[str]], Iterable[_Candidate]]


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern and what it yields; ``head`` set: a suffix rule searched backwards."""

    pattern: re.Pattern[str]
    emit: _Emit
    head: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class _ScanRule:
    """A pattern scanned over the whole text; ``before``: characters it may not follow.

    With ``back``, the pattern finds a word ending (``-straat``, ``-sjukhuset``) and ``back``
    the name that ends there; with ``forward`` too, the house number after it.
    """

    pattern: re.Pattern[str]
    before: re.Pattern[str]
    emit: _Emit | None = None
    back: re.Pattern[str] | None = None
    forward: re.Pattern[str] | None = None
    kind: str = ""


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _checksum_ok(name: str | None, text: str) -> bool:
    if name is None:
        return True
    digits = [int(c) for c in text if c.isdigit()]
    if name == "nhs":  # NHS number: modulus 11 with weights 10..2
        if len(digits) != 10:
            return False
        total = sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
        check = 11 - total % 11
        return (0 if check == 11 else check) == digits[9]
    if name == "bsn":  # Dutch BSN: the "11-proef", last weight -1
        if len(digits) != 9:
            return False
        weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
        return sum(d * w for d, w in zip(digits, weights, strict=True)) % 11 == 0
    raise ValueError(f"unknown checksum {name!r}")


def _variants(words: Iterable[str], *, upper: bool = False) -> list[str]:
    """Words as written and capitalised (and in upper case): "dhr." also as "Dhr.".

    Never in lower case: "ms." is milliseconds, not "Ms.".
    """
    out: set[str] = set()
    for word in words:
        out |= {word, word[:1].upper() + word[1:]}
        out |= {word.upper()} if upper else set()
    return sorted(out)


def _first_word(phrase: str) -> str | None:
    m = _WORDS.search(phrase)
    return m.group().lower() if m else None


_GROUP_NAME = re.compile(r"\(\?P<(\w+)>")
_GROUP_REF = re.compile(r"\(\?P=(\w+)\)")


def _probe(rules: list[_Rule]) -> tuple[re.Pattern[str], list[int]]:
    """One pattern that tells, in one call, which of ``rules`` match at a position.

    Each rule becomes an optional lookahead with its own capture group (its group names
    prefixed to stay unique); the numbers of those groups come back with the pattern.
    """
    parts = []
    for i, rule in enumerate(rules):
        inner = _GROUP_NAME.sub(rf"(?P<r{i}_\1>", rule.pattern.pattern)
        inner = _GROUP_REF.sub(rf"(?P=r{i}_\1)", inner)
        if rule.pattern.flags & re.IGNORECASE:
            inner = f"(?i:{inner})"
        parts.append(f"(?:(?=(?P<r{i}>{inner}))|)")
    pattern = re.compile("".join(parts))
    return pattern, [pattern.groupindex[f"r{i}"] for i in range(len(rules))]


def _scan(pattern: re.Pattern[str], text: str, before: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """``pattern.finditer`` without the matches glued to a character matching ``before``."""
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        if m.start() > 0 and before.match(text, m.start() - 1):
            pos = m.start() + 1
            continue
        yield m
        pos = max(m.end(), m.start() + 1)


class _Rules:
    """Every rule of one language, compiled once and indexed by where it can start."""

    def __init__(self, data: DeidLanguageData) -> None:
        self.data = data
        self.by_word: dict[str, list[_Rule]] = {}
        self.at_digits: list[_Rule] = []
        self.scans: list[_ScanRule] = []
        self._words_and_sets(data)
        self._person_rules(data)
        self._date_rules(data)
        self._number_rules(data)
        self._address_rules(data)
        self._place_rules(data)
        self._digit_probe = _probe(self.at_digits)

    # -- registration ---------------------------------------------------------------

    def _on_words(self, phrases: Iterable[str], rule: _Rule) -> None:
        for word in {w for w in map(_first_word, phrases) if w}:
            self.by_word.setdefault(word, []).append(rule)

    def _on_pattern(self, regex: str, emit: _Emit, before: str) -> None:
        """A data-file regex: tried at digit runs when it starts with a digit, else scanned.

        A numbered back-reference would break inside the combined probe, so such a regex
        is always scanned.
        """
        if _DIGIT_LED.match(regex) and not re.search(r"\\[1-9]", regex):
            self.at_digits.append(_Rule(re.compile(rf"(?<!{before})(?:{regex})"), emit))
        else:
            self.scans.append(_ScanRule(re.compile(regex), re.compile(before), emit))

    # -- word sets --------------------------------------------------------------------

    def _words_and_sets(self, data: DeidLanguageData) -> None:
        self.name_particles = _alternation(data.name_particles)
        self.place_particle_re = _alternation(data.place_particles)
        self.first_names = {_name_key(n) for n in data.first_names}
        self.surnames = {_name_key(n) for n in data.surnames}
        self.cities = {
            tuple(_name_key(w) for w in c.split()) for c in (*data.cities, *data.city_forms)
        }
        self.eponym_nouns = {w.lower() for w in data.eponym_nouns}
        self.run_words = self.first_names | self.surnames | {c[0] for c in self.cities}
        self.previous_word = re.compile(
            rf"(\w+)[^\S\n]+(?:{_alternation(data.name_particles)}[^\S\n]+)?\Z"
        )
        self.max_city_words = max(len(c) for c in self.cities)
        # Month names are no stop words: Jan, May and June are first names too.
        title_words = {_fold(t) for t in data.titles}
        self.place_stop = {_fold(w) for w in data.non_name_words} | title_words
        place_words = {
            _fold(w)
            for phrase in [*data.place_prefixes, *data.place_suffixes, *data.street_prefixes]
            for w in phrase.split()
        }
        self.person_stop = self.place_stop | place_words | {_fold(w) for w in data.street_suffixes}
        self.person_stop |= {_fold(w) for cue in data.person_cues for w in cue.split()}
        self.street_abbreviations = {
            _fold(w) for w in [*data.street_prefixes, *data.number_words, *data.titles]
        }
        # Words kept as they are by surrogates of places and addresses.
        self.keep_words = {
            w.casefold()
            for phrase in [
                *data.place_prefixes,
                *data.place_suffixes,
                *data.street_prefixes,
                *data.street_suffixes,
                *data.number_words,
            ]
            for w in re.findall(r"\w+", phrase)
        }
        self.place_particles = {w.casefold() for p in data.place_particles for w in p.split()}
        self.compound_suffixes = sorted(
            [*data.street_compounds, *data.place_compounds], key=len, reverse=True
        )

    # -- persons ----------------------------------------------------------------------

    def _person_rules(self, data: DeidLanguageData) -> None:
        strong = _seq(f"{WORD}|{CAPS}|{INITIAL}", self.name_particles, 5)
        weak = _seq(WORD, self.name_particles, 4)
        titles = _alternation(_variants(data.titles), flexible_dot=True)
        titled = re.compile(rf"(?<![\w.]){titles}(?:(?<=\.)[^\S\n]*|{SP})(?P<v>{strong})")
        self._on_words(data.titles, _Rule(titled, self._emit_person_strong))
        labels = _alternation(_variants(data.person_labels, upper=True))
        labelled = re.compile(
            rf"(?<![\w.]){labels}[^\S\n]*:[^\S\n]*(?P<v>{strong}(?:,[^\S\n]*{strong})?)"
        )
        self._on_words(data.person_labels, _Rule(labelled, self._emit_person_strong))
        cued = re.compile(rf"(?<![\w.])(?i:{_alternation(data.person_cues)}){SP}(?P<v>{weak})")
        self._on_words(data.person_cues, _Rule(cued, self._emit_person_weak))
        particles = _alternation([*data.name_particles, *data.place_particles])
        run = re.compile(rf"{WORD}(?:(?:{SP}|-)(?:{particles}{SP})*{WORD}){{0,11}}")
        self.scans.append(_ScanRule(run, re.compile(r"[\w'’-]"), self._emit_runs))

    def _emit_person_strong(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        span = _trim(text, m.start("v"), m.end("v"), self.person_stop, strip_leading=False)
        if span:
            yield _Candidate(span[0], span[1], "PERSON", _CUED)

    def _emit_person_weak(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        span = _trim(text, m.start("v"), m.end("v"), self.person_stop)
        if span is None or self._eponym(text, *span):
            return
        words = [w for w in _words_in(text, *span) if w[2][:1].isupper()]
        known = _name_key(words[0][2]) in self.first_names | self.surnames
        if len(words) >= 2 or known:
            yield _Candidate(span[0], span[1], "PERSON", _CUED)

    def _eponym(self, text: str, start: int, end: int) -> bool:
        """Whether a name is part of an eponym: "Stevens-Johnson syndrome", "signo de Musset"."""
        after = _NEXT_WORD.match(text, end)
        if after and after.group(1).lower() in self.eponym_nouns:
            return True
        before = self.previous_word.search(text, max(0, start - 60), start)
        return bool(before and before.group(1).lower() in self.eponym_nouns)

    def _emit_runs(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        """Cities; a known first name with the capitalised words after it; two surnames."""
        if not any(_name_key(w) in self.run_words for w in m.group().split()):
            return  # most runs hold no listed name: skip them cheaply
        words = _words_in(text, m.start(), m.end())
        folded = [_name_key(w[2]) for w in words]
        capital = [w[2][:1].isupper() for w in words]
        i = 0
        while i < len(words):
            city_end = next(
                (
                    j
                    for j in range(min(len(words), i + self.max_city_words), i, -1)
                    if capital[j - 1] and tuple(folded[i:j]) in self.cities
                ),
                None,
            )
            # A listed town inside a longer capitalised name ("New York Heart Association",
            # "Virgen del Rocío") is left to the other rules.
            inside = i > 0 and capital[i - 1] and folded[i - 1] not in self.place_stop
            if city_end is not None and not inside:
                yield _Candidate(words[i][0], words[city_end - 1][1], "PLACE", _GENERIC)
                i = city_end
                continue
            if not capital[i] or folded[i] in self.person_stop:
                i += 1
                continue
            following = [k for k in range(i + 1, len(words)) if capital[k]]
            pair = bool(following) and folded[following[0]] in self.surnames
            if following and (
                folded[i] in self.first_names or (folded[i] in self.surnames and pair)
            ):
                end = i
                for k in following:
                    if folded[k] in self.person_stop:
                        break
                    end = k
                if end > i:
                    if not self._eponym(text, words[i][0], words[end][1]):
                        yield _Candidate(words[i][0], words[end][1], "PERSON", _GENERIC)
                    i = end + 1
                    continue
            i += 1

    # -- dates and ages -----------------------------------------------------------------

    def _date_rules(self, data: DeidLanguageData) -> None:
        for pattern in (_NUM_YMD, _NUM_DMY, _NUM_MY):
            self.at_digits.append(_Rule(pattern, self._emit_numeric_date))
        # Day and month without a year ("el 23/11"): only after a cue word, looked for behind.
        day_month = re.compile(
            r"(?<![\w./-])(?P<a>\d{1,2})(?P<s>/|\.[^\S\n]?)(?P<b>\d{1,2})(?![\w/-]|[.,]\d)"
        )
        self.date_cue = re.compile(rf"(?<![\w.])(?i:{_alternation(data.date_cues)}){SP}\Z")
        self.at_digits.append(_Rule(day_month, self._emit_cued_date))
        suffixes = sorted(set(data.ordinal_suffixes.values()), key=len, reverse=True)
        suffix = f"(?P<o>{'|'.join(re.escape(s) for s in suffixes)})?" if suffixes else ""
        month_names = [m for form in data.months for m in form]
        slots = {
            "d": rf"(?P<d>0?[1-9]|[12]\d|3[01]){suffix}",
            "m": rf"(?P<m>{_alternation(month_names)})(?:\.(?={SP}\d))?",
            "y": rf"(?P<y>{_YEAR})",
        }
        self.month_lookup: dict[str, tuple[int, int]] = {}
        for form_index, form in enumerate(data.months):
            for month_index, name in enumerate(form):
                self.month_lookup.setdefault(name.casefold(), (form_index, month_index + 1))
        self.ambiguous_months = {m.casefold() for m in data.ambiguous_months}
        for template in data.date_templates:
            regex = re.compile(rf"(?<!\w){_template_regex(template, slots)}(?!\w)", re.IGNORECASE)
            self._on_template(template, month_names, _Rule(regex, self._emit_word_date))
        age_slot = {"n": r"(?P<n>\d{2,3})"}
        for template in data.age_templates:
            regex = re.compile(rf"(?<![\w.,]){_template_regex(template, age_slot)}(?!\w)", re.I)
            self._on_template(template, [], _Rule(regex, self._emit_age))

    def _on_template(self, template: str, month_names: list[str], rule: _Rule) -> None:
        head = template.lstrip()
        if head.startswith(("{d}", "{n}", "{y}")):
            self.at_digits.append(rule)
        elif head.startswith("{m}"):
            self._on_words(month_names, rule)
        else:
            self._on_words([head], rule)

    def _emit_numeric_date(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        candidate = _numeric_date(m, self.data.numeric_date_order)
        if candidate:
            yield candidate

    def _emit_cued_date(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        if self.date_cue.search(text, max(0, m.start() - 30), m.start()) is None:
            return
        if m.group("s").startswith(".") and not text.startswith(".", m.end()):
            return  # "to 1.4 mg/dl" is a number; "dne 12. 3." is a date
        candidate = _numeric_date(m, self.data.numeric_date_order)
        if candidate:
            yield _Candidate(m.start(), m.end(), "DATE", _CUED, candidate.date)

    def _emit_word_date(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        groups = m.groupdict()
        month_text = groups["m"]
        form, month = self.month_lookup[month_text.casefold()]
        if (
            month_text.casefold() in self.ambiguous_months
            and groups.get("y") is None
            and not month_text[:1].isupper()
        ):
            return
        day = int(groups["d"]) if groups.get("d") else 1
        year = int(groups["y"]) if groups.get("y") else 2000
        try:
            date(year, month, day)
        except ValueError:
            return

        def where(name: str) -> tuple[int, int] | None:
            return m.span(name) if groups.get(name) is not None else None

        parts = _DateParts(where("d"), where("m"), where("y"), where("o"), form)
        yield _Candidate(m.start(), m.end(), "DATE", _PATTERN, parts)

    def _emit_age(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        if _MIN_AGE <= int(m.group("n")) <= 130:
            yield _Candidate(m.start("n"), m.end("n"), "AGE", _PATTERN)

    # -- numbers: identifiers, phones, e-mails, web and IP addresses --------------------

    def _number_rules(self, data: DeidLanguageData) -> None:
        number_words = _alternation(data.number_words)
        self.number_words = number_words
        url_before = re.compile(r"[\w@/]")
        self.scans.append(_ScanRule(_URL, url_before, self._emit_kind("URL", strip=".,;:!?")))
        self.at_digits.append(_Rule(_IPV4, self._emit_ip))
        for national in data.national_ids:
            self._on_pattern(
                national.pattern + r"(?![\w/]|[.,-]\d)",
                self._emit_kind("ID", checksum=national.checksum),
                r"[\w+/.,-]",
            )
        end_label = r"(?:(?<=\.)|(?!\w))"
        id_label = re.compile(
            rf"(?<![\w.])(?i:{_alternation(data.id_labels, flexible_dot=True)}){end_label}"
            rf"(?:[^\S\n]*(?i:{number_words}))?[^\S\n]*[:#]?[^\S\n]*(?P<v>{_LOOSE_ID})"
        )
        self._on_words(data.id_labels, _Rule(id_label, self._emit_id_label))
        self.at_digits.append(_Rule(_DIGIT_ID, self._emit_kind("ID", strength=_GENERIC)))
        self.scans.append(
            _ScanRule(_LETTER_ID, re.compile(r"[\w.,/-]"), self._emit_kind("ID", strength=_GENERIC))
        )
        self.scans.append(_ScanRule(_INTL_PHONE, re.compile(r"[\w+.,]"), self._emit_intl_phone))
        for pattern in data.phone_patterns:
            self._on_pattern(
                pattern + r"(?![\w/]|[.,-]?\d)", self._emit_kind("PHONE"), r"[\w+/.,-]"
            )
        phone_label = re.compile(
            rf"(?<![\w.])(?i:{_alternation(data.phone_labels, flexible_dot=True)}){end_label}"
            rf"(?:[^\S\n]*(?i:{number_words}))?[^\S\n]*[:.]?[^\S\n]*(?P<v>{_LOOSE_PHONE})(?!\w)"
        )
        self._on_words(data.phone_labels, _Rule(phone_label, self._emit_phone_label))

    def _emit_kind(
        self, kind: str, *, strength: int = _PATTERN, checksum: str | None = None, strip: str = ""
    ) -> _Emit:
        def emit(text: str, m: re.Match[str]) -> Iterator[_Candidate]:
            if _checksum_ok(checksum, m.group()):
                end = m.start() + len(m.group().rstrip(strip)) if strip else m.end()
                yield _Candidate(m.start(), end, kind, strength)

        return emit

    def _emit_ip(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        if len(m.group()) > 7:  # 1.0.0.0 is a dosing schedule, not an address
            yield _Candidate(m.start(), m.end(), "URL", _PATTERN)

    def _emit_id_label(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        value = m.group("v").rstrip(" ")
        if _digits(value) >= 3:
            yield _Candidate(m.start("v"), m.start("v") + len(value), "ID", _CUED)

    def _emit_intl_phone(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        if 8 <= _digits(m.group()) <= 15:
            yield _Candidate(m.start(), m.end(), "PHONE", _PATTERN)

    def _emit_phone_label(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        value = m.group("v").rstrip(" .-(")
        if 6 <= _digits(value) <= 15:
            yield _Candidate(m.start("v"), m.start("v") + len(value), "PHONE", _CUED)

    # -- addresses ----------------------------------------------------------------------

    def _address_rules(self, data: DeidLanguageData) -> None:
        particles = self.place_particle_re
        details = "|".join(f"(?:{d})" for d in data.address_details) or "(?!)"
        number = (
            rf"(?:(?i:{self.number_words})[^\S\n]*)?\d{{1,5}}(?:[^\S\n]?[A-Za-z](?!\w))?"
            rf"(?:[^\S\n]?[-/][^\S\n]?\d{{1,5}}[A-Za-z]?)?"
            rf"(?:[^\S\n]*,?[^\S\n]*(?i:{details}))*"
        )
        street_name = _seq(f"{WORD}|{ROMAN}", particles, 6)
        prefixed = re.compile(
            rf"(?<![\w.])(?i:{_alternation(data.street_prefixes)})"
            rf"(?:(?<=[./])[^\S\n]*|{SP})(?:{particles}{SP})?{street_name},?[^\S\n]*{number}"
        )
        self._on_words(data.street_prefixes, _Rule(prefixed, self._emit_kind("ADDRESS")))
        if data.street_suffixes:
            suffixed = re.compile(
                rf"(?<![\w.])\d{{1,5}}[A-Za-z]?,?{SP}{_seq(WORD, particles, 4)}{SP}"
                rf"(?i:{_alternation(data.street_suffixes)})(?:\.|(?!\w))"
            )
            self.at_digits.append(_Rule(suffixed, self._emit_kind("ADDRESS")))
        if data.street_compounds:
            suffix = _alternation(data.street_compounds)
            self.scans.append(
                _ScanRule(
                    re.compile(rf"{suffix}(?={SP}(?:(?i:{self.number_words})[^\S\n]*)?\d)"),
                    re.compile(r"(?!)"),
                    kind="ADDRESS",
                    back=re.compile(
                        rf"(?<![\w.'’-])(?:{WORD}{SP}(?:{particles}{SP})*){{0,2}}"
                        rf"{UP}{LO}*{suffix}\Z"
                    ),
                    forward=re.compile(rf"{SP}{number}"),
                )
            )
        for postal in data.postal_codes:
            city = rf"{SP}{_seq(WORD, particles, 4)}" if postal.needs_city else r"(?!\w)"
            self._on_pattern(postal.pattern + city, self._emit_kind("ADDRESS"), r"[\w./-]")
        labels = _alternation(_variants(data.address_labels, upper=True))
        label = re.compile(rf"(?<![\w.]){labels}[^\S\n]*:[^\S\n]*(?=\S)")
        self._on_words(data.address_labels, _Rule(label, self._emit_address_label))

    def _emit_address_label(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        end = self._address_label_end(text, m.end())
        value = text[m.end() : end].rstrip(" ,.")
        if value:
            yield _Candidate(m.end(), m.end() + len(value), "ADDRESS", _CUED)

    def _address_label_end(self, text: str, start: int) -> int:
        """Where a labelled address ends: a line end, ';', or a full stop after a real word."""
        limit = min(len(text), start + _MAX_ADDRESS)
        for m in _ADDRESS_STOP.finditer(text, start, limit):
            if m.group().startswith("."):
                before = re.search(r"(\S+)$", text[start : m.start()])
                if before and _fold(before.group(1) + ".") in self.street_abbreviations:
                    continue
                if before and len(before.group(1)) <= 2 and before.group(1).isalpha():
                    continue  # an initial or a short abbreviation
            return m.start()
        return limit

    # -- places ---------------------------------------------------------------------------

    def _place_rules(self, data: DeidLanguageData) -> None:
        particles = self.place_particle_re
        name = _seq(f"{WORD}|{CAPS}|{ROMAN}", particles, 5)
        prefixed = re.compile(
            rf"(?<![\w.]){_alternation(data.place_prefixes)}{SP}(?P<v>(?:{particles}{SP})*{name})"
        )
        self._on_words(data.place_prefixes, _Rule(prefixed, self._emit_place_prefixed))
        if data.place_suffixes:
            suffixes = _alternation(_variants(data.place_suffixes))
            back = re.compile(rf"(?<![\w.'’-])(?P<v>{name}){SP}{suffixes}\Z")
            head = re.compile(rf"{suffixes}(?!\w)")
            self._on_words(data.place_suffixes, _Rule(back, self._emit_place_suffixed, head))
        if data.place_compounds:
            suffix = _alternation(data.place_compounds)
            self.scans.append(
                _ScanRule(
                    re.compile(rf"{suffix}(?!\w)"),
                    re.compile(r"(?!)"),
                    kind="PLACE",
                    back=re.compile(rf"(?<![\w.'’-])(?:{WORD}{SP}){{0,2}}{UP}{LO}*{suffix}\Z"),
                )
            )
        # The name must follow the cue at once: "transferred to the Palliative Care Unit" is a
        # ward, not a town.
        cued = re.compile(
            rf"(?<![\w.])(?i:{_alternation(data.place_cues)}){SP}"
            rf"(?P<v>{WORD}(?:(?:{SP}|-)(?:{particles}{SP})*{WORD}){{0,4}})"
        )
        self._on_words(data.place_cues, _Rule(cued, self._emit_place_cued))

    def _emit_place_prefixed(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        # The prefix (Hospital Universitario) starts the name; what follows is cut at a stop word.
        span = _trim(text, m.start("v"), m.end("v"), self.place_stop)
        if span:
            yield _Candidate(m.start(), span[1], "PLACE", _PATTERN)

    def _emit_place_suffixed(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        # Only the name before "Hospital" is cut at stop words; it must reach the suffix.
        span = _trim(text, m.start("v"), m.end("v"), self.place_stop, leading=True)
        if span and span[1] == m.end("v"):
            yield _Candidate(span[0], m.end(), "PLACE", _PATTERN)

    def _emit_place_cued(self, text: str, m: re.Match[str]) -> Iterator[_Candidate]:
        # A name cut short by a stop word is a department ("Gynaecology Outpatient Clinic").
        span = _trim(text, m.start("v"), m.end("v"), self.place_stop)
        if span and span[1] == m.end("v"):
            yield _Candidate(span[0], span[1], "PLACE", _CUED)

    def _compound(self, text: str, m: re.Match[str], scan: _ScanRule) -> Iterator[_Candidate]:
        """The name ending in the word ending found by ``m`` (and its house number)."""
        if scan.back is None:  # pragma: no cover - only compound rules come here
            return
        found = scan.back.search(text, max(0, m.start() - _BACK_WINDOW), m.end())
        if found is None:
            return
        end = found.end()
        if scan.forward is not None:
            tail = scan.forward.match(text, m.end())
            if tail is None:
                return
            end = tail.end()
        span = _trim(text, found.start(), found.end(), self.place_stop, leading=True)
        if span and span[1] == found.end():
            yield _Candidate(span[0], end, scan.kind, _PATTERN)

    # -- running the rules --------------------------------------------------------------

    def _trigger_words(self, text: str) -> Iterator[tuple[int, str]]:
        """Where the words that start a rule occur."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a letter whose lower case is longer: word by word
            for m in _WORDS.finditer(text):
                if m.group().lower() in self.by_word:
                    yield m.start(), m.group().lower()
            return
        by_word = self.by_word
        for m in _WORDS.finditer(lowered):
            if m.group() in by_word:
                yield m.start(), m.group()

    def candidates(self, text: str) -> Iterator[_Candidate]:
        """Every candidate identifier in ``text``, overlapping ones included."""
        for start, word in self._trigger_words(text):
            for rule in self.by_word[word]:
                if rule.head is not None:  # a suffix: the name lies before it
                    head = rule.head.match(text, start)
                    if head is None:
                        continue
                    m = rule.pattern.search(text, max(0, start - _BACK_WINDOW), head.end())
                else:
                    m = rule.pattern.match(text, start)
                if m is not None:
                    yield from rule.emit(text, m)
        probe, groups = self._digit_probe
        for run in _DIGIT_RUNS.finditer(text):
            matched = probe.match(text, run.start())
            if matched is None:  # pragma: no cover - the probe always matches
                continue
            found = matched.groups()
            for rule, group in zip(self.at_digits, groups, strict=True):
                if found[group - 1] is not None:
                    m = rule.pattern.match(text, run.start())
                    if m is not None:
                        yield from rule.emit(text, m)
        for scan in self.scans:
            for m in _scan(scan.pattern, text, scan.before):
                if scan.emit is not None:
                    yield from scan.emit(text, m)
                else:
                    yield from self._compound(text, m, scan)
        at = text.find("@")
        while at != -1:
            start = at
            while (
                start > 0
                and at - start < 64
                and (text[start - 1].isalnum() or text[start - 1] in "._+-")
            ):
                start -= 1
            m = _EMAIL.match(text, start)
            if m is not None:
                yield _Candidate(m.start(), m.end(), "EMAIL", _PATTERN)
            at = text.find("@", at + 1)


@cache
def _rules(lang: str) -> _Rules:
    return _Rules(load_deid_data(lang))


# --------------------------------------------------------------------------------------
# Detection helpers
# --------------------------------------------------------------------------------------


def _words_in(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    return [
        (start + m.start(), start + m.end(), m.group()) for m in _TOKEN.finditer(text[start:end])
    ]


def _trim(
    text: str,
    start: int,
    end: int,
    stop: set[str],
    *,
    leading: bool = False,
    strip_leading: bool = True,
) -> tuple[int, int] | None:
    """Cut a run of capitalised words at its first stop word; drop particles at the ends.

    With ``leading``, stop words before the first name word are skipped instead (a sentence
    that begins "In Royal Brompton Hospital"). Without ``strip_leading``, particles before
    the first name word stay (``van der Berg``).
    """
    words = _words_in(text, start, end)
    kept: list[tuple[int, int, str]] = []
    for w_start, w_end, word in words:
        if word[:1].isupper() and _fold(word) in stop:
            if leading and not any(k[2][:1].isupper() for k in kept):
                kept = []
                continue
            break
        kept.append((w_start, w_end, word))
    while kept and not kept[-1][2][:1].isupper():
        kept.pop()
    while strip_leading and kept and not kept[0][2][:1].isupper():
        kept.pop(0)
    if not kept:
        return None
    return kept[0][0], kept[-1][1]


def _numeric_date(m: re.Match[str], order: str) -> _Candidate | None:
    """A date written in digits; day and month read in ``order`` unless one is over 12."""
    groups = m.groupdict()
    if "a" in groups:
        a, b = int(groups["a"]), int(groups["b"])
        day_first = order == "dmy"
        if a > 12 >= b:
            day_first = True
        elif b > 12 >= a:
            day_first = False
        d_name, m_name = ("a", "b") if day_first else ("b", "a")
    else:
        d_name, m_name = ("d" if "d" in groups else "", "m")
    day = int(groups[d_name]) if d_name else 1
    month = int(groups[m_name])
    year_text = groups.get("y")
    year = _full_year(year_text) if year_text else 2000
    try:
        date(year, month, day)
    except ValueError:
        return None
    parts = _DateParts(
        m.span(d_name) if d_name else None,
        m.span(m_name),
        m.span("y") if year_text else None,
        None,
        None,
    )
    return _Candidate(m.start(), m.end(), "DATE", _PATTERN, parts)


def _full_year(text: str) -> int:
    value = int(text)
    if len(text) == 2:
        return 2000 + value if value < 50 else 1900 + value
    return value


def _select(candidates: Iterable[_Candidate]) -> list[_Candidate]:
    """Keep non-overlapping candidates: the longest first, then the most trusted rule."""
    ordered = sorted(
        (c for c in candidates if c.end > c.start),
        key=lambda c: (-(c.end - c.start), -c.strength, KINDS.index(c.kind), c.start),
    )
    starts: list[int] = []
    ends: list[int] = []
    chosen: list[_Candidate] = []
    for candidate in ordered:
        i = bisect_right(starts, candidate.start)
        if i > 0 and ends[i - 1] > candidate.start:
            continue
        if i < len(starts) and starts[i] < candidate.end:
            continue
        starts.insert(i, candidate.start)
        ends.insert(i, candidate.end)
        chosen.append(candidate)
    return sorted(chosen, key=lambda c: c.start)


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _detect(text: str, lang: str) -> list[_Candidate]:
    return _select(_rules(check_language(lang)).candidates(text))


def find_identifiers(text: str, lang: str) -> list[Identifier]:
    """Find the identifiers in a note, without replacing them.

    Parameters
    ----------
    text : str
        The note.
    lang : str
        Its language code (``es``, ``en``, ``it``, ``nl``, ``sv``, ``cs``, ``ro``).

    Returns
    -------
    list of Identifier
        Non-overlapping identifiers in text order.
    """
    text = _check_text(text)
    return [Identifier(c.start, c.end, c.kind) for c in _detect(text, lang)]


def add_identifiers(doc: Doc) -> Doc:
    """Pipeline component: fill ``doc.spans["identifiers"]``, labelled by kind.

    Parameters
    ----------
    doc : spacy.tokens.Doc
        A note made by :func:`cardiobox.nlp.doc.make_doc`; its ``lang_`` picks the rules.

    Returns
    -------
    spacy.tokens.Doc
        The same document. Spans are widened to token edges where an identifier ends
        inside a token.
    """
    spans = []
    for found in find_identifiers(note_text(doc), doc.lang_):
        span = doc.char_span(found.start, found.end, label=found.kind, alignment_mode="expand")
        if span is not None:
            spans.append(span)
    doc.spans[IDENTIFIERS] = spans
    return doc


# --------------------------------------------------------------------------------------
# Surrogates
# --------------------------------------------------------------------------------------


def date_shift_days(key: bytes, patient_id: str | None) -> int:
    """The date shift of a patient: HMAC-SHA256(key, patient id), within ±365 days, never 0.

    Parameters
    ----------
    key : bytes
        The secret key of the site (keep it out of the data).
    patient_id : str or None
        The patient's identifier; ``None`` gives the shift shared by notes without one.

    Returns
    -------
    int
        Days to add to every date of the patient.
    """
    digest = hmac.new(key, (patient_id or "").encode("utf-8"), hashlib.sha256).digest()
    value = int.from_bytes(digest[:8], "big") % (2 * _MAX_SHIFT_DAYS)
    return value - _MAX_SHIFT_DAYS if value < _MAX_SHIFT_DAYS else value - _MAX_SHIFT_DAYS + 1


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c in ".-"))


def _like_padding(value: int, original: str, numeric: bool) -> str:
    """``value`` written as ``original`` was: two digits ("03", "12") or as needed ("3").

    In a numeric date two digits mean a padded format; in words only a leading zero does.
    """
    padded = len(original) == 2 and (numeric or original.startswith("0"))
    return f"{value:02d}" if padded else str(value)


def _like_case(new: str, original: str) -> str:
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


class _Surrogates:
    """Fake values, each chosen by the HMAC of the key, the patient and the original."""

    def __init__(self, rules: _Rules, key: bytes, patient_id: str | None) -> None:
        self.rules = rules
        self.data = rules.data
        self.key = key
        self.patient = patient_id or ""
        self.shift = date_shift_days(key, patient_id)

    def _rng(self, *parts: str) -> random.Random:
        message = "\x1f".join([self.patient, *parts]).encode("utf-8")
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))

    def _pick(self, pool: list[str], kind: str, original: str) -> str:
        rng = self._rng(kind, original.casefold())
        index = rng.randrange(len(pool))
        choice = pool[index]
        if choice.casefold() == original.casefold():
            choice = pool[(index + 1) % len(pool)]
        return choice

    def render(self, text: str, candidate: _Candidate) -> str:
        original = text[candidate.start : candidate.end]
        kind = candidate.kind
        if kind == "DATE" and candidate.date is not None:
            return self.date(text, candidate)
        if kind == "AGE":
            return self.data.age_top_coded
        if kind == "PERSON":
            return self.person(original)
        if kind in ("ID", "PHONE"):
            return self.digits_and_letters(original, kind)
        if kind == "EMAIL":
            return self.email(original)
        if kind == "URL":
            return self.url(original)
        return self.place(original, kind)

    def person(self, original: str) -> str:
        words = list(_TOKEN.finditer(original))
        capitalised = [w for w in words if w.group()[:1].isupper() and not w.group().endswith(".")]
        out: list[str] = []
        last = 0
        for w in words:
            token = w.group()
            out.append(original[last : w.start()])
            last = w.end()
            if token.endswith(".") or len(token) == 1:  # an initial
                letter = self._rng("initial", token).choice("ABCDEFGHIJKLMNOPRSTV")
                out.append(letter + token[1:])
            elif not token[:1].isupper():
                out.append(token)  # a particle
            else:
                parts = token.split("-")
                first = w is (capitalised[0] if len(capitalised) >= 2 else None)
                out.append("-".join(self._name_part(p, first) for p in parts))
        out.append(original[last:])
        return "".join(out)

    def _name_part(self, part: str, first_of_several: bool) -> str:
        core = part[:-2] if part.endswith(("'s", "’s")) else part.rstrip("'’")
        tail = part[len(core) :]
        folded = _name_key(core)
        if folded in self.rules.first_names:
            pool = self.data.first_names
        elif folded in self.rules.surnames or not first_of_several:
            pool = self.data.surnames
        else:
            pool = self.data.first_names
        return _like_case(self._pick(pool, "person", core), core) + tail

    def digits_and_letters(self, original: str, kind: str) -> str:
        rng = self._rng(kind, original)
        keep = 0
        if kind == "PHONE":  # keep the country code and the trunk and first digits (06, 6)
            prefix = re.match(r"\(?\s*(?:\+|00)\d{1,3}\s*\)?[\s.-]*", original)
            keep = prefix.end() if prefix else 0
            first_digit = re.search(r"0*[1-9]", original[keep:])
            keep += first_digit.end() if first_digit else 0
        out = list(original)
        for i in range(keep, len(out)):
            c = out[i]
            if c.isdigit():
                out[i] = str(rng.randrange(1 if i == 0 else 0, 10))
            elif c.isalpha() and c.isascii():
                letter = rng.choice("ABCDEFGHJKLMNPRSTVWXYZ")
                out[i] = letter if c.isupper() else letter.lower()
        return "".join(out)

    def email(self, original: str) -> str:
        first = self._pick(self.data.first_names, "email-first", original)
        last = self._pick(self.data.surnames, "email-last", original)
        return f"{_ascii(first).lower()}.{_ascii(last).lower()}@example.org"

    def url(self, original: str) -> str:
        rng = self._rng("url", original)
        if _IPV4.fullmatch(original):
            return f"192.0.2.{rng.randrange(1, 255)}"  # TEST-NET-1, documentation only
        path = f"/{rng.randrange(100, 1000)}" if "/" in original.split("//", 1)[-1] else ""
        if original.lower().startswith("www."):
            return f"www.example.org{path}"
        scheme = original.split("://", 1)[0] if "://" in original else "https"
        return f"{scheme}://www.example.org{path}"

    def place(self, original: str, kind: str) -> str:
        """Streets, postal codes, towns and hospitals: keep the generic words, swap the rest."""
        tokens = list(_TOKEN.finditer(original))
        roles = [self._place_role(t.group()) for t in tokens]
        # Particles between two name words belong to the name (Alphen aan den Rijn).
        for i, role in enumerate(roles):
            if role == "particle":
                before = next((r for r in reversed(roles[:i]) if r != "particle"), None)
                after = next((r for r in roles[i + 1 :] if r not in ("particle", "name*")), None)
                roles[i] = "name*" if before in ("name", "name*") and after == "name" else "keep"
        roles = ["name" if r == "name*" else r for r in roles]
        out: list[str] = []
        last = 0
        i = 0
        while i < len(tokens):
            token = tokens[i].group()
            out.append(original[last : tokens[i].start()])
            role = roles[i]
            j = i
            if role == "name":
                while (
                    j + 1 < len(tokens)
                    and roles[j + 1] == "name"
                    and not original[tokens[j].end() : tokens[j + 1].start()].strip()
                ):
                    j += 1
                name = original[tokens[i].start() : tokens[j].end()]
                after_code = i > 0 and roles[i - 1] in ("number", "letters")
                out.append(self._place_name(name, kind, after_code))
            elif role == "number":
                rng = self._rng("number", token)
                first = str(rng.randrange(1, 10)) if token[0] != "0" else "0"
                out.append(first + "".join(str(rng.randrange(10)) for _ in token[1:]))
            elif role == "letters":  # letters of a postal code or a flat
                rng = self._rng("letters", token)
                out.append("".join(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in token))
            elif role == "compound":
                suffix = next(
                    s
                    for s in self.rules.compound_suffixes
                    if token.casefold().endswith(s.casefold())
                )
                pool = self.data.surrogate_streets if kind == "ADDRESS" else self.data.cities
                stem = self._pick(pool, "stem", token)
                whole = any(stem.endswith(s) for s in self.rules.compound_suffixes)
                out.append(stem if whole else stem + suffix)
            else:
                out.append(token)
            last = tokens[j].end()
            i = j + 1
        out.append(original[last:])
        return "".join(out)

    def _place_role(self, token: str) -> str:
        folded = token.casefold()
        if token.isdigit():
            return "number"
        if folded in self.rules.place_particles:
            return "name" if token[:1].isupper() else "particle"
        if folded in self.rules.keep_words or not token[:1].isupper():
            return "keep"
        if token.isupper() and len(token) <= 3:
            return "letters"
        suffixes = self.rules.compound_suffixes
        if any(folded.endswith(s.casefold()) and len(token) > len(s) for s in suffixes):
            return "compound"
        return "name"

    def _place_name(self, name: str, kind: str, after_number: bool) -> str:
        town = (
            kind == "PLACE"
            or after_number
            or tuple(_name_key(w) for w in name.split()) in self.rules.cities
        )
        pool = self.data.cities if town else self.data.surrogate_streets
        return self._pick(pool, "town" if town else "street", name)

    def date(self, text: str, candidate: _Candidate) -> str:
        parts = candidate.date
        if parts is None:  # pragma: no cover - callers check
            raise ValueError("not a date candidate")

        def read(span: tuple[int, int] | None) -> str | None:
            return text[span[0] : span[1]] if span else None

        day_text, month_text, year_text = read(parts.day), read(parts.month), read(parts.year)
        if parts.month_form is None:
            month = int(month_text or "1")
        else:
            month = self.rules.month_lookup[(month_text or "").casefold()][1]
        year = _full_year(year_text) if year_text else 2000
        if day_text:
            new = date(year, month, int(day_text)) + timedelta(days=self.shift)
        else:  # month and year only: move by whole months, at least one
            months = round(self.shift / 30.4375) or (1 if self.shift > 0 else -1)
            index = year * 12 + month - 1 + months
            new = date(index // 12, index % 12 + 1, 1)
        replacements: list[tuple[tuple[int, int], str]] = []
        if parts.day and day_text:
            numeric = parts.month_form is None
            replacements.append((parts.day, _like_padding(new.day, day_text, numeric)))
        if parts.suffix:
            suffixes = self.data.ordinal_suffixes
            old = text[parts.suffix[0] : parts.suffix[1]]
            replacements.append(
                (parts.suffix, suffixes.get(str(new.day), suffixes.get("default", old)))
            )
        if parts.month and month_text:
            if parts.month_form is None:
                value = _like_padding(new.month, month_text, True)
            else:
                value = _like_case(self.data.months[parts.month_form][new.month - 1], month_text)
            replacements.append((parts.month, value))
        if parts.year and year_text:
            replacements.append((parts.year, str(new.year)[-len(year_text) :]))
        out = text[candidate.start : candidate.end]
        for (start, end), value in sorted(replacements, reverse=True):
            out = out[: start - candidate.start] + value + out[end - candidate.start :]
        return out


# --------------------------------------------------------------------------------------
# Replacement
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replacement:
    """One replaced identifier: ``[start, end)`` in the original, ``[new_start, new_end)`` now.

    The original string is not kept.
    """

    start: int
    end: int
    kind: str
    new_start: int
    new_end: int

    def to_dict(self) -> dict[str, Any]:
        """The replacement as a JSON-ready mapping."""
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "new_start": self.new_start,
            "new_end": self.new_end,
        }


@dataclass(frozen=True)
class DeidResult:
    """A de-identified note and where each identifier was replaced.

    Attributes
    ----------
    text : str
        The note with every identifier replaced.
    spans : tuple of Replacement
        The replacements in text order.
    lang, mode : str
        The language and the replacement mode used.
    """

    text: str
    spans: tuple[Replacement, ...]
    lang: str
    mode: str

    def counts(self) -> dict[str, int]:
        """Number of identifiers replaced, per kind (every kind listed)."""
        out = dict.fromkeys(KINDS, 0)
        for span in self.spans:
            out[span.kind] += 1
        return out

    def map_offset(self, offset: int) -> int:
        """Move an offset of the original text to the new text.

        Offsets outside identifiers move by the length changes before them; an offset inside
        an identifier moves to the start of its replacement (its end for the end offset).

        Parameters
        ----------
        offset : int
            A character offset into the original text.

        Returns
        -------
        int
            The matching offset into :attr:`text`.
        """
        i = bisect_right([s.end for s in self.spans], offset)
        if i < len(self.spans) and self.spans[i].start < offset:
            span = self.spans[i]
            return span.new_start if offset - span.start < span.end - offset else span.new_end
        if i == 0:
            return offset
        previous = self.spans[i - 1]
        return previous.new_end + (offset - previous.end)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping, without any original string."""
        return {
            "lang": self.lang,
            "mode": self.mode,
            "text": self.text,
            "spans": [s.to_dict() for s in self.spans],
        }


def deidentify(
    text: str,
    lang: str,
    *,
    mode: str = "surrogate",
    key: bytes | None = None,
    patient_id: str | None = None,
) -> DeidResult:
    """Find the identifiers in a note and mask them or replace them by surrogates.

    Parameters
    ----------
    text : str
        The note.
    lang : str
        Its language code.
    mode : {"surrogate", "mask"}
        ``mask`` writes ``[KIND]``; ``surrogate`` (default) writes a fake of the same kind and
        form, dates shifted by the patient's shift.
    key : bytes, optional
        Secret key for the date shift and the surrogate choices. The same key and patient id
        give the same shift and surrogates in every note. ``None``: a random key for this
        call only (no consistency across calls).
    patient_id : str, optional
        The patient the note belongs to; ``None`` shares one shift among such notes.

    Returns
    -------
    DeidResult
        The new text and the replacements.

    Raises
    ------
    TypeError
        When ``text`` is not a str, ``key`` not bytes or ``patient_id`` not a str.
    DeidError
        When ``mode`` is not one of :data:`MODES`.
    LanguageError
        When ``lang`` is not supported.
    """
    text = _check_text(text)
    if mode not in MODES:
        raise DeidError(
            f"mode must be one of {', '.join(MODES)}, got {mode!r}", rule="invalid-mode"
        )
    if key is not None and not isinstance(key, bytes):
        raise TypeError(f"key must be bytes, got {type(key).__name__}")
    if patient_id is not None and not isinstance(patient_id, str):
        raise TypeError(f"patient_id must be a str, got {type(patient_id).__name__}")
    code = check_language(lang)
    candidates = _detect(text, code)
    surrogates = _Surrogates(_rules(code), key or secrets.token_bytes(32), patient_id)
    pieces: list[str] = []
    spans: list[Replacement] = []
    last = 0
    new_length = 0
    for candidate in candidates:
        before = text[last : candidate.start]
        pieces.append(before)
        new_length += len(before)
        value = f"[{candidate.kind}]" if mode == "mask" else surrogates.render(text, candidate)
        pieces.append(value)
        spans.append(
            Replacement(
                candidate.start, candidate.end, candidate.kind, new_length, new_length + len(value)
            )
        )
        new_length += len(value)
        last = candidate.end
    pieces.append(text[last:])
    return DeidResult("".join(pieces), tuple(spans), code, mode)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DeidError(
            f"not valid UTF-8 at byte {exc.start} ({exc.reason}); re-encode the file as UTF-8",
            rule="invalid-utf8",
            location=Location(file=str(path)),
        ) from None


def _jsonl_notes(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = Location(file=str(path), line=number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DeidError(
                f"not valid JSON: {exc.msg}", rule="invalid-json", location=where
            ) from None
        if not isinstance(record, dict):
            raise DeidError("expected a JSON object per line", rule="note-record", location=where)
        if "id" not in record or not isinstance(record.get("text"), str):
            raise DeidError(
                'a note needs "id" and a string "text"', rule="note-record", location=where
            )
        patient = record.get("patient_id")
        if patient is not None and not isinstance(patient, str | int):
            raise DeidError(
                '"patient_id" must be a string or an integer', rule="note-record", location=where
            )
        yield number, record


def deid_files(input: Path, lang: str, out: Path, mode: str, key: bytes | None) -> dict[str, int]:
    """De-identify a folder of ``.txt`` notes or a JSONL file of notes into ``out``.

    Parameters
    ----------
    input : Path
        A folder of ``.txt`` files (UTF-8, one note each), or a JSONL file with one object
        per line: ``{"id": ..., "text": ..., "patient_id": ...}`` (``patient_id`` optional).
    lang : str
        Language code of the notes.
    out : Path
        Output folder (created). A folder of ``.txt`` gives a ``.txt`` of the same name per
        note; a JSONL file gives ``out/<its name>`` with the same records, ``text`` replaced
        and an ``identifiers`` list (offsets and kinds, no original strings) added.
    mode : {"surrogate", "mask"}
        Replacement mode (see :func:`deidentify`).
    key : bytes, optional
        Secret key; ``None`` draws one random key for this run, so dates of a patient are
        shifted alike within the run only. Notes without a patient id (all ``.txt`` notes)
        share the shift of the empty patient id.

    Returns
    -------
    dict of str to int
        ``notes`` (how many were written) and the number of identifiers per kind.

    Raises
    ------
    DeidError
        When the input is missing or unreadable, a record is malformed, or ``out`` is the
        input folder.

    Warns
    -----
    LanguageMismatchWarning
        For each note that clearly reads as another language than ``lang`` (its identifiers
        would be looked for with the wrong lists), naming its file or JSONL line.
    """
    input, out = Path(input), Path(out)
    if mode not in MODES:
        raise DeidError(
            f"mode must be one of {', '.join(MODES)}, got {mode!r}", rule="invalid-mode"
        )
    code = check_language(lang)
    run_key = key if key is not None else secrets.token_bytes(32)
    counts = dict.fromkeys(("notes", *KINDS), 0)

    def tally(result: DeidResult) -> None:
        counts["notes"] += 1
        for kind, n in result.counts().items():
            counts[kind] += n

    def check(text: str, where: str) -> None:
        # Names, places and dates are found by each language's own lists and patterns.
        detected = other_language(text, code)
        if detected is not None:
            warnings.warn(
                f"{where} reads as {LANGUAGE_NAMES[detected]} ({detected}), not "
                f"{LANGUAGE_NAMES[code]} as declared; its identifiers may be missed: "
                f"de-identify it with --lang {detected}",
                LanguageMismatchWarning,
                stacklevel=3,
            )

    if input.is_dir():
        if out.resolve() == input.resolve():
            raise DeidError(
                "the output folder is the input folder; notes would be overwritten",
                rule="output-is-input",
                location=Location(file=str(out)),
            )
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(input.glob("*.txt")):
            text = _read_utf8(path)
            check(text, str(path))
            result = deidentify(text, code, mode=mode, key=run_key)
            (out / path.name).write_text(result.text, encoding="utf-8")
            tally(result)
        return counts
    if not input.is_file():
        raise DeidError(
            "no such file or folder", rule="missing-input", location=Location(file=str(input))
        )
    out.mkdir(parents=True, exist_ok=True)
    target = out / input.name
    if target.resolve() == input.resolve():
        raise DeidError(
            "the output file is the input file",
            rule="output-is-input",
            location=Location(file=str(target)),
        )
    lines: list[str] = []
    for number, record in _jsonl_notes(input):
        check(record["text"], f"{input}:{number}")
        patient = record.get("patient_id")
        result = deidentify(
            record["text"],
            code,
            mode=mode,
            key=run_key,
            patient_id=None if patient is None else str(patient),
        )
        record = {**record, "text": result.text, "identifiers": [s.to_dict() for s in result.spans]}
        lines.append(json.dumps(record, ensure_ascii=False))
        tally(result)
    target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return counts
