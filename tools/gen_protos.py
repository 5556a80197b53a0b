"""Generate the Python gRPC stubs of proto/ into the package ``nightjar.v1``.

``--check`` regenerates into a temporary directory and fails when the committed stubs
differ (CI).  The stubs land in ``nightjar/v1/`` because protoc names Python modules
after the proto package (``nightjar.v1``); any other place would make their
``from nightjar.v1 import …`` lines point into the wrong package.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("nightjar") / "v1"
INIT = ('"""Generated gRPC stubs of proto/nightjar/v1 (tools/gen_protos.py). DO NOT EDIT."""\n')


def generate(out: Path) -> list[Path]:
    """Run protoc over every .proto; return the generated files relative to ``out``."""
    sources = sorted(p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(files("grpc_tools") / "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *map(str, sources)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out / PACKAGE / "__init__.py").write_text(INIT)
    return sorted(p.relative_to(out) for p in (out / PACKAGE).iterdir() if p.is_file())


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generated = generate(fresh)
        committed = sorted(p.relative_to(ROOT) for p in (ROOT / PACKAGE).glob("*")
                           if p.is_file()) if (ROOT / PACKAGE).is_dir() else []
        if "--check" in sys.argv:
            stale = [str(p) for p in generated
                     if not (ROOT / p).exists() or not filecmp.cmp(fresh / p, ROOT / p,
                                                                   shallow=False)]
            stale += [str(p) for p in committed if p not in generated]
            if stale:
                print("gRPC stubs out of date: run `uv run python -m tools.gen_protos` "
                      f"({', '.join(stale)})")
                return 1
            print(f"{len(generated)} gRPC stub files are up to date")
            return 0
        for p in committed:
            if p not in generated:
                (ROOT / p).unlink()
        (ROOT / PACKAGE).mkdir(parents=True, exist_ok=True)
        for p in generated:
            (ROOT / p).write_bytes((fresh / p).read_bytes())
        print(f"wrote {len(generated)} files to {PACKAGE}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
