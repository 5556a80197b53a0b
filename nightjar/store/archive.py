"""The alert archive: raw Avro bytes and cutouts, content-addressed by candid.

The store keeps photometry; the archive keeps what alerts carried verbatim, so the
original packet and its stamps can always be served (and re-ingested).  The default
is a local directory; any object with the :class:`AlertArchive` methods can replace it
(an S3 bucket, say).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from nightjar.surveys.interface import CUTOUT_KINDS, ParsedAlert


class AlertArchive(Protocol):
    def put(self, alert: ParsedAlert) -> None: ...
    def get_avro(self, candid: int) -> bytes | None: ...
    def get_cutout(self, candid: int, kind: str) -> bytes | None: ...
    def cutout_kinds(self, candid: int) -> list[str]: ...


class LocalArchive:
    """Files under ``root/<candid mod 4096, hex>/<candid>.avro`` and ``<candid>.<kind>.fits.gz``.

    Writes are atomic (temporary file, then rename) and skipped when the file
    exists, so archiving the same alert twice is harmless.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, candid: int) -> Path:
        return self.root / f"{candid % 4096:03x}"

    def avro_path(self, candid: int) -> Path:
        return self._dir(candid) / f"{candid}.avro"

    def cutout_path(self, candid: int, kind: str) -> Path:
        if kind not in CUTOUT_KINDS:
            raise ValueError(f"unknown cutout kind {kind!r}; expected one of {CUTOUT_KINDS}")
        return self._dir(candid) / f"{candid}.{kind}.fits.gz"

    @staticmethod
    def _write_once(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, alert: ParsedAlert) -> None:
        self._write_once(self.avro_path(alert.candid), alert.raw)
        for kind, data in alert.cutouts.items():
            self._write_once(self.cutout_path(alert.candid, kind), data)

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def get_avro(self, candid: int) -> bytes | None:
        return self._read(self.avro_path(candid))

    def get_cutout(self, candid: int, kind: str) -> bytes | None:
        return self._read(self.cutout_path(candid, kind))

    def cutout_kinds(self, candid: int) -> list[str]:
        return [k for k in CUTOUT_KINDS if self.cutout_path(candid, k).exists()]
