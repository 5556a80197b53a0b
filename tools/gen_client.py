"""Generate the typed layer of the Python client (``client/nightjar_client/generated``).

ariadne-codegen reads ``graphql/schema.graphql`` and ``graphql/operations/*.graphql``
with the configuration in ``client/pyproject.toml``.  It runs in its own pinned tool
environment (``uv tool run``): in the project's environment its pins would downgrade
strawberry and ruff, and the ruff it formats with is pinned here so the output is
byte-stable.  ``--check`` regenerates into a temporary copy and fails when the
committed files differ (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.drift import sync_tree

ROOT = Path(__file__).resolve().parents[1]
GENERATED = Path("nightjar_client") / "generated"
CODEGEN = ["--from", "ariadne-codegen==0.19.0", "--with", "ruff==0.15.22", "ariadne-codegen"]


def uv() -> list[str]:
    """The uv command: the one running us (``uv run`` sets $UV), else uv on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def generate(workdir: Path, graphql: Path = ROOT / "graphql") -> Path:
    """Run ariadne-codegen on copies of client/pyproject.toml and of ``graphql`` (the
    SDL and operations) under ``workdir``, in the repository's relative layout so the
    generated headers match; return the generated package directory."""
    shutil.copytree(graphql, workdir / "graphql")
    (workdir / "client" / GENERATED.parent).mkdir(parents=True)
    shutil.copy(ROOT / "client" / "pyproject.toml", workdir / "client" / "pyproject.toml")
    subprocess.run([*uv(), "tool", "run", *CODEGEN], cwd=workdir / "client", check=True,
                   stdout=subprocess.DEVNULL)
    return workdir / "client" / GENERATED


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return sync_tree(fresh, ROOT / "client" / GENERATED,
                         "uv run python -m tools.gen_client", "generated client")


if __name__ == "__main__":
    sys.exit(main())
