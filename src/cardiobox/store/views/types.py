"""Column types: a column's declared FHIR type → DuckDB and Arrow types.

=====================================================  ===========  ==========
declared ``type``                                       DuckDB       Arrow
=====================================================  ===========  ==========
``boolean``                                             ``BOOLEAN``  bool
``integer``, ``positiveInt``, ``unsignedInt``,          ``BIGINT``   int64
``integer64``
``decimal``                                             ``DOUBLE``   float64
``string``, ``code``, ``id``, ``uri``, ``url``,          ``VARCHAR``  string
``canonical``, ``oid``, ``uuid``, ``markdown``,
``base64Binary``, ``date``, ``dateTime``, ``instant``,
``time``
a complex type (``Quantity``, ``HumanName``...)         ``VARCHAR``  string (JSON text)
=====================================================  ===========  ==========

Without a declared type the column takes the type of its values (same table; values of
unknown type are text). ``collection: true`` makes it a list of that type.
"""

from __future__ import annotations

from typing import Any

from cardiobox.store.views import schema
from cardiobox.store.views.sqlvalue import KIND_SQL

_PREFIX = "http://hl7.org/fhir/StructureDefinition/"


def declared_type(declared: str | None) -> str | None:
    """Return the FHIR type name of a column ``type`` (a name or a StructureDefinition URL)."""
    if declared is None:
        return None
    if declared.startswith(_PREFIX):
        return declared[len(_PREFIX) :]
    return declared


def column_kind(declared: str | None, value_kind: str) -> str:
    """Value kind a column is output as (a key of ``KIND_SQL``)."""
    name = declared_type(declared)
    if name is None:
        return value_kind if value_kind in KIND_SQL else "unknown"
    return schema.PRIMITIVE_KINDS.get(name, "complex")


def sql_type(declared: str | None) -> str:
    """DuckDB type of a column with this declared type (``VARCHAR`` when not declared)."""
    return KIND_SQL[column_kind(declared, "unknown")]


def arrow_type(duck_type: str) -> Any:
    """Return the Arrow type of a DuckDB column type produced by the compiler."""
    import pyarrow as pa

    if duck_type.endswith("[]"):
        # DuckDB names the list item field "l"; match it so both paths give one schema.
        return pa.list_(pa.field("l", arrow_type(duck_type[:-2])))
    return {
        "BOOLEAN": pa.bool_(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
    }.get(duck_type, pa.string())
