"""FHIR R5 element types and cardinalities, read from the ``fhir.resources`` models.

The SQL compiler needs to know, for each step of a FHIRPath navigation, whether the
element is a JSON array (``[*]`` in a JSON path) and what type it has (to cast primitive
values and to keep navigating). The site store keeps resources in R5 shape, and
``fhir.resources`` 8.x models R5, so its pydantic field annotations are the schema.
Lookups are lazy and cached: only the types a view touches are imported.

An element that the schema does not know (unknown resource type, an element from another
FHIR version) is not an error: the compiler navigates it generically, checking at run
time whether each value is an array.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

#: FHIR primitive types and the value kind the compiler gives them.
PRIMITIVE_KINDS: dict[str, str] = {
    "boolean": "bool",
    "integer": "int",
    "positiveInt": "int",
    "unsignedInt": "int",
    "integer64": "int",
    "decimal": "dec",
    "string": "str",
    "code": "str",
    "id": "str",
    "uri": "str",
    "url": "str",
    "canonical": "str",
    "oid": "str",
    "uuid": "str",
    "markdown": "str",
    "base64Binary": "str",
    "xhtml": "str",
    "date": "str",
    "dateTime": "str",
    "instant": "str",
    "time": "str",
}


_BASE_PRIMITIVES = {
    "UUID": "uuid",
    "bytes": "base64Binary",
    "str": "string",
    "int": "integer",
    "Decimal": "decimal",
    "bool": "boolean",
}


@dataclass(frozen=True)
class Element:
    """One element of a FHIR type.

    Parameters
    ----------
    type : str or None
        FHIR type name of the element (``"HumanName"``, ``"string"``, a backbone element's
        model name such as ``"PatientContact"``), or ``None`` for a choice element.
    many : bool
        Whether the element repeats (is a JSON array).
    choices : dict or None
        For a choice element (``value[x]``): FHIR type name → JSON property name, e.g.
        ``{"Quantity": "valueQuantity", "string": "valueString"}``.
    """

    type: str | None
    many: bool
    choices: dict[str, str] | None = None


def _model(type_name: str) -> Any | None:
    try:
        from fhir.resources import get_fhir_model_class
    except ImportError:  # pragma: no cover - fhir.resources is a dependency
        return None
    try:
        return get_fhir_model_class(type_name)
    except (ValueError, KeyError, ImportError, AttributeError):
        return None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Optional``/``Union`` with ``None`` and ``List``; return (base, many)."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, many
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - runtime check of typing.List
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _type_name(base: Any) -> str | None:
    if base is bool:
        return "boolean"
    if typing.get_origin(base) is typing.Annotated:
        args = typing.get_args(base)
        for meta in args[1:]:
            name = type(meta).__name__
            name = name[:1].lower() + name[1:]
            if name in PRIMITIVE_KINDS:
                return name
        # Some primitives carry only pydantic metadata (uuid: UuidVersion).
        return _BASE_PRIMITIVES.get(getattr(args[0], "__name__", ""))
    cls_name = getattr(base, "__name__", None)
    if not isinstance(cls_name, str):
        return None
    if cls_name.endswith("Type") and cls_name != "Type":
        cls_name = cls_name[: -len("Type")]
    return cls_name


@cache
def _elements(type_name: str) -> dict[str, Element] | None:
    model = _model(type_name)
    if model is None:
        return None
    out: dict[str, Element] = {}
    choices: dict[str, dict[str, str]] = {}
    for field_name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        alias = field.alias or field_name
        base, many = _unwrap(field.annotation)
        tname = _type_name(base)
        if tname is None:
            continue
        group = extra.get("one_of_many")
        if isinstance(group, str):
            choices.setdefault(group, {})[tname] = alias
        out[alias] = Element(tname, many)
    for group, variants in choices.items():
        out[group] = Element(None, False, variants)
    return out


def element(type_name: str | None, name: str) -> Element | None:
    """Look up element ``name`` of FHIR type ``type_name`` (``None`` when unknown).

    Parameters
    ----------
    type_name : str or None
        FHIR type or resource name.
    name : str
        JSON property name, or the base name of a choice element (``value``).
    """
    if type_name is None or type_name in PRIMITIVE_KINDS:
        return None
    elements = _elements(type_name)
    if elements is None:
        return None
    return elements.get(name)


def is_known(type_name: str | None) -> bool:
    """Whether the schema knows ``type_name`` (a primitive or a modelled type)."""
    if type_name is None:
        return False
    return type_name in PRIMITIVE_KINDS or _elements(type_name) is not None


@cache
def is_resource_type(name: str) -> bool:
    """Whether ``name`` is an R5 resource type."""
    model = _model(name)
    base = _model("Resource")
    if model is None or base is None:
        return False
    return bool(issubclass(model, base)) and name not in ("Resource", "DomainResource")


def kind_of(type_name: str | None) -> str:
    """Return the value kind of a FHIR type.

    One of ``bool``, ``int``, ``dec``, ``str``, ``complex`` or ``unknown``.
    """
    if type_name is None:
        return "unknown"
    if type_name in PRIMITIVE_KINDS:
        return PRIMITIVE_KINDS[type_name]
    return "complex" if is_known(type_name) else "unknown"
