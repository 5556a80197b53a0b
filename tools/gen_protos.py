"""Generate the Python gRPC stubs of proto/ into the package ``nightjar.v1``.

``--check`` regenerates into a temporary directory and fails when the committed stubs
differ (CI).  The stubs land in ``nightjar/v1/`` because protoc names Python modules
after the proto package (``nightjar.v1``); any other place would make their
``from nightjar.v1 import …`` lines point into the wrong package.
"""

from __future__ import annotations

import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

from tools.drift import sync_tree

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("nightjar") / "v1"
INIT = ('"""Generated gRPC stubs of proto/nightjar/v1 (tools/gen_protos.py). DO NOT EDIT."""\n')


def generate(out: Path) -> Path:
    """Run protoc over every .proto into ``out``; return the generated package directory."""
    sources = sorted(p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(files("grpc_tools") / "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *map(str, sources)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out / PACKAGE / "__init__.py").write_text(INIT)
    return out / PACKAGE


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return sync_tree(generate(Path(tmp)), ROOT / PACKAGE,
                         "uv run python -m tools.gen_protos", "gRPC stub")


if __name__ == "__main__":
    sys.exit(main())
