"""Language-neutral text normalisation for catalogue search.

One recipe serves all seven languages, so a query typed without accents ("fraccion de
eyeccion", "ejekcni frakce") finds labels written with them, and ``NT-proBNP``,
``NTproBNP`` and ``nt probnp`` share a token:

* :func:`fold` lower-cases, strips accents (NFKD without combining marks) and maps the few
  letters NFKD keeps (``ß``, ``ø``, ``æ``, ``ł``...) to ASCII;
* :func:`word_tokens` splits on anything not a letter or digit, adds the joined form of
  hyphenated / slashed compounds (``nt-probnp`` → ``ntprobnp``, ``e/a`` → ``ea``) and a light
  stem of every word;
* :func:`char_ngrams` gives the character trigrams of the words (with word boundaries), which
  match misspellings, inflections and compounds (``ejectiefractie``) that words miss.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters NFKD does not decompose into ASCII + combining marks.
_EXTRA = str.maketrans(
    {
        "ß": "ss",
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
        "′": "'",
        "’": "'",
        "‐": "-",
        "–": "-",
    }
)
_WORD = re.compile(r"[a-z0-9]+")
# Words joined by a hyphen, slash, dot, apostrophe or plus: one compound token as well.
_COMPOUND = re.compile(r"[a-z0-9]+(?:[-/.'+][a-z0-9]+)+")
# The light stem strips one plural ending, then one final vowel: endings shared by several of
# the seven languages, enough to join "diuretics", "diuréticos", "diuretici" and "diuretice"
# on "diuretic", or "statines", "statiner", "statiny" and "statinele" on "statin".
_PLURALS = ("ele", "ies", "es", "en", "er", "ar", "or", "s")
_VOWELS = ("a", "e", "i", "o", "u", "y")
_MIN_STEM = 4


def fold(text: str) -> str:
    """Lower-case ``text`` and strip its accents.

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    str
        ASCII-only where the letters allow it (``"Fracția"`` → ``"fractia"``).
    """
    lowered = text.casefold().translate(_EXTRA)
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, language-neutral stem: common plural and gender endings removed.

    Parameters
    ----------
    word : str
        A folded word.

    Returns
    -------
    str
        ``word`` without a plural ending and a final vowel, each only when at least four
        letters remain; words with digits are kept as they are.
    """
    if not word.isalpha():
        return word
    for endings in (_PLURALS, _VOWELS):
        for ending in endings:
            if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
                word = word[: -len(ending)]
                break
    return word


def words(text: str) -> list[str]:
    """The folded words of ``text`` (letters and digits), in order."""
    return _WORD.findall(fold(text))


def word_tokens(text: str) -> list[str]:
    """Search tokens of ``text``: stemmed words plus the joined form of compounds.

    Parameters
    ----------
    text : str
        Any text, in any of the languages.

    Returns
    -------
    list of str
        One token per word (its light stem), then one per compound (``nt-probnp`` →
        ``ntprobnp``).
    """
    folded = fold(text)
    tokens = [stem(w) for w in _WORD.findall(folded)]
    tokens.extend(re.sub(r"[-/.'+]", "", c) for c in _COMPOUND.findall(folded))
    return tokens


def char_ngrams(text: str, n: int = 3) -> list[str]:
    """Character ``n``-grams of the folded words of ``text``, word boundaries marked.

    Parameters
    ----------
    text : str
        Any text.
    n : int, default 3
        Gram length.

    Returns
    -------
    list of str
        The grams of ``" word "`` for every word (a word shorter than ``n`` gives itself,
        padded).
    """
    grams: list[str] = []
    for word in _WORD.findall(fold(text)):
        padded = f" {word} "
        if len(padded) <= n:
            grams.append(padded)
        else:
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams
