"""Measurements in clinical notes: LVEF, blood pressure, heart rate, NYHA class, labs, vitals.

The component finds mentions such as ``FEVI del 35 %``, ``TA 120/70 mmHg``, ``FC 80 lpm``,
``clase funcional III de la NYHA`` or ``creatinina 1,2 mg/dL`` and puts one span per value
into ``doc.spans["measurements"]``. The span's label is the data-model variable id
(``lvef``, ``systolic_bp``, ``creatinine``); its extensions hold the value in the variable's
canonical UCUM unit (``span._.value``, ``span._.unit``) or, for NYHA class, the coded answer
(``span._.value_code``, ``"http://loinc.org|LA28406-9"``, with the class number as value).

How a mention is read:

- **Labels** come from ``lang/<code>/measurements.yaml``. All labels of a language are
  compiled once (cached) into prefix-trie regexes and matched on the note with accents
  folded (``cardiaca`` finds ``cardíaca``; offsets do not move), in one left-to-right regex
  scan per note; Python runs once per candidate mention, never per token.
- Between a label and its value, up to six words (none of them another label),
  parenthesised abbreviations and ``:``, ``=``, ``(`` may stand: ``FEVI severamente
  deprimida (25 %)``, ``Tensión arterial (TA): 160/70``. A sentence end, a comma or a digit
  stops it. Phrases listed under ``ignore`` (``pérdida de peso de 5 kg``) give nothing.
- **Numbers** take a decimal comma or point; a mark that groups thousands in the language
  (``NT-proBNP 12.500`` in Spanish) is read as grouping when followed by exactly three digits.
- **Ranges** (``EF 30-35%``, ``FC 80 a 90 lpm``) give their midpoint: one number is what the
  data model stores, and the midpoint is the least biased single value.
- **Units** written after the value are read with :func:`cardiobox.ingest.units.normalise_unit`
  (plus the language's own spellings) and converted with
  :func:`cardiobox.ingest.units.conversion`. A unit that cannot be converted for the variable
  (``PCR 10 minutos``) discards the mention. Without a unit, the language's assumed units are
  tried in order (``creatinina 1,2`` is mg/dL in Spanish notes) and the first plausible
  reading is taken.
- **Plausibility**: a value outside the variable's physiological range in the data model
  (``LVEF 350 %``), or a blood pressure whose systolic value is not above the diastolic one,
  is not emitted. Values after a comparator (``FEVI > 55 %``) are not emitted either, because
  the span extensions have no place for the comparator.
- **NYHA class** is read from ``NYHA II``, ``NYHA klass II``, ``clase funcional III de la
  NYHA`` and ``II/IV NYHA``; a range (``NYHA II-III``) gives the higher class.
- A value with a unit that names the variable needs no label: ``ritmo sinusal a 75 lpm``.
- **Blood pressure** ``TA 120/70 mmHg`` gives two spans. spaCy keys span extension values
  by character offsets, so they cannot share an extent: the systolic span is the whole
  mention, the diastolic one ``120/70 mmHg``.

Mentions do not overlap: the scan takes the first one that starts, then goes on after it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from spacy.tokens import Doc, Span

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.codes import LOINC
from cardiobox.errors import InputError, Location
from cardiobox.ingest.units import Conversion, conversion, fold_unit, normalise_unit
from cardiobox.nlp.doc import MEASUREMENTS, note_text
from cardiobox.nlp.languages import LanguageError, check_language, language_dir, load_language_file

__all__ = [
    "NYHA_VARIABLE",
    "QUANTITY_VARIABLES",
    "Measurement",
    "MeasurementExtractor",
    "MeasurementLexicon",
    "extract_measurements",
    "find_measurements",
    "load_measurement_lexicon",
    "register_extensions",
]

#: Data-model variables read as quantities, the keys of ``quantities`` in every language file.
QUANTITY_VARIABLES: tuple[str, ...] = (
    "lvef",
    "systolic_bp",
    "diastolic_bp",
    "mean_bp",
    "heart_rate",
    "respiratory_rate",
    "oxygen_saturation",
    "mixed_venous_oxygen_saturation",
    "inhaled_oxygen_concentration",
    "body_temperature",
    "body_weight",
    "body_height",
    "bmi",
    "bsa",
    "waist_circumference",
    "central_venous_pressure",
    "qrs_duration",
    "qtc",
    "pr_interval",
    "hemoglobin",
    "nt_probnp",
    "bnp",
    "ferritin",
    "transferrin_saturation",
    "crp",
    "hs_crp",
    "hs_troponin_i",
    "troponin_i",
    "hs_troponin_t",
    "troponin_t",
    "triglycerides",
    "total_cholesterol",
    "hdl_cholesterol",
    "ldl_cholesterol",
    "potassium",
    "sodium",
    "creatinine",
    "urine_creatinine",
    "albumin",
    "urine_albumin",
    "egfr",
    "urea",
    "urea_nitrogen",
    "albumin_creatinine_ratio",
    "protein_creatinine_ratio",
    "hba1c",
    "hba1c_ifcc",
    "rdw",
    "ast",
    "alt",
    "ggt",
    "alp",
    "bilirubin",
    "platelets",
    "creatine_kinase",
)

#: The coded variable read by this component.
NYHA_VARIABLE = "nyha_class"

_SYSTOLIC, _DIASTOLIC = "systolic_bp", "diastolic_bp"
_IGNORED = ""  # the "variable" of the phrases to ignore
_DATA_FILE = "measurements"


# ---------------------------------------------------------------------------------------------
# The language file
# ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: A label or phrase: text with at least one non-space character.
_Phrase = Annotated[str, StringConstraints(pattern=r"\S")]


class QuantityEntry(_Strict):
    """Labels of one quantity variable and the units assumed when a note writes none.

    Parameters
    ----------
    labels : list of str
        Phrases written before the value (``FEVI``, ``fracción de eyección``).
    assume : list of str
        Units tried in order for a value written without a unit; the first giving a
        plausible value is taken. Empty: the variable's canonical unit.
    """

    labels: list[_Phrase] = Field(min_length=1)
    assume: list[str] = Field(default_factory=list)


class NyhaEntry(_Strict):
    """Phrases of the NYHA scale.

    Parameters
    ----------
    labels : list of str
        Names of the scale (``NYHA``), before or after the class.
    class_words : list of str
        Words for "class" written before the class number (``clase funcional``).
    """

    labels: list[_Phrase] = Field(min_length=1)
    class_words: list[_Phrase] = Field(min_length=1)


class MeasurementLexicon(_Strict):
    """The schema of ``lang/<code>/measurements.yaml`` (see the header of any such file).

    Parameters
    ----------
    decimal_mark : {",", "."}
        The language's decimal separator.
    thousands_separators : list of str
        Single characters that group thousands in the language.
    range_words : list of str
        Words joining the ends of a range, besides the dash.
    not_units : list of str
        Words that mean no unit after a value, although a unit table knows them.
    units : dict
        Language spellings of units, mapped to UCUM codes.
    unit_cues : dict
        Variable id to units that identify the variable without a label.
    ignore : list of str
        Phrases that look like a label but name no measurement (``pérdida de peso``).
    blood_pressure : list of str
        Labels before a systolic/diastolic pair.
    nyha : NyhaEntry
        Phrases of the NYHA scale.
    quantities : dict
        Variable id (each of :data:`QUANTITY_VARIABLES`) to its :class:`QuantityEntry`.
    """

    decimal_mark: Literal[",", "."]
    thousands_separators: list[Literal[".", ",", " ", "\u00a0", "\u202f", "'"]]
    range_words: list[_Phrase]
    not_units: list[_Phrase]
    units: dict[_Phrase, _Phrase]
    unit_cues: dict[str, list[_Phrase]]
    ignore: list[_Phrase]
    blood_pressure: list[_Phrase] = Field(min_length=1)
    nyha: NyhaEntry
    quantities: dict[str, QuantityEntry]


def _fail(lang: str, message: str) -> LanguageError:
    path = language_dir(lang) / f"{_DATA_FILE}.yaml"
    return LanguageError(message, rule="language-data", location=Location(file=str(path)))


@cache
def load_measurement_lexicon(lang: str) -> MeasurementLexicon:
    """Load and validate ``lang/<lang>/measurements.yaml`` (cached).

    Besides the schema, it checks that ``quantities`` has exactly the variables of
    :data:`QUANTITY_VARIABLES`, that every unit named is one that
    :mod:`cardiobox.ingest.units` knows, and that assumed units and unit cues convert to the
    variable's canonical unit.

    Parameters
    ----------
    lang : str
        Language code.

    Returns
    -------
    MeasurementLexicon

    Raises
    ------
    LanguageError
        Naming the file, with rule ``language-data``, when the file breaks a rule.
    """
    code = check_language(lang)
    raw = load_language_file(code, _DATA_FILE)
    try:
        lexicon = MeasurementLexicon.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise _fail(code, f"invalid measurement lexicon: {problems}") from None
    missing = sorted(set(QUANTITY_VARIABLES) - set(lexicon.quantities))
    unknown = sorted(set(lexicon.quantities) - set(QUANTITY_VARIABLES))
    if missing or unknown:
        raise _fail(
            code,
            f"quantities must list exactly the supported variables; missing {missing}, "
            f"unknown {unknown}",
        )
    for spelling, ucum in lexicon.units.items():
        try:
            normalise_unit(ucum)
        except InputError as exc:
            raise _fail(code, f"units: {spelling!r} maps to {exc.message}") from None
    for variable, entry in lexicon.quantities.items():
        for unit in entry.assume:
            if _conversion(variable, unit) is None:
                raise _fail(code, f"quantities.{variable}.assume: {unit!r} does not convert")
    for variable, cues in lexicon.unit_cues.items():
        if variable not in lexicon.quantities:
            raise _fail(code, f"unit_cues: {variable!r} is not one of the quantities")
        for cue in cues:
            cue_code = _unit_code(cue, variable, lexicon)
            if cue_code is None or _conversion(variable, cue_code) is None:
                raise _fail(code, f"unit_cues.{variable}: {cue!r} is not a unit of {variable}")
    return lexicon


# ---------------------------------------------------------------------------------------------
# Spans and their extensions
# ---------------------------------------------------------------------------------------------


def register_extensions() -> None:
    """Register the span extensions ``value``, ``unit`` and ``value_code`` (idempotent)."""
    for name in ("value", "unit", "value_code"):
        if not Span.has_extension(name):
            Span.set_extension(name, default=None)


@dataclass(frozen=True)
class Measurement:
    """One value found in a note.

    Parameters
    ----------
    variable : str
        Data-model variable id.
    start, end : int
        Character offsets of the mention (label, value and unit) in the note.
    value : float
        The value in the canonical unit; the class number (1-4) for NYHA.
    unit : str or None
        The variable's canonical UCUM unit; ``None`` for coded variables.
    value_code : str or None
        ``system|code`` of the coded answer (NYHA class), else ``None``.
    """

    variable: str
    start: int
    end: int
    value: float
    unit: str | None
    value_code: str | None = None


class MeasurementExtractor:
    """Pipeline component filling ``doc.spans["measurements"]``.

    Parameters
    ----------
    lang : str, optional
        Language of the notes; by default each document's ``doc.lang_``.

    Examples
    --------
    >>> from cardiobox.nlp.doc import make_doc
    >>> doc = MeasurementExtractor()(make_doc("FEVI del 35 %, TA 120/70 mmHg.", "es"))
    >>> [(s.label_, s._.value) for s in doc.spans["measurements"]]
    [('lvef', 35.0), ('systolic_bp', 120.0), ('diastolic_bp', 70.0)]
    """

    def __init__(self, lang: str | None = None) -> None:
        self.lang = check_language(lang) if lang is not None else None
        register_extensions()
        if self.lang is not None:
            _patterns(self.lang)  # fail early on a broken language file

    def __call__(self, doc: Doc) -> Doc:
        """Find the measurements of ``doc`` and store them as spans; returns ``doc``."""
        lang = self.lang or doc.lang_
        spans: list[Span] = []
        for found in find_measurements(note_text(doc), lang):
            span = doc.char_span(
                found.start, found.end, label=found.variable, alignment_mode="expand"
            )
            if span is None:  # only for an empty or out-of-range span, which is never made
                continue
            span._.value = found.value
            span._.unit = found.unit
            span._.value_code = found.value_code
            spans.append(span)
        doc.spans[MEASUREMENTS] = spans
        return doc


def extract_measurements(doc: Doc) -> Doc:
    """Fill ``doc.spans["measurements"]`` for a document in language ``doc.lang_``.

    Parameters
    ----------
    doc : spacy.tokens.Doc
        A document made by :func:`cardiobox.nlp.doc.make_doc`.

    Returns
    -------
    spacy.tokens.Doc
        The same document.
    """
    return MeasurementExtractor()(doc)


def find_measurements(text: str, lang: str) -> list[Measurement]:
    """Every measurement in ``text``, in order of position.

    Parameters
    ----------
    text : str
        The note.
    lang : str
        Its language code.

    Returns
    -------
    list of Measurement
        The measurements of non-overlapping mentions; a blood pressure gives two (the
        diastolic one without the label: see :func:`_read_blood_pressure`).
    """
    patterns = _patterns(check_language(lang))
    folded = _fold(text)
    out: list[Measurement] = []
    pos = 0
    # One regex scan; a Python step per candidate mention only.
    while (match := patterns.mention.search(folded, pos)) is not None:
        kind = next(k for k in _KINDS if match.start(f"{k}_{_FIRST_GROUP[k]}") >= 0)
        groups = _Groups(match, kind)
        inner = _label_in_gap(groups, folded, patterns)
        if inner is not None:  # a label inside the gap starts the next mention
            pos = inner
            continue
        if kind == "q" and patterns.labels.ignored(groups["label"] or ""):
            pos = match.end()
            continue
        found = _READERS[kind](groups, text, patterns)
        if found:
            out.extend(found)
            pos = max(m.end for m in found)
        else:
            pos = match.start() + 1
    return out


# ---------------------------------------------------------------------------------------------
# Text folding and label regexes
# ---------------------------------------------------------------------------------------------


def _fold_table() -> dict[int, str]:
    """Latin letters with diacritics to their base letter, one character for one."""
    table: dict[int, str] = {}
    for point in range(0xC0, 0x250):
        base = unicodedata.normalize("NFD", chr(point))[0]
        if base != chr(point) and base.isascii() and base.isalpha():
            table[point] = base
    return table


_FOLD = _fold_table()
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_HS = r"[^\S\n]"  # horizontal white space
_LETTER = r"[^\W\d_]"
_NOT_LETTER_AFTER = rf"(?!{_LETTER})"


def _fold(text: str) -> str:
    """``text`` with accents removed from Latin letters; every character keeps its offset."""
    if text.isascii():
        return text
    # Only the runs of non-ASCII characters go through Python: a few per line of a note.
    return _NON_ASCII.sub(lambda m: m.group().translate(_FOLD), text)


def _case_sensitive(label: str) -> bool:
    """Short codes with a capital (``TA``, ``Hb``, ``K``) keep their case; phrases do not."""
    compact = re.sub(r"[\s\-]", "", label)
    return len(compact) <= 4 and any(c.isupper() for c in compact)


def _atoms(label: str) -> tuple[str, ...]:
    """Regex pieces, one per character of the accent-folded label."""
    sensitive = _case_sensitive(label)
    atoms: list[str] = []
    for char in _fold(label.strip()):
        if char.isspace():
            atom = rf"{_HS}+"
        elif char in "-\u2010\u2013":
            atom = rf"(?:[-\u2010\u2013]{_HS}?|{_HS})?"
        elif not sensitive and char.lower() != char.upper():
            atom = f"[{char.lower()}{char.upper()}]" if char.isascii() else f"(?i:{char})"
        else:
            atom = re.escape(char)
        if atoms and atom == atoms[-1] == rf"{_HS}+":
            continue
        atoms.append(atom)
    return tuple(atoms)


#: A prefix trie of regex atoms; the key "" marks the end of a label.
_Trie: TypeAlias = dict[str, "_Trie"]


def _trie(labels: Iterable[str]) -> str:
    """One regex matching any of ``labels``, longest first, factored as a prefix trie."""
    trie: _Trie = {}
    end = ""  # key marking the end of a label (no atom is empty)
    for label in labels:
        node = trie
        for atom in _atoms(label):
            node = node.setdefault(atom, {})
        node[end] = {}

    def emit(node: _Trie) -> str:
        branches = [
            atom + emit(node[atom])
            for atom in sorted((k for k in node if k != end), key=lambda a: (-len(a), a))
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end in node:
            return f"(?:{body})?"
        return body

    return emit(trie)


def _trie_regex(labels: Iterable[str]) -> str:
    """Regex of labels for the accent-folded text: phrases ignore case, short codes do not."""
    return _trie(labels) or "(?!x)x"


def _label_key(text: str, sensitive: bool) -> str:
    key = re.sub(r"[\s\-\u2010\u2013]+", "", _fold(text))
    return key if sensitive else key.lower()


class _LabelIndex:
    """Matched label text to the variables it may name (case-sensitive labels first)."""

    def __init__(self, labels: Iterable[tuple[str, str]]):
        self.sensitive: dict[str, list[str]] = {}
        self.insensitive: dict[str, list[str]] = {}
        for label, variable in labels:
            sensitive = _case_sensitive(label)
            table = self.sensitive if sensitive else self.insensitive
            names = table.setdefault(_label_key(label, sensitive), [])
            if variable not in names:
                names.append(variable)

    def ignored(self, text: str) -> bool:
        """Whether the matched label is a phrase to ignore (it names no variable)."""
        return self.lookup(text) == [_IGNORED]

    def lookup(self, text: str) -> list[str]:
        hit = self.sensitive.get(_label_key(text, True))
        return hit if hit is not None else self.insensitive.get(_label_key(text, False), [])


# ---------------------------------------------------------------------------------------------
# The mention regex of a language
# ---------------------------------------------------------------------------------------------

#: Kinds of mention, the alternatives of the mention regex, in the order they are tried:
#: quantity, blood pressure, NYHA before the class, NYHA after it, "II/IV NYHA", unit cue.
_KINDS = ("q", "bp", "nb", "na", "n4", "cue")
_FIRST_GROUP = {"q": "label", "bp": "label", "nb": "label", "na": "word", "n4": "c1", "cue": "v1"}

#: Most words and signs between a label and its value (``FEVI por Simpson biplano: 42 %``).
_GAP_ITEMS = 6
_ROMAN = r"(?:IV|I{1,3})[ab]?(?!\w)"
_ARABIC_CLASS = r"[1-4](?![\d.,])"
_COMPARATORS = frozenset("<>\u2264\u2265")


@dataclass(frozen=True)
class _Patterns:
    lang: str
    lexicon: MeasurementLexicon
    not_units: frozenset[str]
    labels: _LabelIndex
    mention: re.Pattern[str]
    any_label: re.Pattern[str]  # every label, to keep labels out of gaps
    cue_variables: dict[str, str]  # unit key of a cue -> variable
    grouped_number: re.Pattern[str]
    thousands: str


class _Groups:
    """The groups of one alternative of the mention regex, by their short names."""

    def __init__(self, match: re.Match[str], kind: str):
        self.match = match
        self.kind = kind

    def __getitem__(self, name: str) -> str | None:
        value: str | None = self.match.group(f"{self.kind}_{name}")
        return value

    def has(self, name: str) -> bool:
        return f"{self.kind}_{name}" in self.match.re.groupindex

    def span(self, name: str) -> tuple[int, int]:
        return self.match.span(f"{self.kind}_{name}")

    def start(self) -> int:
        return self.match.start()

    def end(self) -> int:
        return self.match.end()


def _number_regex(lexicon: MeasurementLexicon) -> tuple[str, str]:
    """The number regex and the regex of numbers with thousands groups."""
    seps = "|".join(
        "[ \u00a0\u202f]" if sep == " " else re.escape(sep) for sep in lexicon.thousands_separators
    )
    decimal = re.escape(lexicon.decimal_mark)
    grouped = rf"[1-9]\d{{0,2}}(?:(?:{seps})\d{{3}})+(?!\d)(?:{decimal}\d+)?" if seps else ""
    plain = r"\d+(?:[.,]\d+)?"
    number = f"(?:{grouped}|{plain})" if grouped else plain
    return number, grouped


def _gap(name: str, items: int, extra_guard: str = "") -> str:
    """Words, a parenthesised abbreviation and ``:=()`` between a label and its value.

    A gap must not hold another label (``FEVI conservada y TA 120/80`` is no LVEF of 120);
    that is checked after matching (:func:`_label_in_gap`), which keeps the regex small.
    """
    word = rf"{extra_guard}{_LETTER}{{1,20}}{_NOT_LETTER_AFTER}"
    paren = rf"\({_LETTER}[^\W_]{{0,15}}(?:-{_LETTER}{{1,10}})?\)"
    item = rf"(?:{word}|{paren}|[:=()\[\]<>\u2264\u2265~\u2248]+)"
    return rf"(?P<{name}>(?:{_HS}*{item}){{0,{items}}}{_HS}*)"


def _alternatives(lexicon: MeasurementLexicon, number: str) -> dict[str, str]:
    """The regex of each kind of mention (group names prefixed by the kind)."""
    quantity_labels = _trie_regex(
        [lab for e in lexicon.quantities.values() for lab in e.labels] + lexicon.ignore
    )
    nyha_labels = _trie_regex(lexicon.nyha.labels)
    words = "|".join(_trie_regex([w]) for w in lexicon.range_words) or "-"
    joiner = rf"(?:{_HS}*[-\u2013]{_HS}*|{_HS}+(?:{words}){_HS}+)"
    after_value = rf"(?!\d|[.,]\d|{_HS}*/{_HS}*\d)"

    def value(k: str) -> str:
        return (
            rf"(?<![\d.,])(?P<{k}_v1>{number})"
            rf"(?:{_HS}*%?(?:{joiner})(?P<{k}_v2>{number}))?{after_value}"
        )

    def nyha_gap(k: str, name: str, items: int) -> str:
        # In NYHA gaps a roman numeral is the class, never a filler word.
        return _gap(f"{k}_{name}", items, rf"(?!{_ROMAN})")

    cues = _trie_regex(c for spellings in lexicon.unit_cues.values() for c in spellings)
    return {
        "q": (
            rf"(?P<q_label>{quantity_labels}){_NOT_LETTER_AFTER}"
            rf"{_gap('q_gap', _GAP_ITEMS)}{value('q')}"
        ),
        "bp": (
            rf"(?P<bp_label>{_trie_regex(lexicon.blood_pressure)}){_NOT_LETTER_AFTER}"
            rf"{_gap('bp_gap', _GAP_ITEMS)}(?<![\d.,])(?P<bp_sys>\d{{2,3}}){_HS}*/{_HS}*"
            rf"(?P<bp_dia>\d{{2,3}})(?![\d/]|[.,]\d)"
        ),
        "nb": (
            rf"(?P<nb_label>{nyha_labels}){_NOT_LETTER_AFTER}{nyha_gap('nb', 'gap', _GAP_ITEMS)}"
            rf"(?P<nb_c1>{_ROMAN}|{_ARABIC_CLASS})(?:{_HS}*(?P<nb_sep>[-\u2013/]|{words}){_HS}*"
            rf"(?P<nb_c2>{_ROMAN}|{_ARABIC_CLASS}))?"
        ),
        "na": (
            rf"(?P<na_word>{_trie_regex(lexicon.nyha.class_words)}){_NOT_LETTER_AFTER}"
            rf"{nyha_gap('na', 'gap', _GAP_ITEMS)}(?P<na_c1>{_ROMAN})"
            rf"(?:{_HS}*(?P<na_sep>[-\u2013/]){_HS}*(?P<na_c2>{_ROMAN}))?"
            rf"{nyha_gap('na', 'gap2', 3)}(?P<na_label>{nyha_labels}){_NOT_LETTER_AFTER}"
        ),
        "n4": (
            rf"(?P<n4_c1>{_ROMAN}){_HS}*(?P<n4_sep>/){_HS}*(?P<n4_c2>IV)(?!\w)"
            rf"{nyha_gap('n4', 'gap2', 3)}(?P<n4_label>{nyha_labels}){_NOT_LETTER_AFTER}"
        ),
        "cue": rf"(?<![.,/]){value('cue')}{_HS}*(?P<cue_unit>{cues})(?!\w)",
    }


@cache
def _patterns(lang: str) -> _Patterns:
    """The compiled mention regex and lookups of a language (cached)."""
    lexicon = load_measurement_lexicon(lang)
    pairs = [(lab, var) for var, e in lexicon.quantities.items() for lab in e.labels]
    pairs += [(phrase, _IGNORED) for phrase in lexicon.ignore]
    number, grouped = _number_regex(lexicon)
    alternatives = _alternatives(lexicon, number)
    # Every kind starts at a word start: checking it once, before the alternatives, makes
    # the scan several times faster than one regex per kind.
    mention = re.compile(r"(?<!\w)(?:" + "|".join(alternatives[k] for k in _KINDS) + ")")
    every_label = [lab for lab, _ in pairs] + lexicon.blood_pressure + lexicon.nyha.labels
    cue_variables = {
        _unit_key(spelling): variable
        for variable, spellings in lexicon.unit_cues.items()
        for spelling in spellings
    }
    return _Patterns(
        lang=lang,
        lexicon=lexicon,
        not_units=frozenset(word.lower() for word in lexicon.not_units),
        labels=_LabelIndex(pairs),
        mention=mention,
        any_label=re.compile(rf"(?<!\w)(?:{_trie_regex(every_label)}){_NOT_LETTER_AFTER}"),
        cue_variables=cue_variables,
        grouped_number=re.compile(grouped or r"(?!x)x"),
        thousands="".join(lexicon.thousands_separators) + "\u00a0\u202f",
    )


def _label_in_gap(groups: _Groups, folded: str, patterns: _Patterns) -> int | None:
    """Where the first label inside the mention's gaps starts, if one does.

    A label in parentheses is the abbreviation of the one before it (``Tensión arterial
    (TA): 120/70``), not a mention of its own.
    """
    found: list[int] = []
    for name in ("gap", "gap2"):
        if not groups.has(name):
            continue
        start, end = groups.span(name)
        for hit in patterns.any_label.finditer(folded, start, end):
            if (
                folded[hit.start() - 1 : hit.start()] == "("
                and folded[hit.end() : hit.end() + 1] == ")"
            ):
                continue
            found.append(hit.start())
            break
    return min(found) if found else None


# ---------------------------------------------------------------------------------------------
# Values and units
# ---------------------------------------------------------------------------------------------


def _parse_number(raw: str, patterns: _Patterns) -> float:
    """``"12.500"`` (thousands grouped), ``"1,2"``, ``"0.014"`` as a float."""
    if patterns.grouped_number.fullmatch(raw):
        digits = "".join(c for c in raw if c not in patterns.thousands and not c.isspace())
        return float(digits.replace(patterns.lexicon.decimal_mark, "."))
    return float(raw.replace(",", "."))


def _value(groups: _Groups, patterns: _Patterns) -> float:
    """The value of a mention; the midpoint of a range (``30-35 %`` is 32.5)."""
    first = _parse_number(groups["v1"] or "", patterns)
    second = groups["v2"]
    return first if second is None else (first + _parse_number(second, patterns)) / 2


@cache
def _conversion(variable: str, unit: str) -> Conversion | None:
    """The conversion of ``unit`` to the variable's canonical unit, or None."""
    try:
        return conversion(variable, unit)
    except InputError:
        return None


def _unit_key(spelling: str) -> str:
    return _fold(fold_unit(spelling))


@cache
def _language_units(lang_units: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {_unit_key(k): v for k, v in lang_units}


def _unit_code(spelling: str, variable: str, lexicon: MeasurementLexicon) -> str | None:
    """UCUM code of a written unit (language spellings first), or None if unknown."""
    own = _language_units(tuple(lexicon.units.items())).get(_unit_key(spelling))
    if own is not None:
        return own
    try:
        return normalise_unit(spelling, variable)
    except InputError:
        return None


@lru_cache(maxsize=8192)
def _written_unit(spelling: str, variable: str, lang: str) -> str | None:
    """:func:`_unit_code` with the language's lexicon, cached (notes repeat their units)."""
    return _unit_code(spelling, variable, load_measurement_lexicon(lang))


_TRAILING = re.compile(r"[.,;:)\]]+$")
_UNIT_WORDS = re.compile(rf"{_HS}*(\S+)(?:{_HS}+(\S+))?(?:{_HS}+(\S+))?")


def _unit_candidates(text: str, pos: int) -> Iterator[tuple[str, int]]:
    """The one to three words after ``pos`` and where they end, longest first.

    Trailing punctuation (``mg/dL,``, ``%)``) is not part of a candidate.
    """
    match = _UNIT_WORDS.match(text, pos, min(len(text), pos + 60))
    if match is None:
        return
    count = sum(1 for g in match.groups() if g is not None)
    for n in range(count, 0, -1):
        raw = text[match.start(1) : match.end(n)]
        candidate = _TRAILING.sub("", raw)
        if candidate:
            yield candidate, match.start(1) + len(candidate)


@dataclass(frozen=True)
class _Unit:
    """What follows a value: no unit, a unit (its UCUM code and end), or an unreadable one."""

    code: str | None
    end: int
    unreadable: bool = False


def _read_unit(text: str, pos: int, variables: Sequence[str], patterns: _Patterns) -> _Unit:
    """The unit written at ``pos`` for a value of one of ``variables``."""
    first = ""
    for candidate, end in _unit_candidates(text, pos):
        first = candidate
        if candidate.lower() in patterns.not_units:
            return _Unit(None, pos)
        code = _written_unit(candidate, variables[0], patterns.lang)
        if code is not None:
            return _Unit(code, end)
    # An unknown word with a slash after the value is a unit that cannot be read
    # (``ml/kg/min``): the value's meaning is unknown.
    return _Unit(None, pos, unreadable="/" in first)


def _plausible(variable: str, value: float) -> bool:
    bounds = load_dictionary()[variable].range
    return bounds is None or bounds[0] <= value <= bounds[1]


def _resolve(
    variables: Sequence[str], value: float, unit: _Unit, patterns: _Patterns
) -> tuple[str, float] | None:
    """The variable and canonical value a mention stands for, or None if none is plausible."""
    dictionary = load_dictionary()
    if unit.unreadable:
        return None
    if unit.code is not None:
        # A label shared by two variables (HbA1c in % and in mmol/mol): the unit decides.
        ordered = sorted(variables, key=lambda v: dictionary[v].unit != unit.code)
        for variable in ordered:
            conv = _conversion(variable, unit.code)
            if conv is not None and _plausible(variable, conv.apply(value)):
                return variable, conv.apply(value)
        return None
    for variable in variables:
        entry = patterns.lexicon.quantities[variable]
        for assumed in entry.assume or [dictionary[variable].unit or ""]:
            conv = _conversion(variable, assumed)
            if conv is not None and _plausible(variable, conv.apply(value)):
                return variable, conv.apply(value)
    return None


def _canonical_unit(variable: str) -> str | None:
    return load_dictionary()[variable].unit


# ---------------------------------------------------------------------------------------------
# Readers: one regex match to measurements
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Readers: one mention to its measurements
# ---------------------------------------------------------------------------------------------


def _read_quantity(groups: _Groups, text: str, patterns: _Patterns) -> list[Measurement]:
    gap = groups["gap"] or ""
    if _COMPARATORS & set(gap):
        return []
    value_start = groups.span("v1")[0]
    if gap and text[value_start - 1].isalpha():  # "peso P3": a word glued to the number
        return []
    variables = patterns.labels.lookup(groups["label"] or "")
    if not variables:
        return []
    value = _value(groups, patterns)
    unit = _read_unit(text, groups.end(), variables, patterns)
    resolved = _resolve(variables, value, unit, patterns)
    if resolved is None:
        return []
    variable, canonical = resolved
    return [Measurement(variable, groups.start(), unit.end, canonical, _canonical_unit(variable))]


def _read_cue(groups: _Groups, text: str, patterns: _Patterns) -> list[Measurement]:
    spelling = groups["unit"] or ""
    variable = patterns.cue_variables.get(_unit_key(spelling))
    if variable is None:
        return []
    unit = _Unit(_written_unit(spelling, variable, patterns.lang), groups.end())
    resolved = _resolve([variable], _value(groups, patterns), unit, patterns)
    if resolved is None:
        return []
    return [
        Measurement(variable, groups.start(), groups.end(), resolved[1], _canonical_unit(variable))
    ]


def _read_blood_pressure(groups: _Groups, text: str, patterns: _Patterns) -> list[Measurement]:
    """Two measurements from ``TA 120/70 mmHg``.

    spaCy keys span extension values by character offsets, so the two spans must differ:
    the systolic value spans the whole mention, the diastolic one the pair and unit
    (``120/70 mmHg``).
    """
    if _COMPARATORS & set(groups["gap"] or ""):
        return []
    unit = _read_unit(text, groups.end(), [_SYSTOLIC], patterns)
    systolic = _resolve([_SYSTOLIC], float(groups["sys"] or "nan"), unit, patterns)
    diastolic = _resolve([_DIASTOLIC], float(groups["dia"] or "nan"), unit, patterns)
    if systolic is None or diastolic is None or systolic[1] <= diastolic[1]:
        return []
    return [
        Measurement(_SYSTOLIC, groups.start(), unit.end, systolic[1], _canonical_unit(_SYSTOLIC)),
        Measurement(
            _DIASTOLIC, groups.span("sys")[0], unit.end, diastolic[1], _canonical_unit(_DIASTOLIC)
        ),
    ]


_ROMAN_VALUES = {"I": 1, "II": 2, "III": 3, "IV": 4}


def _nyha_number(raw: str) -> int:
    raw = raw.rstrip("ab")
    return int(raw) if raw.isdigit() else _ROMAN_VALUES[raw]


@cache
def _nyha_codes() -> dict[int, str]:
    """Class number to the data model's LOINC answer, as ``system|code``."""
    variable = load_dictionary()[NYHA_VARIABLE]
    codes: dict[int, str] = {}
    for answer in variable.answers:
        if answer.system == LOINC and isinstance(answer.value, int):
            codes.setdefault(answer.value, f"{answer.system}|{answer.code}")
    return codes


def _read_nyha(groups: _Groups, text: str, patterns: _Patterns) -> list[Measurement]:
    gaps = (groups[name] or "" for name in ("gap", "gap2") if groups.has(name))
    if any(_COMPARATORS & set(gap) for gap in gaps):
        return []
    cls = _nyha_number(groups["c1"] or "")
    if groups["c2"] is not None:
        second = _nyha_number(groups["c2"])
        # "II/IV" is class II of four; "II-III" and "II/III" are ranges: the higher class.
        out_of_four = groups["sep"] == "/" and second == 4
        cls = cls if out_of_four else max(cls, second)
    code = _nyha_codes().get(cls)
    if code is None:
        return []
    return [Measurement(NYHA_VARIABLE, groups.start(), groups.end(), float(cls), None, code)]


_READERS = {
    "q": _read_quantity,
    "bp": _read_blood_pressure,
    "nb": _read_nyha,
    "na": _read_nyha,
    "n4": _read_nyha,
    "cue": _read_cue,
}
