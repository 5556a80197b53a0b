"""Per-band (``magstats``) and per-object statistics, with ALeRCE's field names.

Pure functions over corrected detections (see :mod:`nightjar.surveys.ztf.correction`) and
non-detections.  Magnitudes in mag, times in MJD [days], positions in deg, positional
scatter in arcsec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nightjar.sky import mean_position

#: Corrected magnitudes brighter than this are counted as saturated [mag].
SATURATION_MAG = 13.2
#: Only non-detections more than this before the first detection enter dm/dt [days].
DMDT_MIN_DT = 0.5
#: the order of bands in ``magstats`` (others follow, alphabetically)
BAND_ORDER = ("u", "g", "r", "i", "z", "y")

Doc = Mapping[str, Any]


def _by_time(items: Sequence[Doc]) -> list[Doc]:
    return sorted(items, key=lambda d: (d["mjd"], d.get("candid") or 0))


def _six(mags: Sequence[float], suffix: str = "") -> dict[str, float | None]:
    """mean, median, max, min, population sigma, first, last of time-ordered magnitudes."""
    names = ("magmean", "magmedian", "magmax", "magmin", "magsigma", "magfirst", "maglast")
    if not mags:
        return {f"{n}{suffix}": None for n in names}
    arr = np.asarray(mags, dtype=float)
    values = (arr.mean(), np.median(arr), arr.max(), arr.min(), arr.std(ddof=0),
              arr[0], arr[-1])
    return {f"{n}{suffix}": float(v) for n, v in zip(names, values, strict=True)}


def dmdt_first(first: Doc, non_detections: Sequence[Doc]) -> dict[str, float | None]:
    """Steepest rise implied by the first detection against earlier upper limits.

    Over non-detections more than 0.5 d before the first detection:
    ``dt = mjd_first - mjd_nd`` [d] and
    ``dmdt = (magfirst + sigmapsf_first - diffmaglim) / dt`` [mag/d]; the one giving
    the minimum ``dmdt`` is kept, with ``dm = magfirst - diffmaglim`` and
    ``sigmadm = sigmapsf_first - diffmaglim`` [mag].  All null when there is none.
    """
    best: dict[str, float | None] = dict.fromkeys(
        ("dmdt_first", "dm_first", "sigmadm_first", "dt_first"))
    for nd in non_detections:
        limit = nd.get("diffmaglim")
        dt = first["mjd"] - nd["mjd"]
        if limit is None or dt <= DMDT_MIN_DT:
            continue
        dmdt = (first["magpsf"] + first["sigmapsf"] - limit) / dt
        current = best["dmdt_first"]
        if current is None or dmdt < current:
            best = {"dmdt_first": dmdt, "dm_first": first["magpsf"] - limit,
                    "sigmadm_first": first["sigmapsf"] - limit, "dt_first": dt}
    return best


def _band_rank(band: str) -> tuple[int, str]:
    return (BAND_ORDER.index(band) if band in BAND_ORDER else len(BAND_ORDER), band)


def band_statistics(band: str, detections: Sequence[Doc],
                    non_detections: Sequence[Doc]) -> dict[str, Any]:
    """``magstats`` of one band of one object.

    Parameters
    ----------
    band : str
        The band (``g``, ``r``, ...); ``fid`` is taken from the detections.
    detections : sequence of dict
        Corrected detections of this band (any order).
    non_detections : sequence of dict
        Non-detections of this band (any order).
    """
    dets = _by_time(detections)
    first = dets[0]
    corr = [d for d in dets if d["corrected"]]
    corr_mags = [d["magpsf_corr"] for d in corr]
    stats: dict[str, Any] = {
        "fid": first.get("fid"),
        "band": band,
        "ndet": len(dets),
        "ndubious": sum(1 for d in dets if d["dubious"]),
        "nrfid": len({d.get("rfid") for d in dets if d.get("rfid") is not None}),
        **_six([d["magpsf"] for d in dets]),
        **_six(corr_mags, "_corr"),
        "firstmjd": first["mjd"],
        "lastmjd": dets[-1]["mjd"],
        "corrected": first["corrected"],
        "stellar": first["stellar"],
        **dmdt_first(first, non_detections),
        "saturation_rate": (sum(1 for m in corr_mags if m < SATURATION_MAG) / len(corr_mags)
                            if corr_mags else None),
    }
    return stats


def _colour(stats: dict[str, dict[str, Any]], field: str) -> float | None:
    g, r = stats.get("g", {}).get(field), stats.get("r", {}).get(field)
    return None if g is None or r is None else g - r


def object_statistics(oid: str, detections: Sequence[Doc],
                      non_detections: Sequence[Doc]) -> dict[str, Any]:
    """Object-level statistics plus the embedded per-band ``magstats``.

    ``g_r_max`` is the colour at maximum brightness (``magmin`` of g minus ``magmin``
    of r) and ``g_r_mean`` the colour of the mean magnitudes; ``_corr`` versions use
    corrected magnitudes.  ``reference_change`` is true when some band's detections
    were measured against more than one reference image (``nrfid`` > 1).  Detections
    the survey withdrew (``withdrawn``, LSST) are left out.
    """
    dets = _by_time(detections)
    if not dets:
        raise ValueError(f"object {oid} has no detections")
    kept = [d for d in dets if not d.get("withdrawn")]
    dets = kept or dets  # detections the survey withdrew do not count (unless all were)
    bands: dict[str, dict[str, Any]] = {}
    for band in sorted({d["band"] for d in dets}, key=_band_rank):
        bands[band] = band_statistics(
            band, [d for d in dets if d["band"] == band],
            [n for n in non_detections if n["band"] == band])
    meanra, meandec, sigmara, sigmadec = mean_position([d["ra"] for d in dets],
                                                      [d["dec"] for d in dets])
    first = dets[0]
    return {
        "oid": oid,
        "ndet": len(dets),
        "firstmjd": first["mjd"],
        "lastmjd": dets[-1]["mjd"],
        "deltajd": dets[-1]["mjd"] - first["mjd"],
        "meanra": meanra,
        "meandec": meandec,
        "sigmara": sigmara,
        "sigmadec": sigmadec,
        "corrected": first["corrected"],
        "stellar": first["stellar"],
        "g_r_max": _colour(bands, "magmin"),
        "g_r_max_corr": _colour(bands, "magmin_corr"),
        "g_r_mean": _colour(bands, "magmean"),
        "g_r_mean_corr": _colour(bands, "magmean_corr"),
        "reference_change": any(b["nrfid"] > 1 for b in bands.values()),
        "magstats": list(bands.values()),
    }
