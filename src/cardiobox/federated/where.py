"""The ``where`` filter of federated tasks: parse, check and compile, never run as raw SQL.

A researcher at the hub (possibly a hostile one) writes ``where`` in SQL syntax. The site
parses it with the small grammar below, checks its columns against the site's variables and
compiles it to DuckDB SQL in which every identifier is double-quoted and every literal is a
bound parameter, so the text the researcher wrote never reaches DuckDB.

Grammar (keywords case-insensitive; ``NOT`` binds tighter than ``AND``, ``AND`` than ``OR``)::

    expr       := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | '(' expr ')' | predicate
    predicate  := operand ( '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=' ) operand
                | operand [NOT] IN '(' literal ( ',' literal )* ')'
                | operand [NOT] BETWEEN operand AND operand
                | operand IS [NOT] NULL
                | column | TRUE | FALSE                       -- a boolean used as a condition
    operand    := column | literal
    column     := [A-Za-z_][A-Za-z0-9_]*  |  '"' ( any character but '"' | '""' )+ '"'
    literal    := number | string | TRUE | FALSE
    number     := [-] digits [ '.' digits ] [ (e|E) [+|-] digits ]      (also '.5', '1.')
    string     := "'" ( any character but "'" | "''" )* "'"

Nothing else is accepted: no function calls, arithmetic, subqueries, semicolons, comments,
typed literals or pattern matching; ``NULL`` only in ``IS [NOT] NULL``. The words ``AND OR
NOT IN BETWEEN IS NULL TRUE FALSE`` and a few SQL keywords (``SELECT``, ``LIKE``, ``CASE``...)
are reserved: a column with such a name is written in double quotes. Column names are
matched exactly (case-sensitive) against the site's variables.

Example
-------
>>> expr = parse_where("age >= 65 AND sex IN ('female', 'male') AND NOT smoker")
>>> sorted(columns(expr))
['age', 'sex', 'smoker']
>>> check_columns(expr, {"age": "number", "sex": "string", "smoker": "boolean"})
>>> to_sql(expr)
('(("age" >= ?) AND ("sex" IN (?, ?)) AND (NOT ("smoker")))', [65, 'female', 'male'])
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias, assert_never

import duckdb
import pyarrow as pa

from cardiobox.errors import CardioboxError, Location

__all__ = [
    "FAMILIES",
    "And",
    "Between",
    "Column",
    "Comparison",
    "Expr",
    "InList",
    "IsNull",
    "Literal",
    "Not",
    "Or",
    "Truth",
    "WhereError",
    "check_columns",
    "columns",
    "evaluate",
    "parse_where",
    "to_sql",
]

FAMILIES = frozenset({"number", "string", "boolean", "date"})
"""The type families a site declares for its columns."""


class WhereError(CardioboxError, ValueError):
    """A ``where`` filter that cannot be parsed, is too large, or does not fit the columns.

    Parameters
    ----------
    message : str
        What went wrong, with the position and the filter text where relevant.
    rule : str
        ``where-syntax`` (not in the grammar), ``where-limit`` (too long, too deep or too
        many conditions), ``where-column`` (unknown or unusable column) or ``where-type``
        (operands of different types).
    position : int or None
        1-based character position of the problem in the filter text, when known.
    """

    def __init__(self, message: str, rule: str = "where-syntax", position: int | None = None):
        super().__init__(message, rule, Location(element="where"))
        self.position = position


# --- the syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A reference to a column of the site table.

    Parameters
    ----------
    name : str
        The column name, unquoted (embedded double quotes kept as one character).
    position : int
        1-based position in the filter text (0 when built by hand); ignored by ``==``.
    """

    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Literal:
    """A literal value: a number, a string or a boolean.

    Parameters
    ----------
    value : bool, int, float or str
        The value; a float must be finite.
    position : int
        1-based position in the filter text (0 when built by hand); ignored by ``==``.

    Attributes
    ----------
    family : str
        ``'boolean'``, ``'number'`` or ``'string'``; part of ``==`` so that ``TRUE != 1``.
    """

    value: bool | int | float | str
    position: int = field(default=0, compare=False)
    family: str = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.value, bool):
            family = "boolean"
        elif isinstance(self.value, int | float):
            if isinstance(self.value, float) and not math.isfinite(self.value):
                raise WhereError(f"literal {self.value!r} is not a finite number")
            family = "number"
        elif isinstance(self.value, str):
            family = "string"
        else:
            raise WhereError(f"literal {self.value!r} is not a number, string or boolean")
        object.__setattr__(self, "family", family)


Operand: TypeAlias = Column | Literal


@dataclass(frozen=True)
class Comparison:
    """``left op right``; ``op`` is one of ``= <> < <= > >=`` (``!=`` is read as ``<>``).

    Parameters
    ----------
    left, right : Column or Literal
        The operands.
    op : str
        The comparison operator.
    """

    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class InList:
    """``operand [NOT] IN (values...)``.

    Parameters
    ----------
    operand : Column or Literal
        The value tested.
    values : tuple of Literal
        The list, never empty.
    negated : bool
        ``True`` for ``NOT IN``.
    """

    operand: Operand
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    """``operand [NOT] BETWEEN low AND high`` (bounds included).

    Parameters
    ----------
    operand, low, high : Column or Literal
        The value tested and its bounds.
    negated : bool
        ``True`` for ``NOT BETWEEN``.
    """

    operand: Operand
    low: Operand
    high: Operand
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    """``operand IS [NOT] NULL``.

    Parameters
    ----------
    operand : Column or Literal
        The value tested.
    negated : bool
        ``True`` for ``IS NOT NULL``.
    """

    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class Truth:
    """A boolean column or literal used as a condition on its own (``smoker``, ``TRUE``).

    Parameters
    ----------
    operand : Column or Literal
        The boolean value.
    """

    operand: Operand


@dataclass(frozen=True)
class Not:
    """``NOT operand``.

    Parameters
    ----------
    operand : Expr
        The negated condition.
    """

    operand: Expr


@dataclass(frozen=True)
class And:
    """The conjunction of two or more conditions (a chain ``a AND b AND c`` is one node).

    Parameters
    ----------
    operands : tuple of Expr
        The conditions.
    """

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """The disjunction of two or more conditions (a chain ``a OR b OR c`` is one node).

    Parameters
    ----------
    operands : tuple of Expr
        The conditions.
    """

    operands: tuple[Expr, ...]


Predicate: TypeAlias = Comparison | InList | Between | IsNull | Truth
Expr: TypeAlias = Predicate | Not | And | Or


# --- tokens ----------------------------------------------------------------------------------

_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE"})

_SUBQUERY = "subqueries and other SQL statements are not allowed"
_PATTERN = "pattern matching is not supported; use = or IN"
_ONLY = "only comparisons of columns and literal values are allowed"
# SQL words a bare column may not be named, so that their use gets a clear message.
_RESERVED = {
    **dict.fromkeys(
        ["SELECT", "FROM", "WHERE", "WITH", "UNION", "EXCEPT", "INTERSECT", "EXISTS"], _SUBQUERY
    ),
    **dict.fromkeys(["INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER"], _SUBQUERY),
    **dict.fromkeys(["ATTACH", "COPY", "PRAGMA", "INSTALL", "LOAD", "CALL"], _SUBQUERY),
    **dict.fromkeys(["LIKE", "ILIKE", "GLOB", "SIMILAR", "REGEXP"], _PATTERN),
    **dict.fromkeys(["CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "COLLATE"], _ONLY),
    **dict.fromkeys(["ANY", "ALL", "SOME", "DISTINCT", "ESCAPE"], _ONLY),
}

_SPACE = re.compile(r"[ \t\r\n]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r"'(?:[^']|'')*'")
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_OPERATOR = re.compile(r"<=|>=|<>|!=|=|<|>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INT64 = 2**63

_CHAR_HINTS = {
    ";": "semicolons are not allowed",
    "+": "arithmetic is not allowed",
    "-": "arithmetic is not allowed; a negative number is written with no space, as -3",
    "*": "arithmetic is not allowed",
    "/": "arithmetic is not allowed",
    "%": "arithmetic is not allowed",
    "^": "arithmetic is not allowed",
    "|": "operators other than comparisons are not allowed",
    "&": "operators other than comparisons are not allowed",
    "~": "operators other than comparisons are not allowed",
    ".": "qualified names (table.column) are not allowed",
    "`": 'write column names in double quotes, as "name"',
    "[": 'write column names in double quotes, as "name"',
    "?": "parameters are not allowed",
    "$": "parameters are not allowed",
    ":": "parameters and casts are not allowed",
}


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, quoted, keyword, number, string, op, '(', ')', ',', end
    text: str  # as written
    value: bool | int | float | str
    start: int  # 0-based offset

    @property
    def ends_operand(self) -> bool:
        """Whether a '-' right after this token would be arithmetic, not a sign."""
        if self.kind == "keyword":
            return self.value in ("TRUE", "FALSE", "NULL")
        return self.kind in ("ident", "quoted", "number", "string", ")")

    def describe(self) -> str:
        """The token as an error message names it."""
        if self.kind == "end":
            return "end of input"
        shown = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        if self.kind == "string":
            return f"string {shown}"
        if self.kind == "number":
            return f"number {shown}"
        if self.kind == "quoted":
            return shown
        return f"'{shown}'"


def _excerpt(text: str, offset: int) -> str:
    """The filter text for a message: whole if short, else a window around ``offset``."""
    shown = _CONTROL.sub("?", text.translate({9: " ", 10: " ", 13: " "}))
    if len(shown) <= 120:
        return shown
    start = max(0, min(offset - 50, len(shown) - 100))
    window = shown[start : start + 100]
    return ("..." if start > 0 else "") + window + ("..." if start + 100 < len(shown) else "")


def _syntax_error(
    text: str,
    offset: int,
    what: str,
    expected: str | None = None,
    hint: str | None = None,
    rule: str = "where-syntax",
) -> WhereError:
    message = f"{what} at position {offset + 1}"
    if expected:
        message += f", expected {expected}"
    if hint:
        message += f" ({hint})"
    return WhereError(f"{message}: {_excerpt(text, offset)}", rule=rule, position=offset + 1)


def _number(text: str, raw: str, start: int) -> int | float:
    if any(c in raw for c in ".eE"):
        value = float(raw)
        if not math.isfinite(value):
            raise _syntax_error(text, start, f"number {raw} is out of range")
        return value
    # Beyond 19 digits the value is out of range anyway; never hand int() a huge string.
    if len(raw.lstrip("-")) > 19 or not -_INT64 <= int(raw) < _INT64:
        raise _syntax_error(text, start, f"integer {raw[:30]} is out of range", hint="64 bits")
    return int(raw)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if match := _SPACE.match(text, pos):
            pos = match.end()
            continue
        if text.startswith(("--", "/*"), pos):
            raise _syntax_error(
                text, pos, f"unexpected '{text[pos : pos + 2]}'", hint="comments are not allowed"
            )
        previous = tokens[-1] if tokens else None
        number = _NUMBER.match(text, pos)
        if number and not (char == "-" and previous is not None and previous.ends_operand):
            raw = number.group()
            if _NUMBER_TAIL.match(text, number.end()):
                end = number.end()
                while end < len(text) and _NUMBER_TAIL.match(text, end):
                    end += 1
                raise _syntax_error(text, pos, f"malformed number '{text[pos:end][:40]}'")
            tokens.append(_Token("number", raw, _number(text, raw, pos), pos))
            pos = number.end()
        elif match := _IDENT.match(text, pos):
            word = match.group()
            if word.upper() in _KEYWORDS:
                tokens.append(_Token("keyword", word, word.upper(), pos))
            else:
                tokens.append(_Token("ident", word, word, pos))
            pos = match.end()
        elif char == "'":
            if not (match := _STRING.match(text, pos)):
                raise _syntax_error(text, pos, "unterminated string", hint="end it with '")
            raw = match.group()
            tokens.append(_Token("string", raw, raw[1:-1].replace("''", "'"), pos))
            pos = match.end()
        elif char == '"':
            if not (match := _QUOTED.match(text, pos)):
                raise _syntax_error(
                    text, pos, "unterminated quoted column name", hint='end it with "'
                )
            raw = match.group()
            if raw == '""':
                raise _syntax_error(text, pos, "empty quoted column name")
            tokens.append(_Token("quoted", raw, raw[1:-1].replace('""', '"'), pos))
            pos = match.end()
        elif match := _OPERATOR.match(text, pos):
            tokens.append(_Token("op", match.group(), match.group(), pos))
            pos = match.end()
        elif char in "(),":
            tokens.append(_Token(char, char, char, pos))
            pos += 1
        elif char in _CHAR_HINTS:
            hint = _CHAR_HINTS[char]
            if char == "-" and previous is not None and previous.ends_operand:
                hint = "arithmetic is not allowed"
            raise _syntax_error(text, pos, f"unexpected '{char}'", hint=hint)
        elif char.isascii():
            raise _syntax_error(text, pos, f"unexpected '{char}'")
        else:
            raise _syntax_error(
                text,
                pos,
                f"unexpected character '{char}'",
                hint="bare column names use only A-Z, a-z, 0-9 and _; "
                "write other names in double quotes",
            )
    tokens.append(_Token("end", "", "", len(text)))
    return tokens


# --- the parser ------------------------------------------------------------------------------

_COMPARISON_EXPECTED = "a comparison operator (=, !=, <>, <, <=, >, >=), IN, BETWEEN or IS"


class _Parser:
    """Recursive descent over the token list; depth and size are bounded before recursing."""

    def __init__(self, text: str, tokens: list[_Token], max_depth: int, max_terms: int):
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.max_depth = max_depth
        self.max_terms = max_terms
        self.terms = 0

    # helpers

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, *keywords: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.value in keywords

    def unexpected(
        self, token: _Token, expected: str | None = None, hint: str | None = None
    ) -> WhereError:
        if hint is None and token.kind == "ident":
            hint = _RESERVED.get(str(token.value).upper())
        return _syntax_error(
            self.text, token.start, f"unexpected {token.describe()}", expected, hint
        )

    def enter(self, depth: int, token: _Token) -> None:
        if depth > self.max_depth:
            raise _syntax_error(
                self.text,
                token.start,
                f"filter nested more than max_depth={self.max_depth} levels deep",
                hint="count of open parentheses and NOTs",
                rule="where-limit",
            )

    # grammar

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise WhereError("empty filter, expected a condition such as age >= 18", position=1)
        expr = self.parse_or(0)
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token, "AND, OR or end of input")
        return expr

    def parse_or(self, depth: int) -> Expr:
        operands = [self.parse_and(depth)]
        while self.at("OR"):
            self.advance()
            operands.append(self.parse_and(depth))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self, depth: int) -> Expr:
        operands = [self.parse_not(depth)]
        while self.at("AND"):
            self.advance()
            operands.append(self.parse_not(depth))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_not(self, depth: int) -> Expr:
        token = self.peek()
        if self.at("NOT"):
            self.advance()
            self.enter(depth + 1, token)
            return Not(self.parse_not(depth + 1))
        if token.kind == "(":
            self.advance()
            self.enter(depth + 1, token)
            inner = self.parse_or(depth + 1)
            closing = self.peek()
            if closing.kind != ")":
                raise self.unexpected(closing, "AND, OR or ')'")
            self.advance()
            return inner
        return self.parse_predicate()

    def parse_predicate(self) -> Predicate:
        first = self.peek()
        self.terms += 1
        if self.terms > self.max_terms:
            raise _syntax_error(
                self.text,
                first.start,
                f"filter has more than max_terms={self.max_terms} conditions",
                rule="where-limit",
            )
        left = self.parse_operand()
        token = self.peek()
        if token.kind == "op":
            self.advance()
            op = "<>" if token.value == "!=" else str(token.value)
            return Comparison(left, op, self.parse_operand())
        negated = self.at("NOT")
        if negated:
            self.advance()
            if not self.at("IN", "BETWEEN"):
                raise self.unexpected(self.peek(), "IN or BETWEEN after NOT")
        if self.at("IN"):
            self.advance()
            return InList(left, self.parse_values(), negated)
        if self.at("BETWEEN"):
            self.advance()
            low = self.parse_operand()
            if not self.at("AND"):
                raise self.unexpected(self.peek(), "AND between the bounds of BETWEEN")
            self.advance()
            return Between(left, low, self.parse_operand(), negated)
        if self.at("IS"):
            self.advance()
            negated = self.at("NOT")
            if negated:
                self.advance()
            if not self.at("NULL"):
                raise self.unexpected(
                    self.peek(), "NULL or NOT NULL after IS", hint="IS is only used with NULL"
                )
            self.advance()
            return IsNull(left, negated)
        ends_condition = token.kind in ("end", ")") or self.at("AND", "OR")
        if ends_condition and (isinstance(left, Column) or left.family == "boolean"):
            return Truth(left)
        raise self.unexpected(token, _COMPARISON_EXPECTED)

    def parse_operand(self, expected: str = "a column name or a literal value") -> Operand:
        token = self.peek()
        if token.kind in ("ident", "quoted"):
            if token.kind == "ident" and str(token.value).upper() in _RESERVED:
                raise self.unexpected(token)
            self.advance()
            if self.peek().kind == "(":
                raise self.unexpected(self.peek(), hint="function calls are not allowed")
            if self.peek().kind == "string":
                raise self.unexpected(
                    self.peek(),
                    hint="typed literals such as DATE '...' are not allowed; "
                    "compare a date column with a plain 'YYYY-MM-DD' string",
                )
            return Column(str(token.value), token.start + 1)
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value, token.start + 1)
        if self.at("TRUE", "FALSE"):
            self.advance()
            return Literal(token.value == "TRUE", token.start + 1)
        if self.at("NULL"):
            raise self.unexpected(
                token,
                hint="NULL is only allowed in IS NULL and IS NOT NULL; "
                "a comparison with NULL is never true",
            )
        if token.kind == "(":
            raise self.unexpected(token, hint="subqueries and parenthesised values are not allowed")
        raise self.unexpected(token, expected)

    def parse_values(self) -> tuple[Literal, ...]:
        if self.peek().kind != "(":
            raise self.unexpected(self.peek(), "'(' after IN")
        self.advance()
        if self.peek().kind == ")":
            raise self.unexpected(self.peek(), "a literal value", hint="IN needs at least one")
        values: list[Literal] = []
        while True:
            value = self.parse_operand("a literal value")
            if isinstance(value, Column):
                raise _syntax_error(
                    self.text,
                    value.position - 1,
                    f"unexpected column '{value.name}' in IN (...)",
                    hint="only literal values are allowed in the list",
                )
            values.append(value)
            token = self.advance()
            if token.kind == ")":
                return tuple(values)
            if token.kind != ",":
                raise self.unexpected(token, "',' or ')' in the IN list")


# --- type checks -----------------------------------------------------------------------------


def _describe(operand: Operand, family: str | None) -> str:
    if isinstance(operand, Column):
        return f"column '{operand.name}'" + (f" ({family})" if family else "")
    value = operand.value
    if isinstance(value, bool):
        return f"boolean {'TRUE' if value else 'FALSE'}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return "string '" + shown.replace("'", "''") + "'"
    return f"number {value!r}"


def _is_iso_date(value: str) -> bool:
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _walk(expr: Expr) -> Iterator[Expr]:
    """Every node of ``expr``, parents first, left to right, without recursion."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Not):
            stack.append(node.operand)
        elif isinstance(node, And | Or):
            stack.extend(reversed(node.operands))


def _operands(predicate: Predicate) -> tuple[Operand, ...]:
    if isinstance(predicate, Comparison):
        return (predicate.left, predicate.right)
    if isinstance(predicate, InList):
        return (predicate.operand, *predicate.values)
    if isinstance(predicate, Between):
        return (predicate.operand, predicate.low, predicate.high)
    return (predicate.operand,)


def _type_problems(expr: Expr, family_of: Callable[[Column], str | None]) -> list[tuple[int, str]]:
    """(position, message) for each pair of operands whose types cannot be compared.

    ``family_of`` gives a column's family, or None when unknown (then anything goes).
    """

    def family(operand: Operand) -> str | None:
        return family_of(operand) if isinstance(operand, Column) else operand.family

    problems: list[tuple[int, str]] = []

    def compare(a: Operand, b: Operand) -> None:
        fa, fb = family(a), family(b)
        if fa is None or fb is None or fa == fb:
            return
        if {fa, fb} == {"date", "string"}:
            text = b if fb == "string" else a
            if isinstance(text, Literal):
                if not _is_iso_date(str(text.value)):
                    problems.append(
                        (
                            text.position,
                            f"{_describe(text, 'string')} at position {text.position} is compared "
                            f"with {_describe(a if text is b else b, 'date')} but is not a "
                            "date written 'YYYY-MM-DD'",
                        )
                    )
                return
        problems.append(
            (
                b.position,
                f"cannot compare {_describe(a, fa)} with {_describe(b, fb)} "
                f"at position {b.position}",
            )
        )

    for node in _walk(expr):
        if isinstance(node, Comparison):
            compare(node.left, node.right)
        elif isinstance(node, InList):
            # With the tested column's type unknown, the list must at least agree with itself.
            reference = node.operand if family(node.operand) else node.values[0]
            for value in node.values:
                if value is not reference:
                    compare(reference, value)
        elif isinstance(node, Between):
            compare(node.operand, node.low)
            compare(node.operand, node.high)
            if family(node.operand) is None:
                compare(node.low, node.high)
        elif isinstance(node, Truth):
            kind = family(node.operand)
            if kind not in (None, "boolean"):
                problems.append(
                    (
                        node.operand.position,
                        f"{_describe(node.operand, kind)} at position {node.operand.position} "
                        "is used as a condition but is not boolean; compare it with a value",
                    )
                )
    return problems


# --- public API ------------------------------------------------------------------------------


def parse_where(
    text: str, max_length: int = 2000, max_depth: int = 50, max_terms: int = 200
) -> Expr:
    """Parse a ``where`` filter written in (a small subset of) SQL.

    Parameters
    ----------
    text : str
        The filter, e.g. ``"age >= 65 AND (sex = 'female' OR nyha IN (3, 4))"``; the
        grammar is in the module docstring.
    max_length : int, default 2000
        Most characters accepted.
    max_depth : int, default 50
        Most nesting levels (open parentheses and ``NOT``) accepted.
    max_terms : int, default 200
        Most conditions (comparisons, ``IN``, ``BETWEEN``, ``IS NULL``, boolean columns)
        accepted.

    Returns
    -------
    Expr
        The syntax tree. Literals of different types compared with each other (``1 = 'a'``)
        are rejected here; columns are checked by :func:`check_columns`.

    Raises
    ------
    WhereError
        Anything outside the grammar or the limits, with the 1-based position of the problem,
        what was expected and the filter text.
    """
    if not isinstance(text, str):
        raise WhereError(f"the filter must be a string, got {type(text).__name__}")
    if len(text) > max_length:
        raise WhereError(
            f"filter is {len(text)} characters long, more than max_length={max_length}: "
            f"{_excerpt(text, 0)}",
            rule="where-limit",
        )
    if control := _CONTROL.search(text):
        raise _syntax_error(
            text,
            control.start(),
            f"control character U+{ord(control.group()):04X}",
            hint="control characters are not allowed",
        )
    try:
        expr = _Parser(text, _tokenize(text), max_depth, max_terms).parse()
    except RecursionError:  # only reachable when max_depth is set beyond Python's stack
        raise WhereError(
            f"filter nested too deeply for max_depth={max_depth}: {_excerpt(text, 0)}",
            rule="where-limit",
        ) from None
    if problems := _type_problems(expr, lambda _column: None):
        position, message = problems[0]
        raise WhereError(
            f"{message}: {_excerpt(text, position - 1)}", rule="where-type", position=position
        )
    return expr


def columns(expr: Expr) -> set[str]:
    """The names of the columns that ``expr`` reads.

    Parameters
    ----------
    expr : Expr
        A parsed filter.

    Returns
    -------
    set of str
        Column names, exactly as written (so the site policy can check them).
    """
    return {
        operand.name
        for node in _walk(expr)
        if not isinstance(node, Not | And | Or)
        for operand in _operands(node)
        if isinstance(operand, Column)
    }


def check_columns(expr: Expr, available: Mapping[str, str]) -> None:
    """Check that ``expr`` reads only known columns, each compared with values of its type.

    Parameters
    ----------
    expr : Expr
        A parsed filter.
    available : mapping of str to str
        Column name → type family (``'number'``, ``'string'``, ``'boolean'`` or ``'date'``).
        A date column is compared with dates, or with strings written ``'YYYY-MM-DD'``.

    Raises
    ------
    WhereError
        Naming every unknown column (rule ``where-column``, with a "did you mean"
        suggestion) or else every type mismatch (rule ``where-type``).
    ValueError
        When ``available`` names a type family other than the four above.
    """
    for name, family in available.items():
        if family not in FAMILIES:
            raise ValueError(
                f"available: column '{name}' has type family '{family}', "
                f"expected one of {', '.join(sorted(FAMILIES))}"
            )
    unknown: dict[str, Column] = {}
    for node in _walk(expr):
        if isinstance(node, Not | And | Or):
            continue
        for operand in _operands(node):
            if isinstance(operand, Column) and operand.name not in available:
                unknown.setdefault(operand.name, operand)
    if unknown:
        lowered = {name.lower(): name for name in available}
        reports = []
        for name, column in unknown.items():
            report = f"'{name}'"
            if column.position:
                report += f" at position {column.position}"
            guess = lowered.get(name.lower()) or next(
                iter(difflib.get_close_matches(name, list(available), n=1)), None
            )
            if guess is not None:
                report += f" (did you mean '{guess}'?)"
            reports.append(report)
        label = "unknown column" if len(reports) == 1 else "unknown columns"
        raise WhereError(
            f"{label} {'; '.join(reports)}",
            rule="where-column",
            position=next(iter(unknown.values())).position or None,
        )
    if problems := _type_problems(expr, lambda column: available[column.name]):
        raise WhereError(
            "; ".join(message for _position, message in problems),
            rule="where-type",
            position=problems[0][0] or None,
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(expr: Expr) -> tuple[str, list[object]]:
    """Compile ``expr`` to DuckDB SQL with quoted identifiers and bound literals.

    Parameters
    ----------
    expr : Expr
        A parsed (and, before it runs, checked) filter.

    Returns
    -------
    sql : str
        A boolean SQL expression; every identifier is double-quoted (embedded quotes doubled)
        and every literal is a ``?`` placeholder. SQL's three-valued logic is kept: a
        comparison with a NULL cell is NULL, which a filter treats as not true.
    params : list
        The literal values, in placeholder order.
    """
    params: list[object] = []

    def operand(node: Operand) -> str:
        if isinstance(node, Column):
            return _quote(node.name)
        params.append(node.value)
        return "?"

    def compile_(node: Expr) -> str:
        if isinstance(node, Comparison):
            return f"({operand(node.left)} {node.op} {operand(node.right)})"
        if isinstance(node, InList):
            tested = operand(node.operand)
            values = ", ".join(operand(value) for value in node.values)
            return f"({tested} {'NOT IN' if node.negated else 'IN'} ({values}))"
        if isinstance(node, Between):
            tested, low = operand(node.operand), operand(node.low)
            high = operand(node.high)
            keyword = "NOT BETWEEN" if node.negated else "BETWEEN"
            return f"({tested} {keyword} {low} AND {high})"
        if isinstance(node, IsNull):
            return f"({operand(node.operand)} IS {'NOT NULL' if node.negated else 'NULL'})"
        if isinstance(node, Truth):
            return f"({operand(node.operand)})"
        if isinstance(node, Not):
            return f"(NOT {compile_(node.operand)})"
        if isinstance(node, And):
            return "(" + " AND ".join(compile_(child) for child in node.operands) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(compile_(child) for child in node.operands) + ")"
        assert_never(node)

    return compile_(expr), params


def _arrow_family(data_type: Any) -> str | None:
    types = pa.types
    if types.is_dictionary(data_type):
        data_type = data_type.value_type
    if types.is_integer(data_type) or types.is_floating(data_type) or types.is_decimal(data_type):
        return "number"
    if types.is_string(data_type) or types.is_large_string(data_type):
        return "string"
    if types.is_boolean(data_type):
        return "boolean"
    if types.is_date(data_type) or types.is_timestamp(data_type):
        return "date"
    return None


_INPUT = "__cardiobox_where_input"


def evaluate(
    expr: Expr, table: pa.Table, con: duckdb.DuckDBPyConnection | None = None
) -> pa.BooleanArray:
    """The rows of ``table`` that satisfy ``expr``, computed by DuckDB.

    Parameters
    ----------
    expr : Expr
        A parsed filter; its columns are checked against the table's schema first.
    table : pyarrow.Table
        The site table.
    con : duckdb.DuckDBPyConnection, optional
        A connection to run on (the table is registered on it for the call only); by default
        a fresh in-memory one, which costs tens of milliseconds to open.

    Returns
    -------
    pyarrow.BooleanArray
        One value per row, never null: a row whose condition is NULL (SQL's unknown, e.g. a
        comparison with an empty cell) is ``False``.

    Raises
    ------
    WhereError
        When ``expr`` names a column the table lacks, a column of a type a filter cannot use
        (lists, structs...), or compares values of different types.
    """
    families: dict[str, str] = {}
    used = columns(expr)
    for column_field in table.schema:
        family = _arrow_family(column_field.type)
        if family is None and column_field.name in used:
            raise WhereError(
                f"column '{column_field.name}' has type {column_field.type}, "
                "which a filter cannot use",
                rule="where-column",
            )
        if family is not None:
            families[column_field.name] = family
    check_columns(expr, families)
    sql, params = to_sql(expr)
    connection = duckdb.connect() if con is None else con
    try:
        connection.register(_INPUT, table)
        result = connection.sql(f"SELECT ({sql}) IS TRUE AS keep FROM {_INPUT}", params=params)
        return result.to_arrow_table().column(0).combine_chunks()
    finally:
        if con is None:
            connection.close()
        else:
            connection.unregister(_INPUT)
