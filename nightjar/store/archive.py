"""The alert archive: raw packets and cutouts as they came, content-addressed by detection.

The store keeps photometry; the archive keeps what alerts carried verbatim, so the
original packet and its stamps can always be served (and re-ingested).  Entries are
keyed by the detection key of the alert's own detection
(:func:`nightjar.surveys.interface.detection_key`): a ZTF ``candid``, or
``"LSST:<diaSourceId>"``.  The default is a local directory; any object with the
:class:`AlertArchive` methods can replace it (an S3 bucket, say).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from nightjar.surveys.interface import CUTOUT_KINDS, ParsedAlert

Key = int | str


class AlertArchive(Protocol):
    def put(self, alert: ParsedAlert) -> None: ...
    def get_avro(self, key: Key) -> bytes | None: ...
    def get_cutout(self, key: Key, kind: str) -> bytes | None: ...
    def cutout_kinds(self, key: Key) -> list[str]: ...


class LocalArchive:
    """Files under ``root/<id mod 4096, hex>/<id>.<ext>``.

    ZTF (integer keys): ``<candid>.avro`` (the Avro container) and
    ``<candid>.<kind>.fits.gz`` (ZTF's gzipped cutouts).  Other surveys under their own
    folder, e.g. LSST: ``lsst/<hex>/<diaSourceId>.packet`` (the message as received:
    Rubin's wire format, or an Avro container) and ``<diaSourceId>.<kind>.fits``
    (Rubin's uncompressed multi-extension FITS).  Writes are atomic (temporary file,
    then rename) and skipped when the file exists, so archiving an alert twice is
    harmless.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def _split(self, key: Key) -> tuple[Path, int, bool]:
        """(folder, numeric id, is ZTF) of a key."""
        if isinstance(key, int):
            return self.root / f"{key % 4096:03x}", key, True
        survey, _, number = str(key).partition(":")
        if not survey.isalpha() or not number.isdigit():
            raise ValueError(f"not a detection key: {key!r}")
        ident = int(number)
        return self.root / survey.lower() / f"{ident % 4096:03x}", ident, False

    def avro_path(self, key: Key) -> Path:
        folder, ident, ztf = self._split(key)
        return folder / (f"{ident}.avro" if ztf else f"{ident}.packet")

    def cutout_path(self, key: Key, kind: str) -> Path:
        if kind not in CUTOUT_KINDS:
            raise ValueError(f"unknown cutout kind {kind!r}; expected one of {CUTOUT_KINDS}")
        folder, ident, ztf = self._split(key)
        return folder / f"{ident}.{kind}.fits{'.gz' if ztf else ''}"

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
        self._write_once(self.avro_path(alert.key), alert.raw)
        for kind, data in alert.cutouts.items():
            self._write_once(self.cutout_path(alert.key, kind), data)

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def get_avro(self, key: Key) -> bytes | None:
        """The packet as it came (see the class docstring for its format per survey)."""
        return self._read(self.avro_path(key))

    def get_cutout(self, key: Key, kind: str) -> bytes | None:
        return self._read(self.cutout_path(key, kind))

    def cutout_kinds(self, key: Key) -> list[str]:
        return [k for k in CUTOUT_KINDS if self.cutout_path(key, k).exists()]
