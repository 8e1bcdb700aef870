"""YAML reading with libyaml's C parser where PyYAML has it (several times faster).

The data model, the unit table and the quality checks are read on every command, so the
parser's speed is felt; the result is the same as :func:`yaml.safe_load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import yaml

from cardiobox.errors import CardioboxError, InputError, Location

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    """Parse one YAML document safely (no Python objects constructed)."""
    return yaml.load(stream, Loader=SafeLoader)


def load_file(path: str | Path, syntax_rule: str, error: type[CardioboxError] = InputError) -> Any:
    """Read a YAML (or JSON) file; a missing file or a syntax error names the file.

    Parameters
    ----------
    path : str or Path
        The file.
    syntax_rule : str
        The rule a syntax error is reported under (``policy-syntax``, ``domain-syntax``...).
    error : type of CardioboxError
        The error raised (``missing-input`` for a missing file).
    """
    p = Path(path)
    try:
        return safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error("no such file", rule="missing-input", location=Location(file=str(p))) from None
    except Exception as exc:  # yaml.YAMLError and decoding errors
        raise error(
            f"not valid YAML: {exc}", rule=syntax_rule, location=Location(file=str(p))
        ) from exc
