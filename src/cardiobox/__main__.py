"""``python -m cardiobox``: the same command line as ``cardiobox``."""

from cardiobox.cli.main import run

run(prog_name="cardiobox")
