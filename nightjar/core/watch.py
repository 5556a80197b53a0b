"""Watchlists and watchmaps: reading them, and where a position falls among them.

Pure functions and in-memory indexes (no I/O besides parsing bytes handed in):

* :func:`read_watchlist` reads CSV or VOTable rows (name, ra, dec, optional radius),
  refusing a radius over :data:`MAX_RADIUS_ARCSEC` with its row number (never truncated);
* :class:`WatchlistIndex` finds the rows whose radius contains a position: rows are
  grouped by radius into HEALPix orders whose pixels are four times the radius or more,
  indexed by their centre's pixel; a look-up takes the position's pixel and its
  neighbours (which hold every row within the radius, also across RA 0/360 and at the
  poles; a disc query when a margin reaches further), for a whole batch of positions at
  once, and keeps the rows within their radius by the exact great-circle distance;
* :func:`read_skymap` reduces a multi-order HEALPix sky map (LIGO/Virgo/KAGRA's NUNIQ
  format) to each pixel's credible level, and :class:`SkyRegion` answers the level at a
  position; a MOC becomes a region whose every pixel has level 0.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nightjar.sky import healpy_module

DEFAULT_RADIUS_ARCSEC = 2.0
MAX_RADIUS_ARCSEC = 3600.0
#: the finest order rows are indexed at (pixels of ~6 arcsec)
MAX_INDEX_ORDER = 15

NAME_COLUMNS = ("name", "id", "source", "object", "objname", "designation")
RA_COLUMNS = ("ra", "raj2000", "ra_deg", "ra_icrs", "_raj2000", "alpha")
DEC_COLUMNS = ("dec", "decl", "dej2000", "dec_deg", "de_icrs", "_dej2000", "delta")
RADIUS_COLUMNS = ("radius", "radius_arcsec", "r", "rad")


class WatchlistError(ValueError):
    """A watchlist file that cannot be read; ``row`` is the 1-based data row at fault."""

    def __init__(self, message: str, row: int | None = None):
        self.row = row
        super().__init__(f"row {row}: {message}" if row is not None else message)


@dataclass(frozen=True)
class WatchRows:
    """A watchlist's rows as arrays (positions in degrees, radii in arcsec)."""

    names: list[str]
    ra: np.ndarray
    dec: np.ndarray
    radius: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def _column(header: Sequence[str], wanted: Sequence[str], what: str,
            required: bool = True) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in wanted:
        if name in lowered:
            return lowered.index(name)
    if required:
        raise WatchlistError(f"no {what} column (one of {', '.join(wanted)}) in "
                             f"{', '.join(header)}")
    return None


def _rows_from_columns(names: Sequence[Any], ra: Sequence[Any], dec: Sequence[Any],
                       radius: Sequence[Any] | None, default_radius: float) -> WatchRows:
    n = len(ra)
    ra_arr = np.empty(n)
    dec_arr = np.empty(n)
    rad_arr = np.full(n, float(default_radius))
    out_names: list[str] = []
    for i in range(n):
        row = i + 1
        try:
            r_a, d_e = float(ra[i]), float(dec[i])
        except (TypeError, ValueError):
            raise WatchlistError(f"ra and dec must be numbers in degrees, not {ra[i]!r}, "
                                 f"{dec[i]!r}", row) from None
        if not ((math.isfinite(r_a) and 0.0 <= r_a < 360.0) or r_a == 360.0):
            raise WatchlistError(f"ra {r_a} is outside [0, 360] deg", row)
        if not (math.isfinite(d_e) and -90.0 <= d_e <= 90.0):
            raise WatchlistError(f"dec {d_e} is outside [-90, 90] deg", row)
        ra_arr[i], dec_arr[i] = r_a % 360.0, d_e
        if radius is not None and radius[i] not in (None, ""):
            try:
                value = float(radius[i])
            except (TypeError, ValueError):
                raise WatchlistError(f"radius {radius[i]!r} is not a number", row) from None
            if not (math.isfinite(value) and value > 0):
                raise WatchlistError(f"radius {value} must be positive (arcsec)", row)
            if value > MAX_RADIUS_ARCSEC:
                raise WatchlistError(f"radius {value:g} arcsec is over the maximum of "
                                     f"{MAX_RADIUS_ARCSEC:g} arcsec (1 deg); split the "
                                     f"region or use a watchmap", row)
            rad_arr[i] = value
        name = str(names[i]).strip() if names is not None and names[i] is not None else ""
        out_names.append(name or f"row {row}")
    return WatchRows(out_names, ra_arr, dec_arr, rad_arr)


def read_watchlist(data: bytes, *, default_radius: float = DEFAULT_RADIUS_ARCSEC,
                   filename: str = "") -> WatchRows:
    """Rows of a watchlist file: CSV (a header with name, ra, dec and optionally radius
    [arcsec]) or VOTable (the same columns, or the UCDs of position).

    Parameters
    ----------
    data : bytes
        The file's content.
    default_radius : float
        Radius of rows that give none [arcsec] (at most :data:`MAX_RADIUS_ARCSEC`).
    """
    if not 0 < default_radius <= MAX_RADIUS_ARCSEC:
        raise WatchlistError(f"the default radius must be in (0, {MAX_RADIUS_ARCSEC:g}] "
                             f"arcsec, not {default_radius:g}")
    head = data[:512].lstrip()
    if head.startswith(b"<?xml") or b"<VOTABLE" in head.upper():
        return _read_votable(data, default_radius)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WatchlistError("not UTF-8 text: a watchlist is CSV or VOTable") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise WatchlistError("the file is empty") from None
    i_name = _column(header, NAME_COLUMNS, "name", required=False)
    i_ra = _column(header, RA_COLUMNS, "ra")
    i_dec = _column(header, DEC_COLUMNS, "dec")
    i_rad = _column(header, RADIUS_COLUMNS, "radius", required=False)
    assert i_ra is not None and i_dec is not None
    names: list[Any] = []
    ras: list[Any] = []
    decs: list[Any] = []
    radii: list[Any] = []
    for number, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(i_ra, i_dec):
            raise WatchlistError(f"{len(row)} columns where the header has {len(header)}",
                                 number)
        names.append(row[i_name] if i_name is not None and i_name < len(row) else None)
        ras.append(row[i_ra])
        decs.append(row[i_dec])
        radii.append(row[i_rad] if i_rad is not None and i_rad < len(row) else None)
    if not ras:
        raise WatchlistError("the file has a header but no rows")
    return _rows_from_columns(names, ras, decs, radii if i_rad is not None else None,
                              default_radius)


def _read_votable(data: bytes, default_radius: float) -> WatchRows:
    from astropy.io.votable import parse_single_table

    try:
        table = parse_single_table(io.BytesIO(data)).to_table()
    except Exception as exc:  # astropy raises many kinds for a malformed VOTable
        raise WatchlistError(f"not a readable VOTable: {exc}") from None
    columns = list(table.colnames)

    def by_ucd(ucd: str) -> str | None:
        for name in columns:
            if (table[name].meta.get("ucd") or "").lower().startswith(ucd):
                return name
        return None

    def pick(wanted: Sequence[str], ucd: str | None, what: str, required: bool) -> str | None:
        index = _column(columns, wanted, what, required=False)
        if index is not None:
            return columns[index]
        found = by_ucd(ucd) if ucd else None
        if found is None and required:
            raise WatchlistError(f"no {what} column in {', '.join(columns)}")
        return found

    ra = pick(RA_COLUMNS, "pos.eq.ra", "ra", True)
    dec = pick(DEC_COLUMNS, "pos.eq.dec", "dec", True)
    name = pick(NAME_COLUMNS, "meta.id", "name", False)
    radius = pick(RADIUS_COLUMNS, None, "radius", False)
    assert ra is not None and dec is not None
    if not len(table):
        raise WatchlistError("the VOTable has no rows")

    def values(col: str) -> list[Any]:
        column = table[col]
        return [None if np.ma.is_masked(v) else v for v in column.tolist()]

    return _rows_from_columns(values(name) if name else [None] * len(table), values(ra),
                              values(dec), values(radius) if radius else None, default_radius)


#: a group's order has pixels (``nside2resol``, the square root of a pixel's area) at
#: least this many times its largest radius.  A point within 1/4 of that of another lies
#: in the other's pixel or one of its 8 neighbours: sampled over the sphere, at the poles
#: and at the base pixels' corners (2 x 10^6 points per order), the 3x3 block covered
#: every offset up to 1/2 and missed some from 3/4; 1/4 keeps a factor of two.
PIXEL_PER_RADIUS = 4.0


def _order_for(radius_arcsec: float) -> int:
    """The finest order whose pixels are at least :data:`PIXEL_PER_RADIUS` times the
    radius (a disc of that radius then lies within a pixel and its neighbours)."""
    hp = healpy_module()
    for order in range(MAX_INDEX_ORDER, -1, -1):
        if math.degrees(hp.nside2resol(1 << order)) * 3600.0 >= (
                PIXEL_PER_RADIUS * radius_arcsec):
            return order
    return 0


@dataclass
class _Group:
    order: int
    max_radius_deg: float
    pixels: np.ndarray  #: sorted centre pixels
    rows: np.ndarray  #: row indices in the same order

    @property
    def reach_deg(self) -> float:
        """How far from a position the pixel and its neighbours surely reach [deg]."""
        return math.degrees(healpy_module().nside2resol(1 << self.order)) / PIXEL_PER_RADIUS


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every index of the ranges [lo, hi) (flattened), and the range each came from."""
    counts = hi - lo
    which = np.repeat(np.arange(len(lo)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return lo[which] + offsets, which


class WatchlistIndex:
    """Which rows of one watchlist contain a position (exact great-circle distance).

    Parameters
    ----------
    rows : WatchRows
        The list's rows.
    """

    def __init__(self, rows: WatchRows):
        hp = healpy_module()
        self.rows = rows
        self.ra, self.dec, self.radius = rows.ra, rows.dec, rows.radius
        self._xyz = _unit_vectors(rows.ra, rows.dec)
        radii = np.unique(rows.radius)
        by_radius = {float(r): _order_for(float(r)) for r in radii}
        lookup = np.array([by_radius[float(r)] for r in radii], dtype=int)
        row_orders = lookup[np.searchsorted(radii, rows.radius)] if len(rows) else np.empty(
            0, dtype=int)
        self.groups: list[_Group] = []
        for order in sorted(set(row_orders.tolist())):
            members = np.flatnonzero(row_orders == order)
            pixels = hp.ang2pix(1 << order, rows.ra[members], rows.dec[members], nest=True,
                                lonlat=True)
            sort = np.argsort(pixels, kind="stable")
            self.groups.append(_Group(order, float(rows.radius[members].max()) / 3600.0,
                                      pixels[sort], members[sort]))

    def __len__(self) -> int:
        return len(self.rows)

    def _candidates_many(self, group: _Group, ra: np.ndarray, dec: np.ndarray,
                         margin_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """(position index, row index) of the group's rows near each position: a
        superset of those within the group's largest radius plus the margin."""
        hp = healpy_module()
        nside = 1 << group.order
        if group.max_radius_deg + margin_deg <= group.reach_deg:
            # the position's pixel and its 8 neighbours (-1 where a corner has 7)
            pixels = np.vstack([hp.ang2pix(nside, ra, dec, nest=True, lonlat=True)[None, :],
                                hp.get_all_neighbours(nside, ra, dec, nest=True,
                                                      lonlat=True)])
            lo = np.searchsorted(group.pixels, pixels.ravel(), side="left")
            hi = np.searchsorted(group.pixels, pixels.ravel(), side="right")
            hi[pixels.ravel() < 0] = lo[pixels.ravel() < 0]
            index, which = _expand(lo, hi)
            return which % len(ra), group.rows[index]
        # a margin wider than the neighbours reach: the disc itself, one position at a time
        vectors = hp.ang2vec(ra, dec, lonlat=True).reshape(-1, 3)
        radius = math.radians(group.max_radius_deg + margin_deg)
        positions, rows = [], []
        for i, vec in enumerate(vectors):
            pixels = hp.query_disc(nside, vec, radius, inclusive=True, nest=True)
            index, _ = _expand(np.searchsorted(group.pixels, pixels, side="left"),
                               np.searchsorted(group.pixels, pixels, side="right"))
            positions.append(np.full(len(index), i))
            rows.append(group.rows[index])
        if not rows:
            return np.empty(0, dtype=int), np.empty(0, dtype=int)
        return np.concatenate(positions), np.concatenate(rows)

    def matches_many(self, ra: Sequence[float] | np.ndarray, dec: Sequence[float] | np.ndarray,
                     margin_arcsec: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (position index, row index, separation [arcsec]) where a position [deg]
        lies within a row's radius plus ``margin_arcsec``: a batch of detections at once
        (vectorised; the pipeline's look-up)."""
        ra_a = np.atleast_1d(np.asarray(ra, dtype=float))
        dec_a = np.atleast_1d(np.asarray(dec, dtype=float))
        found_p, found_r, found_s = [], [], []
        if len(ra_a) and len(self.rows):
            targets = _unit_vectors(ra_a, dec_a)
            for group in self.groups:
                positions, rows = self._candidates_many(group, ra_a, dec_a,
                                                        margin_arcsec / 3600.0)
                if not len(rows):
                    continue
                sep = pair_separation_arcsec(self._xyz[rows], targets[positions])
                inside = sep <= self.radius[rows] + margin_arcsec
                found_p.append(positions[inside])
                found_r.append(rows[inside])
                found_s.append(sep[inside])
        if not found_p:
            return np.empty(0, dtype=int), np.empty(0, dtype=int), np.empty(0)
        return np.concatenate(found_p), np.concatenate(found_r), np.concatenate(found_s)

    def matches(self, ra: float, dec: float, margin_arcsec: float = 0.0
                ) -> list[tuple[int, float]]:
        """(row index, separation [arcsec]) of the rows containing the position [deg]
        (within their radius plus ``margin_arcsec``)."""
        _, rows, sep = self.matches_many([ra], [dec], margin_arcsec)
        return [(int(r), float(s)) for r, s in zip(rows, sep, strict=True)]


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    cos_dec = np.cos(dec_r)
    return np.column_stack([cos_dec * np.cos(ra_r), cos_dec * np.sin(ra_r), np.sin(dec_r)])


def pair_separation_arcsec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle separation [arcsec] between unit vectors, row by row (atan2 of the
    cross and dot products: exact at every angle, unlike the haversine near 180 deg or
    the dot product near 0)."""
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    return np.degrees(np.arctan2(cross, np.einsum("ij,ij->i", a, b))) * 3600.0


# -- watchmaps -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SkyRegion:
    """A region of the sky as sorted order-29 index ranges with a credible level each.

    ``starts``/``ends`` are ``[lo, hi)`` ranges at order 29 (nested), disjoint and sorted;
    ``levels`` the credible level of each (0 for a MOC: inside is inside).  A position's
    level is the smallest credible region that holds it.
    """

    starts: np.ndarray
    ends: np.ndarray
    levels: np.ndarray

    def level_at(self, hpx29: int) -> float | None:
        """The credible level at an order-29 index, or None outside the region."""
        i = int(np.searchsorted(self.starts, hpx29, side="right")) - 1
        if i >= 0 and hpx29 < int(self.ends[i]):
            return float(self.levels[i])
        return None

    @property
    def area_deg2(self) -> float:
        return float(np.sum(self.ends - self.starts)) * (4 * math.pi / (12 * 4.0**29)) * (
            180.0 / math.pi) ** 2

    def within(self, level: float) -> SkyRegion:
        keep = self.levels <= level
        return SkyRegion(self.starts[keep], self.ends[keep], self.levels[keep])


def _uniq_to_ranges(uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uniq = np.asarray(uniq, dtype=np.int64)
    firsts = 4 * (np.int64(1) << (2 * np.arange(30, dtype=np.int64)))  # 4 * 4**order
    order = np.searchsorted(firsts, uniq, side="right").astype(np.int64) - 1
    if np.any(order < 0):
        raise ValueError("a UNIQ index below 4 is not a HEALPix pixel")
    ipix = uniq - 4 * (np.int64(1) << (2 * order))
    shift = 2 * (29 - order)
    return ipix << shift, (ipix + 1) << shift, order


def region_from_moc_ranges(ranges: np.ndarray) -> SkyRegion:
    """A MOC's order-29 ranges (mocpy's ``to_depth29_ranges``) as a region."""
    ranges = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    order = np.argsort(ranges[:, 0], kind="stable")
    ranges = ranges[order]
    return SkyRegion(ranges[:, 0].copy(), ranges[:, 1].copy(), np.zeros(len(ranges)))


def credible_levels(uniq: np.ndarray, probdensity: np.ndarray) -> SkyRegion:
    """Each pixel's credible level in a multi-order sky map.

    The level of a pixel is the probability held by the pixels denser than it, plus its
    own (the "searched probability"): the 90 % credible region is the set of pixels of
    level <= 0.9.

    Parameters
    ----------
    uniq : array of int
        NUNIQ pixel indices (``4 * 4**order + ipix``).
    probdensity : array of float
        Probability density of each pixel [sr^-1].
    """
    starts, ends, order = _uniq_to_ranges(uniq)
    area = 4 * math.pi / (12 * 4.0**order)  # [sr]
    prob = np.asarray(probdensity, dtype=float) * area
    total = prob.sum()
    if not total > 0:
        raise ValueError("the sky map holds no probability")
    by_density = np.argsort(-np.asarray(probdensity, dtype=float), kind="stable")
    cumulative = np.cumsum(prob[by_density]) / total
    levels = np.empty(len(prob))
    levels[by_density] = np.minimum(cumulative, 1.0)
    sort = np.argsort(starts, kind="stable")
    return SkyRegion(starts[sort], ends[sort], levels[sort])


def read_skymap(hdul: Any) -> tuple[SkyRegion, dict[str, Any]]:
    """A multi-order sky map (an open FITS HDU list) as credible levels, and its header's
    event name and time (``OBJECT``, ``MJD-OBS`` [MJD], ``DATE-OBS``)."""
    for hdu in hdul[1:]:
        columns = getattr(hdu, "columns", None)
        names = [c.upper() for c in columns.names] if columns is not None else []
        if "UNIQ" in names and "PROBDENSITY" in names:
            data = hdu.data
            region = credible_levels(np.asarray(data["UNIQ"]), np.asarray(data["PROBDENSITY"]))
            header = hdu.header
            mjd = header.get("MJD-OBS")
            return region, {"object": header.get("OBJECT"),
                            "mjd": float(mjd) if mjd is not None else None,
                            "date": header.get("DATE-OBS"), "creator": header.get("CREATOR")}
    raise ValueError("not a multi-order sky map (no UNIQ and PROBDENSITY columns)")


def hpx29(ra: Iterable[float] | float, dec: Iterable[float] | float) -> Any:
    """Order-29 nested indices of positions [deg]."""
    return healpy_module().ang2pix(1 << 29, ra, dec, nest=True, lonlat=True)
