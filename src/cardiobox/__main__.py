"""``python -m cardiobox``: the same command line as ``cardiobox``."""

from cardiobox.cli.main import app

app(prog_name="cardiobox")
