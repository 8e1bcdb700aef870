"""Which of the seven languages a note is written in, from its function words.

A cheap check for a wrong ``--lang``: the share of the note's words that are stop words of
each language (spaCy's lists). Clinical notes are full of Latin and Greek terms common to all
seven languages; function words ("de", "the", "het", "och", "și") tell them apart.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from importlib import import_module

from cardiobox.nlp.languages import LANGUAGES

_WORD = re.compile(r"[^\W\d_]+")


@cache
def _stop_words(lang: str) -> frozenset[str]:
    module = import_module(f"spacy.lang.{lang}.stop_words")
    words: set[str] = module.STOP_WORDS
    return frozenset(w.lower() for w in words if len(w) > 1)


def language_scores(text: str, max_words: int = 2000) -> dict[str, int]:
    """Function words of each language among the first ``max_words`` words of ``text``."""
    counts = Counter(w.lower() for w in _WORD.findall(text[: max_words * 12])[:max_words])
    scores = {}
    for lang in LANGUAGES:
        stop_words = _stop_words(lang)
        scores[lang] = sum(n for w, n in counts.items() if w in stop_words)
    return scores


def detect_language(text: str, max_words: int = 2000) -> tuple[str | None, float]:
    """Guess the language of ``text`` among the seven.

    Parameters
    ----------
    text : str
        The note.
    max_words : int
        Words read from the start of the note.

    Returns
    -------
    (str or None, float)
        The language with the most function words, and its share of all function-word hits
        (0 to 1); ``(None, 0.0)`` when no function word was found.
    """
    hits = language_scores(text, max_words)
    total = sum(hits.values())
    if total == 0:
        return None, 0.0
    best = max(hits, key=lambda lang: hits[lang])
    return best, hits[best] / total


#: Words read from the start of a note to check its language: about 150 function words in a
#: clinical note, plenty to tell the seven apart, at a fifth of the cost of reading 2,000.
LANGUAGE_CHECK_WORDS = 400
#: Notes shorter than this are not checked (too few function words to tell).
LANGUAGE_CHECK_MIN_CHARS = 100


class LanguageMismatchWarning(UserWarning):
    """A note that reads as another language than the one declared."""


def other_language(text: str, declared: str) -> str | None:
    """The language ``text`` clearly reads as, when it is not the ``declared`` one.

    Clearly: at least twice the declared language's function words, and two more, among the
    first :data:`LANGUAGE_CHECK_WORDS` words. Notes shorter than
    :data:`LANGUAGE_CHECK_MIN_CHARS` characters are not judged.

    Parameters
    ----------
    text : str
        The note.
    declared : str
        The language code it was declared in.

    Returns
    -------
    str or None
        The other language's code, or ``None`` when the note may well be in ``declared``.
    """
    if len(text) < LANGUAGE_CHECK_MIN_CHARS:
        return None
    scores = language_scores(text, max_words=LANGUAGE_CHECK_WORDS)
    detected = max(scores, key=lambda lang: scores[lang])
    if detected != declared and scores[detected] > 2 * scores.get(declared, 0) + 2:
        return detected
    return None
