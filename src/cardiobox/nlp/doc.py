"""Turning a note into a spaCy ``Doc``: clinical tokenisation and sentences, per language.

The tokenizer is spaCy's for the language with clinical rules on top, read from
``lang/<code>/tokenizer.yaml``:

- units stay one token (``mg/dL``, ``mg/24h``, ``mg/zi``, ``mL/min/1,73m2``), as do numbers
  with a decimal comma or point (``2,5``) and blood pressures (``120/70``);
- every other punctuation between letters or digits is split off, so that entity boundaries
  written by annotators (``aurículo-ventricular``, ``(BAV)``) fall on token edges;
- the language's abbreviations (``p. ej.``, ``aprox.``, ``Dr.``) keep their full stop, so that
  they end no sentence.

Sentences come from a rule sentencizer that also breaks at line ends. Span groups that the
components fill are named by the constants below.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np
import spacy
from spacy.attrs import IS_PUNCT, ORTH, SENT_START
from spacy.language import Language
from spacy.strings import get_string_id
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc, Span
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex
from spacy.vocab import Vocab

from cardiobox.nlp.languages import check_language, load_language_file

#: Span group with the entities (labels DISEASE, SYMPTOM, PROCEDURE, MEDICATION); may overlap.
ENTITIES = "entities"
#: Span group with the measurements (label = the data-model variable id).
MEASUREMENTS = "measurements"
#: Span group with identifiers found by de-identification (label = the kind of identifier).
IDENTIFIERS = "identifiers"
#: Span group with one span per section body (label = the canonical section name).
SECTIONS = "sections"

ENTITY_TYPES: tuple[str, ...] = ("DISEASE", "SYMPTOM", "PROCEDURE", "MEDICATION")

_UNIT = r"(?:[µμ]?[a-zA-Z]{1,4}|%|\d+h)"
_TOKEN_MATCH = re.compile(
    r"^(?:"
    r"\d+(?:[.,]\d+)?/\d+(?:[.,]\d+)?"  # 120/70, 2,5/5
    r"|\d+[.,]\d+"  # 2,5  3.75
    rf"|{_UNIT}(?:/[\d,.]*{_UNIT})+"  # mg/dL, mg/24h, mL/min/1,73m2, mg/zi
    r")$"
)
# Split punctuation off between any two characters (spaCy's defaults split less).
_EXTRA_INFIXES = [r"(?<=[\w\)\]])[\-–/+=:;,()\[\]](?=[\w\(\[])", r"(?<=\w)[.](?=[A-ZÁÉÍÓÚÄÖÅČŘŠŽ])"]
_EXTRA_PREFIXES = [r"[\-–+=/*]"]
_EXTRA_SUFFIXES = [r"[\-–+=/*]"]


@cache
def blank_pipeline(lang: str) -> Language:
    """A spaCy pipeline for ``lang`` with the clinical tokenizer and sentencizer (cached).

    Parameters
    ----------
    lang : str
        Language code (``es``, ``en``, ``it``, ``nl``, ``sv``, ``cs``, ``ro``).

    Returns
    -------
    spacy.language.Language
        A blank pipeline whose only component is a sentencizer.
    """
    code = check_language(lang)
    nlp = spacy.blank(code)
    configure_tokenizer(nlp, code)
    nlp.add_pipe("sentencizer", config={"punct_chars": [".", "!", "?", "\n", ";"]})
    return nlp


def configure_tokenizer(nlp: Language, lang: str) -> None:
    """Install the clinical tokenisation rules of ``lang`` into ``nlp``'s tokenizer.

    Parameters
    ----------
    nlp : spacy.language.Language
        The pipeline to change in place.
    lang : str
        Language code whose ``tokenizer.yaml`` supplies the abbreviations.
    """
    tokenizer = nlp.tokenizer
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"expected spaCy's rule tokenizer, got {type(tokenizer).__name__}")
    defaults = nlp.Defaults
    infixes: list[Any] = [*(defaults.infixes or []), *_EXTRA_INFIXES]
    prefixes: list[Any] = [*(defaults.prefixes or []), *_EXTRA_PREFIXES]
    suffixes: list[Any] = [*(defaults.suffixes or []), *_EXTRA_SUFFIXES]
    tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    tokenizer.prefix_search = compile_prefix_regex(prefixes).search
    tokenizer.suffix_search = compile_suffix_regex(suffixes).search
    tokenizer.token_match = _TOKEN_MATCH.match
    data = load_language_file(lang, "tokenizer")
    for abbreviation in data.get("abbreviations", []):
        text = str(abbreviation)
        tokenizer.add_special_case(text, [{"ORTH": text}])
        tokenizer.add_special_case(text.capitalize(), [{"ORTH": text.capitalize()}])
    _WARMED.pop(nlp, None)  # new rules empty spaCy's cache


_WARMED: weakref.WeakKeyDictionary[Language, tuple[int, set[str]]] = weakref.WeakKeyDictionary()
_WARMED_LIMIT = 200_000  # chunks remembered per pipeline (about 20 MB) before starting afresh


def _tokenize(nlp: Language, text: str) -> Doc:
    """``nlp``'s tokenizer on ``text``, its new chunks first cached by a tokenizing of their own.

    spaCy tokenises a note chunk by chunk (the runs between whitespace) and caches each chunk's
    tokens, but only until the note's first special case (an abbreviation such as ``aprox.``):
    from there to the note's end it caches nothing (spaCy's ``has_special`` flag is per call).
    CardioCCC notes meet one early, so nearly every chunk was tokenised afresh, note after note.
    The chunks not seen before are therefore tokenised together first, whole special cases left
    out: a chunk's tokens do not depend on its neighbours, so the notes' tokens are the same and
    the cache fills (9.5 → 5.9 ms a CardioCCC note the first time, 5.9 → 1.6 ms once seen).
    """
    tokenizer: Any = nlp.tokenizer
    owner, seen = _WARMED.get(nlp, (0, set()))
    if owner != id(tokenizer) or len(seen) > _WARMED_LIMIT:
        seen = set()
        _WARMED[nlp] = (id(tokenizer), seen)
    new = {chunk for chunk in text.split() if chunk not in seen}
    if new:
        seen |= new
        specials = tokenizer.rules
        tokenizer(" ".join(sorted(chunk for chunk in new if chunk not in specials)))
    return nlp.make_doc(text)


def make_doc(text: str, lang: str, model: Language | None = None, sentences: bool = True) -> Doc:
    """Tokenise ``text`` and split it into sentences, with empty span groups ready.

    Parameters
    ----------
    text : str
        The note.
    lang : str
        Its language code.
    model : spacy.language.Language, optional
        A trained pipeline whose vocabulary (and static vectors) the document must share;
        its tokenizer must carry the same clinical rules (see :func:`configure_tokenizer`).
    sentences : bool
        Mark sentences now. Entity taggers never let an entity cross a sentence start, and
        annotated entities do cross a ``;`` or a line end now and then, so the tagger runs on
        an unsplit document and :func:`split_sentences` runs after it.

    Returns
    -------
    spacy.tokens.Doc
        The document, with ``doc.lang_`` set and sentences marked.
    """
    doc = _tokenize(model or blank_pipeline(lang), text)
    doc.user_data[_TEXT] = text
    if sentences:
        split_sentences(doc)
    for group in (ENTITIES, MEASUREMENTS, IDENTIFIERS, SECTIONS):
        doc.spans[group] = []
    return doc


_TEXT = "cardiobox.text"


def note_text(doc: Doc) -> str:
    """The text of ``doc``: kept by :func:`make_doc`, since ``doc.text`` joins every token.

    Joining the tokens of a CardioCCC note in Python costs 1–4 ms, as much as the linker.
    """
    text = doc.user_data.get(_TEXT)
    if isinstance(text, str) and len(text) == (
        doc[-1].idx + len(doc[-1].text_with_ws) if doc else 0
    ):
        return text
    return doc.text  # not made by make_doc, or a part of a note (span.as_doc copies user data)


def split_sentences(doc: Doc) -> Doc:
    """Mark sentence starts in ``doc`` (full stops, ``!``, ``?``, ``;`` and line ends).

    The marks are those of spaCy's rule ``Sentencizer`` (configured in
    :func:`blank_pipeline`), computed on the note's token arrays instead of token by token: a
    sentence starts at the first token, and at the first token after a sentence-ending
    character that is neither punctuation nor such a character; tokens already marked keep
    their mark.
    """
    sentencizer: Any = blank_pipeline(doc.lang_).get_pipe("sentencizer")
    n = len(doc)
    if not n or sentencizer.overwrite:
        return sentencizer(doc)  # type: ignore[no-any-return]
    ends = np.array([get_string_id(c) for c in sentencizer.punct_chars], dtype=np.uint64)
    orth = doc.to_array(ORTH)
    marked = doc.to_array(SENT_START).astype(np.int64)
    ending = np.isin(orth, ends)
    word = ~ending & (doc.to_array(IS_PUNCT) == 0)
    # first word token at or after each position (n: none)
    next_word = np.minimum.accumulate(np.where(word, np.arange(n), n)[::-1])[::-1]
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    following = next_word[np.flatnonzero(ending[:-1]) + 1]
    starts[following[following < n]] = True
    marks = np.where(marked != 0, marked, np.where(starts, 1, -1))
    values: Any = marks.astype(np.uint64).reshape(n, 1)  # -1 wraps, as to_array gives it
    doc.from_array([SENT_START], values)
    return doc


#: Attributes that components set on spans, with their defaults.
SPAN_EXTENSIONS: dict[str, object] = {
    "negated": False,
    "uncertain": False,
    "historical": False,
    "family": False,
    "code": None,  # "system|code", e.g. "http://hl7.org/fhir/sid/icd-10|I50"
    "variable": None,  # data-model variable id
    "value": None,  # measurements: number in the canonical unit
    "unit": None,
    "value_code": None,  # measurements with a coded answer ("system|code")
}


def register_span_extensions() -> None:
    """Register the span attributes every component may set (idempotent)."""
    for name, default in SPAN_EXTENSIONS.items():
        if not Span.has_extension(name):
            Span.set_extension(name, default=default)


@cache
def _values_in_user_data() -> bool:
    """Whether spaCy keeps a span's attribute values in ``doc.user_data`` as assumed below.

    spaCy 3 stores ``span._.name = value`` as ``doc.user_data[("._.", name, start_char,
    end_char)] = value`` for attributes without getter or setter; checked once, on a tiny doc.
    """
    register_span_extensions()
    doc = Doc(Vocab(), words=["a", "b", "c"])
    span = Span(doc, 1, 2, label="DISEASE", kb_id="K1")
    span._.negated = True
    stored: dict[Any, Any] = doc.user_data
    if stored != {("._.", "negated", span.start_char, span.end_char): True}:
        return False
    stored["._.", "code", span.start_char, span.end_char] = "s|c"  # read back by another span
    return bool(Span(doc, 1, 2, label="SYMPTOM")._.code == "s|c")


def _plain(names: Sequence[str]) -> bool:
    """Whether these span attributes are plain values (no getter, setter or method)."""
    return all(Span.get_extension(name)[1:] == (None, None, None) for name in names)


def set_span_attributes(
    doc: Doc, spans: Sequence[Span], names: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Set attributes ``names`` of ``spans`` (one row of values per span), as ``span._`` would.

    Writing ``doc.user_data`` directly skips building a ``span._`` object per span and the
    attribute look-ups behind each assignment (about a millisecond a note for context flags).

    Parameters
    ----------
    doc : spacy.tokens.Doc
        The document the spans belong to.
    spans : sequence of Span
        Spans of ``doc``.
    names : sequence of str
        Attributes from :data:`SPAN_EXTENSIONS`.
    rows : iterable of sequences
        One value per name, for each span in turn.
    """
    if not (_values_in_user_data() and _plain(names)):
        for span, row in zip(spans, rows, strict=True):
            extensions = span._
            for name, value in zip(names, row, strict=True):
                setattr(extensions, name, value)
        return
    data: dict[Any, Any] = doc.user_data
    for span, row in zip(spans, rows, strict=True):
        start, end = span.start_char, span.end_char
        for name, value in zip(names, row, strict=True):
            data["._.", name, start, end] = value


def span_attribute(doc: Doc, spans: Sequence[Span], name: str) -> list[Any]:
    """Attribute ``name`` of each of ``spans``, as ``span._.name`` reads it (default included).

    Parameters
    ----------
    doc : spacy.tokens.Doc
        The document the spans belong to.
    spans : sequence of Span
        Spans of ``doc``.
    name : str
        A registered span attribute without getter (those of :data:`SPAN_EXTENSIONS`).

    Returns
    -------
    list
        One value per span.
    """
    if not (_values_in_user_data() and _plain([name])):
        return [getattr(span._, name) for span in spans]
    default = Span.get_extension(name)[0]
    data: dict[Any, Any] = doc.user_data
    return [data.get(("._.", name, span.start_char, span.end_char), default) for span in spans]
