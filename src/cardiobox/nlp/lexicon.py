"""Lexicon entity recogniser: data-model names and drug names found by phrase matching.

The lexicon of a language has two sources:

- the data model's variables (:func:`cardiobox.cdm.dictionary.load_dictionary`): the display
  names and synonyms of the phenotypes (entity type DISEASE, coded in ICD-10), symptoms
  (SYMPTOM, SNOMED CT), procedures (PROCEDURE, SNOMED CT, else ICD-10-PCS) and medication
  groups (MEDICATION, ATC), each coded with its representative code
  (:func:`representative_code`);
- the language's drug file ``lang/<code>/drugs.yaml`` (MEDICATION): active substances,
  fixed-dose combinations and drug classes with their ATC code, their names as written in that
  language and the country's brand names, each brand coded as its active substance.

A drug's ``variable`` is the most specific medication group whose ATC codes contain the drug's
code (furosemide → ``loop_diuretic`` rather than ``diuretic``), or ``None`` for a drug in no
group (omeprazole). Where a name is both a drug and a group synonym ("ramipril"), the drug
wins: its code is more specific.

Matching is token by token on the note's own tokenisation, ignoring case and accents, with
``/``, ``-`` and ``+`` between words treated alike ("sacubitrilo/valsartán" matches
"sacubitrilo-valsartán"). Acronyms — names without a run of three lower-case letters, such as
``AAS``, ``HBPM``, ``iSGLT2`` — match only as written or in capitals, so that "FA" (fibrilación
auricular) does not match the Dutch word "af". Per entity type the longest match wins and
matches do not overlap; spans of different types may overlap. Spans go to
``doc.spans["entities"]`` with the extensions ``code`` (``"system|code"``) and ``variable``
(data-model variable id).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from spacy.matcher import PhraseMatcher
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import Category, Variable, load_dictionary
from cardiobox.nlp.doc import ENTITIES, ENTITY_TYPES, blank_pipeline
from cardiobox.nlp.languages import (
    check_language,
    load_language_model,
)
from cardiobox.nlp.sections import fold_text

#: Entity type of each data-model category that the lexicon draws names from.
CATEGORY_LABELS: dict[Category, str] = {
    Category.phenotype: "DISEASE",
    Category.symptom: "SYMPTOM",
    Category.procedure: "PROCEDURE",
    Category.medication_group: "MEDICATION",
}

#: Code system preferred for each entity type, in order (the first the variable has is used).
CODE_SYSTEMS: dict[str, tuple[str, ...]] = {
    "DISEASE": (codesys.ICD10,),
    "SYMPTOM": (codesys.SNOMED,),
    "PROCEDURE": (codesys.SNOMED, codesys.ICD10_PCS),
    "MEDICATION": (codesys.ATC,),
}

# Separator tokens between words that the lexicon treats as one ("a/b" = "a-b" = "a + b").
_SEPARATORS = frozenset({"/", "-", "–", "—", "‐", "+"})
_LOWER_RUN = re.compile(r"[^\W\d_A-Z]{3}")
_STEM_STRIP = frozenset("aeiouysm")
_STEM_MIN = 5
_ATC = r"^[A-Z](?:\d{2}(?:[A-Z](?:[A-Z](?:\d{2})?)?)?)?$"


def register_extensions() -> None:
    """Register the span extensions ``code`` and ``variable`` (idempotent, default ``None``)."""
    for name in ("code", "variable"):
        if not Span.has_extension(name):
            Span.set_extension(name, default=None)


# ---------------------------------------------------------------------------------------------
# The drug file: lang/<code>/drugs.yaml
# ---------------------------------------------------------------------------------------------

DrugName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2)]
DrugKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class DrugEntry(BaseModel):
    """One substance, fixed-dose combination or drug class of a language's drug file.

    Parameters
    ----------
    atc : str
        ATC code, at any level from the anatomical main group (``C``) to the chemical
        substance (``C03CA01``).
    names : list of str
        Names as written in the language's notes, the usual one first; then other spellings
        and abbreviations.
    brands : list of str
        Brand names common in the country, each standing for the active substance.
    link_only : bool
        Only code mentions that a tagger found; never matched in raw text (words such as
        "potasio" that are more often a lab value). Default ``False``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    atc: str = Field(pattern=_ATC)
    names: list[DrugName] = Field(min_length=1)
    brands: list[DrugName] = Field(default_factory=list)
    link_only: bool = False


class DrugLexicon(BaseModel):
    """A language's drug file: entries keyed by a language-independent substance key.

    Parameters
    ----------
    drugs : dict
        Substance key (the English name in snake case, the same in every language) → entry.
        A name (compared after case and accent folding) may stand for one ATC code only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    drugs: dict[DrugKey, DrugEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unambiguous(self) -> DrugLexicon:
        seen: dict[str, tuple[str, str]] = {}
        for key, entry in self.drugs.items():
            for name in [*entry.names, *entry.brands]:
                folded = normalise_term(name)
                other = seen.get(folded)
                if other is not None and other[1] != entry.atc:
                    raise ValueError(
                        f"drugs.{key}: {name!r} also names {other[0]!r} "
                        f"({other[1]} vs {entry.atc}); a name may stand for one ATC code only"
                    )
                seen[folded] = (key, entry.atc)
        return self


@cache
def load_drug_lexicon(lang: str) -> DrugLexicon:
    """Read and validate ``lang/<lang>/drugs.yaml`` (cached).

    Parameters
    ----------
    lang : str
        Language code.

    Returns
    -------
    DrugLexicon
        The validated drug entries.

    Raises
    ------
    LanguageError
        When the file is missing or breaks the schema; the message names the file.
    """
    return load_language_model(lang, "drugs", DrugLexicon)


# ---------------------------------------------------------------------------------------------
# Concepts and terms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concept:
    """What a lexicon term stands for.

    Parameters
    ----------
    label : str
        Entity type (DISEASE, SYMPTOM, PROCEDURE, MEDICATION).
    code : str or None
        ``"system|code"`` with the system's canonical URI.
    variable : str or None
        Data-model variable id (``None`` for a drug in no medication group).
    key : str
        The variable id, or ``drug:<substance key>`` for a drug-file entry.
    """

    label: str
    code: str | None
    variable: str | None
    key: str


@dataclass(frozen=True)
class LexiconTerm:
    """One name of a concept in one language.

    Parameters
    ----------
    text : str
        The name as written in the lexicon.
    lang : str
        Its language.
    concept : Concept
        What it stands for.
    case_sensitive : bool
        An acronym, matched only as written or in capitals.
    link_only : bool
        Used to code tagger mentions, never matched in raw text.
    """

    text: str
    lang: str
    concept: Concept
    case_sensitive: bool
    link_only: bool = False


def is_acronym(name: str) -> bool:
    """Tell whether ``name`` is an acronym: it has no run of three lower-case letters."""
    return _LOWER_RUN.search(name) is None


def normalise_term(text: str) -> str:
    """Case- and accent-folded ``text`` with its whitespace collapsed."""
    return " ".join(fold_text(text).split())


def token_key(token_text: str, fold: bool = True) -> str:
    """The string a token is matched by: folded (or as written), separators unified."""
    if token_text in _SEPARATORS:
        return "/"
    return fold_text(token_text) if fold else token_text


def stem_key(folded: str) -> str:
    """A folded word without its final vowels, ``s``, ``m`` and ``y``, down to five letters.

    A language-neutral light stemmer: inflected forms ("srdečním selháním", "insuficiencias",
    "cardiaco") meet their dictionary form ("srdeční selhání", "insuficiencia", "cardíaca").
    """
    end = len(folded)
    while end > _STEM_MIN and folded[end - 1] in _STEM_STRIP:
        end -= 1
    return folded[:end]


def representative_code(variable: Variable, systems: Sequence[str]) -> str | None:
    """The code that stands for ``variable`` in the first of ``systems`` it has a code in.

    The first of the variable's least specific codes: heart failure (I50, I11.0, ...) → I50;
    valvular heart disease (A52.0, I05, ...) → I05 rather than syphilitic A52.0, which merely
    comes first in the list.

    Parameters
    ----------
    variable : Variable
        A data-model variable.
    systems : sequence of str
        Canonical code-system URIs, in order of preference.

    Returns
    -------
    str or None
        ``"system|code"``, or ``None`` when the variable has no code in these systems.
    """
    for system in systems:
        codes = [c for cs in variable.codes if cs.system == system for c in cs.codes]
        if codes:
            shortest = min(len(c) for c in codes)
            return f"{system}|{next(c for c in codes if len(c) == shortest)}"
    return None


def _atc_codes(variable: Variable) -> list[str]:
    return [
        codesys.normalise_code(code).replace(".", "")
        for code_set in variable.codes
        if code_set.system == codesys.ATC
        for code in code_set.codes
    ]


def group_atc_code(variable: Variable) -> str | None:
    """The ATC code of a medication-group mention ("betabloqueantes").

    The deepest ATC level (1, 3, 4, 5 or 7 characters) shared by all the group's codes; where
    they share only the anatomical main group, the first code's therapeutic subgroup
    (diuretics: C03).

    Parameters
    ----------
    variable : Variable
        A medication-group variable.

    Returns
    -------
    str or None
        ``"http://www.whocc.no/atc|C07"``, or ``None`` when the group has no ATC code.
    """
    codes = _atc_codes(variable)
    if not codes:
        return None
    shared = 0
    while shared < min(map(len, codes)) and len({c[shared] for c in codes}) == 1:
        shared += 1
    level = max((n for n in (1, 3, 4, 5, 7) if n <= shared), default=0)
    prefix = codes[0][:level] if level > 1 else codes[0][:3]
    return f"{codesys.ATC}|{prefix}"


@cache
def _group_codes() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        (v.id, tuple(_atc_codes(v)))
        for v in load_dictionary().by_category(Category.medication_group)
    )


@cache
def medication_group_for_atc(atc: str) -> str | None:
    """The most specific data-model medication group that contains the ATC code ``atc``.

    Parameters
    ----------
    atc : str
        An ATC code at any level (``C03CA01``).

    Returns
    -------
    str or None
        The variable id whose ATC codes include the longest prefix of ``atc`` (ties: the group
        with fewer codes, then the first in the dictionary), or ``None`` when no group holds it.
    """
    code = codesys.normalise_code(atc)
    best: tuple[int, int] | None = None
    best_id: str | None = None
    for variable_id, members in _group_codes():
        depth = max((len(m) for m in members if code.startswith(m)), default=0)
        if depth == 0:
            continue
        rank = (depth, -len(members))
        if best is None or rank > best:
            best, best_id = rank, variable_id
    return best_id


def _variable_terms(lang: str) -> list[LexiconTerm]:
    terms: list[LexiconTerm] = []
    for category, label in CATEGORY_LABELS.items():
        for variable in load_dictionary().by_category(category):
            if category == Category.medication_group:
                code = group_atc_code(variable)
            else:
                code = representative_code(variable, CODE_SYSTEMS[label])
            concept = Concept(label=label, code=code, variable=variable.id, key=variable.id)
            for name in variable.all_names(lang):
                terms.append(LexiconTerm(name, lang, concept, is_acronym(name)))
    return terms


def _drug_terms(lang: str) -> list[LexiconTerm]:
    terms: list[LexiconTerm] = []
    for key, entry in load_drug_lexicon(lang).drugs.items():
        concept = Concept(
            label="MEDICATION",
            code=f"{codesys.ATC}|{entry.atc}",
            variable=medication_group_for_atc(entry.atc),
            key=f"drug:{key}",
        )
        for name in [*entry.names, *entry.brands]:
            terms.append(LexiconTerm(name, lang, concept, is_acronym(name), entry.link_only))
    return terms


@cache
def lexicon_terms(lang: str) -> tuple[LexiconTerm, ...]:
    """Every term of ``lang``'s lexicon, drug-file terms first (cached).

    Parameters
    ----------
    lang : str
        Language code.

    Returns
    -------
    tuple of LexiconTerm
        Drug-file terms, then the data-model variables' names; where two terms of one entity
        type read the same, the first one stands.
    """
    code = check_language(lang)
    return (*_drug_terms(code), *_variable_terms(code))


# ---------------------------------------------------------------------------------------------
# The recogniser
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Matchers:
    vocab: Vocab
    folded: PhraseMatcher
    stemmed: PhraseMatcher
    exact: PhraseMatcher
    concepts: dict[int, Concept]


# Views of the tokens that the matchers compare: folded, folded and stemmed, as written.
_FOLDED, _STEMMED, _EXACT = 0, 1, 2


def _words(tokens: Iterable[str], view: int) -> list[str]:
    if view == _EXACT:
        return [token_key(t, fold=False) for t in tokens]
    keys = [token_key(t) for t in tokens]
    return [stem_key(k) for k in keys] if view == _STEMMED else keys


@cache
def _matchers(lang: str) -> _Matchers:
    """Phrase matchers over ``lang``'s terms: folded, folded and stemmed, and as written."""
    nlp = blank_pipeline(lang)
    vocab = nlp.vocab
    matchers = {view: PhraseMatcher(vocab, attr="ORTH") for view in (_FOLDED, _STEMMED, _EXACT)}
    concepts: dict[int, Concept] = {}
    owner: set[tuple[int, str, tuple[str, ...]]] = set()
    patterns: dict[tuple[int, int], list[Doc]] = defaultdict(list)
    terms = [t for t in lexicon_terms(lang) if not t.link_only]
    tokenizer = nlp.tokenizer
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"expected spaCy's rule tokenizer, got {type(tokenizer).__name__}")
    for term, tokens in zip(terms, tokenizer.pipe(t.text for t in terms), strict=True):
        words = [t.text for t in tokens]
        if term.case_sensitive:
            variants = [(_EXACT, _words(words, _EXACT))]
            variants.append((_EXACT, _words([w.upper() for w in words], _EXACT)))
        else:
            variants = [(_FOLDED, _words(words, _FOLDED)), (_STEMMED, _words(words, _STEMMED))]
        match_id = vocab.strings.add(f"{term.concept.label}|{term.concept.key}")
        concepts[match_id] = term.concept
        for view, variant in variants:
            seen = (view, term.concept.label, tuple(variant))
            if seen in owner:  # the first term of a type that reads so stands
                continue
            owner.add(seen)
            patterns[(view, match_id)].append(Doc(vocab, words=variant))
    for (view, match_id), docs in patterns.items():
        matchers[view].add(vocab.strings[match_id], docs)
    return _Matchers(vocab, matchers[_FOLDED], matchers[_STEMMED], matchers[_EXACT], concepts)


def _longest_per_label(
    found: list[tuple[int, int, int, Concept]],
) -> list[tuple[int, int, Concept]]:
    """Keep, per entity type, the longest matches that do not overlap.

    Ties go to the earlier match, then to the stricter view (as written or folded before
    stemmed).
    """
    kept: list[tuple[int, int, Concept]] = []
    by_label: dict[str, list[tuple[int, int, int, Concept]]] = defaultdict(list)
    for item in found:
        by_label[item[3].label].append(item)
    for items in by_label.values():
        taken: set[int] = set()
        for start, end, _view, concept in sorted(items, key=lambda m: (m[0] - m[1], m[0], m[2])):
            if taken.isdisjoint(range(start, end)):
                kept.append((start, end, concept))
                taken.update(range(start, end))
    return sorted(kept, key=lambda m: (m[0], m[1]))


class LexiconRecognizer:
    """Find the lexicon's entities in a ``Doc`` (a ``Doc → Doc`` component).

    Parameters
    ----------
    lang : str, optional
        Language of the notes; by default each document's ``doc.lang_``.
    labels : iterable of str
        Entity types to find; default all four.
    stems : bool
        Also match inflected forms through :func:`stem_key` (default ``True``).

    Notes
    -----
    Entities already in ``doc.spans["entities"]`` (from a trained tagger) stay as they are: a
    lexicon match with the same boundaries and type only fills in their missing ``code`` and
    ``variable``, and a match overlapping an existing entity of its type is dropped.
    """

    def __init__(
        self, lang: str | None = None, labels: Iterable[str] = ENTITY_TYPES, stems: bool = True
    ) -> None:
        self.lang = check_language(lang) if lang is not None else None
        self.stems = stems
        self.labels = frozenset(labels)
        unknown = self.labels - set(ENTITY_TYPES)
        if unknown:
            raise ValueError(
                f"labels: unknown entity type(s) {sorted(unknown)}; use {list(ENTITY_TYPES)}"
            )
        register_extensions()

    def matches(self, doc: Doc) -> list[tuple[int, int, Concept]]:
        """Lexicon matches in ``doc`` as ``(start token, end token, concept)``, longest per type.

        Parameters
        ----------
        doc : spacy.tokens.Doc
            A tokenised note.

        Returns
        -------
        list of tuple
            Non-overlapping within each entity type, sorted by position.
        """
        if len(doc) == 0:
            return []
        matchers = _matchers(self.lang or check_language(doc.lang_))
        words = [t.text for t in doc]
        spaces = [bool(t.whitespace_) for t in doc]
        views = [(_FOLDED, matchers.folded), (_EXACT, matchers.exact)]
        if self.stems:
            views.append((_STEMMED, matchers.stemmed))
        found: list[tuple[int, int, int, Concept]] = []
        for view, matcher in views:
            view_doc = Doc(matchers.vocab, words=_words(words, view), spaces=spaces)
            for match_id, start, end in matcher(view_doc):
                concept = matchers.concepts[match_id]
                if concept.label in self.labels:
                    found.append((start, end, view, concept))
        return _longest_per_label(found)

    def __call__(self, doc: Doc) -> Doc:
        """Add the lexicon's entities to ``doc.spans["entities"]`` and return ``doc``."""
        existing = list(doc.spans[ENTITIES]) if ENTITIES in doc.spans else []
        by_bounds = {(s.label_, s.start, s.end): s for s in existing}
        taken: dict[str, set[int]] = defaultdict(set)
        for span in existing:
            taken[span.label_].update(range(span.start, span.end))
        added: list[Span] = []
        for start, end, concept in self.matches(doc):
            same = by_bounds.get((concept.label, start, end))
            if same is not None:
                if same._.code is None and same._.variable is None:
                    same._.code, same._.variable = concept.code, concept.variable
                continue
            if not taken[concept.label].isdisjoint(range(start, end)):
                continue
            span = Span(doc, start, end, label=concept.label)
            span._.code, span._.variable = concept.code, concept.variable
            added.append(span)
        spans = sorted([*existing, *added], key=lambda s: (s.start, s.end, s.label_))
        doc.spans[ENTITIES] = spans
        return doc


def recognise_entities(doc: Doc) -> Doc:
    """Run the lexicon recogniser for ``doc.lang_`` on ``doc`` (see :class:`LexiconRecognizer`).

    Parameters
    ----------
    doc : spacy.tokens.Doc
        A note made by :func:`cardiobox.nlp.doc.make_doc`.

    Returns
    -------
    spacy.tokens.Doc
        The same document, with the lexicon's entities added.
    """
    return _default_recognizer()(doc)


@cache
def _default_recognizer() -> LexiconRecognizer:
    return LexiconRecognizer()
