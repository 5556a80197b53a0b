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


def sync_tree(fresh: Path, committed: Path, how_to_regenerate: str, what: str) -> int:
    """Make ``committed`` hold exactly the files of ``fresh`` (one level), or with
    ``--check`` fail when they differ.  Return the process exit status."""
    generated = sorted(p.name for p in fresh.iterdir() if p.is_file())
    present = sorted(p.name for p in committed.iterdir()
                     if p.is_file()) if committed.is_dir() else []
    if "--check" in sys.argv:
        stale = [name for name in generated
                 if name not in present
                 or (fresh / name).read_bytes() != (committed / name).read_bytes()]
        stale += [name for name in present if name not in generated]
        if stale:
            print(f"{what} out of date: run `{how_to_regenerate}` ({', '.join(stale)})")
            return 1
        print(f"{len(generated)} {what} files are up to date")
        return 0
    committed.mkdir(parents=True, exist_ok=True)
    for name in present:
        if name not in generated:
            (committed / name).unlink()
    for name in generated:
        (committed / name).write_bytes((fresh / name).read_bytes())
    print(f"wrote {len(generated)} files to {committed}")
    return 0
