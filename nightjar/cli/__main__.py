"""``python -m nightjar.cli``: the same command line as ``nightjar``."""

from nightjar.cli import app

app()
