"""SQL expressions that build JSON text, rendered as few flat ``concat`` calls.

The ingestion compiler writes each resource's JSON as one SQL text expression. Written
naively, with ``||`` at every step and ``concat_ws`` per object, DuckDB allocates a new
string at each step: building a 500-byte resource then copies it a dozen times. A
:class:`Text` keeps the pieces (constants, values, optional parts) and the conditions under
which the whole is present, and renders one ``concat`` over all of them, nested objects
included, with adjacent constants merged.

Semantics are those of the plain SQL the helpers stand for:

* :func:`cat` is ``a || b || ...``: NULL when any piece is NULL;
* :func:`member` is ``CASE WHEN present THEN '"key":' || value END``;
* :func:`obj` and :func:`arr` are ``nullif('{' || concat_ws(',', members) || '}', '{}')``:
  absent members are skipped, and the object is NULL when every member is absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A SQL string literal (``'...'`` with ``''`` for a quote).
_SQL_STRING = re.compile(r"'((?:[^']|'')*)'")
#: Text that JSON writes unchanged between quotes (printable ASCII, no quote or backslash).
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")
#: A column reference (``s."__x3"``, ``p.pseudo``): cheap to evaluate twice.
_COLUMN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\.("[^"]+"|[A-Za-z_][A-Za-z0-9_]*)')

# Kinds of pieces: a constant text; a SQL value known not to be NULL where it is used; a
# SQL value that may be NULL and then makes the whole NULL (joined with ``||``); a SQL value
# that may be NULL and then counts as empty (an absent member).
_LIT, _VAL, _STRICT, _OPT = "lit", "val", "strict", "opt"


@dataclass(frozen=True)
class Text:
    """A SQL text expression under construction.

    Attributes
    ----------
    pieces : tuple of (kind, text)
        The parts, concatenated in order.
    conds : tuple of str
        SQL conditions that must all be true, else the text is NULL.
    """

    pieces: tuple[tuple[str, str], ...] = ()
    conds: tuple[str, ...] = ()

    @property
    def is_null(self) -> bool:
        """True when the text is NULL for every row."""
        return "false" in self.conds

    @property
    def always(self) -> bool:
        """True when the text is never NULL."""
        return not self.conds and all(kind != _STRICT for kind, _ in self.pieces)

    def sql(self) -> str:
        """The SQL expression."""
        if self.is_null:
            return "NULL::VARCHAR"
        body = _render(self.pieces)
        if not self.conds:
            return body
        return f"CASE WHEN {' AND '.join(_cond(c) for c in self.conds)} THEN {body} END"

    def __str__(self) -> str:
        return self.sql()


NULL = Text((), ("false",))


def _cond(sql: str) -> str:
    """A condition, parenthesised unless it is a plain ``x IS NOT NULL`` test of a column."""
    m = re.fullmatch(r"(.+) IS NOT NULL", sql)
    return sql if m and _COLUMN.fullmatch(m.group(1)) else f"({sql})"


def _render(pieces: tuple[tuple[str, str], ...]) -> str:
    merged: list[tuple[str, str]] = []
    for kind, text in pieces:
        if kind == _LIT and merged and merged[-1][0] == _LIT:
            merged[-1] = (_LIT, merged[-1][1] + text)
        elif kind != _LIT or text:
            merged.append((kind, text))
    # Runs of pieces go into one concat; a piece that may be NULL and must make the whole
    # NULL is joined with ``||`` (concat would skip it).
    parts: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1 and run[0][0] != _OPT:
            kind, text = run[0]
            parts.append(sql_literal(text) if kind == _LIT else text)
        else:
            args = (sql_literal(t) if k == _LIT else t for k, t in run)
            parts.append(f"concat({', '.join(args)})")
        run.clear()

    for kind, text in merged:
        if kind == _STRICT:
            flush()
            parts.append(f"({text})")
        else:
            run.append((kind, text))
    flush()
    return " || ".join(parts) if parts else "''"


def sql_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def literal_text(sql: str) -> str | None:
    """The text of a SQL string literal, or None when ``sql`` is not one."""
    m = _SQL_STRING.fullmatch(sql.strip())
    return m.group(1).replace("''", "'") if m else None


def text(value: str) -> Text:
    """A constant text."""
    return Text(((_LIT, value),))


def value(sql: str, guard: str | None = None) -> Text:
    """A SQL text value.

    ``guard`` is SQL that is NULL exactly when ``sql`` is (the value is then NULL as a
    whole, checked up front); without it the value is taken as possibly NULL.
    """
    if sql.strip().upper() == "NULL":
        return NULL
    literal = literal_text(sql)
    if literal is not None:
        return text(literal)
    if guard is None:
        return Text(((_STRICT, sql),))
    if literal_text(guard) is not None:
        return Text(((_VAL, sql),))
    return Text(((_VAL, sql),), (f"{guard} IS NOT NULL",))


def always(sql: str) -> Text:
    """A SQL text value that is never NULL."""
    return Text(((_VAL, sql),))


def as_text(part: Text | str) -> Text:
    """A :class:`Text` from itself or from plain SQL (NULL propagates through it)."""
    return part if isinstance(part, Text) else value(part)


def cat(*parts: Text | str) -> Text:
    """``a || b || ...``: the parts one after the other, NULL when any is NULL."""
    pieces: list[tuple[str, str]] = []
    conds: list[str] = []
    for part in map(as_text, parts):
        if part.is_null:
            return NULL
        pieces.extend(part.pieces)
        conds.extend(c for c in part.conds if c not in conds)
    return Text(tuple(pieces), tuple(conds))


def when(part: Text | str, condition: str | None) -> Text:
    """``CASE WHEN condition THEN part END`` (a condition of ``true`` or None adds nothing)."""
    t = as_text(part)
    cond = (condition or "true").strip()
    if cond == "true" or t.is_null:
        return t
    if cond == "false":
        return NULL
    return Text(t.pieces, (*t.conds, cond) if cond not in t.conds else t.conds)


def optional(part: Text) -> Text:
    """The part, or the empty text where it is NULL."""
    if part.is_null:
        return text("")
    if part.always:
        return part
    return Text(((_OPT, part.sql()),))


def jstr(sql: str, present: bool = False) -> Text:
    """The JSON string of a SQL value (NULL when the value is).

    ``present``: the caller guarantees the value is not NULL where the text is used.
    """
    if sql.strip().upper() == "NULL":
        return NULL
    literal = literal_text(sql)
    if literal is not None and _JSON_PLAIN.fullmatch(literal):
        return text(f'"{literal}"')
    expr = f"to_json(CAST({sql} AS VARCHAR))"
    if literal is not None or present:
        return Text(((_VAL, expr),))  # a constant (DuckDB folds it) or known to be there
    # The guard repeats the value: only worth it for a column.
    return value(expr, sql) if _COLUMN.fullmatch(sql.strip()) else value(expr)


def member(key: str, json: Text | str, present: str | None = None) -> Text:
    """One ``"key":value`` member, NULL (skipped by :func:`obj`) when absent."""
    return when(cat(text(f'"{key}":'), json), present)


def _joined(items: list[Text], open_: str, close: str) -> Text:
    items = [i for i in items if not i.is_null]
    if not items:
        return NULL
    anchor = next((k for k, i in enumerate(items) if i.always), None)
    if anchor is None:
        # No item is sure to be there: let DuckDB place the commas.
        body = ", ".join(i.sql() for i in items)
        return value(f"nullif('{open_}' || concat_ws(',', {body}) || '{close}', '{open_}{close}')")
    # An item that is always there anchors the commas: the items before it carry a comma
    # after them, the items after it a comma before them.
    parts = [text(open_)]
    parts += [optional(cat(i, text(","))) for i in items[:anchor]]
    parts.append(items[anchor])
    parts += [optional(cat(text(","), i)) for i in items[anchor + 1 :]]
    parts.append(text(close))
    return cat(*parts)


def obj(*members: Text | str) -> Text:
    """A JSON object of the members that are present; NULL when none is."""
    return _joined([as_text(m) for m in members], "{", "}")


def arr(*items: Text | str) -> Text:
    """A JSON array of the items that are present; NULL when none is."""
    return _joined([as_text(i) for i in items], "[", "]")


__all__ = [
    "NULL",
    "Text",
    "always",
    "arr",
    "as_text",
    "cat",
    "jstr",
    "literal_text",
    "member",
    "obj",
    "optional",
    "sql_literal",
    "text",
    "value",
    "when",
]
