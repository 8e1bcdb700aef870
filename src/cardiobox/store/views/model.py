"""The ViewDefinition model: parse and validate a SQL-on-FHIR v2 ViewDefinition.

A view is accepted only when it is fully valid; otherwise a
:class:`~cardiobox.errors.ViewDefinitionError` names the offending element inside the view
(``select[1].column[0].path``) and the rule it breaks (``unknown-key``, ``sql-name``,
``duplicate-column``, ``union-columns``, ``fhirpath-syntax``, ``unknown-constant``...).

Rules checked here need no data and no FHIR types. The compiler adds the type-aware
checks (a ``where`` that is not boolean, ``collection: false`` on a repeating path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cardiobox.errors import Location, ViewDefinitionError
from cardiobox.store.views.fhirpath import (
    BUILTIN_CONSTANTS,
    FhirPathSyntaxError,
    external_constants,
    parse,
)

SQL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: ``value[x]`` types a constant may have (SQL on FHIR v2), with the JSON type they need.
CONSTANT_TYPES: dict[str, str] = {
    "valueBase64Binary": "base64Binary",
    "valueBoolean": "boolean",
    "valueCanonical": "canonical",
    "valueCode": "code",
    "valueDate": "date",
    "valueDateTime": "dateTime",
    "valueDecimal": "decimal",
    "valueId": "id",
    "valueInstant": "instant",
    "valueInteger": "integer",
    "valueInteger64": "integer64",
    "valueOid": "oid",
    "valueString": "string",
    "valuePositiveInt": "positiveInt",
    "valueTime": "time",
    "valueUnsignedInt": "unsignedInt",
    "valueUri": "uri",
    "valueUrl": "url",
    "valueUuid": "uuid",
}

# Keys of the CanonicalResource parent that a ViewDefinition may carry.
_VIEW_KEYS = frozenset(
    {
        "resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
        "extension", "modifierExtension", "url", "identifier", "version",
        "versionAlgorithmString", "versionAlgorithmCoding", "name", "title", "status",
        "experimental", "date", "publisher", "contact", "description", "useContext",
        "jurisdiction", "purpose", "copyright", "copyrightLabel", "resource", "profile",
        "fhirVersion", "constant", "select", "where",
    }
)  # fmt: skip
_ELEMENT_KEYS = frozenset({"id", "extension", "modifierExtension"})
_SELECT_KEYS = _ELEMENT_KEYS | {
    "column",
    "select",
    "forEach",
    "forEachOrNull",
    "repeat",
    "unionAll",
}
_COLUMN_KEYS = _ELEMENT_KEYS | {"path", "name", "description", "collection", "type", "tag"}
_WHERE_KEYS = _ELEMENT_KEYS | {"path", "description"}
_TAG_KEYS = _ELEMENT_KEYS | {"name", "value"}


@dataclass(frozen=True)
class Column:
    """One output column.

    Parameters
    ----------
    name : str
        Column name (``^[A-Za-z][A-Za-z0-9_]*$``).
    path : str
        FHIRPath expression, relative to the enclosing select's context.
    type : str or None
        Declared FHIR type (``string``, ``integer``, ``boolean``, ``Quantity``...).
    collection : bool or None
        ``True``: the column holds a list. ``False``/``None``: one value; more than one is an
        error (``False`` set explicitly on a path that can repeat is rejected at compile time).
    element : str
        Where the column sits inside the view, e.g. ``select[0].column[2]``.
    """

    name: str
    path: str
    type: str | None
    collection: bool | None
    element: str
    description: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Select:
    """A selection structure: columns, nested selects and a union, maybe iterated.

    Parameters
    ----------
    columns : tuple of Column
        Columns of this select.
    selects : tuple of Select
        Nested selects (cross-joined with the columns).
    union_all : tuple of Select
        Branches whose rows are concatenated.
    for_each, for_each_or_null : str or None
        Iteration expression (at most one of them, or ``repeat``).
    repeat : tuple of str or None
        Expressions applied recursively; rows for every node reached, depth first.
    element : str
        Where the select sits inside the view, e.g. ``select[1].unionAll[0]``.
    """

    columns: tuple[Column, ...]
    selects: tuple[Select, ...]
    union_all: tuple[Select, ...]
    for_each: str | None
    for_each_or_null: str | None
    repeat: tuple[str, ...] | None
    element: str

    def column_names(self) -> list[str]:
        """Output columns in order: own columns, nested selects, then the union."""
        names = [c.name for c in self.columns]
        for sub in self.selects:
            names.extend(sub.column_names())
        if self.union_all:
            names.extend(self.union_all[0].column_names())
        return names


@dataclass(frozen=True)
class Constant:
    """A named constant usable as ``%name`` in every path."""

    name: str
    type: str
    value: Any


@dataclass(frozen=True)
class Where:
    """A filter: the resource is kept only when ``path`` is true."""

    path: str
    element: str


@dataclass(frozen=True)
class ViewDefinition:
    """A validated ViewDefinition.

    Parameters
    ----------
    resource : str
        FHIR resource type the view reads.
    select : Select
        The root selection (the view's ``select`` list as nested selects).
    constants : dict
        Constants by name.
    where : tuple of Where
        Resource filters.
    name, title, status : str or None
        Descriptive fields.
    raw : dict
        The ViewDefinition as given.
    """

    resource: str
    select: Select
    constants: dict[str, Constant]
    where: tuple[Where, ...]
    name: str | None = None
    title: str | None = None
    status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def column_names(self) -> list[str]:
        """Output column names, in order."""
        return self.select.column_names()

    def iter_columns(self) -> list[Column]:
        """Every column, in output order (first branch of each union)."""
        out: list[Column] = []

        def walk(sel: Select) -> None:
            out.extend(sel.columns)
            for sub in sel.selects:
                walk(sub)
            if sel.union_all:
                walk(sel.union_all[0])

        walk(self.select)
        return out


def _err(element: str, rule: str, message: str, file: str | None = None) -> ViewDefinitionError:
    return ViewDefinitionError(message, rule=rule, location=Location(file=file, element=element))


class _Validator:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.constants: set[str] = set()

    def fail(self, element: str, rule: str, message: str) -> ViewDefinitionError:
        return _err(element, rule, message, self.file)

    def keys(self, obj: Mapping[str, Any], allowed: frozenset[str], element: str) -> None:
        unknown = sorted(set(obj) - allowed)
        if unknown:
            where = f"{element}.{unknown[0]}" if element else unknown[0]
            raise self.fail(
                where, "unknown-key", f"unknown key {unknown[0]!r} (allowed: {sorted(allowed)})"
            )

    def obj(self, value: Any, element: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(element, "type", f"expected an object, got {type(value).__name__}")
        return value

    def array(self, value: Any, element: str, min_items: int = 0) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(element, "type", f"expected an array, got {type(value).__name__}")
        if len(value) < min_items:
            raise self.fail(element, "cardinality", f"needs at least {min_items} item(s)")
        return value

    def string(self, value: Any, element: str) -> str:
        if not isinstance(value, str):
            raise self.fail(element, "type", f"expected a string, got {type(value).__name__}")
        return value

    def fhirpath(self, value: Any, element: str) -> str:
        text = self.string(value, element)
        try:
            node = parse(text)
        except FhirPathSyntaxError as exc:
            raise self.fail(
                element, "fhirpath-syntax", f"invalid FHIRPath {text!r}: {exc}"
            ) from exc
        for name in sorted(external_constants(node)):
            if name not in self.constants and name not in BUILTIN_CONSTANTS:
                raise self.fail(
                    element,
                    "unknown-constant",
                    f"%{name} is used in {text!r} but no constant {name!r} is defined",
                )
        return text

    def constant(self, value: Any, element: str) -> Constant:
        obj = self.obj(value, element)
        value_keys = [k for k in obj if k.startswith("value")]
        self.keys(obj, _ELEMENT_KEYS | {"name"} | set(CONSTANT_TYPES), element)
        if "name" not in obj:
            raise self.fail(element, "required", "a constant needs a name")
        name = self.string(obj["name"], f"{element}.name")
        if not SQL_NAME.match(name):
            raise self.fail(f"{element}.name", "sql-name", f"invalid constant name {name!r}")
        if len(value_keys) != 1:
            raise self.fail(
                element,
                "constant-value",
                f"constant {name!r} needs exactly one value[x] "
                f"(one of {', '.join(CONSTANT_TYPES)}), got {len(value_keys)}",
            )
        key = value_keys[0]
        ftype = CONSTANT_TYPES[key]
        val = obj[key]
        where = f"{element}.{key}"
        if ftype == "boolean":
            if not isinstance(val, bool):
                raise self.fail(where, "type", "valueBoolean must be true or false")
        elif ftype in ("integer", "positiveInt", "unsignedInt"):
            if isinstance(val, bool) or not isinstance(val, int):
                raise self.fail(where, "type", f"{key} must be an integer")
            if (ftype == "positiveInt" and val < 1) or (ftype == "unsignedInt" and val < 0):
                raise self.fail(where, "type", f"{key} out of range: {val}")
        elif ftype == "integer64":
            if isinstance(val, bool) or not isinstance(val, int | str):
                raise self.fail(where, "type", "valueInteger64 must be an integer")
            try:
                val = int(val)
            except ValueError as exc:
                raise self.fail(where, "type", "valueInteger64 must be an integer") from exc
        elif ftype == "decimal":
            if isinstance(val, bool) or not isinstance(val, int | float):
                raise self.fail(where, "type", "valueDecimal must be a number")
        else:
            self.string(val, where)
        return Constant(name, ftype, val)

    def column(self, value: Any, element: str) -> Column:
        obj = self.obj(value, element)
        self.keys(obj, _COLUMN_KEYS, element)
        for required in ("name", "path"):
            if required not in obj:
                raise self.fail(element, "required", f"a column needs a {required!r}")
        name = self.string(obj["name"], f"{element}.name")
        if not SQL_NAME.match(name):
            raise self.fail(
                f"{element}.name",
                "sql-name",
                f"invalid column name {name!r}: use letters, digits and '_', starting "
                "with a letter",
            )
        path = self.fhirpath(obj["path"], f"{element}.path")
        ctype = obj.get("type")
        if ctype is not None:
            ctype = self.string(ctype, f"{element}.type")
        collection = obj.get("collection")
        if collection is not None and not isinstance(collection, bool):
            raise self.fail(f"{element}.collection", "type", "collection must be true or false")
        description = obj.get("description")
        if description is not None:
            description = self.string(description, f"{element}.description")
        tags: list[tuple[str, str]] = []
        for i, tag in enumerate(self.array(obj.get("tag", []), f"{element}.tag")):
            tobj = self.obj(tag, f"{element}.tag[{i}]")
            self.keys(tobj, _TAG_KEYS, f"{element}.tag[{i}]")
            tags.append(
                (
                    self.string(tobj.get("name"), f"{element}.tag[{i}].name"),
                    self.string(tobj.get("value"), f"{element}.tag[{i}].value"),
                )
            )
        return Column(name, path, ctype, collection, element, description, tuple(tags))

    def select(self, value: Any, element: str) -> Select:
        obj = self.obj(value, element)
        self.keys(obj, _SELECT_KEYS, element)
        iterators = [k for k in ("forEach", "forEachOrNull", "repeat") if k in obj]
        if len(iterators) > 1:
            raise self.fail(
                element, "sql-expressions", f"use at most one of {' / '.join(iterators)}"
            )
        for_each = self.fhirpath(obj["forEach"], f"{element}.forEach") if "forEach" in obj else None
        for_each_or_null = (
            self.fhirpath(obj["forEachOrNull"], f"{element}.forEachOrNull")
            if "forEachOrNull" in obj
            else None
        )
        repeat: tuple[str, ...] | None = None
        if "repeat" in obj:
            items = self.array(obj["repeat"], f"{element}.repeat", min_items=1)
            repeat = tuple(self.fhirpath(p, f"{element}.repeat[{i}]") for i, p in enumerate(items))
        columns = tuple(
            self.column(c, f"{element}.column[{i}]")
            for i, c in enumerate(self.array(obj.get("column", []), f"{element}.column"))
        )
        selects = tuple(
            self.select(s, f"{element}.select[{i}]")
            for i, s in enumerate(self.array(obj.get("select", []), f"{element}.select"))
        )
        union_all = tuple(
            self.select(s, f"{element}.unionAll[{i}]")
            for i, s in enumerate(self.array(obj.get("unionAll", []), f"{element}.unionAll"))
        )
        if not (columns or selects or union_all):
            raise self.fail(element, "empty-select", "a select needs column, select or unionAll")
        if union_all:
            first = union_all[0].column_names()
            for i, branch in enumerate(union_all[1:], start=1):
                names = branch.column_names()
                if names != first:
                    raise self.fail(
                        f"{element}.unionAll[{i}]",
                        "union-columns",
                        f"unionAll branches must have the same columns in the same order: "
                        f"{first} vs {names}",
                    )
        return Select(columns, selects, union_all, for_each, for_each_or_null, repeat, element)

    def view(self, raw: Any) -> ViewDefinition:
        obj = self.obj(raw, "")
        if not obj:
            raise self.fail("ViewDefinition", "required", "empty ViewDefinition")
        self.keys(obj, _VIEW_KEYS, "")
        rtype = obj.get("resourceType")
        if rtype is not None and not (
            isinstance(rtype, str) and rtype.rsplit("/", 1)[-1] == "ViewDefinition"
        ):
            raise self.fail("resourceType", "resource-type", f"not a ViewDefinition: {rtype!r}")
        if "resource" not in obj:
            raise self.fail("resource", "required", "a ViewDefinition needs a 'resource' type")
        resource = self.string(obj["resource"], "resource")
        if not re.match(r"^[A-Z][A-Za-z]*$", resource):
            raise self.fail("resource", "resource-type", f"invalid resource type {resource!r}")
        name = obj.get("name")
        if name is not None and not (isinstance(name, str) and SQL_NAME.match(name)):
            raise self.fail("name", "sql-name", f"invalid view name {name!r}")
        constants: dict[str, Constant] = {}
        for i, c in enumerate(self.array(obj.get("constant", []), "constant")):
            const = self.constant(c, f"constant[{i}]")
            if const.name in constants:
                raise self.fail(f"constant[{i}].name", "duplicate-constant", const.name)
            constants[const.name] = const
        self.constants = set(constants)
        if "select" not in obj:
            raise self.fail("select", "required", "a ViewDefinition needs a 'select'")
        selects = tuple(
            self.select(s, f"select[{i}]")
            for i, s in enumerate(self.array(obj["select"], "select", min_items=1))
        )
        wheres: list[Where] = []
        for i, w in enumerate(self.array(obj.get("where", []), "where")):
            wobj = self.obj(w, f"where[{i}]")
            self.keys(wobj, _WHERE_KEYS, f"where[{i}]")
            if "path" not in wobj:
                raise self.fail(f"where[{i}]", "required", "a where needs a 'path'")
            wheres.append(Where(self.fhirpath(wobj["path"], f"where[{i}].path"), f"where[{i}]"))
        root = Select((), selects, (), None, None, None, "")
        self._unique_columns(root)
        return ViewDefinition(
            resource=resource,
            select=root,
            constants=constants,
            where=tuple(wheres),
            name=name,
            title=obj.get("title") if isinstance(obj.get("title"), str) else None,
            status=obj.get("status") if isinstance(obj.get("status"), str) else None,
            raw=dict(obj),
        )

    def _unique_columns(self, root: Select) -> None:
        seen: dict[str, str] = {}

        def walk(sel: Select) -> None:
            for col in sel.columns:
                # SQL names are case-insensitive: "ID" and "id" would collide in DuckDB.
                key = col.name.lower()
                if key in seen:
                    raise self.fail(
                        f"{col.element}.name",
                        "duplicate-column",
                        f"column {col.name!r} is already defined at {seen[key]}",
                    )
                seen[key] = col.element
            for sub in sel.selects:
                walk(sub)
            if sel.union_all:
                # Every branch has the same columns; check the names once, on the first.
                walk(sel.union_all[0])

        walk(root)


def parse_view(raw: Mapping[str, Any], file: str | None = None) -> ViewDefinition:
    """Validate a ViewDefinition given as a mapping.

    Parameters
    ----------
    raw : Mapping
        The ViewDefinition JSON object.
    file : str, optional
        File it came from, quoted in error messages.

    Returns
    -------
    ViewDefinition

    Raises
    ------
    ViewDefinitionError
        Naming the offending element and the rule it breaks.
    """
    return _Validator(file).view(raw)


def load_view(view: ViewDefinition | Mapping[str, Any] | str | Path) -> ViewDefinition:
    """Load a ViewDefinition from a dict, a JSON string or a JSON file path.

    Parameters
    ----------
    view : ViewDefinition, Mapping, str or Path
        An already validated view (returned as is), the JSON object, JSON text, or the path
        of a ``.json`` file.

    Returns
    -------
    ViewDefinition

    Raises
    ------
    ViewDefinitionError
        When the file cannot be read, the JSON is invalid or the view breaks a rule.
    """
    if isinstance(view, ViewDefinition):
        return view
    if isinstance(view, Mapping):
        return parse_view(view)
    file: str | None = None
    if isinstance(view, Path) or not view.lstrip().startswith("{"):
        file = str(view)
        try:
            text: str | bytes = Path(view).read_bytes()
        except OSError as exc:
            raise ViewDefinitionError(
                f"cannot read ViewDefinition: {exc.strerror or exc}",
                rule="not-found",
                location=Location(file=file),
            ) from exc
    else:
        text = view
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ViewDefinitionError(
            f"invalid JSON: {exc}", rule="invalid-json", location=Location(file=file)
        ) from exc
    if not isinstance(raw, dict):
        raise ViewDefinitionError(
            "a ViewDefinition must be a JSON object",
            rule="type",
            location=Location(file=file),
        )
    return parse_view(raw, file=file)
