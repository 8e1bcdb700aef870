"""ConText: whether a finding is negated, uncertain, historical, or about a relative.

The algorithm is Chapman and Harkema's ConText (Harkema et al., J Biomed Inform 2009),
driven by the trigger lists of ``lang/<code>/context.yaml``:

- a **trigger** term has a category (``negated``, ``uncertain``, ``historical``, ``family``)
  and a direction: ``forward`` triggers modify the findings after them ("sin fiebre"),
  ``backward`` triggers those before them ("TEP descartado"), ``bidirectional`` both;
- a **pseudo-trigger** contains a trigger but is none ("sin cambios", "not only",
  "no sostenida"); where matches overlap, the longest wins, so a pseudo-trigger blocks the
  triggers inside it;
- a trigger's **scope** stays inside its sentence and stops at the first termination term
  ("pero", "but"; some only for one category, such as "actualmente" for ``historical``), at the
  next trigger of its own category, at a trigger of a rival category (negated and uncertain
  cut each other's scope), and after at most ``max_scope`` words (``max_backward_scope`` for
  the words before a backward trigger).

A finding is in a forward scope when it starts there, in a backward scope when it ends there.
A trigger inside a finding ("ventrículo izquierdo no dilatado") modifies that finding when the
finding extends past it in the trigger's direction. Findings in a past-history section are
historical and those in a family-history section concern the family (see
:mod:`cardiobox.nlp.sections`).

Terms are matched token by token (the note's tokenizer splits them) on lower-cased text, with
accents stripped where the language file says so. A term token ``<num>`` matches any number
("hace <num> años") and a token ending in ``*`` any token with that prefix ("zjištěn*").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Literal, get_args

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    field_validator,
    model_validator,
)
from spacy.attrs import IS_PUNCT, IS_SPACE, LIKE_NUM, ORTH, SENT_START
from spacy.tokens import Doc, Span

from cardiobox.nlp.doc import (
    ENTITIES,
    MEASUREMENTS,
    SECTIONS,
    blank_pipeline,
    set_span_attributes,
)
from cardiobox.nlp.languages import load_language_model
from cardiobox.nlp.sections import fold_text

Category = Literal["negated", "uncertain", "historical", "family"]
Direction = Literal["forward", "backward", "bidirectional"]

#: The context attributes, each a boolean extension on ``Span`` (``span._.negated``...).
CATEGORIES: tuple[str, ...] = get_args(Category)

#: Categories whose triggers end each other's scope ("sin fiebre, probable TEP").
RIVALS: dict[str, frozenset[str]] = {
    "negated": frozenset({"uncertain"}),
    "uncertain": frozenset({"negated"}),
    "historical": frozenset(),
    "family": frozenset(),
}

#: Sections whose findings take a category whatever the triggers say.
SECTION_CATEGORIES: dict[str, str] = {"past_history": "historical", "family_history": "family"}

NUM_TOKEN = "<num>"
_WILDCARD_STEM = re.compile(r"^[^\W\d_][\w\-]{2,}$")


def register_extensions() -> None:
    """Register ``negated``, ``uncertain``, ``historical`` and ``family`` on ``Span`` (once)."""
    for name in CATEGORIES:
        if not Span.has_extension(name):
            Span.set_extension(name, default=False)


# ---------------------------------------------------------------------------------------------
# The language data: context.yaml
# ---------------------------------------------------------------------------------------------

Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _check_term(term: str) -> str:
    for piece in term.split():
        if piece == NUM_TOKEN or "*" not in piece:
            continue
        stem = piece[:-1]
        if not piece.endswith("*") or "*" in stem or not _WILDCARD_STEM.match(stem):
            raise ValueError(
                f"{term!r}: a wildcard is '*' after a prefix of at least three letters "
                f"(e.g. 'zjištěn*'), got {piece!r}"
            )
    return term


def _term_key(term: str, accents: bool = True) -> str:
    return " ".join(fold_text(term, accents).split())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Directions(_Strict):
    """The trigger terms of one category, by the direction of their scope.

    Parameters
    ----------
    forward : list of str
        Terms that modify the findings after them.
    backward : list of str
        Terms that modify the findings before them.
    bidirectional : list of str
        Terms that modify the findings on both sides.
    """

    forward: list[Term] = []
    backward: list[Term] = []
    bidirectional: list[Term] = []

    @field_validator("forward", "backward", "bidirectional")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        return [_check_term(t) for t in terms]

    def items(self) -> Iterable[tuple[str, str]]:
        """Pairs ``(direction, term)`` of every term."""
        for direction in ("forward", "backward", "bidirectional"):
            for term in getattr(self, direction):
                yield direction, term


class Triggers(_Strict):
    """Trigger terms of the four categories; each must have at least one term."""

    negated: Directions
    uncertain: Directions
    historical: Directions
    family: Directions


class Terminations(_Strict):
    """Terms that end a scope: ``all`` for every category, the others for one category."""

    all: list[Term]
    negated: list[Term] = []
    uncertain: list[Term] = []
    historical: list[Term] = []
    family: list[Term] = []

    @field_validator("all", "negated", "uncertain", "historical", "family")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        return [_check_term(t) for t in terms]


class ContextRules(_Strict):
    """The content of one language's ``context.yaml``.

    Parameters
    ----------
    fold_accents : bool
        Match with accents stripped as well as lower-cased (default ``True``).
    triggers : Triggers
        Trigger terms by category and direction.
    pseudo : list of str
        Pseudo-triggers: phrases that contain a trigger but modify nothing.
    terminations : Terminations
        Terms that end a scope.
    """

    fold_accents: bool = True
    triggers: Triggers
    pseudo: list[Term]
    terminations: Terminations

    @field_validator("pseudo")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        return [_check_term(t) for t in terms]

    @model_validator(mode="after")
    def _consistent(self) -> ContextRules:
        fold = self.fold_accents
        pseudo = {_term_key(t, fold) for t in self.pseudo}
        for category in CATEGORIES:
            directions: Directions = getattr(self.triggers, category)
            if not any(True for _ in directions.items()):
                raise ValueError(f"triggers.{category}: no trigger term")
            seen: dict[str, str] = {}
            ends = {
                _term_key(t)
                for t in [*self.terminations.all, *getattr(self.terminations, category)]
            }
            for direction, term in directions.items():
                key = _term_key(term, fold)
                if key in seen:
                    where = direction if seen[key] == direction else f"{seen[key]} and {direction}"
                    raise ValueError(
                        f"triggers.{category}: {term!r} is listed twice ({where}, compared "
                        f"after folding case{' and accents' if fold else ''}); keep one "
                        "(bidirectional for both directions)"
                    )
                seen[key] = direction
                if key in pseudo:
                    raise ValueError(f"triggers.{category}: {term!r} is also a pseudo-trigger")
                if key in ends:
                    raise ValueError(f"triggers.{category}: {term!r} is also a termination term")
        return self


@cache
def load_context_rules(lang: str) -> ContextRules:
    """Read and validate ``lang/<lang>/context.yaml`` (cached).

    Parameters
    ----------
    lang : str
        Language code.

    Returns
    -------
    ContextRules
        The validated trigger lists.

    Raises
    ------
    LanguageError
        When the file is missing or breaks the schema; the message names the file.
    """
    return load_language_model(lang, "context", ContextRules)


# ---------------------------------------------------------------------------------------------
# Token trie over the terms
# ---------------------------------------------------------------------------------------------

Role = tuple[str, str | None, str | None]  # (kind, category, direction)
"""What a matched term does: ``("trigger", category, direction)``, ``("pseudo", None, None)``
or ``("termination", category or None for all, None)``."""


@dataclass
class _Node:
    exact: dict[str, _Node] = field(default_factory=dict)
    prefixes: list[tuple[str, _Node]] = field(default_factory=list)
    number: _Node | None = None
    roles: tuple[Role, ...] = ()

    def child(self, token: str) -> _Node:
        if token == NUM_TOKEN:
            if self.number is None:
                self.number = _Node()
            return self.number
        if token.endswith("*"):
            stem = token[:-1]
            for existing, node in self.prefixes:
                if existing == stem:
                    return node
            node = _Node()
            self.prefixes.append((stem, node))
            return node
        return self.exact.setdefault(token, _Node())


@dataclass(frozen=True)
class _Matcher:
    root: _Node
    fold_accents: bool


def _term_tokens(term: str, lang: str, fold_accents: bool) -> list[str]:
    tokenizer = blank_pipeline(lang).tokenizer
    tokens: list[str] = []
    for piece in term.split():
        if piece == NUM_TOKEN:
            tokens.append(piece)
        elif piece.endswith("*"):
            tokens.append(fold_text(piece, fold_accents))
        else:
            tokens.extend(fold_text(t.text, fold_accents) for t in tokenizer(piece))
    return tokens


@cache
def _matcher(lang: str) -> _Matcher:
    rules = load_context_rules(lang)
    entries: list[tuple[str, Role]] = [(t, ("pseudo", None, None)) for t in rules.pseudo]
    for category in CATEGORIES:
        directions: Directions = getattr(rules.triggers, category)
        entries += [(t, ("trigger", category, d)) for d, t in directions.items()]
        entries += [
            (t, ("termination", category, None)) for t in getattr(rules.terminations, category)
        ]
    entries += [(t, ("termination", None, None)) for t in rules.terminations.all]
    root = _Node()
    for term, role in entries:
        node = root
        for token in _term_tokens(term, lang, rules.fold_accents):
            node = node.child(token)
        if role not in node.roles:
            node.roles = (*node.roles, role)
    return _Matcher(root, rules.fold_accents)


# ---------------------------------------------------------------------------------------------
# Finding the terms in a document
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextMatch:
    """A context term found in a document: tokens ``doc[start:end]`` and what they do.

    Parameters
    ----------
    start, end : int
        Token offsets (``end`` exclusive).
    roles : tuple
        ``(kind, category, direction)`` triples, ``kind`` one of ``"trigger"``, ``"pseudo"``,
        ``"termination"``; a termination's category is ``None`` when it ends every scope.
    """

    start: int
    end: int
    roles: tuple[Role, ...]
    #: Pairs ``(category, direction)`` this term triggers (derived from ``roles``).
    triggers: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    #: Categories whose scope this term ends: those it terminates or triggers, and their rivals.
    stops: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        triggers = tuple((c, d) for k, c, d in self.roles if k == "trigger" and c and d)
        stops = {c for c, _ in triggers}
        stops |= {r for c, _ in triggers for r in RIVALS[c]}
        for kind, category, _ in self.roles:
            if kind == "termination":
                stops |= {category} if category else set(CATEGORIES)
        object.__setattr__(self, "triggers", triggers)
        object.__setattr__(self, "stops", frozenset(stops))


def _walk(
    node: _Node,
    words: Sequence[str],
    numbers: Sequence[bool],
    at: int,
    out: list[tuple[int, _Node]],
) -> None:
    """Collect every ``(end, node)`` with roles reachable from ``node`` reading ``words[at:]``."""
    if node.roles:
        out.append((at, node))
    if at == len(words):
        return
    word = words[at]
    nxt = node.exact.get(word)
    if nxt is not None:
        _walk(nxt, words, numbers, at + 1, out)
    if node.number is not None and numbers[at]:
        _walk(node.number, words, numbers, at + 1, out)
    for stem, child in node.prefixes:
        if word.startswith(stem):
            _walk(child, words, numbers, at + 1, out)


def find_context_terms(doc: Doc) -> list[ContextMatch]:
    """Find the triggers, pseudo-triggers and terminations of ``doc``'s language.

    Spaces are skipped, a term never crosses a sentence boundary, and where terms overlap the
    longest (then the first) wins, so pseudo-triggers hide the triggers inside them.

    Parameters
    ----------
    doc : spacy.tokens.Doc
        A document made by :func:`cardiobox.nlp.doc.make_doc`.

    Returns
    -------
    list of ContextMatch
        Non-overlapping matches in text order, pseudo-triggers included.
    """
    return _find_terms(doc, _token_arrays(doc))


def _find_terms(doc: Doc, arrays: _TokenArrays) -> list[ContextMatch]:
    matcher = _matcher(doc.lang_)
    kept = np.flatnonzero(~arrays.space)
    words = _folded_words(doc, arrays.orth[kept].tolist(), matcher.fold_accents)
    numbers = arrays.number[kept].tolist()
    positions = kept.tolist()
    sentence = arrays.sentence.tolist()
    candidates: dict[tuple[int, int], tuple[Role, ...]] = {}
    root = matcher.root
    for j, word in enumerate(words):
        if word not in root.exact and root.number is None and not root.prefixes:
            continue
        found: list[tuple[int, _Node]] = []
        _walk(root, words, numbers, j, found)
        for end, node in found:
            if end == j:
                continue
            first, last = positions[j], positions[end - 1]
            if sentence[first] == sentence[last]:
                # terms read the same tokens (a wildcard and a word): their roles add up
                known = candidates.get((first, last + 1), ())
                candidates[first, last + 1] = (*known, *(r for r in node.roles if r not in known))
    # Longest first, then leftmost: a greedy pass keeps the non-overlapping winners.
    taken = bytearray(len(doc))
    matches: list[ContextMatch] = []
    for (start, end), roles in sorted(candidates.items(), key=lambda c: (c[0][0] - c[0][1], c[0])):
        if not any(taken[start:end]):
            taken[start:end] = b"\x01" * (end - start)
            matches.append(ContextMatch(start, end, roles))
    matches.sort(key=lambda m: m.start)
    return matches


_FOLDED: dict[bool, dict[int, str]] = {True: {}, False: {}}
_FOLDED_MAX = 500_000  # cached spellings before the cache starts afresh


def _folded_words(doc: Doc, hashes: Iterable[int], fold_accents: bool) -> list[str]:
    """Folded text of the tokens with these ORTH hashes (cached: hashes are content hashes)."""
    cache = _FOLDED[fold_accents]
    if len(cache) > _FOLDED_MAX:
        cache.clear()
    strings = doc.vocab.strings
    words = []
    for key in hashes:
        word = cache.get(key)
        if word is None:
            word = cache[key] = fold_text(strings[key], fold_accents)
        words.append(word)
    return words


@dataclass(frozen=True)
class _TokenArrays:
    """Per-token attributes read at C speed (iterating a Doc's tokens in Python is slow)."""

    orth: npt.NDArray[np.uint64]
    space: npt.NDArray[np.bool_]
    word: npt.NDArray[np.bool_]  # neither punctuation nor space: counts towards a scope
    number: npt.NDArray[np.bool_]
    starts_sentence: npt.NDArray[np.bool_]
    sentence: npt.NDArray[np.int64]  # sentence number of every token
    sent_start: npt.NDArray[np.int64]  # first token of every token's sentence
    sent_end: npt.NDArray[np.int64]  # end (exclusive) of every token's sentence


def _token_arrays(doc: Doc) -> _TokenArrays:
    orth = doc.to_array(ORTH).astype(np.uint64)
    table = doc.to_array([IS_SPACE, IS_PUNCT, LIKE_NUM, SENT_START]).astype(np.int64)
    starts_sentence = table[:, 3] == 1
    if len(doc):
        starts_sentence[0] = True
    sent_start, sent_end = _region_bounds(starts_sentence)
    space = table[:, 0].astype(bool)
    return _TokenArrays(
        orth=orth,
        space=space,
        word=~(space | table[:, 1].astype(bool)),
        number=table[:, 2].astype(bool),
        starts_sentence=starts_sentence,
        sentence=np.cumsum(starts_sentence) - 1,
        sent_start=sent_start,
        sent_end=sent_end,
    )


def _region_bounds(
    breaks: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """First token and end of the region of every token, regions starting where ``breaks``."""
    region = np.cumsum(breaks) - 1
    firsts = np.flatnonzero(breaks)
    ends = np.append(firsts[1:], len(breaks))
    return firsts[region], ends[region]


# ---------------------------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The tokens ``doc[first:last]`` that a trigger ``doc[trigger_start:trigger_end]`` modifies.

    ``forward`` tells on which side of the trigger the scope lies.
    """

    category: str
    trigger_start: int
    trigger_end: int
    first: int
    last: int
    forward: bool


class ConText:
    """Pipeline component that sets ``negated``, ``uncertain``, ``historical``, ``family``.

    It reads the spans of ``doc.spans["entities"]`` and ``doc.spans["measurements"]`` (when
    present) and sets the four boolean extensions on every one; the language comes from
    ``doc.lang_``. Run the section splitter first for the section rules to apply.

    Parameters
    ----------
    max_scope : int
        Most words (punctuation not counted) a forward scope covers; default 12.
    max_backward_scope : int
        Most words a backward scope covers; default 6 (words before a trigger are less often
        about the same finding than words after it).
    use_sections : bool
        Mark findings in past-history sections as historical and those in family-history
        sections as family (default ``True``).
    groups : sequence of str
        Span groups to process; default entities and measurements.
    """

    def __init__(
        self,
        max_scope: int = 12,
        max_backward_scope: int = 6,
        use_sections: bool = True,
        groups: Sequence[str] = (ENTITIES, MEASUREMENTS),
    ) -> None:
        if max_scope < 1:
            raise ValueError(f"max_scope must be at least 1, got {max_scope}")
        if max_backward_scope < 1:
            raise ValueError(f"max_backward_scope must be at least 1, got {max_backward_scope}")
        self.max_scope = max_scope
        self.max_backward_scope = max_backward_scope
        self.use_sections = use_sections
        self.groups = tuple(groups)
        register_extensions()

    def __call__(self, doc: Doc) -> Doc:
        """Set the context attributes of ``doc``'s findings and return ``doc``.

        Parameters
        ----------
        doc : spacy.tokens.Doc
            A document with entity (and possibly measurement) spans.

        Returns
        -------
        spacy.tokens.Doc
            The same document.
        """
        spans = [s for g in self.groups if g in doc.spans for s in doc.spans[g]]
        if not spans:
            return doc
        starts = np.fromiter((s.start for s in spans), dtype=np.int64, count=len(spans))
        ends = np.fromiter((s.end for s in spans), dtype=np.int64, count=len(spans))
        flags = _scope_flags(self.scopes(doc), starts, ends)
        if self.use_sections and SECTIONS in doc.spans:
            _section_flags(doc, starts, flags)
        values = np.stack([flags[c] for c in CATEGORIES], axis=1).tolist()
        set_span_attributes(doc, spans, CATEGORIES, values)
        return doc

    def scopes(self, doc: Doc) -> list[Scope]:
        """The scope of every trigger in ``doc`` (for inspection and testing).

        Parameters
        ----------
        doc : spacy.tokens.Doc
            The document.

        Returns
        -------
        list
            One entry per trigger and direction, with the category and the token range
            ``first:last`` it modifies.
        """
        arrays = _token_arrays(doc)
        matches = [m for m in _find_terms(doc, arrays) if m.stops]
        if not any(m.triggers for m in matches):
            return []
        sent_start, sent_end = arrays.sent_start, arrays.sent_end
        if SECTIONS in doc.spans and len(doc.spans[SECTIONS]):
            # a section boundary ends a scope like a sentence boundary does
            breaks = arrays.starts_sentence.copy()
            for section in doc.spans[SECTIONS]:
                breaks[section.start] = True
                if section.end < len(doc):
                    breaks[section.end] = True
            sent_start, sent_end = _region_bounds(breaks)
        words = np.zeros(len(doc) + 1, dtype=np.int64)
        np.cumsum(arrays.word, out=words[1:])
        stops = {c: _stops(matches, c) for c in CATEGORIES}
        out: list[Scope] = []
        for match in matches:
            for category, direction in match.triggers:
                stop_starts, stop_ends = stops[category]
                if direction in ("forward", "bidirectional"):
                    last = int(sent_end[match.start])
                    k = int(np.searchsorted(stop_starts, match.end))
                    if k < len(stop_starts):
                        last = min(last, int(stop_starts[k]))
                    limit = np.searchsorted(words, words[match.end] + self.max_scope, "right") - 1
                    last = min(last, int(limit))
                    out.append(Scope(category, match.start, match.end, match.end, last, True))
                if direction in ("backward", "bidirectional"):
                    first = int(sent_start[match.start])
                    k = int(np.searchsorted(stop_ends, match.start, "right")) - 1
                    if k >= 0:
                        first = max(first, int(stop_ends[k]))
                    limit = np.searchsorted(words, words[match.start] - self.max_backward_scope)
                    first = max(first, int(limit))
                    out.append(Scope(category, match.start, match.end, first, match.start, False))
        return out


#: Scope × finding comparisons made at once: a bound on memory (a few MB) for notes of a
#: megabyte; a CardioCCC note's scopes and findings take one step.
_SCOPE_CELLS = 1 << 20


def _scope_flags(
    scopes: Sequence[Scope], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> dict[str, npt.NDArray[np.bool_]]:
    """Per category, which findings (``starts``, ``ends``) some scope of it modifies.

    A forward scope modifies the findings that start in it, and a finding that contains its
    trigger and goes on after it; a backward scope those that end in it, and a finding that
    starts before its trigger and reaches its end. All scopes against all findings at once.
    """
    flags = {c: np.zeros(len(starts), dtype=bool) for c in CATEGORIES}
    if not scopes or not len(starts):
        return flags
    columns = np.array(
        [
            (CATEGORIES.index(s.category), s.first, s.last, s.trigger_start, s.trigger_end)
            for s in scopes
        ],
        dtype=np.int64,
    )
    forward = np.array([s.forward for s in scopes], dtype=bool)
    step = max(1, _SCOPE_CELLS // len(starts))
    for at in range(0, len(scopes), step):
        category, first, last, trigger_start, trigger_end = (
            columns[at : at + step, k, None] for k in range(5)
        )
        ahead = forward[at : at + step, None]
        hit = np.where(
            ahead,
            ((starts >= first) & (starts < last))
            | ((starts <= trigger_start) & (ends > trigger_end)),
            ((ends > first) & (ends <= last)) | ((starts < trigger_start) & (ends >= trigger_end)),
        )
        for index, name in enumerate(CATEGORIES):
            mine = category[:, 0] == index
            if mine.any():
                flags[name] |= hit[mine].any(axis=0)
    return flags


def _stops(
    matches: Sequence[ContextMatch], category: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Starts and ends of the terms that end a scope of ``category`` (both sorted)."""
    cut = [m for m in matches if category in m.stops]
    return (
        np.array([m.start for m in cut], dtype=np.int64),
        np.array([m.end for m in cut], dtype=np.int64),
    )


def _section_flags(
    doc: Doc, starts: npt.NDArray[np.int64], flags: dict[str, npt.NDArray[np.bool_]]
) -> None:
    """Add the categories that the sections of the findings' first tokens imply."""
    for section in doc.spans[SECTIONS]:
        category = SECTION_CATEGORIES.get(section.label_)
        if category is not None:
            flags[category] |= (starts >= section.start) & (starts < section.end)


def apply_context(doc: Doc) -> Doc:
    """Run :class:`ConText` with its defaults on ``doc`` and return it.

    Parameters
    ----------
    doc : spacy.tokens.Doc
        The document.

    Returns
    -------
    spacy.tokens.Doc
        The same document, its findings' context attributes set.
    """
    return _default_component()(doc)


@cache
def _default_component() -> ConText:
    return ConText()
