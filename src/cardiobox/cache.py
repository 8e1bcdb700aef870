"""Where cardiobox keeps what it can recompute (embeddings of fixed texts, for example)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$CARDIOBOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cardiobox``, else ``~/.cache/cardiobox``."""
    explicit = os.environ.get("CARDIOBOX_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "cardiobox"
