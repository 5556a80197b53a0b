"""The model registry: versioned model folders, shipped defaults and user-trained ones.

Layout: ``<root>/<model name>/<semantic version>/`` holding the model files and
``model.json`` (the card: name, version, date, feature list in order, classes, training
data, metrics, library versions).  Roots, in order of precedence for equal versions:
the user's ``$NIGHTJAR_HOME/models`` and the defaults committed under ``ml/models``.
The newest version wins unless one is pinned.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPPED_ROOT = Path(__file__).parent / "models"
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def library_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages`` (those missing left out), for a model card."""
    out = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def parse_version(version: str) -> tuple[int, int, int]:
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"not a semantic version (MAJOR.MINOR.PATCH): {version!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    path: Path

    @property
    def card(self) -> dict[str, Any]:
        card: dict[str, Any] = json.loads((self.path / "model.json").read_text())
        return card


class ModelRegistry:
    """Model folders under one or more roots (first root wins on equal versions)."""

    def __init__(self, roots: list[Path]):
        self.roots = roots

    @classmethod
    def default(cls, home: Path) -> ModelRegistry:
        return cls([home / "models", SHIPPED_ROOT])

    def versions(self, name: str) -> list[RegisteredModel]:
        """Every registered version of ``name``, newest first."""
        seen: dict[str, RegisteredModel] = {}
        for root in self.roots:
            folder = root / name
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if (path / "model.json").exists() and _SEMVER.match(path.name):
                    seen.setdefault(path.name, RegisteredModel(name, path.name, path))
        return sorted(seen.values(), key=lambda m: parse_version(m.version), reverse=True)

    def get(self, name: str, version: str | None = None) -> RegisteredModel:
        """The pinned ``version`` of ``name``, or its newest."""
        versions = self.versions(name)
        if not versions:
            raise LookupError(f"no {name} model registered under "
                              f"{', '.join(str(r) for r in self.roots)}")
        if version is None:
            return versions[0]
        for model in versions:
            if model.version == version:
                return model
        raise LookupError(f"no {name} version {version}; registered: "
                          f"{', '.join(m.version for m in versions)}")

    def next_version(self, name: str) -> str:
        """A minor bump over the newest registered version (1.0.0 for the first)."""
        versions = self.versions(name)
        if not versions:
            return "1.0.0"
        major, minor, _ = parse_version(versions[0].version)
        return f"{major}.{minor + 1}.0"
