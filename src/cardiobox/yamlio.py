"""YAML reading with libyaml's C parser where PyYAML has it (several times faster).

The data model, the unit table and the quality checks are read on every command, so the
parser's speed is felt; the result is the same as :func:`yaml.safe_load`.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    """Parse one YAML document safely (no Python objects constructed)."""
    return yaml.load(stream, Loader=SafeLoader)
