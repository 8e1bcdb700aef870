"""The seven languages and their data files under ``nlp/lang/<code>/``.

Every language folder holds the same files (a test checks it), each a YAML mapping whose
schema is owned by the component that reads it. Components load them through
:func:`load_language_file`, which caches and names the file in every error.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cardiobox.errors import CardioboxError, Location, describe_validation
from cardiobox.yamlio import load_file

#: ISO 639-1 codes of the supported languages, in the order the docs list them.
LANGUAGES: tuple[str, ...] = ("es", "en", "it", "nl", "sv", "cs", "ro")

LANGUAGE_NAMES: dict[str, str] = {
    "es": "Spanish",
    "en": "English",
    "it": "Italian",
    "nl": "Dutch",
    "sv": "Swedish",
    "cs": "Czech",
    "ro": "Romanian",
}

_LANG_DIR = Path(__file__).parent / "lang"


class LanguageError(CardioboxError):
    """An unsupported language code or a broken language data file."""


def check_language(lang: str) -> str:
    """Return ``lang`` if it is supported, else raise :class:`LanguageError`.

    Parameters
    ----------
    lang : str
        An ISO 639-1 language code such as ``"es"``.

    Returns
    -------
    str
        The same code, lower-cased.
    """
    code = lang.strip().lower()
    if code not in LANGUAGES:
        supported = ", ".join(f"{c} ({LANGUAGE_NAMES[c]})" for c in LANGUAGES)
        raise LanguageError(
            f"language {lang!r} is not supported; use one of: {supported}", rule="unknown-language"
        )
    return code


def language_dir(lang: str) -> Path:
    """Folder holding the data files of ``lang``."""
    return _LANG_DIR / check_language(lang)


@cache
def load_language_file(lang: str, name: str) -> dict[str, Any]:
    """Load ``nlp/lang/<lang>/<name>.yaml`` as a mapping (cached).

    Parameters
    ----------
    lang : str
        Language code.
    name : str
        File stem, e.g. ``"context"`` or ``"sections"``.

    Returns
    -------
    dict
        The file's top-level mapping.

    Raises
    ------
    LanguageError
        When the language is unsupported, the file is missing, or it is not a mapping.
    """
    path = language_dir(lang) / f"{name}.yaml"
    where = Location(file=str(path))
    if not path.is_file():
        raise LanguageError(
            f"missing language data file {name!r} for {lang!r}",
            rule="missing-input",
            location=where,
        )
    data = load_file(path, "language-data-syntax", LanguageError)
    if not isinstance(data, dict):
        raise LanguageError(
            "expected a mapping at the top level", rule="language-data", location=where
        )
    return data


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_language_model(lang: str, name: str, model: type[ModelT]) -> ModelT:
    """Load ``nlp/lang/<lang>/<name>.yaml`` and validate it against ``model``.

    Parameters
    ----------
    lang : str
        Language code.
    name : str
        File stem (``context``, ``sections``, ``drugs``, ``deid``...).
    model : type of pydantic.BaseModel
        The file's schema, owned by the component that reads it.

    Returns
    -------
    BaseModel
        The validated file.

    Raises
    ------
    LanguageError
        When the file is missing or breaks the schema; the message names the file and field.
    """
    raw = load_language_file(lang, name)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise LanguageError(
            describe_validation(exc),
            rule="language-data",
            location=Location(file=str(language_dir(lang) / f"{name}.yaml")),
        ) from None
