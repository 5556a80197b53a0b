"""LSST photometry: fluxes in nJy to AB magnitudes, upper limits, bands and time.

Rubin measures fluxes, not magnitudes.  Per detection (a ``diaSource``):

* difference magnitude ``magpsf = 31.4 - 2.5 log10|psfFlux|`` [AB mag] and
  ``sigmapsf = 1.0857 psfFluxErr / |psfFlux|``; the sign of the difference is the sign
  of ``psfFlux`` (``isdiffpos`` ``t``/``f``), not ``isNegative``, which real packets leave
  false on negative fluxes;
* apparent magnitude from the forced flux on the science image:
  ``magpsf_corr = 31.4 - 2.5 log10(scienceFlux)`` and ``sigmapsf_corr = 1.0857
  scienceFluxErr / scienceFlux`` where ``scienceFlux > 0`` (``corrected`` true); the
  ZTF correction (reference magnitude + difference) never runs on LSST;
* upper limits: packets carry none since schema 8.0, so a forced-photometry point
  (``prvDiaForcedSources``) with ``|psfFlux / psfFluxErr| < 3`` becomes a 5-sigma limit
  ``31.4 - 2.5 log10(5 psfFluxErr)``, marked ``derived``; schema 7.x packets carry
  ``prvDiaNondetectionLimits`` whose ``diaNoise`` [nJy] gives ``31.4 - 2.5 log10(5
  diaNoise)``.

Times: Rubin's ``midpointMjdTai`` is MJD in TAI; Nightjar stores every ``mjd`` in UTC
(ZTF's scale), ``mjd = midpointMjdTai - (TAI - UTC)/86400`` with TAI - UTC from ERFA's
leap-second table (37 s since 2017), and keeps ``midpointMjdTai`` as it came.

Pure functions; (AB magnitudes: :mod:`nightjar.photometry`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import erfa

from nightjar.photometry import five_sigma_limit, flux_error_to_mag_error, flux_to_mag

Doc = dict[str, Any]
__all__ = ["BANDS", "FIDS", "LSST_PHOTOMETRY", "LsstPhotometry", "apparent_photometry",
           "difference_photometry", "five_sigma_limit", "is_limit", "tai_minus_utc", "utc_mjd"]

BANDS = ("u", "g", "r", "i", "z", "y")
#: LSST band -> fid, ALeRCE's multisurvey convention (g r i z y = 1..5, u = 6); ``band``
#: always says which band it is, and a ZTF g (fid 1) is never an LSST g
FIDS = {"g": 1, "r": 2, "i": 3, "z": 4, "y": 5, "u": 6}
#: signal-to-noise below which a forced-photometry point is an upper limit
LIMIT_SNR = 3.0
SECONDS_PER_DAY = 86400.0


def tai_minus_utc(mjd_tai: float) -> float:
    """TAI - UTC at a date [s] (ERFA's table of leap seconds)."""
    return float(erfa.dat(*erfa.jd2cal(2400000.5, mjd_tai)))


def utc_mjd(mjd_tai: float, leap_seconds: float | None = None) -> float:
    """MJD in UTC of an MJD in TAI; ``leap_seconds`` (TAI - UTC [s]) when already known."""
    dat = tai_minus_utc(mjd_tai) if leap_seconds is None else leap_seconds
    return mjd_tai - dat / SECONDS_PER_DAY


def difference_photometry(flux: float, flux_err: float | None) -> tuple[float, float | None,
                                                                        str]:
    """(magpsf, sigmapsf, isdiffpos) of a difference flux [nJy]; flux must not be 0."""
    err = None if flux_err is None else flux_error_to_mag_error(flux, flux_err)
    return flux_to_mag(flux), err, "t" if flux > 0 else "f"


def apparent_photometry(science_flux: float | None,
                        science_flux_err: float | None) -> tuple[float | None, float | None]:
    """(magpsf_corr, sigmapsf_corr) of a science-image flux [nJy]; None when not positive."""
    if science_flux is None or not science_flux > 0:
        return None, None
    err = (None if science_flux_err is None or not math.isfinite(science_flux_err)
           else flux_error_to_mag_error(science_flux, science_flux_err))
    return flux_to_mag(science_flux), err


def is_limit(flux: float | None, flux_err: float | None) -> bool:
    """Whether a forced-photometry point is below ``LIMIT_SNR`` (and usable as a limit)."""
    if flux_err is None or not flux_err > 0:
        return False
    return flux is None or abs(flux / flux_err) < LIMIT_SNR


class LsstPhotometry:
    """LSST's photometry rules: the apparent magnitude comes with each detection."""

    #: the apparent photometry, and the withdrawal a later packet may bring
    derived_fields: tuple[str, ...] = ("corrected", "dubious", "stellar", "magpsf_corr",
                                       "sigmapsf_corr", "sigmapsf_corr_ext", "withdrawn",
                                       "timeWithdrawnMjdTai")
    history_fields: tuple[str, ...] = ("scienceFlux", "scienceFluxErr", "reliability",
                                       "withdrawn", "timeWithdrawnMjdTai", "midpointMjdTai")
    #: prvDiaSources are diaSources (one schema), each one's photometry its own
    packets_repeat_history: bool = True

    def apparent(self, detections: Iterable[Mapping[str, Any]]) -> list[Doc]:
        """Apparent photometry of every detection from its own ``scienceFlux``.

        ``dubious`` marks a negative difference without a positive science flux (the
        analogue of ZTF's uncorrected negative detection); ``stellar`` is false: LSST
        alerts carry no star/galaxy score of the reference source.
        """
        out = []
        for det in detections:
            mag, err = apparent_photometry(det.get("scienceFlux"), det.get("scienceFluxErr"))
            corrected = mag is not None
            out.append({**det, "corrected": corrected, "magpsf_corr": mag,
                        "sigmapsf_corr": err, "sigmapsf_corr_ext": err, "stellar": False,
                        "dubious": (not corrected) and det["isdiffpos"] == "f",
                        "withdrawn": bool(det.get("withdrawn")),
                        "timeWithdrawnMjdTai": det.get("timeWithdrawnMjdTai")})
        return out


LSST_PHOTOMETRY = LsstPhotometry()
