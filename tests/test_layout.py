"""Dependencies point one way: ml <- nightjar core <- stream / services (CLI on top)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of ``package`` imports (at any depth)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


def test_ml_depends_on_nothing_above_it() -> None:
    for module, names in _imports("ml").items():
        assert not names & {"nightjar", "stream", "services", "finding_charts"}, module


def test_the_core_does_not_import_the_drivers() -> None:
    # the CLI is the one top-level driver allowed to start Kafka workers and servers
    for module, names in _imports("nightjar").items():
        if module in ("nightjar/cli.py", "nightjar/ml_cli.py"):
            continue
        assert not names & {"stream", "services"}, module


def test_the_client_imports_nothing_of_the_server() -> None:
    # nightjar-client is its own distribution: `pip install ./client` brings no server code
    server = {"nightjar", "stream", "services", "finding_charts", "ml", "tools", "tests"}
    modules = _imports("client")
    assert "client/nightjar_client/core.py" in modules
    for module, names in modules.items():
        assert not names & server, module
