"""Rubin alert schemas by schema id: a Confluent-compatible registry, else the bundled ones.

Rubin registers each alert schema in a Confluent-compatible schema registry under the
id ``major * 100 + minor`` and frames every Kafka message with it
(:mod:`nightjar.surveys.lsst.wire`).  :class:`LsstSchemas` resolves an id through the
registry named in the settings (read-only, ``GET /schemas/ids/{id}``, each id fetched
once and cached) and falls back to the schemas shipped in the PyPI package
``lsst-alert-packet`` when no registry is set, when it cannot be reached, or when it
does not know the id.  Only the package's ``.avsc`` data files are read: none of its
code (GPLv3) is imported.

An unknown id is an :class:`~nightjar.surveys.interface.AlertRejected` naming the id.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema

from nightjar.surveys.avro import RegistryClient
from nightjar.surveys.interface import AlertRejected
from nightjar.surveys.lsst.wire import schema_version, version_of_name

log = logging.getLogger(__name__)

#: fetch(url) -> (HTTP status, body); injected so the parser never opens sockets itself
PACKAGE = "lsst-alert-packet"


@dataclass(frozen=True)
class ResolvedSchema:
    """A writer schema of Rubin alerts."""

    schema_id: int
    version: str  #: "10.0"
    parsed: Any  #: fastavro's parsed schema
    origin: str  #: "registry" or "lsst-alert-packet"


def bundled_schema_root() -> Path | None:
    """The ``schema`` folder of the installed lsst-alert-packet (None if not installed)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    root = Path(str(dist.locate_file("lsst/alert/packet/schema")))
    return root if root.is_dir() else None


def bundled_ids(root: Path | None = None) -> list[int]:
    """Every schema id the bundled package ships (e.g. 300 ... 1101), ascending."""
    root = root or bundled_schema_root()
    if root is None:
        return []
    ids = []
    for alert in root.glob("*/*/lsst.v*_*.alert.avsc"):
        major, minor = alert.parent.parent.name, alert.parent.name
        if major.isdigit() and minor.isdigit():
            ids.append(int(major) * 100 + int(minor))
    return sorted(ids)


def bundled_sample(schema_id: int, root: Path | None = None) -> Path | None:
    """The package's sample alert (an Avro container) of one schema version, if any."""
    root = root or bundled_schema_root()
    if root is None:
        return None
    path = root / str(schema_id // 100) / str(schema_id % 100) / "sample_data" / "fakeAlert.avro"
    return path if path.is_file() else None


class LsstSchemas:
    """Writer schemas of Rubin alerts by schema id: registry first, bundled fallback.

    Thread-safe; each id is resolved once.

    Parameters
    ----------
    registry : RegistryClient, optional
        The schema registry to ask first (None = bundled schemas only).
    bundled_root : Path, optional
        The lsst-alert-packet ``schema`` folder (default: the installed package's).
    """

    def __init__(self, registry: RegistryClient | None = None,
                 bundled_root: Path | None = None):
        self.registry = registry
        self.bundled_root = bundled_root if bundled_root is not None else bundled_schema_root()
        self._cache: dict[int, ResolvedSchema] = {}
        self._lock = threading.Lock()

    def get(self, schema_id: int) -> ResolvedSchema:
        """The writer schema of ``schema_id``, or :class:`AlertRejected` naming the id."""
        found = self._cache.get(schema_id)
        if found is not None:
            return found
        with self._lock:
            found = self._cache.get(schema_id) or self._resolve(schema_id)
            self._cache[schema_id] = found
            return found

    def _resolve(self, schema_id: int) -> ResolvedSchema:
        if self.registry is not None:
            try:
                registered = self.registry.schema_json(schema_id)
            except OSError as exc:
                log.warning("schema id %d: %s; using the bundled schemas", schema_id, exc)
            else:
                if registered is not None:
                    parsed = fastavro.parse_schema(registered)
                    # the schema's own name says its version (lsst.v11_0.alert); Rubin's
                    # ids are major*100+minor, another registry's need not be
                    version = version_of_name(str(parsed.get("name", ""))) \
                        if isinstance(parsed, dict) else None
                    return ResolvedSchema(schema_id, version or schema_version(schema_id),
                                          parsed, "registry")
        path = self._bundled_path(schema_id)
        if path is None:
            where = "the schema registry nor " if self.registry is not None else ""
            raise AlertRejected(f"unknown LSST schema id {schema_id} (version "
                                f"{schema_version(schema_id)}): neither {where}"
                                f"lsst-alert-packet knows it")
        return ResolvedSchema(schema_id, schema_version(schema_id),
                              fastavro.schema.load_schema(str(path)), PACKAGE)

    def _bundled_path(self, schema_id: int) -> Path | None:
        if self.bundled_root is None or schema_id < 0:
            return None
        major, minor = divmod(schema_id, 100)
        path = (self.bundled_root / str(major) / str(minor)
                / f"lsst.v{major}_{minor}.alert.avsc")
        return path if path.is_file() else None
