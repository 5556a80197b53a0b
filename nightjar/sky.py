"""Sky geometry: the HEALPix index carried by every document, cone ranges, separations.

Every stored document carries ``hpx``, the **nested** HEALPix pixel at order 29
(nside = 2**29, pixels of about 0.39 mas) of its object's *anchor* position (the
position of the object's earliest detection).  Why this choice:

* In the nested scheme every pixel of a coarser order k is one contiguous range of
  order-29 indices, ``[p << 2(29-k), (p+1) << 2(29-k))``.  Range-sharding on ``hpx``
  therefore splits the sky into compact regions at whatever granularity the balancer
  picks, zones can be declared at any order, and cone searches become a short list of
  index ranges, all from one integer field.
* Order 29 is the finest healpy supports and still fits a signed 64-bit integer
  (12 * 4**29 < 2**63), so nothing is lost by storing the finest order.
* Using the *object's* anchor (not each detection's own position) on every document
  of the object makes the shard key ``{hpx: 1, oid: 1}`` put an object and its whole
  light curve on one shard.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HPX_ORDER = 29
HPX_NSIDE = 1 << HPX_ORDER
#: Detections of one ZTF object lie within 1.5 arcsec of each other; cone searches on
#: the anchor pixel are widened by this margin so no object is missed [arcsec].
ANCHOR_MARGIN_ARCSEC = 5.0
#: Upper bound on HEALPix pixels returned by a cone before merging into ranges.
_MAX_CONE_PIXELS = 256


@functools.cache
def healpy_module() -> Any:
    """healpy, imported on first use: it pulls in matplotlib (~2 s), which a command that
    never touches the sky (``nightjar --help``) should not pay for."""
    import healpy

    return healpy


@functools.cache
def _angular_separation() -> Any:
    from astropy.coordinates import angular_separation  # ~0.5 s: imported on first use

    return angular_separation


def hpx_index(ra: float, dec: float) -> int:
    """Nested HEALPix index at :data:`HPX_ORDER` of a position.

    Parameters
    ----------
    ra, dec : float
        ICRS right ascension and declination [deg].
    """
    return int(healpy_module().ang2pix(HPX_NSIDE, ra, dec, nest=True, lonlat=True))


def _query_order(radius_deg: float) -> int:
    """Finest order at which a cone of this radius covers at most a few hundred pixels."""
    hp = healpy_module()
    for order in range(HPX_ORDER, -1, -1):
        pixel_deg = np.degrees(hp.nside2resol(1 << order))
        # a disc of radius r covers roughly pi r^2 / pixel^2 pixels, plus its rim
        if np.pi * (radius_deg / pixel_deg + 1.0) ** 2 <= _MAX_CONE_PIXELS:
            return order
    return 0


def cone_ranges(ra: float, dec: float, radius_deg: float) -> list[tuple[int, int]]:
    """Order-29 index ranges ``[lo, hi)`` covering a cone (a superset: filter exactly after).

    Parameters
    ----------
    ra, dec : float
        Cone centre [deg].
    radius_deg : float
        Cone radius [deg]; must be positive.
    """
    if not radius_deg > 0:
        raise ValueError("cone radius must be positive")
    order = _query_order(radius_deg)
    hp = healpy_module()
    vec = hp.ang2vec(ra, dec, lonlat=True)
    pixels = np.sort(hp.query_disc(1 << order, vec, np.radians(radius_deg),
                                   inclusive=True, nest=True))
    shift = 2 * (HPX_ORDER - order)
    ranges: list[tuple[int, int]] = []
    for pixel in pixels.tolist():
        lo, hi = pixel << shift, (pixel + 1) << shift
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def separation_deg(ra1: Any, dec1: Any, ra2: float, dec2: float) -> Any:
    """Great-circle separation [deg] between ICRS positions given in degrees.

    ``ra1``/``dec1`` may be arrays (a catalogue's positions against one centre); the
    result is then an array, else a float.  astropy's Vincenty formula is exact at
    small and large angles alike.
    """
    sep = np.degrees(_angular_separation()(np.radians(ra1), np.radians(dec1),
                                           np.radians(ra2), np.radians(dec2)))
    return float(sep) if np.ndim(sep) == 0 else sep


def separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance [arcsec] between two positions [deg] (Vincenty's formula:
    exact at every angle, across RA 0/360 and at the poles).

    The scalar twin of :func:`separation_deg`, in plain ``math``: ~2 us a call against
    ~80 us through astropy's array function, for the filters' ``in_cone`` on every alert."""
    l1, b1, l2, b2 = map(math.radians, (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    num = math.hypot(math.cos(b2) * math.sin(dl),
                     math.cos(b1) * math.sin(b2) - math.sin(b1) * math.cos(b2) * math.cos(dl))
    den = math.sin(b1) * math.sin(b2) + math.cos(b1) * math.cos(b2) * math.cos(dl)
    return math.degrees(math.atan2(num, den)) * 3600.0


def mean_position(ra: Sequence[float], dec: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean position and scatter of a set of detections, correct across RA = 0/360.

    Parameters
    ----------
    ra, dec : sequence of float
        Detection positions [deg].

    Returns
    -------
    meanra, meandec : float
        Direction of the mean unit vector [deg].
    sigmara, sigmadec : float
        Population standard deviation of the offsets from the mean along RA
        (times cos dec, i.e. on the sky) and Dec [arcsec].
    """
    ra_r = np.radians(np.asarray(ra, dtype=float))
    dec_r = np.radians(np.asarray(dec, dtype=float))
    x = np.mean(np.cos(dec_r) * np.cos(ra_r))
    y = np.mean(np.cos(dec_r) * np.sin(ra_r))
    z = np.mean(np.sin(dec_r))
    mean_ra = float(np.degrees(np.arctan2(y, x)) % 360.0)
    mean_dec = float(np.degrees(np.arctan2(z, np.hypot(x, y))))
    # wrap RA offsets into (-180, 180] so a cluster at RA ~ 0 has a small scatter
    d_ra = (np.degrees(ra_r) - mean_ra + 180.0) % 360.0 - 180.0
    sigma_ra = float(np.sqrt(np.mean((d_ra * np.cos(np.radians(mean_dec))) ** 2)) * 3600.0)
    sigma_dec = float(np.sqrt(np.mean((np.degrees(dec_r) - mean_dec) ** 2)) * 3600.0)
    return mean_ra, mean_dec, sigma_ra, sigma_dec


@dataclass(frozen=True)
class Cone:
    """A cone on the sky: centre [deg] and radius [arcsec]."""

    ra: float
    dec: float
    radius_arcsec: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.ra < 360.0 and -90.0 <= self.dec <= 90.0):
            raise ValueError(f"cone centre ({self.ra}, {self.dec}) is off the sky")
        if not 0.0 < self.radius_arcsec <= 36000.0:
            raise ValueError("cone radius must be in (0, 36000] arcsec")

    def contains(self, ra: float, dec: float) -> bool:
        """Whether a position [deg] lies within the cone."""
        return float(separation_deg(self.ra, self.dec, ra, dec)) * 3600.0 <= self.radius_arcsec
