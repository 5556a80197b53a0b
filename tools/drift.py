"""Write a generated file, or with ``--check`` fail when the committed copy drifted."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, how_to_regenerate: str) -> int:
    """Return the process exit status: 1 when checking and ``path`` differs from ``text``."""
    if "--check" in sys.argv:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run `{how_to_regenerate}`")
            return 1
        print(f"{path.name} is up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0
