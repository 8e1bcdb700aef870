"""Domains: the public description of the columns a synthesizer may see.

A domain is public metadata, written before the data are looked at (from the data model,
a feature set or published documentation): for every column its kind, its categories or its
bins, its bounds. A synthesizer learns only how often each code occurs, never the codes
themselves, so nothing about the private table leaks through the domain. A domain drafted
from a table (:func:`cardiobox.synth.draft.draft_domain`) is marked ``derived_from_data``
and warns loudly every time it is loaded.

Every column gets the codes ``0 .. K-1`` (its categories or bins, in order), then one code for
a missing value (``NULL``) and one for a value outside the domain (out of bounds, not a whole
number where one is expected, an unknown category): ``size = K + 2``.

Kinds
-----
``numeric``
    Real numbers; ``bounds`` and ``bins`` (equal width, default 20) or explicit ``edges``.
    Bins are half-open ``[e_i, e_i+1)`` except the last, which is closed. ``decimals`` rounds
    decoded values onto a grid inside their bin.
``integer``
    Whole numbers; ``bounds`` (each integer its own code when there are at most
    :data:`MAX_INTEGER_LEVELS`, else ``bins`` groups of consecutive integers) or ``edges``.
``categorical``
    ``categories``: numbers or strings, not both. A string ``"1"`` and a number ``1`` are
    different: a column is matched by its Arrow type (numbers against numeric columns, strings
    against string columns); numbers compare by value, so ``1`` matches ``1.0``.
``boolean``
    ``false``/``true`` (or ``0``/``1`` in a numeric column); codes 0 and 1.
``date``
    Whole days from ``index`` (another date column of the same row) or from a fixed ``origin``
    date, binned like ``integer``.

A numeric or integer column with ``event: FLAG`` is a time to event: its duration is never
negative and is decoded consistently with the flag column (see
:func:`cardiobox.synth.encode.decode`).

Example
-------
>>> d = Domain.model_validate(
...     {"name": "demo", "columns": [{"name": "age", "kind": "integer", "bounds": [18, 27]},
...                                  {"name": "sex", "kind": "categorical",
...                                   "categories": ["female", "male"]}]})
>>> d.sizes()
[12, 4]
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from cardiobox import yamlio
from cardiobox.errors import CardioboxError, Location

#: Equal-width bins of a numeric column given ``bounds`` without ``bins``.
DEFAULT_BINS = 20
#: An integer or date column with at most this many values gives each value its own code.
MAX_INTEGER_LEVELS = 32

Kind = Literal["numeric", "integer", "categorical", "boolean", "date"]
DType = Literal[
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "float32",
    "float64",
    "string",
    "large_string",
    "date32",
    "timestamp[s]",
    "timestamp[ms]",
    "timestamp[us]",
    "timestamp[ns]",
]
Number = StrictInt | StrictFloat
CategoryValue = StrictInt | StrictFloat | StrictStr

_INTS = ("int8", "int16", "int32", "int64")
#: The output types each kind may decode to; the first is the default.
_DTYPES: dict[str, tuple[str, ...]] = {
    "numeric": ("float64", "float32"),
    "integer": ("int64", "int32", "int16", "int8", "float64"),
    "boolean": ("bool", *_INTS, "float64"),
    "categorical_numbers": ("int64", "int32", "int16", "int8", "float64", "float32"),
    "categorical_strings": ("string", "large_string"),
    "date": ("date32", "timestamp[s]", "timestamp[ms]", "timestamp[us]", "timestamp[ns]"),
}
#: Units of an output date type in one day (all divide each other).
PER_DAY: dict[str, int] = {
    "date32": 1,
    "timestamp[s]": 86_400,
    "timestamp[ms]": 86_400_000,
    "timestamp[us]": 86_400_000_000,
    "timestamp[ns]": 86_400_000_000_000,
}

DERIVED_NOTE = (
    "DRAFTED FROM THE DATA: the bounds and categories of this domain were read from the "
    "values of a table (minimum, maximum, every category seen), so the domain is NOT private "
    "and fitting with it leaks those values outside any privacy budget. Review every column "
    "and replace it with public bounds (the data dictionary, published documentation, "
    "clinical plausibility), then set derived_from_data: false."
)


class DomainError(CardioboxError):
    """A domain that cannot be used, or a table or code matrix that does not fit its domain."""


class DerivedDomainWarning(UserWarning):
    """A domain was derived from the data: it is not private until it has been reviewed."""

    # Loading the domain and encoding with it both warn: a command shows the note once for
    # each domain (its ``once_key``).
    once_per_command = True

    def __init__(self, message: str, domain: str | None = None) -> None:
        super().__init__(message)
        self.once_key = domain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_whole(x: float) -> bool:
    return math.isfinite(x) and float(x).is_integer()


class ColumnDomain(_Strict):
    """The domain of one column.

    Parameters
    ----------
    name : str
        Column name in the table.
    kind : {"numeric", "integer", "categorical", "boolean", "date"}
        What the values are.
    bounds : (low, high), optional
        Inclusive range of accepted values (days for a date); binned by ``bins``.
    bins : int, optional
        Number of equal-width bins inside ``bounds`` (numeric default 20; integer and date:
        one code per value up to :data:`MAX_INTEGER_LEVELS` values, else 20 groups).
    edges : list of float, optional
        Explicit, strictly increasing bin edges (instead of ``bounds``/``bins``).
    categories : list of int, float or str, optional
        The values of a categorical column, in code order.
    index : str, optional
        Date columns: days are counted from this date column of the same row.
    origin : date, optional
        Date columns: days are counted from this fixed date.
    event : str, optional
        Numeric or integer durations: the event flag column (boolean or categorical) of a
        time to event.
    decimals : int, optional
        Numeric columns: decoded values are rounded to this many decimals (inside their bin).
    dtype : str, optional
        Arrow type of the decoded column (default by kind: float64, int64, bool, the
        categories' type, date32 or the index column's type).
    unit, description, variable : str, optional
        Documentation: the unit, what the column means, the data-model variable it holds.
    """

    name: str = Field(min_length=1)
    kind: Kind
    bounds: tuple[Number, Number] | None = None
    bins: int | None = Field(default=None, ge=1)
    edges: list[Number] | None = Field(default=None, min_length=2)
    categories: list[CategoryValue] | None = Field(default=None, min_length=1)
    index: str | None = None
    origin: date | None = None
    event: str | None = None
    decimals: int | None = Field(default=None, ge=0, le=12)
    dtype: DType | None = None
    unit: str | None = None
    description: str | None = None
    variable: str | None = None

    @field_validator("categories", "bounds", "edges", mode="before")
    @classmethod
    def _no_booleans(cls, v: Any) -> Any:
        # YAML reads true/false/yes/no as booleans; a bool is not a number here.
        if isinstance(v, list | tuple) and any(isinstance(x, bool) for x in v):
            raise ValueError(
                "true/false (and YAML's yes/no/on/off) are booleans, not values of this list; "
                "quote them as strings, or use kind: boolean"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ColumnDomain:
        binned = self.kind in ("numeric", "integer", "date")
        given = {
            k
            for k in ("bounds", "bins", "edges", "categories", "index", "origin", "decimals")
            if getattr(self, k) is not None
        }
        allowed = {
            "numeric": {"bounds", "bins", "edges", "decimals"},
            "integer": {"bounds", "bins", "edges"},
            "date": {"bounds", "bins", "edges", "index", "origin"},
            "categorical": {"categories"},
            "boolean": set(),
        }[self.kind]
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"{', '.join(extra)}: not allowed for kind {self.kind}")
        if binned:
            self._check_bins()
        if self.kind == "categorical":
            self._check_categories()
        if self.kind == "date" and (self.index is None) == (self.origin is None):
            raise ValueError(
                "a date column needs exactly one of index (a column) or origin (a date)"
            )
        if self.index is not None and self.index == self.name:
            raise ValueError("index: a date column cannot count days from itself")
        if self.event is not None:
            if self.kind not in ("numeric", "integer"):
                raise ValueError("event: only a numeric or integer duration has an event flag")
            if self.event == self.name:
                raise ValueError("event: a duration cannot be its own event flag")
            if self.value_range()[0] < 0:
                raise ValueError("bounds: a duration (with event) cannot be negative")
        if self.dtype is not None and self.dtype not in self._dtypes():
            raise ValueError(
                f"dtype: {self.dtype} does not fit kind {self.kind}"
                f" (allowed: {', '.join(self._dtypes())})"
            )
        if (
            self.kind == "categorical"
            and self.dtype in _INTS
            and not all(_is_whole(float(c)) for c in self.categories or [])
        ):
            raise ValueError(f"dtype: {self.dtype} cannot hold the non-integer categories")
        return self

    def _check_bins(self) -> None:
        if (self.bounds is None) == (self.edges is None):
            raise ValueError("give bounds (with bins) or edges, one of the two")
        if self.edges is not None and self.bins is not None:
            raise ValueError("bins: explicit edges already give the bins")
        whole = self.kind in ("integer", "date")
        if self.bounds is not None:
            lo, hi = self.bounds
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError("bounds: must be finite numbers")
            if whole and not (_is_whole(lo) and _is_whole(hi)):
                raise ValueError(f"bounds: {self.kind} bounds must be whole numbers")
            if hi < lo or (hi == lo and not whole):
                raise ValueError(f"bounds: low ({lo}) must be below high ({hi})")
        else:
            e = np.asarray(self.edges, dtype=float)
            if not np.isfinite(e).all() or not (np.diff(e) > 0).all():
                raise ValueError("edges: must be finite and strictly increasing")
        if whole:
            a, b = self.lattice()
            empty = np.flatnonzero(a > b)
            if empty.size:
                raise ValueError(f"edges: bin {int(empty[0])} holds no whole number")

    def _check_categories(self) -> None:
        cats = self.categories or []
        numbers = [c for c in cats if not isinstance(c, str)]
        if numbers and len(numbers) != len(cats):
            raise ValueError("categories: all numbers or all strings, not both")
        keys: list[float | str] = [float(c) for c in numbers] if numbers else list(cats)
        if len(set(keys)) != len(keys):
            dup = sorted({str(k) for k in keys if keys.count(k) > 1})
            raise ValueError(f"categories: repeated values {dup}")
        if numbers and not all(math.isfinite(k) for k in map(float, numbers)):
            raise ValueError("categories: numbers must be finite")

    def _dtypes(self) -> tuple[str, ...]:
        if self.kind == "categorical":
            strings = bool(self.categories) and isinstance((self.categories or [0])[0], str)
            return _DTYPES["categorical_strings" if strings else "categorical_numbers"]
        return _DTYPES[self.kind]

    # -- codes ----------------------------------------------------------------------------

    @property
    def levels(self) -> int:
        """Number of value codes ``K`` (categories or bins), without MISSING/OUT_OF_RANGE."""
        if self.kind == "categorical":
            return len(self.categories or [])
        if self.kind == "boolean":
            return 2
        return len(self.bin_edges()) - 1

    @property
    def size(self) -> int:
        """Number of codes: ``levels + 2``."""
        return self.levels + 2

    @property
    def missing_code(self) -> int:
        """The code of a NULL value (``levels``)."""
        return self.levels

    @property
    def out_of_range_code(self) -> int:
        """The code of a value outside the domain (``levels + 1``)."""
        return self.levels + 1

    @property
    def whole(self) -> bool:
        """Whether the values are whole numbers (integer and date columns)."""
        return self.kind in ("integer", "date")

    @property
    def string_categories(self) -> bool:
        """Whether a categorical column's categories are strings."""
        return self.kind == "categorical" and isinstance((self.categories or [0])[0], str)

    def bin_edges(self) -> npt.NDArray[np.float64]:
        """The bin edges, ``levels + 1`` increasing numbers (empty for unbinned kinds).

        Integer and date bins computed from ``bounds`` have half-integer edges
        (``low - 0.5``, ...), so that each bin holds whole consecutive values.
        """
        if self.edges is not None:
            return np.asarray(self.edges, dtype=np.float64)
        if self.bounds is None:
            return np.empty(0, dtype=np.float64)
        lo, hi = float(self.bounds[0]), float(self.bounds[1])
        if not self.whole:
            return np.linspace(lo, hi, (self.bins or DEFAULT_BINS) + 1)
        n = int(hi - lo) + 1
        if self.bins is None:
            k = n if n <= MAX_INTEGER_LEVELS else DEFAULT_BINS
        else:
            k = min(self.bins, n)
        # round half up keeps the cut points strictly increasing (steps are >= 1)
        cuts = np.floor(np.linspace(0.0, n, k + 1) + 0.5)
        return lo - 0.5 + cuts

    def value_range(self) -> tuple[float, float]:
        """The inclusive range of accepted values of a binned column."""
        if self.bounds is not None:
            return float(self.bounds[0]), float(self.bounds[1])
        e = self.bin_edges()
        if self.whole:
            return float(math.ceil(e[0])), float(math.floor(e[-1]))
        return float(e[0]), float(e[-1])

    def lattice(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Grid points ``a[i] .. b[i]`` (inclusive) of each bin, in units of ``10**-decimals``.

        Whole numbers for integer and date columns; ``k / 10**decimals`` for a numeric column
        with ``decimals``. A bin too narrow to hold a grid point has ``a > b``.
        """
        scale = 10.0 ** (self.decimals or 0)
        e = np.round(self.bin_edges() * scale, 6)  # 0.1 * 10 must be 1, not 1.0000000000000002
        a = np.ceil(e[:-1])
        b = np.ceil(e[1:]) - 1.0
        b[-1] = np.floor(e[-1])
        if self.whole:
            lo, hi = self.value_range()
            a, b = np.maximum(a, lo), np.minimum(b, hi)
        return a.astype(np.int64), b.astype(np.int64)

    def labels(self) -> list[str]:
        """A readable label for each code (bins as intervals), MISSING and OUT_OF_RANGE last."""
        if self.kind == "categorical":
            out = [str(c) for c in self.categories or []]
        elif self.kind == "boolean":
            out = ["false", "true"]
        elif self.whole:
            a, b = self.lattice()
            out = [str(x) if x == y else f"{x}..{y}" for x, y in zip(a, b, strict=True)]
        else:
            e = self.bin_edges()
            out = [f"[{e[i]:g}, {e[i + 1]:g})" for i in range(len(e) - 1)]
            out[-1] = out[-1][:-1] + "]"
        return [*out, "MISSING", "OUT_OF_RANGE"]


class Domain(_Strict):
    """The domain of a table: one :class:`ColumnDomain` per column, in code order.

    Parameters
    ----------
    cardiobox_domain : 1
        Format version.
    name : str
        Name of the domain.
    description : str
        What the table holds.
    derived_from_data : bool
        True when drafted from a table: not private until reviewed (warns when loaded).
    note : str, optional
        Why the domain is what it is (for a drafted domain: what must be reviewed).
    columns : list of ColumnDomain
        The columns.
    """

    cardiobox_domain: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    derived_from_data: bool = False
    note: str | None = None
    columns: list[ColumnDomain] = Field(min_length=1)

    @model_validator(mode="after")
    def _links(self) -> Domain:
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"columns: repeated names {dup}")
        kinds = {c.name: c.kind for c in self.columns}
        for c in self.columns:
            if c.index is not None and kinds.get(c.index) != "date":
                raise ValueError(
                    f"column {c.name!r}: index {c.index!r} must be a date column of this domain"
                )
            if c.event is not None and kinds.get(c.event) not in ("boolean", "categorical"):
                raise ValueError(
                    f"column {c.name!r}: event {c.event!r} must be a boolean or categorical "
                    "column of this domain"
                )
        self.decode_order()  # raises on a cycle of index columns
        if self.derived_from_data:
            warnings.warn(
                DerivedDomainWarning(f"domain {self.name!r}: {DERIVED_NOTE}", self.name),
                stacklevel=2,
            )
        return self

    @property
    def names(self) -> list[str]:
        """Column names, in code order."""
        return [c.name for c in self.columns]

    def sizes(self) -> list[int]:
        """Number of codes of each column (``levels + 2``)."""
        return [c.size for c in self.columns]

    def column(self, name: str) -> ColumnDomain:
        """The domain of one column.

        Raises
        ------
        DomainError
            When the domain has no such column.
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise DomainError(
            f"column {name!r} is not in domain {self.name!r} (columns: {', '.join(self.names)})",
            rule="domain-column",
        )

    def position(self, name: str) -> int:
        """The index of a column in code order."""
        return self.names.index(self.column(name).name)

    def decode_order(self) -> list[int]:
        """Column positions ordered so that a date column comes after its index column.

        Raises
        ------
        ValueError
            When index columns form a cycle.
        """
        pos = {c.name: i for i, c in enumerate(self.columns)}
        order: list[int] = []
        state: dict[int, int] = {}  # 1 visiting, 2 done

        def visit(i: int, path: list[str]) -> None:
            if state.get(i) == 2:
                return
            if state.get(i) == 1:
                raise ValueError(f"columns: index columns form a cycle: {' -> '.join(path)}")
            state[i] = 1
            dep = self.columns[i].index
            if dep is not None and dep in pos:
                visit(pos[dep], [*path, dep])
            state[i] = 2
            order.append(i)

        for i, c in enumerate(self.columns):
            visit(i, [c.name])
        return order

    def arrow_type(self, name: str) -> pa.DataType:
        """The Arrow type a column decodes to."""
        c = self.column(name)
        dtype: str | None = c.dtype
        if dtype is None:
            if c.kind == "categorical":
                floats = any(isinstance(x, float) for x in c.categories or [])
                dtype = "string" if c.string_categories else ("float64" if floats else "int64")
            elif c.kind == "date" and c.index is not None:
                return self.arrow_type(c.index)
            else:
                dtype = _DTYPES[c.kind][0]
        return _arrow(dtype)

    # -- files ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The domain as plain JSON-able data (unset fields left out)."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        for c in out["columns"]:
            if "bounds" in c:
                c["bounds"] = list(c["bounds"])
        return out

    def to_yaml(self) -> str:
        """The domain as YAML, one line per column (a drafted domain starts with a warning)."""
        data = self.to_dict()
        columns = data.pop("columns")
        lines: list[str] = []
        if self.derived_from_data:
            lines += ["# " + line for line in _wrap(DERIVED_NOTE, 94)]
        lines.append(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip())
        lines.append("columns:")
        for c in columns:
            flow = yaml.safe_dump(
                c, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**6
            )
            lines.append("  - " + flow.strip())
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the domain to ``path`` (JSON for ``.json``, else YAML)."""
        p = Path(path)
        if p.suffix.lower() == ".json":
            p.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        else:
            p.write_text(self.to_yaml(), encoding="utf-8")
        return p

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> Domain:
        """Validate a domain given as plain data.

        Parameters
        ----------
        data : Any
            The parsed YAML or JSON.
        source : str, optional
            The file it came from, named in errors.

        Raises
        ------
        DomainError
            Naming the file and the field of the first problem.
        """
        if not isinstance(data, dict) or "cardiobox_domain" not in data:
            raise DomainError(
                "expected a domain (a mapping with cardiobox_domain: 1)",
                rule="domain-schema",
                location=Location(file=source),
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _locate(data, first["loc"], first["type"] in ("missing", "extra_forbidden"))
            more = exc.error_count() - 1
            msg = str(first["msg"]).removeprefix("Value error, ")
            if str(first["type"]).startswith(("int_", "float_")):  # a Number union's first try
                msg = f"expected a number, not {first.get('input')!r}"
                more = sum(1 for e in exc.errors() if tuple(e["loc"])[:-1] != first["loc"][:-1])
            raise DomainError(
                msg + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""),
                rule="domain-schema",
                location=Location(file=source, element=where or None),
            ) from exc

    @classmethod
    def load(cls, path: str | Path) -> Domain:
        """Read a domain file (YAML or JSON).

        Raises
        ------
        DomainError
            For a missing file, a syntax error or a schema error, naming the file and field.
        """
        p = Path(path)
        raw = yamlio.load_file(p, "domain-syntax", DomainError)
        return cls.from_dict(raw, source=str(p))


def load_domain(path: str | Path) -> Domain:
    """Read a domain file (YAML or JSON); see :meth:`Domain.load`."""
    return Domain.load(path)


def _arrow(dtype: str) -> pa.DataType:
    if dtype.startswith("timestamp["):
        return pa.timestamp(dtype[len("timestamp[") : -1])
    return {
        "bool": pa.bool_(),
        "string": pa.string(),
        "large_string": pa.large_string(),
        "date32": pa.date32(),
    }.get(dtype) or pa.type_for_alias(dtype)


def _locate(raw: Any, loc: tuple[Any, ...], key_error: bool) -> str:
    """The path of a pydantic error in the file's terms: ``columns[2] (chol).bounds``.

    Union members tried by pydantic (``int``, ``function-after[...]``) are left out: only keys
    and indexes present in the data are kept (and the last part of a missing or extra key).
    """
    out = ""
    node = raw
    for k, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out += f"[{part}]"
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        elif isinstance(node, dict) and part in node:
            node = node[part]
            out += f".{part}" if out else str(part)
        elif key_error and k == len(loc) - 1:
            out += f".{part}" if out else str(part)
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines
