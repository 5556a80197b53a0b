"""Print the git ref that ``buf breaking`` must compare the protos against.

On a branch: the merge base with the default branch, so a branch's changes are judged
against what it started from.  On the default branch itself (or where it cannot be
told apart): the previous commit, ``HEAD~1``, so renumbering a field fails on main too.
The command prints nothing (exit 0) only when there is truly nothing to compare with:
the previous commit has no ``buf.yaml`` (the protos are new) or HEAD is the first
commit.  A shallow clone is deepened by one commit first; in CI a missing base fails.
"""

from __future__ import annotations

import subprocess
import sys

from tools.ci import in_ci


def _git(*args: str) -> str | None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _has(ref: str, path: str) -> bool:
    return _git("cat-file", "-e", f"{ref}:{path}") is not None


def base_ref(path: str = "buf.yaml") -> tuple[str | None, str]:
    """The ref to compare against (or None) and why; the ref must hold ``path``."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None, "not a git checkout"
    for name in ("origin/main", "main"):
        main = _git("rev-parse", "--verify", "-q", name)
        if main and main != head:
            merge_base = _git("merge-base", "HEAD", main)
            if merge_base and merge_base != head and _has(merge_base, path):
                return merge_base, f"merge base with {name}"
    previous = _git("rev-parse", "--verify", "-q", "HEAD~1")
    if previous is None and _git("rev-parse", "--is-shallow-repository") == "true":
        _git("fetch", "-q", "--deepen=1")
        previous = _git("rev-parse", "--verify", "-q", "HEAD~1")
    if previous is None:
        if _git("rev-list", "--max-parents=0", "HEAD") == head:
            return None, "HEAD is the first commit"
        return None, "HEAD~1 is not available (shallow clone that could not be deepened)"
    if not _has(previous, path):
        return None, f"the previous commit has no {path}"
    return previous, "previous commit"


def main() -> int:
    ref, why = base_ref()
    if ref is not None:
        print(ref)
        print(f"buf breaking against {ref[:12]} ({why})", file=sys.stderr)
        return 0
    print(f"buf breaking: nothing to compare against ({why})", file=sys.stderr)
    return 1 if in_ci() and "not available" in why else 0


if __name__ == "__main__":
    sys.exit(main())
