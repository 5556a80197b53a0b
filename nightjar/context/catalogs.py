"""Astronomical catalogues partitioned by HEALPix: import, cone search, nearest source.

A catalogue lives in ``<root>/<name>/``: ``catalog.json`` (columns with units, row
count, default cross-match radius, provenance, the HEALPix order and the rows per
pixel) and one parquet file per occupied pixel (nested scheme) under ``pixels/``.  The
order is chosen from the catalogue's density so that an occupied pixel holds about
:data:`TARGET_ROWS_PER_PIXEL` rows; a cone reads only the pixels it overlaps
(``healpy.query_disc``), memory-mapped and kept in a small cache, and keeps the rows
within the exact angular distance.  The semantics follow catsHTM: positions in degrees,
radii in arcseconds, every result with its distance, nearest first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nightjar.sky import healpy_module, separation_deg
from nightjar.values import finite_or_none

#: Rows an occupied partition pixel should hold, on average.
TARGET_ROWS_PER_PIXEL = 2000
MAX_ORDER = 12
#: Largest cone radius the search answers [arcsec] (catsHTM-style services cap it too).
MAX_RADIUS_ARCSEC = 3600.0
#: Most rows one cone returns.
MAX_ROWS = 100_000
RA_CANDIDATES = ("ra", "raj2000", "radeg", "ra_deg", "r.a.", "ra_icrs", "_raj2000")
DEC_CANDIDATES = ("dec", "dej2000", "decdeg", "dedeg", "dec_deg", "decl", "dec_icrs", "_dej2000")
_ID, _RA, _DEC = "_id", "_ra", "_dec"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class CatalogError(ValueError):
    """A catalogue cannot be imported or queried as asked; the message says why."""


class UnknownCatalog(KeyError):
    """No catalogue of that name is installed."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    unit: str
    type: str


@dataclass(frozen=True)
class CatalogInfo:
    """What ``catalog.json`` records about one imported catalogue."""

    name: str
    columns: tuple[ColumnInfo, ...]
    row_count: int
    default_radius_arcsec: float
    source: str
    healpix_order: int
    ra_column: str
    dec_column: str
    id_column: str | None
    pixels: dict[int, int] = field(default_factory=dict)  #: pixel -> rows
    imported_at: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CatalogInfo:
        return cls(**{**data, "columns": tuple(ColumnInfo(**c) for c in data["columns"]),
                      "pixels": {int(k): int(v) for k, v in data["pixels"].items()}})


@dataclass(frozen=True)
class CatalogSource:
    """One source found by a cone search or cross-match."""

    catalog: str
    source_id: str
    ra: float  #: [deg]
    dec: float  #: [deg]
    distance_arcsec: float
    columns: dict[str, Any]


def validate_cone(ra: float, dec: float, radius_arcsec: float) -> None:
    """Raise :class:`CatalogError` for a cone that is not on the sky or too large."""
    if not (math.isfinite(ra) and math.isfinite(dec) and math.isfinite(radius_arcsec)):
        raise CatalogError("ra, dec and radius must be finite numbers")
    if not (0.0 <= ra < 360.0):
        raise CatalogError(f"ra {ra} is outside [0, 360) deg")
    if not (-90.0 <= dec <= 90.0):
        raise CatalogError(f"dec {dec} is outside [-90, 90] deg")
    if not (0.0 < radius_arcsec <= MAX_RADIUS_ARCSEC):
        raise CatalogError(f"radius {radius_arcsec} arcsec is outside (0, {MAX_RADIUS_ARCSEC:g}]")


def choose_order(ra: np.ndarray, dec: np.ndarray,
                 target: int = TARGET_ROWS_PER_PIXEL) -> int:
    """The lowest HEALPix order whose occupied pixels hold ``target`` rows or fewer on average."""
    for order in range(MAX_ORDER + 1):
        occupied = np.unique(healpy_module().ang2pix(2 ** order, ra, dec, nest=True, lonlat=True))
        if len(ra) / max(len(occupied), 1) <= target:
            return order
    return MAX_ORDER


def _find(names: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str) -> str:
    if wanted:
        if wanted not in names:
            raise CatalogError(f"no column {wanted!r} (columns: {', '.join(names)})")
        return wanted
    lower = {n.lower(): n for n in names}
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    raise CatalogError(f"cannot tell which column holds {what}; name it with --{what}-col "
                       f"(columns: {', '.join(names)})")


def _read_table(path: Path) -> tuple[pa.Table, dict[str, str]]:
    """A file as an Arrow table plus the units astropy knows of (CSV, FITS, parquet)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        return table.drop_columns([c for c in table.column_names
                                   if c.startswith("__index_level_")]), {}
    from astropy.table import Table

    if name.endswith((".fits", ".fits.gz", ".fit", ".fts")):
        atable = Table.read(path)
    elif name.endswith((".csv", ".csv.gz")):
        atable = Table.read(path, format="ascii.csv")
    elif name.endswith((".vot", ".xml", ".votable")):
        atable = Table.read(path, format="votable")
    else:
        raise CatalogError(f"{path.name}: unknown format (CSV, FITS, VOTable or parquet)")
    units = {c: str(atable[c].unit) for c in atable.colnames if atable[c].unit is not None}
    keep = [c for c in atable.colnames if atable[c].ndim == 1]  # drop vector columns
    arrays = {}
    for c in keep:
        col = atable[c]
        values = col.filled() if hasattr(col, "filled") and col.dtype.kind in "US" else col
        data = np.asarray(values)
        if data.dtype.kind == "S":
            data = np.char.decode(data, "utf-8", "replace")
        mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)))
        arrays[c] = pa.array(data.tolist(), mask=mask if mask.any() else None)
    return pa.table(arrays), units


def _degrees(column: pa.ChunkedArray, hours: bool) -> np.ndarray:
    """Coordinates in degrees from numbers, or sexagesimal strings via astropy."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        from astropy.coordinates import Angle

        text = [s.strip() if s else "nan" for s in column.to_pylist()]
        return np.asarray(Angle(text, unit="hourangle" if hours else "deg").deg, dtype=float)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)


def import_catalog(path: Path, name: str, root: Path, *, ra_col: str | None = None,
                   dec_col: str | None = None, id_col: str | None = None,
                   default_radius_arcsec: float = 1.0, source: str | None = None,
                   ) -> tuple[CatalogInfo, int]:
    """Partition a catalogue file by HEALPix under ``root/name``; replaces an older import.

    Returns the catalogue's description and the number of rows dropped because their
    coordinates were missing or off the sky.
    """
    if not _NAME.match(name):
        raise CatalogError(f"catalogue name {name!r}: use lower-case letters, digits, _ and -")
    if not (0 < default_radius_arcsec <= MAX_RADIUS_ARCSEC):
        raise CatalogError("default radius must be in (0, 3600] arcsec")
    table, units = _read_table(path)
    names = table.column_names
    ra_name = _find(names, ra_col, RA_CANDIDATES, "ra")
    dec_name = _find(names, dec_col, DEC_CANDIDATES, "dec")
    if id_col and id_col not in names:
        raise CatalogError(f"no column {id_col!r} (columns: {', '.join(names)})")
    ra = _degrees(table[ra_name], hours=True)
    dec = _degrees(table[dec_name], hours=False)
    ra = np.where(ra == 360.0, 0.0, ra)
    ok = np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (np.abs(dec) <= 90)
    ids = (pc.cast(table[id_col], pa.string()).to_pylist() if id_col
           else [str(i) for i in range(table.num_rows)])
    # text columns as trimmed strings (GCVS pads its types with blanks)
    for i, col_name in enumerate(names):
        if pa.types.is_string(table[col_name].type):
            table = table.set_column(i, col_name, pc.utf8_trim_whitespace(table[col_name]))
    table = table.append_column(_ID, pa.array(ids, pa.string()))
    table = table.append_column(_RA, pa.array(ra)).append_column(_DEC, pa.array(dec))
    dropped = int((~ok).sum())
    table = table.filter(pa.array(ok))
    ra, dec = ra[ok], dec[ok]
    if table.num_rows == 0:
        raise CatalogError(f"{path.name}: no rows with valid coordinates")
    order = choose_order(ra, dec)
    pixels = healpy_module().ang2pix(2 ** order, ra, dec, nest=True, lonlat=True)
    target = root / name
    staging = root / f".{name}.importing"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "pixels").mkdir(parents=True)
    table = table.append_column("_pix", pa.array(pixels)).sort_by("_pix")
    counts: dict[int, int] = {}
    sorted_pix = table["_pix"].to_numpy()
    starts = np.flatnonzero(np.r_[True, sorted_pix[1:] != sorted_pix[:-1]])
    for start, stop in zip(starts, [*starts[1:], len(sorted_pix)], strict=True):
        pix = int(sorted_pix[start])
        part = table.slice(start, stop - start).drop_columns(["_pix"])
        pq.write_table(part, staging / "pixels" / f"{pix}.parquet", compression="zstd")
        counts[pix] = int(stop - start)
    columns = tuple(ColumnInfo(c, units.get(c, ""), str(table[c].type)) for c in names)
    info = CatalogInfo(
        name=name, columns=columns, row_count=int(table.num_rows),
        default_radius_arcsec=default_radius_arcsec, source=source or path.name,
        healpix_order=order, ra_column=ra_name, dec_column=dec_name, id_column=id_col,
        pixels=counts, imported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    (staging / "catalog.json").write_text(json.dumps(asdict(info), indent=1))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return info, dropped


class CatalogStore:
    """Read side of the imported catalogues under ``root``.

    Parameters
    ----------
    root : Path
        Directory of imported catalogues.
    cache_pixels : int
        Partition files kept open (memory-mapped) at once.
    """

    def __init__(self, root: Path, cache_pixels: int = 256):
        self.root = root
        self.cache_pixels = cache_pixels
        self._cache: OrderedDict[tuple[str, int], tuple[pa.Table, np.ndarray, np.ndarray]] = \
            OrderedDict()
        self._lock = threading.Lock()  # refresh and cone searches run in worker threads
        self._seen: dict[str, tuple[int, float]] = {}  # name -> catalog.json (inode, mtime)
        self.infos: dict[str, CatalogInfo] = {}
        self.refresh()

    def refresh(self) -> dict[str, CatalogInfo]:
        """Pick up catalogues imported, re-imported or removed since the last look.

        Cheap (one ``stat`` per catalogue); returns the catalogues now installed.
        """
        seen: dict[str, tuple[int, float]] = {}
        metas = sorted(self.root.glob("*/catalog.json")) if self.root.is_dir() else []
        for meta in metas:
            with contextlib.suppress(OSError):  # removed between glob and stat
                st = meta.stat()
                seen[meta.parent.name] = (st.st_ino, st.st_mtime)
        if seen == self._seen:
            return self.infos
        infos: dict[str, CatalogInfo] = {}
        for name, stamp in seen.items():
            if self._seen.get(name) == stamp and name in self.infos:
                infos[name] = self.infos[name]
                continue
            try:
                info = CatalogInfo.from_json(
                    json.loads((self.root / name / "catalog.json").read_text()))
            except (OSError, ValueError):
                continue  # replaced mid-read: the next refresh sees the new one
            infos[info.name] = info
        with self._lock:
            for key in [k for k in self._cache if self._seen.get(k[0]) != seen.get(k[0])]:
                del self._cache[key]
            self.infos, self._seen = infos, seen
        return infos

    def info(self, name: str) -> CatalogInfo:
        try:
            return self.infos[name]
        except KeyError:
            known = ", ".join(self.infos) or "none imported"
            raise UnknownCatalog(f"no catalogue {name!r} (catalogues: {known})") from None

    def _pixel(self, name: str, pix: int) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        key = (name, pix)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        table = pq.read_table(self.root / name / "pixels" / f"{pix}.parquet", memory_map=True)
        entry = (table, table[_RA].to_numpy(), table[_DEC].to_numpy())
        with self._lock:
            self._cache[key] = entry
            if len(self._cache) > self.cache_pixels:
                self._cache.popitem(last=False)
        return entry

    def cone(self, name: str, ra: float, dec: float, radius_arcsec: float,
             limit: int | None = None) -> list[CatalogSource]:
        """Every source within ``radius_arcsec`` of (ra, dec) [deg], nearest first."""
        validate_cone(ra, dec, radius_arcsec)
        info = self.info(name)
        nside = 2 ** info.healpix_order
        hp = healpy_module()
        vec = hp.ang2vec(ra, dec, lonlat=True)
        candidates = hp.query_disc(nside, vec, math.radians(radius_arcsec / 3600.0),
                                   inclusive=True, nest=True)
        found: list[tuple[float, pa.Table, int]] = []
        for pix in candidates:
            if int(pix) not in info.pixels:
                continue
            table, ras, decs = self._pixel(name, int(pix))
            dist = separation_deg(ras, decs, ra, dec) * 3600.0
            for row in np.flatnonzero(dist <= radius_arcsec):
                found.append((float(dist[row]), table, int(row)))
        found.sort(key=lambda item: item[0])
        cap = min(limit or MAX_ROWS, MAX_ROWS)
        return [self._source(info, table, row, dist) for dist, table, row in found[:cap]]

    def _source(self, info: CatalogInfo, table: pa.Table, row: int,
                dist: float) -> CatalogSource:
        record = table.slice(row, 1).to_pylist()[0]
        return CatalogSource(
            catalog=info.name, source_id=record.pop(_ID), ra=record.pop(_RA),
            dec=record.pop(_DEC), distance_arcsec=dist,
            columns={k: finite_or_none(v) for k, v in record.items()})

    def nearest(self, name: str, ra: float, dec: float,
                radius_arcsec: float | None = None) -> CatalogSource | None:
        """The nearest source within the radius (default: the catalogue's), or None."""
        radius = radius_arcsec if radius_arcsec is not None else \
            self.info(name).default_radius_arcsec
        found = self.cone(name, ra, dec, radius, limit=1)
        return found[0] if found else None
