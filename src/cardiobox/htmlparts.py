"""Pieces of the self-contained HTML reports (quality, federated runs, synthetic data)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape


def table(header: Sequence[str], rows: Iterable[Sequence[str]], num: Iterable[int] = ()) -> str:
    """An HTML table; ``header`` texts are escaped here, cells must arrive as HTML.

    Parameters
    ----------
    header : sequence of str
        Column titles (plain text).
    rows : iterable of sequences of str
        Cells, already escaped or built as HTML.
    num : iterable of int
        Positions of the columns aligned as numbers (class ``num``).
    """
    numeric = set(num)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(section_id: str, title: str, body: str) -> str:
    """A ``<section>`` with an escaped ``<h2>`` title; ``body`` must arrive as HTML."""
    return f'<section id="{escape(section_id)}"><h2>{escape(title)}</h2>{body}</section>'
