"""Build the web explorer (``tools/explorer``, Node) into
``services/gateway/explorer_static``; with ``--check`` build it into a temporary folder and
fail when the committed bundle differs.

The bundle is committed so that serving the explorer needs no Node; this check (CI runs
it through ``make generated``) keeps it equal to its sources and lockfile.  Installs the
locked packages with ``npm ci`` when they are missing or older than the lockfile.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.drift import sync_tree

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tools" / "explorer"
OUTPUT = ROOT / "services" / "gateway" / "explorer_static"


def install() -> None:
    """The locked packages (npm ci), unless installed from the current lockfile."""
    marker = SOURCE / "node_modules" / ".package-lock.json"
    lock = SOURCE / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=SOURCE, check=True)


def main() -> int:
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("node and npm are needed to build the explorer (tools/explorer)")
        return 1
    install()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "explorer_static"
        subprocess.run(["node", str(SOURCE / "build.mjs"), str(fresh)], check=True)
        return sync_tree(fresh, OUTPUT, "make explorer", "explorer bundle")


if __name__ == "__main__":
    sys.exit(main())
