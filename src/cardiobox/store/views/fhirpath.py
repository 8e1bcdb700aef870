"""Strict FHIRPath parsing on top of fhirpathpy's ANTLR grammar.

``fhirpathpy.parser.parse`` ignores syntax errors and stops at the first token it cannot
use (``"a b"`` parses as ``a``). A ViewDefinition with a broken path must be rejected, so
this module parses the grammar's ``entireExpression`` rule (expression + end of input) with
an error listener that raises.

The AST is fhirpathpy's: nested dicts with ``type``, ``children``, optional ``text`` and
``terminalNodeText``.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from antlr4 import CommonTokenStream, InputStream  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from antlr4.tree.Tree import ParseTreeWalker  # type: ignore[import-untyped]

# fhirpathpy's generated parser has no type hints; handle it as Any.
_Lexer: Any = importlib.import_module("fhirpathpy.parser.generated.FHIRPathLexer").FHIRPathLexer
_Parser: Any = importlib.import_module("fhirpathpy.parser.generated.FHIRPathParser").FHIRPathParser
_Listener: Any = importlib.import_module("fhirpathpy.parser.ASTPathListener").ASTPathListener

Node = dict[str, Any]

#: Environment variables every FHIRPath expression may use without a view constant.
BUILTIN_CONSTANTS = frozenset(
    {"rowIndex", "resource", "rootResource", "context", "ucum", "sct", "loinc"}
)


class FhirPathSyntaxError(ValueError):
    """A FHIRPath expression that does not parse."""


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(  # noqa: N802 - ANTLR's callback name
        self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise FhirPathSyntaxError(f"syntax error at character {column + 1}: {msg}")


@lru_cache(maxsize=4096)
def _parse(text: str) -> Node:
    lexer = _Lexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    parser = _Parser(CommonTokenStream(lexer))
    parser.buildParseTrees = True
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    try:
        tree = parser.entireExpression()
    except FhirPathSyntaxError:
        raise
    except Exception as exc:  # the lexer raises its own exceptions on bad characters
        raise FhirPathSyntaxError(f"syntax error: {exc}") from exc
    listener = _Listener()
    ParseTreeWalker().walk(listener, tree)
    root: Node = listener.parentStack[0]
    # root -> EntireExpression -> expression
    entire = root["children"][0]
    expr: Node = entire["children"][0]
    return expr


def parse(text: str) -> Node:
    """Parse a FHIRPath expression.

    Parameters
    ----------
    text : str
        The expression.

    Returns
    -------
    dict
        The root expression node of fhirpathpy's AST.

    Raises
    ------
    FhirPathSyntaxError
        When the text is not a complete, valid FHIRPath expression.
    """
    if not text.strip():
        raise FhirPathSyntaxError("empty expression")
    return _parse(text)


def external_constants(node: Node) -> set[str]:
    """Names of the ``%constants`` an expression refers to."""
    found: set[str] = set()

    def walk(n: Node) -> None:
        if n.get("type") == "ExternalConstant":
            found.add(constant_name(n))
            return
        for child in n.get("children", []):
            walk(child)

    walk(node)
    return found


def constant_name(node: Node) -> str:
    """Name of an ``ExternalConstant`` node (``%name``, ``%`name```, ``%'name'``)."""
    children = node.get("children") or []
    if children:
        return identifier_text(children[0])
    return _unquote(str(node["terminalNodeText"][-1]))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`'\"":
        return text[1:-1]
    return text


def identifier_text(node: Node) -> str:
    """Text of an ``Identifier`` node without backticks (or quotes for %'name')."""
    return _unquote(str(node.get("text") or node["terminalNodeText"][0]))
