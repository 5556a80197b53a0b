"""Fail when graphql/schema.graphql breaks clients: the GraphQL twin of ``buf breaking``.

Compares the committed SDL with the one at the base ref (the merge base on a branch, the
previous commit on main; see :mod:`tools.buf_base`) using graphql-core's
``find_breaking_changes``; dangerous changes (a new enum value, an argument's new
default) are printed but pass.  Removing or retyping a field, argument or type breaks:
deprecate it (``deprecation_reason``) and add the new one beside it instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graphql import build_schema, find_breaking_changes, find_dangerous_changes

from tools.buf_base import base_ref
from tools.ci import in_ci

SDL = "graphql/schema.graphql"
ROOT = Path(__file__).resolve().parents[1]


def check(old_sdl: str, new_sdl: str) -> tuple[list[str], list[str]]:
    """(breaking, dangerous) changes from ``old_sdl`` to ``new_sdl``, as sentences."""
    old, new = build_schema(old_sdl), build_schema(new_sdl)
    return ([f"{c.type.name}: {c.description}" for c in find_breaking_changes(old, new)],
            [f"{c.type.name}: {c.description}" for c in find_dangerous_changes(old, new)])


def main() -> int:
    ref, why = base_ref(SDL)
    if ref is None:
        print(f"graphql breaking: nothing to compare against ({why})", file=sys.stderr)
        return 1 if in_ci() and "not available" in why else 0
    old = subprocess.run(["git", "show", f"{ref}:{SDL}"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    breaking, dangerous = check(old, (ROOT / SDL).read_text())
    for line in dangerous:
        print(f"graphql dangerous (allowed): {line}", file=sys.stderr)
    for line in breaking:
        print(f"graphql BREAKING: {line}", file=sys.stderr)
    print(f"graphql breaking against {ref[:12]} ({why}): {len(breaking)} breaking, "
          f"{len(dangerous)} dangerous", file=sys.stderr)
    return 1 if breaking else 0


if __name__ == "__main__":
    sys.exit(main())
