"""Errors shared by every cardiobox package.

Every error that reaches a user names where the problem is (file, line, resource id,
element) and which rule was broken, so it can be fixed at the source.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class Location:
    """Where a problem was found.

    Parameters
    ----------
    file : str or None
        Input file path, as given by the user.
    line : int or None
        1-based line number in the file (NDJSON) or ``None``.
    entry : int or None
        0-based index of the entry inside a Bundle, or ``None``.
    resource_type : str or None
        FHIR resource type, when known.
    resource_id : str or None
        FHIR resource id, when known.
    element : str or None
        FHIRPath-like path of the offending element, e.g. ``Observation.valueQuantity.unit``.
    """

    file: str | None = None
    line: int | None = None
    entry: int | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    element: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            if self.entry is not None:
                where += f" entry[{self.entry}]"
            parts.append(where)
        if self.resource_type or self.resource_id:
            parts.append(f"{self.resource_type or '?'}/{self.resource_id or '?'}")
        if self.element:
            parts.append(self.element)
        return ", ".join(parts)


class CardioboxError(Exception):
    """Base class for errors reported to users.

    Parameters
    ----------
    message : str
        What went wrong, in plain words.
    rule : str
        Short machine-readable name of the rule that was broken (e.g. ``invalid-json``).
    location : Location, optional
        Where the problem was found.
    """

    def __init__(self, message: str, rule: str = "error", location: Location | None = None):
        self.message = message
        self.rule = rule
        self.location = location or Location()
        where = str(self.location)
        super().__init__(f"{where}: [{rule}] {message}" if where else f"[{rule}] {message}")


class InputError(CardioboxError):
    """Input that cannot be read at all (missing file, unsupported format or version)."""


class ViewDefinitionError(CardioboxError):
    """An invalid SQL-on-FHIR ViewDefinition."""


def describe_validation(exc: ValidationError) -> str:
    """A pydantic validation error as one line: ``field.path: message; ...``.

    Parameters
    ----------
    exc : pydantic.ValidationError
        The error to summarise.

    Returns
    -------
    str
        Every problem, ``where: message``, joined by ``"; "`` (pydantic's ``"Value error, "``
        prefix dropped).
    """
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)
