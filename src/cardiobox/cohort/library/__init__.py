"""Built-in cohort definitions and feature sets, usable by name (``hf_admissions``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cardiobox.errors import InputError


def library_dir() -> Path:
    """The folder of the built-in definitions."""
    return Path(str(resources.files("cardiobox.cohort.library")))


def library_names() -> list[str]:
    """Names of the built-in definitions."""
    return sorted(p.stem for p in library_dir().glob("*.yaml"))


def resolve(name_or_path: str | Path) -> Path:
    """A definition file: the path itself when it exists, else a built-in of that name.

    Raises
    ------
    InputError
        When it is neither.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    stem = str(name_or_path).removesuffix(".yaml").replace("-", "_")
    builtin = library_dir() / f"{stem}.yaml"
    if builtin.exists():
        return builtin
    raise InputError(
        f"no such file, and no built-in definition of that name (built-in: "
        f"{', '.join(library_names())})",
        rule="missing-input",
    )
