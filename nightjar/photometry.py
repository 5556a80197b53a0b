"""AB magnitudes and fluxes in nanojansky: the one conversion every survey shares.

An AB magnitude is ``m = -2.5 log10(F / 3631 Jy)`` (Oke & Gunn 1983), so a flux in nJy is
``F = 10**((31.4 - m) / 2.5)``: 3631 Jy = 10**(31.4/2.5) nJy to 0.01 %.  This is Rubin's
convention for ``psfFlux``/``scienceFlux`` (nJy, LSE-163 §3.3.8) and ALeRCE's for its
multisurvey fluxes.  Errors propagate to first order: ``sigma_m = 2.5/ln(10) * sigma_F/|F|``.
"""

from __future__ import annotations

import math

#: AB zero point of a flux in nJy [mag]
AB_ZERO_POINT_NJY = 31.4
#: 2.5 / ln 10: magnitude error per unit relative flux error
MAG_PER_RELATIVE_FLUX = 2.5 / math.log(10.0)


def flux_to_mag(flux_njy: float) -> float:
    """AB magnitude of a flux [nJy] (its absolute value: the sign is kept elsewhere)."""
    return AB_ZERO_POINT_NJY - 2.5 * math.log10(abs(flux_njy))


def flux_error_to_mag_error(flux_njy: float, flux_err_njy: float) -> float:
    """Magnitude error [mag] of a flux and its 1-sigma error [nJy]."""
    return MAG_PER_RELATIVE_FLUX * flux_err_njy / abs(flux_njy)


def mag_to_flux(mag: float) -> float:
    """Flux [nJy] of an AB magnitude [mag] (positive)."""
    return 10.0 ** ((AB_ZERO_POINT_NJY - mag) / 2.5)


def mag_error_to_flux_error(mag: float, mag_err: float) -> float:
    """1-sigma flux error [nJy] of an AB magnitude and its error [mag]."""
    return mag_to_flux(mag) * mag_err / MAG_PER_RELATIVE_FLUX


def five_sigma_limit(flux_err_njy: float) -> float:
    """5-sigma limiting AB magnitude [mag] of a measurement with flux error ``flux_err_njy``."""
    return AB_ZERO_POINT_NJY - 2.5 * math.log10(5.0 * flux_err_njy)
