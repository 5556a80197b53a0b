"""Dependencies point one way (the map: ../shared/ARCHITECTURE.md and the README's Layout).

From the bottom: ``ml`` (nothing of Nightjar) · the base (settings, sky, values, processes,
generated stubs) · the survey interface · one package per survey · the core (pure
light-curve science) · context (catalogues, TNS) · the store · the runner (the topology's
steps and the embedded runner) · training drivers · the worker (``stream/``) and the
services (``services/``, ``finding_charts/``) · the composition root (``nightjar/cli/``),
which nothing imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: part -> the module prefixes that make it up (longest prefix wins)
PARTS: dict[str, tuple[str, ...]] = {
    "ml": ("ml",),
    "base": ("nightjar", "nightjar.settings", "nightjar.sky", "nightjar.values",
             "nightjar.photometry", "nightjar.minor_planets",
             "nightjar.processes", "nightjar.v1"),
    "interface": ("nightjar.surveys.interface", "nightjar.surveys.avro"),
    "survey": ("nightjar.surveys.ztf", "nightjar.surveys.lsst"),
    "surveys": ("nightjar.surveys",),
    "core": ("nightjar.core",),
    "context": ("nightjar.context",),
    "store": ("nightjar.store",),
    "runner": ("nightjar.runner",),
    "training": ("nightjar.training",),
    "worker": ("stream",),
    "charts": ("finding_charts",),
    "services": ("services",),
    "root": ("nightjar.cli",),
}
#: part -> the parts it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "ml": set(),
    "base": set(),
    "interface": {"base"},
    "survey": {"interface", "base", "ml"},
    "surveys": {"survey", "interface", "base"},
    "core": {"interface", "base"},
    "context": {"base"},
    "store": {"core", "interface", "base"},
    "runner": {"store", "core", "surveys", "interface", "context", "base", "ml"},
    "training": {"runner", "surveys", "interface", "core", "base", "ml"},
    "worker": {"runner", "store", "surveys", "interface", "core", "base", "ml"},
    "charts": {"context", "core", "base"},
    "services": {"runner", "store", "core", "surveys", "interface", "context", "base", "ml",
                 "charts"},
    "root": set(PARTS),
}
PACKAGES = ("ml", "nightjar", "stream", "services", "finding_charts")


def part_of(module: str) -> str | None:
    best, length = None, -1
    for part, prefixes in PARTS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = part, len(prefix)
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(package: str) -> dict[str, set[str]]:
    """Modules of ``package`` -> the Nightjar modules each imports (at any depth)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        module = _module_name(path)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        out[module] = {n for n in names if n.split(".")[0] in PACKAGES}
    return out


def violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for module, names in imports(package).items():
            own = part_of(module)
            assert own is not None, f"{module} belongs to no part of the layout"
            for name in names:
                other = part_of(name)
                if other is None or other == own or other in ALLOWED[own]:
                    continue
                found.append(f"{module} ({own}) imports {name} ({other})")
    return sorted(set(found))


def test_no_module_imports_one_above_it() -> None:
    assert violations() == []


def test_nothing_imports_the_composition_root() -> None:
    for package in PACKAGES:
        for module, names in imports(package).items():
            if part_of(module) == "root":
                continue
            assert not any(part_of(n) == "root" for n in names), module


def test_one_survey_package_never_imports_another() -> None:
    for module, names in imports("nightjar").items():
        if part_of(module) != "survey":
            continue
        own = module.split(".")[2]
        for name in names:
            parts = name.split(".")
            if len(parts) > 2 and parts[:2] == ["nightjar", "surveys"]:
                assert parts[2] in (own, "interface", "avro"), f"{module} imports {name}"


def test_the_layout_check_catches_an_upward_import(tmp_path: Path) -> None:
    # the rule itself: a store module importing the runner, or the core a survey package
    assert part_of("nightjar.store.mongo") == "store"
    assert "runner" not in ALLOWED["store"]
    assert part_of("nightjar.surveys.ztf.decode") == "survey"
    assert "survey" not in ALLOWED["core"]
    assert part_of("nightjar.cli.ml") == "root"


@pytest.mark.parametrize(("folder", "must_have"), [
    ("client", "client/nightjar_client/core.py"),
    ("tom_nightjar", "tom_nightjar/tom_nightjar/core.py"),
])
def test_the_distributions_import_nothing_of_the_server(folder: str, must_have: str) -> None:
    # nightjar-client and tom-nightjar are distributions of their own: installing them
    # brings no server code (they talk to the gateway over HTTP and WebSocket)
    server = {"nightjar", "stream", "services", "finding_charts", "ml", "tools", "tests"}
    modules = {}
    for path in (ROOT / folder).rglob("*.py"):
        if ".venv" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        modules[str(path.relative_to(ROOT))] = names
    assert must_have in modules
    for module, names in modules.items():
        assert not names & server, module
