"""The mapping language: a YAML description of how an extract becomes data-model resources.

See ``docs/mapping.md`` for the reference. :func:`load_mapping` reads and validates a mapping
file; every error names the file, the YAML line and the key that is wrong.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cardiobox.errors import InputError, Location

ResourceType = Literal[
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "Procedure",
    "DocumentReference",
]

ValueType = Literal["decimal", "integer", "boolean", "string"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Value(_Strict):
    """Where a value comes from and how it is typed.

    Exactly one of ``expr`` (a DuckDB SQL expression over the row's text columns) and
    ``const`` is given. ``map`` looks the value up in a concept map; ``system`` states the code
    system of a code taken as is; ``type`` parses text as a number or boolean; ``format`` (and
    ``timezone``) parse a date or date-time.
    """

    expr: str | None = None
    const: str | float | int | bool | None = None
    map: str | None = None
    system: str | None = None
    type: ValueType | None = None
    format: str | None = None
    timezone: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Value:
        if (self.expr is None) == (self.const is None):
            raise ValueError("give exactly one of 'expr' and 'const'")
        if self.map and self.system:
            raise ValueError("give either 'map' or 'system', not both")
        return self


def _as_value(v: object) -> object:
    """Accept the shorthand: a plain string is an expression, a number a constant."""
    if isinstance(v, str):
        return {"expr": v}
    if isinstance(v, int | float | bool):
        return {"const": v}
    return v


_VALUE_KEYS = (
    "gender",
    "birth_date",
    "deceased",
    "encounter",
    "class_",
    "start",
    "end",
    "admit_source",
    "discharge_disposition",
    "code",
    "value",
    "unit",
    "effective",
    "interpretation",
    "onset",
    "recorded",
    "category",
    "primary",
    "clinical_status",
    "verification_status",
    "medication",
    "dose",
    "dose_unit",
    "performed",
    "text",
    "language",
    "date",
    "note_type",
    "key",
)


class BlockFields(_Strict):
    """The keys a block (or a repeat entry) may set; which apply depends on the type."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    variable: str | None = None
    gender: Value | None = None
    birth_date: Value | None = None
    deceased: Value | None = None
    encounter: Value | None = None
    class_: Value | None = Field(default=None, alias="class")
    start: Value | None = None
    end: Value | None = None
    admit_source: Value | None = None
    discharge_disposition: Value | None = None
    code: Value | None = None
    value: Value | None = None
    unit: Value | None = None
    effective: Value | None = None
    interpretation: Value | None = None
    onset: Value | None = None
    recorded: Value | None = None
    category: Value | None = None
    primary: Value | None = None
    clinical_status: Value | None = None
    verification_status: Value | None = None
    medication: Value | None = None
    dose: Value | None = None
    dose_unit: Value | None = None
    performed: Value | None = None
    text: Value | None = None
    language: Value | None = None
    date: Value | None = None
    note_type: Value | None = None
    key: Value | None = None
    when: str | None = None
    name: str | None = None  # a repeat entry's name (for ids and messages)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        if isinstance(data, dict):
            out = dict(data)
            for k in (*_VALUE_KEYS, "class"):
                if k in out and out[k] is not None:
                    out[k] = _as_value(out[k])
            return out
        return data


#: Keys that apply to each resource type (besides variable/when/key/name).
ALLOWED: dict[str, frozenset[str]] = {
    "Patient": frozenset({"gender", "birth_date", "deceased"}),
    "Encounter": frozenset(
        {"encounter", "class_", "start", "end", "admit_source", "discharge_disposition"}
    ),
    "Observation": frozenset(
        {"variable", "code", "value", "unit", "effective", "encounter", "interpretation"}
    ),
    "Condition": frozenset(
        {
            "code",
            "onset",
            "recorded",
            "encounter",
            "category",
            "primary",
            "clinical_status",
            "verification_status",
        }
    ),
    "MedicationStatement": frozenset(
        {"medication", "start", "end", "encounter", "dose", "dose_unit"}
    ),
    "MedicationRequest": frozenset(
        {"medication", "start", "end", "encounter", "dose", "dose_unit"}
    ),
    "Procedure": frozenset({"code", "performed", "encounter"}),
    "DocumentReference": frozenset({"text", "language", "date", "encounter", "note_type"}),
}
_COMMON = frozenset({"when", "key", "name"})


class Block(BlockFields):
    """One resource block: the resource to make from each row."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    type: ResourceType
    repeat: list[BlockFields] | None = None

    @model_validator(mode="after")
    def _keys_fit_type(self) -> Block:
        allowed = ALLOWED[self.type] | _COMMON
        for fields in [self, *(self.repeat or [])]:
            for name in fields.model_fields_set:
                if name in ("id", "type", "repeat"):
                    continue
                if name not in allowed:
                    shown = "class" if name == "class_" else name
                    raise ValueError(
                        f"{self.type} blocks do not take '{shown}'; they take "
                        + ", ".join(sorted("class" if a == "class_" else a for a in allowed))
                    )
        return self

    def instances(self) -> list[tuple[str, BlockFields]]:
        """(suffix, fields) for each resource this block makes per row."""
        if not self.repeat:
            return [("", self)]
        out = []
        for i, entry in enumerate(self.repeat):
            merged = self.model_dump(exclude={"repeat", "id", "type"}, exclude_none=True)
            merged.update(entry.model_dump(exclude_none=True, exclude_unset=True))
            merged.pop("name", None)
            suffix = entry.name or str(i)
            out.append((suffix, BlockFields.model_validate(merged)))
        return out


def column_key(name: str) -> str:
    """A column name as DuckDB compares names: ASCII letters without regard to case.

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    str
        The name with its ASCII letters in lower case (others as they are).
    """
    return "".join(c.lower() if c.isascii() else c for c in name)


class Source(_Strict):
    """Where the rows come from."""

    format: Literal["csv", "tsv", "parquet", "excel", "sql"]
    path: str | None = None
    header: bool = True
    columns: list[str] | None = None
    delimiter: str | None = None
    quote: str = '"'
    encoding: Literal["utf-8", "latin-1", "windows-1252", "utf-16"] = "utf-8"
    decimal: Literal[".", ","] = "."
    null_values: list[str] = Field(default_factory=lambda: [""])
    sheet: str | None = None
    url: str | None = None
    query: str | None = None
    key: list[str] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Source:
        if self.columns:
            keys = [column_key(n) for n in self.columns]
            named = zip(self.columns, keys, strict=True)
            twice = sorted({n for n, k in named if keys.count(k) > 1})
            if twice:
                raise ValueError(f"columns names {twice} more than once (case does not count)")
        if self.format == "sql":
            if not (self.url and self.query):
                raise ValueError("a sql source needs 'url' and 'query'")
        elif not self.path:
            raise ValueError(f"a {self.format} source needs 'path'")
        if self.format in ("csv", "tsv") and not self.header and not self.columns:
            raise ValueError("a file without a header needs 'columns'")
        return self


class ConceptMapSpec(_Strict):
    """A concept map: a CSV file (local_code,system,code,display) or an inline table."""

    file: str | None = None
    inline: dict[str, dict[str, str]] | None = None
    match: Literal["exact", "prefix"] = "exact"
    case: Literal["sensitive", "insensitive"] = "sensitive"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"file": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one(self) -> ConceptMapSpec:
        if (self.file is None) == (self.inline is None):
            raise ValueError("a concept map needs exactly one of 'file' and 'inline'")
        return self


class Mapping(_Strict):
    """A whole mapping file."""

    cardiobox_mapping: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    description: str = ""
    source: Source
    patient: Value
    timezone: str = "UTC"
    date_format: str | None = None
    concept_maps: dict[str, ConceptMapSpec] = Field(default_factory=dict)
    resources: list[Block] = Field(min_length=1)

    @field_validator("patient", mode="before")
    @classmethod
    def _patient(cls, v: object) -> object:
        return _as_value(v)

    @model_validator(mode="after")
    def _references(self) -> Mapping:
        ids = [b.id for b in self.resources]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"block ids must be unique; repeated: {sorted(dup)}")
        for block in self.resources:
            for _suffix, fields in block.instances():
                for name in fields.model_fields_set:
                    v = getattr(fields, name)
                    if isinstance(v, Value) and v.map and v.map not in self.concept_maps:
                        raise ValueError(
                            f"block {block.id!r} uses concept map {v.map!r}, which is not "
                            f"declared under concept_maps (declared: {sorted(self.concept_maps)})"
                        )
        return self


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    data = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, _value_node in node.value:
        lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1
    data["__lines__"] = lines
    data["__line__"] = node.start_mark.line + 1
    return data


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in ("__lines__", "__line__")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _line_of(doc: Any, loc: tuple[Any, ...]) -> int | None:
    """The YAML line of the deepest key in ``loc`` that exists in the document."""
    node, line = doc, None
    for part in loc:
        if isinstance(node, dict):
            key = "class" if part == "class_" else part
            if key in node:
                line = node.get("__lines__", {}).get(key, line)
                node = node[key]
            else:
                line = node.get("__line__", line)
                break
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                line = node.get("__line__", line)
        else:
            break
    return line


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union")):
            out += ("." if out else "") + ("class" if part == "class_" else str(part))
    return out


def parse_mapping(text: str, path: str = "<mapping>") -> Mapping:
    """Parse and validate mapping text.

    Raises
    ------
    InputError
        Rule ``mapping-syntax`` for YAML errors and ``mapping-schema`` for a wrong structure;
        the location names the file and line, and the message the key.
    """
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: no code runs
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(
            f"not valid YAML: {problem}",
            rule="mapping-syntax",
            location=Location(file=path, line=line),
        ) from None
    if not isinstance(raw, dict):
        raise InputError(
            "a mapping file must be a YAML mapping (key: value) at the top",
            rule="mapping-schema",
            location=Location(file=path, line=1),
        )
    try:
        return Mapping.model_validate(_strip(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'" + _did_you_mean(str(loc[-1]))
        elif err.get("type") == "missing":
            msg = f"missing required key '{loc[-1]}'"
        where = _loc_text(loc)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InputError(
            f"{where}: {msg}{more}" if where else msg + more,
            rule="mapping-schema",
            location=Location(file=path, line=_line_of(raw, loc)),
        ) from None


def _did_you_mean(key: str) -> str:
    names = {
        *BlockFields.model_fields,
        *Block.model_fields,
        *Mapping.model_fields,
        *Source.model_fields,
        *Value.model_fields,
        "class",
    } - {"class_"}
    close = difflib.get_close_matches(key, sorted(names), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file (see :func:`parse_mapping`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"no such mapping file: {p}", rule="missing-input", location=Location(file=str(p))
        )
    return parse_mapping(p.read_text(encoding="utf-8"), str(p))
