"""Light-curve correction: difference-image photometry to apparent magnitudes.

Implements ALeRCE's correction (Förster et al. 2021, AJ 161, 242, §4.4 and
Appendix A).  A ZTF detection measures the flux of the *difference* image; when the
source coincides with a source of the reference image (``distnr`` < 1.4 arcsec) the
apparent flux is the reference flux plus the signed difference flux.

Pure functions only: dicts in, dicts out.  :data:`ZTF_PHOTOMETRY` is what the
survey-independent core calls (:class:`nightjar.surveys.interface.PhotometryRules`).
It also gives each detection its apparent flux in nJy, ``scienceFlux =
10**((31.4 - magpsf_corr)/2.5)``, with ``scienceFluxErr = psfFluxErr`` (the difference
flux's error; the reference flux's is neglected, as in eq. A29).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from nightjar.photometry import mag_to_flux
from nightjar.surveys.interface import Doc, sign_of_isdiffpos

#: Match radius to a reference-image (ZTF) or Pan-STARRS1 source [arcsec].
NEAR_RADIUS_ARCSEC = 1.4
#: Sentinel for magnitudes and errors that cannot be computed (ALeRCE's convention).
BAD_MAGNITUDE = 100.0
CORRECTION_FIELDS = ("magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext")
#: apparent fluxes [nJy] of corrected detections
FLUX_FIELDS = ("scienceFlux", "scienceFluxErr")


def _near(distance: float | None) -> bool:
    return distance is not None and 0.0 <= distance < NEAR_RADIUS_ARCSEC


def is_corrected(distnr: float | None, magnr: float | None) -> bool:
    """Whether a detection can be corrected: a reference source within 1.4 arcsec.

    Parameters
    ----------
    distnr : float or None
        Distance to the nearest source in the reference image [arcsec].
    magnr : float or None
        Magnitude of that reference source [mag]; without it there is no reference
        flux to add, so the detection is not corrected.
    """
    return _near(distnr) and magnr is not None


def correct_magnitude(magpsf: float, sigmapsf: float, magnr: float, sigmagnr: float | None,
                      sign: int) -> tuple[float, float, float]:
    """Apparent magnitude of a detection from its difference and reference photometry.

    Parameters
    ----------
    magpsf, sigmapsf : float
        PSF magnitude of the difference image and its 1-sigma error [mag].
    magnr, sigmagnr : float
        Magnitude of the nearest reference-image source and its error [mag]
        (a missing ``sigmagnr`` counts as 0).
    sign : int
        +1 when the difference is positive (isdiffpos 't' or '1'), -1 otherwise.

    Returns
    -------
    magpsf_corr, sigmapsf_corr, sigmapsf_corr_ext : float
        Corrected magnitude [mag], its error (eq. A28) and its error with the
        reference error neglected (eq. A29).  All three are 100 when the science
        flux is not positive; ``sigmapsf_corr`` alone is 100 when the radicand of
        eq. A28 is negative.
    """
    f_ref = 10.0 ** (-0.4 * magnr)
    f_diff = 10.0 ** (-0.4 * magpsf)
    f_sci = f_ref + sign * f_diff
    if f_sci <= 0.0:
        return BAD_MAGNITUDE, BAD_MAGNITUDE, BAD_MAGNITUDE
    mag_corr = -2.5 * math.log10(f_sci)
    radicand = (f_diff * sigmapsf) ** 2 - (f_ref * (sigmagnr or 0.0)) ** 2
    sigma_corr = math.sqrt(radicand) / f_sci if radicand >= 0.0 else BAD_MAGNITUDE
    sigma_corr_ext = f_diff * sigmapsf / f_sci
    return mag_corr, sigma_corr, sigma_corr_ext


def is_stellar(det: Mapping[str, Any]) -> bool:
    """ALeRCE's star-like flag of a detection.

    ``(nearZTF and nearPS1 and sgscore1 > 0.4) or (nearZTF and not nearPS1 and
    chinr < 2 and -0.13 < sharpnr < 0.1)``, with nearZTF = 0 <= distnr < 1.4 arcsec
    and nearPS1 = 0 <= distpsnr1 < 1.4 arcsec.
    """
    near_ztf = _near(det.get("distnr"))
    if not near_ztf:
        return False
    if _near(det.get("distpsnr1")):
        sgscore = det.get("sgscore1")
        return sgscore is not None and sgscore > 0.4
    chinr, sharpnr = det.get("chinr"), det.get("sharpnr")
    return chinr is not None and sharpnr is not None and chinr < 2 and -0.13 < sharpnr < 0.1


def correct_detection(det: Mapping[str, Any]) -> dict[str, Any]:
    """The correction fields of one detection (before the per-band ``dubious`` check)."""
    sign = sign_of_isdiffpos(det["isdiffpos"])
    corrected = is_corrected(det.get("distnr"), det.get("magnr"))
    out: dict[str, Any] = {"corrected": corrected, "stellar": is_stellar(det)}
    if corrected:
        values = correct_magnitude(det["magpsf"], det["sigmapsf"], det["magnr"],
                                   det.get("sigmagnr"), sign)
        out.update(zip(CORRECTION_FIELDS, values, strict=True))
    else:
        out.update(dict.fromkeys(CORRECTION_FIELDS))
    out["dubious"] = (not corrected) and sign < 0
    mag = out["magpsf_corr"]
    good = mag is not None and mag < BAD_MAGNITUDE
    out["scienceFlux"] = mag_to_flux(mag) if good else None
    out["scienceFluxErr"] = det.get("psfFluxErr") if good else None
    return out


def first_by_band(detections: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Earliest detection (by mjd, then candid) of each band."""
    first: dict[int, Mapping[str, Any]] = {}
    for det in detections:
        cur = first.get(det["fid"])
        if cur is None or (det["mjd"], det["candid"]) < (cur["mjd"], cur["candid"]):
            first[det["fid"]] = det
    return first


def correct_light_curve(detections: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Correct every detection of one object and set ``dubious``.

    A detection is dubious when it is not corrected but negative, or when its
    ``corrected`` flag differs from that of the first detection (by mjd) of the same
    object and band.  Returns new dicts: the inputs plus ``corrected``, ``stellar``,
    ``dubious``, ``magpsf_corr``, ``sigmapsf_corr``, ``sigmapsf_corr_ext``,
    ``scienceFlux``, ``scienceFluxErr``.
    """
    out = [{**det, **correct_detection(det)} for det in detections]
    first = first_by_band(out)
    for det in out:
        if det["corrected"] != first[det["fid"]]["corrected"]:
            det["dubious"] = True
    return out


class ZtfPhotometry:
    """ZTF's photometry rules: ALeRCE's correction over the whole light curve."""

    derived_fields: tuple[str, ...] = ("corrected", "dubious", "stellar", *CORRECTION_FIELDS,
                                       *FLUX_FIELDS)
    #: raw candidate fields the correction reads (``rb`` for the light-curve classifier)
    history_fields: tuple[str, ...] = ("distnr", "magnr", "sigmagnr", "chinr", "sharpnr",
                                       "sgscore1", "distpsnr1", "rfid", "rb")
    #: no: prv_candidates carry fewer fields than a candidate, and ``dubious`` compares a
    #: detection with the first of its band
    packets_repeat_history: bool = False

    def apparent(self, detections: Iterable[Mapping[str, Any]]) -> list[Doc]:
        return correct_light_curve(detections)


ZTF_PHOTOMETRY = ZtfPhotometry()
