"""Structural validation of FHIR resources against the base specification.

Two tools live here:

* :func:`structural_findings` validates one resource with ``fhir.resources`` (the release's
  pydantic models: element names, types, cardinalities, required elements, choice types,
  primitive formats) and adds the JSON-type rules ``fhir.resources`` is lenient about
  (``"true"`` for a boolean, ``"5"`` for an integer, empty strings, empty objects).
* :func:`walk` maps a resource's JSON onto the release's models and lists every primitive
  leaf with its FHIR type. The store uses it to validate millions of resources quickly:
  resources with the same JSON skeleton share one structural verdict, and only their
  primitive values are then checked, vectorised, in DuckDB
  (see :mod:`cardiobox.store.validate`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import ValidationError

from cardiobox.cdm.fhir_versions import model_class
from cardiobox.cdm.findings import Finding
from cardiobox.cdm.jsontext import copy_json

#: Primitive types whose JSON representation is a JSON string.
STRING_PRIMITIVES = frozenset(
    {
        "String",
        "Code",
        "Id",
        "Uri",
        "Url",
        "Canonical",
        "Oid",
        "Uuid",
        "Markdown",
        "Base64Binary",
        "Date",
        "DateTime",
        "Instant",
        "Time",
        "Xhtml",
        "Integer64",  # FHIR R5 serialises integer64 as a JSON string
    }
)
INTEGER_PRIMITIVES = frozenset({"Integer", "PositiveInt", "UnsignedInt"})
NUMBER_PRIMITIVES = frozenset({"Decimal"})
BOOLEAN_PRIMITIVES = frozenset({"Boolean"})

#: A valid placeholder per primitive type, used to tell shape errors from value errors.
NEUTRAL_VALUES: dict[str, Any] = {
    "String": "x",
    "Code": "x",
    "Id": "x",
    "Uri": "urn:x",
    "Url": "http://x",
    "Canonical": "http://x",
    "Oid": "urn:oid:1.2",
    "Uuid": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
    "Markdown": "x",
    "Base64Binary": "eA==",
    "Date": "2000-01-01",
    "DateTime": "2000-01-01",
    "Instant": "2000-01-01T00:00:00Z",
    "Time": "00:00:00",
    "Xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
    "Integer64": "1",
    "Integer": 1,
    "PositiveInt": 1,
    "UnsignedInt": 1,
    "Decimal": 1,
    "Boolean": True,
}


@dataclass(frozen=True)
class Leaf:
    """A primitive value inside a resource.

    Parameters
    ----------
    path : tuple
        Keys and list indices from the resource root, e.g. ``("code", "coding", 0, "code")``.
    fhir_type : str
        FHIR primitive type name as in ``fhir_core.types`` (``DateTime``, ``Code``, ...).
    """

    path: tuple[str | int, ...]
    fhir_type: str

    @property
    def json_path(self) -> str:
        """DuckDB JSON path, e.g. ``$.code.coding[0].code``."""
        out = "$"
        for p in self.path:
            out += (
                f"[{p}]" if isinstance(p, int) else f'."{p}"' if not p.isidentifier() else f".{p}"
            )
        return out


@dataclass
class WalkResult:
    """What :func:`walk` learnt about a resource."""

    leaves: list[Leaf] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class FieldInfo:
    """How one JSON key of a FHIR type is declared."""

    kind: str  # "primitive", "complex", "resource", "any"
    type_name: str  # primitive or complex type name
    is_list: bool
    required: bool = False
    choice: str | None = None  # name of the choice group (value[x] -> "value")


def element_path(resource_type: str, path: typing.Sequence[str | int]) -> str:
    """Render a JSON location as a FHIRPath-like element path (``Patient.name[0].given[1]``)."""
    out = resource_type
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """Strip Optional/Union/List/Annotated; return (base, is_list, metadata)."""
    is_list = False
    metadata: list[Any] = []
    changed = True
    while changed:
        changed = False
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Union or (
            origin is not None and str(origin) == "<class 'types.UnionType'>"
        ):
            non_none = [a for a in args if a is not type(None)]
            annotation = non_none[0]
            changed = True
        elif origin in (list, typing.List):  # noqa: UP006
            is_list = True
            annotation = args[0]
            changed = True
        elif origin is typing.Annotated:
            annotation = args[0]
            metadata.extend(args[1:])
            changed = True
    return annotation, is_list, metadata


@cache
def element_fields(version: str, type_name: str) -> dict[str, FieldInfo]:
    """JSON key → field description for one model class (cached)."""
    cls = model_class(version, type_name)
    out: dict[str, FieldInfo] = {}
    for name, info in cls.model_fields.items():
        key = info.alias or name
        base, is_list, metadata = _unwrap(info.annotation)
        primitive = next(
            (
                type(m).__name__ if not isinstance(m, type) else m.__name__
                for m in metadata
                if type(m).__module__ == "fhir_core.types"
                or (isinstance(m, type) and m.__module__ == "fhir_core.types")
            ),
            None,
        )
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        required = bool(extra.get("element_required")) or info.is_required()
        choice = extra.get("one_of_many")
        choice = str(choice) if choice else None
        if primitive is not None:
            out[key] = FieldInfo("primitive", primitive, is_list, required, choice)
        elif base is bool:
            out[key] = FieldInfo("primitive", "Boolean", is_list, required, choice)
        elif hasattr(base, "get_model_klass"):
            target = base.get_model_klass()
            tname = getattr(target, "__resource_type__", target.__name__)
            kind = "resource" if tname == "Resource" else "complex"
            if key.startswith("_"):
                kind = "complex"
            out[key] = FieldInfo(kind, tname, is_list, required, choice)
        else:
            out[key] = FieldInfo("any", getattr(base, "__name__", str(base)), is_list)
    return out


@cache
def choice_groups(version: str, type_name: str) -> dict[str, tuple[list[str], bool]]:
    """Choice elements of a type: group name → (JSON keys, whether one is required)."""
    cls = model_class(version, type_name)
    groups: dict[str, tuple[list[str], bool]] = {}
    for name, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        group = extra.get("one_of_many")
        if group:
            keys, req = groups.get(str(group), ([], False))
            keys.append(info.alias or name)
            groups[str(group)] = (keys, req or bool(extra.get("one_of_many_required")))
    return groups


def _json_kind_ok(fhir_type: str, value: Any) -> bool:
    if fhir_type in BOOLEAN_PRIMITIVES:
        return isinstance(value, bool)
    if fhir_type in INTEGER_PRIMITIVES:
        return isinstance(value, int) and not isinstance(value, bool)
    if fhir_type in NUMBER_PRIMITIVES:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if fhir_type in STRING_PRIMITIVES:
        return isinstance(value, str)
    return True


_JSON_NAMES = {
    "Boolean": "a JSON boolean (true/false)",
    "Integer": "a JSON integer",
    "PositiveInt": "a JSON integer",
    "UnsignedInt": "a JSON integer",
    "Decimal": "a JSON number",
}


def walk(resource: dict[str, Any], version: str) -> WalkResult:
    """List the primitive leaves of a resource and the JSON-type problems on the way.

    Unknown elements are skipped here (``fhir.resources`` reports them). Elements that are
    lists in FHIR must be JSON arrays and the others must not; primitives must have the
    JSON type FHIR prescribes; strings, objects and arrays must not be empty.

    Parameters
    ----------
    resource : dict
        The resource as parsed JSON.
    version : str
        FHIR release (``"5.0.0"``, ``"4.0.1"``, ``"4.3.0"``).

    Returns
    -------
    WalkResult
    """
    result = WalkResult()
    rtype = str(resource.get("resourceType", "?"))
    rid = resource.get("id") if isinstance(resource.get("id"), str) else None

    def problem(path: tuple[str | int, ...], message: str, rule: str = "json-type") -> None:
        result.findings.append(Finding(rtype, rid, element_path(rtype, path), rule, message))

    def visit_value(info: FieldInfo, value: Any, path: tuple[str | int, ...]) -> None:
        if value is None:
            problem(path, "null is not allowed here", "empty")
            return
        if info.kind == "primitive":
            if isinstance(value, dict | list):
                problem(
                    path, f"expected a {info.type_name} value, found a JSON {type(value).__name__}"
                )
            elif not _json_kind_ok(info.type_name, value):
                want = _JSON_NAMES.get(info.type_name, "a JSON string")
                problem(path, f"{info.type_name} must be {want}, found {value!r}")
            elif value == "":
                problem(path, "empty strings are not allowed in FHIR", "empty")
            else:
                result.leaves.append(Leaf(path, info.type_name))
        elif info.kind in ("complex", "resource"):
            if not isinstance(value, dict):
                problem(path, f"expected a {info.type_name} object, found {type(value).__name__}")
                return
            if not value:
                problem(path, "empty objects are not allowed in FHIR", "empty")
                return
            if info.kind == "resource":
                visit_object(str(value.get("resourceType", "")), value, path, resource_root=True)
            else:
                visit_object(info.type_name, value, path)

    def visit_object(
        type_name: str,
        obj: dict[str, Any],
        path: tuple[str | int, ...],
        resource_root: bool = False,
    ) -> None:
        try:
            fields = element_fields(version, type_name)
        except KeyError:
            return  # unknown resource type: reported elsewhere
        for key, value in obj.items():
            if resource_root and key == "resourceType":
                continue
            info = fields.get(key)
            if info is None:
                continue  # fhir.resources reports unknown elements with a better message
            sub = (*path, key)
            if key.startswith("_"):
                # Primitive extensions: an Element object, or a list aligned with the values.
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        if item is not None:
                            visit_value(FieldInfo("complex", "Element", False), item, (*sub, i))
                else:
                    visit_value(FieldInfo("complex", "Element", False), value, sub)
                continue
            if info.is_list:
                if not isinstance(value, list):
                    problem(sub, f"{key} repeats in FHIR and must be a JSON array")
                    continue
                if not value:
                    problem(sub, "empty arrays are not allowed in FHIR", "empty")
                    continue
                for i, item in enumerate(value):
                    visit_value(info, item, (*sub, i))
            else:
                if isinstance(value, list):
                    problem(sub, f"{key} does not repeat in FHIR and must not be a JSON array")
                    continue
                visit_value(info, value, sub)

    visit_object(rtype, resource, (), resource_root=True)
    return result


def _loc_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    return tuple(p for p in loc if isinstance(p, int | str) and not str(p).startswith("function-"))


def model_findings(resource: dict[str, Any], version: str) -> list[Finding]:
    """Validate one resource with the release's ``fhir.resources`` model.

    Returns
    -------
    list of Finding
        One finding per pydantic error, with rule ``structure``.
    """
    rtype = str(resource.get("resourceType", "?"))
    rid = resource.get("id") if isinstance(resource.get("id"), str) else None
    try:
        cls = model_class(version, rtype)
    except KeyError:
        return [
            Finding(
                rtype,
                rid,
                rtype,
                "unknown-resource-type",
                f"{rtype} is not a FHIR {version} resource type",
            )
        ]
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            path = _loc_path(tuple(err.get("loc", ())))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = f"unknown element {path[-1] if path else '?'!s} for FHIR {version} {rtype}"
            elif "does not match spec regex" in msg:
                ftype = msg.split(" value string", 1)[0]
                msg = f"{err.get('input')!r} is not a valid FHIR {ftype[:1].lower()}{ftype[1:]}"
            elif isinstance(err.get("input"), str | int | float) and "input" not in msg.lower():
                msg = f"{msg} (found {err.get('input')!r})"
            out.append(Finding(rtype, rid, element_path(rtype, path), "structure", msg))
        return out
    except (ValueError, TypeError) as exc:  # validators that raise outside pydantic's errors
        return [Finding(rtype, rid, rtype, "structure", str(exc))]
    return []


def structural_findings(resource: dict[str, Any], version: str) -> list[Finding]:
    """All structural findings for one resource: JSON types, then the release's model.

    Parameters
    ----------
    resource : dict
        Parsed resource JSON.
    version : str
        FHIR release it is written in.

    Returns
    -------
    list of Finding
        Empty when the resource is structurally valid.
    """
    findings = walk(resource, version).findings
    seen = {f.element for f in findings}
    findings += [f for f in model_findings(resource, version) if f.element not in seen]
    return findings


def neutralised(resource: dict[str, Any], leaves: list[Leaf]) -> dict[str, Any]:
    """A copy of ``resource`` with every primitive leaf replaced by a valid placeholder.

    If the copy is still invalid, the problem lies in the resource's shape (unknown or
    missing elements, wrong nesting), which every resource of the same shape shares.
    """
    out: dict[str, Any] = copy_json(resource)
    for leaf in leaves:
        node: Any = out
        for p in leaf.path[:-1]:
            node = node[p]
        node[leaf.path[-1]] = NEUTRAL_VALUES.get(leaf.fhir_type, "x")
    return out
