"""`cardiobox demo`: the guided tour."""

from __future__ import annotations


def demo() -> None:
    """Run the guided tour on the embedded demo federation."""
