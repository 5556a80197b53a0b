"""The feature extractor: one object's light curve in, ALeRCE's feature vector out.

Pure: arrays in, a dict of floats out, no I/O.  Undefined features are NaN and the
result says why (``FeatureVector.missing``), so a short, single-band, constant or
error-less curve never raises.

Preprocessing follows ALeRCE's ZTF preprocessor: the magnitude used is ``magpsf_corr``
/ ``sigmapsf_corr`` where the object is ``corrected``, else ``magpsf`` / ``sigmapsf``;
detections with rb < 0.55 (when rb is known), non-finite values or errors outside
(0, 1) mag are dropped, and of two detections at the same MJD the higher-rb one is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.features import models, variability
from ml.features.names import (
    FEATURE_NAMES,
    POWER_RATE_FACTORS,
    ZTF_BANDS,
    BandScheme,
)
from ml.features.periodogram import (
    MIN_POINTS_PER_BAND,
    multiband_periodogram,
    power_rate,
    prepare_band,
    significance,
)

FloatArray = NDArray[np.float64]

MAX_SIGMA = 1.0
#: an object is classified once it has at least this many detections in g or in r
MIN_DETECTIONS = 6


@dataclass(frozen=True)
class LightCurve:
    """One object's detections and upper limits (ALeRCE column meanings).

    ``mag``/``err`` are the magnitudes the features use (corrected where the object is
    corrected, see :func:`choose_magnitudes`); ``magpsf``/``sigmapsf`` the difference
    magnitudes (SPM, colours).  Non-detections: ``nd_mjd``, ``nd_fid``, ``nd_diffmaglim``.
    """

    mjd: FloatArray
    fid: NDArray[np.int64]
    mag: FloatArray
    err: FloatArray
    magpsf: FloatArray
    sigmapsf: FloatArray
    isdiffpos: FloatArray  #: +1 / -1
    rb: FloatArray | None = None
    ra: float = math.nan
    dec: float = math.nan
    sgscore1: float = math.nan
    nd_mjd: FloatArray = field(default_factory=lambda: np.empty(0))
    nd_fid: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    nd_diffmaglim: FloatArray = field(default_factory=lambda: np.empty(0))
    #: difference fluxes and errors [mJy] where the survey sends fluxes (LSST): SPM fits
    #: them directly, negative ones included; None: SPM uses ``magpsf``
    diff_flux: FloatArray | None = None
    diff_flux_err: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.mjd)


@dataclass
class FeatureVector:
    """Feature values by ALeRCE name, and a reason for each group that is NaN."""

    values: dict[str, float]
    missing: dict[str, str] = field(default_factory=dict)

    def as_array(self, names: tuple[str, ...] | list[str] = FEATURE_NAMES) -> FloatArray:
        return np.array([self.values.get(n, math.nan) for n in names], dtype=np.float64)


def choose_magnitudes(corrected: bool, magpsf: FloatArray, sigmapsf: FloatArray,
                      magpsf_corr: FloatArray | None,
                      sigmapsf_corr: FloatArray | None) -> tuple[FloatArray, FloatArray]:
    """ALeRCE's ``magpsf_ml``: corrected magnitudes when the object is corrected."""
    if corrected and magpsf_corr is not None and sigmapsf_corr is not None:
        return magpsf_corr, sigmapsf_corr
    return magpsf, sigmapsf


def preprocess(lc: LightCurve, scheme: BandScheme = ZTF_BANDS) -> LightCurve:
    """Drop bogus, non-finite, noisy and duplicate detections; sort by time."""
    keep = (np.isfinite(lc.mjd) & np.isfinite(lc.mag) & np.isfinite(lc.err)
            & (lc.err > 0) & (lc.err < MAX_SIGMA) & np.isin(lc.fid, scheme.fids))
    rb = lc.rb
    if rb is not None and scheme.rb_threshold is not None:
        keep &= ~(rb < scheme.rb_threshold)  # unknown rb (NaN) is kept
    idx = np.flatnonzero(keep)
    # among detections at the same MJD keep the highest rb (stable: the first seen)
    rank = -np.nan_to_num(rb[idx], nan=-1.0) if rb is not None else np.zeros(len(idx))
    order = idx[np.lexsort((rank, lc.mjd[idx]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.diff(lc.mjd[order]) != 0
    order = order[first]

    def take(a: FloatArray) -> FloatArray:
        return a[order]

    return LightCurve(
        mjd=take(lc.mjd), fid=lc.fid[order], mag=take(lc.mag), err=take(lc.err),
        magpsf=take(lc.magpsf), sigmapsf=take(lc.sigmapsf), isdiffpos=take(lc.isdiffpos),
        rb=None if rb is None else take(rb), ra=lc.ra, dec=lc.dec, sgscore1=lc.sgscore1,
        nd_mjd=lc.nd_mjd, nd_fid=lc.nd_fid, nd_diffmaglim=lc.nd_diffmaglim,
        diff_flux=None if lc.diff_flux is None else take(lc.diff_flux),
        diff_flux_err=None if lc.diff_flux_err is None else take(lc.diff_flux_err))


def enough_detections(lc: LightCurve, scheme: BandScheme = ZTF_BANDS) -> bool:
    """ALeRCE's gate: at least :data:`MIN_DETECTIONS` detections in one band (ZTF: g or
    r; LSST: any of its six)."""
    return any(int(np.sum(lc.fid == fid)) >= MIN_DETECTIONS for fid in scheme.fids)


_GALACTIC: FloatArray | None = None


def _galactic_matrix() -> FloatArray:
    """ICRS to Galactic rotation matrix, taken once from astropy."""
    global _GALACTIC
    if _GALACTIC is None:
        from astropy.coordinates import SkyCoord

        axes = SkyCoord(x=[1.0, 0.0, 0.0], y=[0.0, 1.0, 0.0], z=[0.0, 0.0, 1.0],
                        representation_type="cartesian", frame="icrs").galactic
        cart = axes.cartesian
        _GALACTIC = np.array([cart.x.value, cart.y.value, cart.z.value])
    return _GALACTIC


def galactic(ra: float, dec: float) -> tuple[float, float]:
    """Galactic longitude and latitude (degrees) of an ICRS position (degrees)."""
    if not (np.isfinite(ra) and np.isfinite(dec)):
        return math.nan, math.nan
    r, d = math.radians(ra), math.radians(dec)
    vec = _galactic_matrix() @ np.array([math.cos(d) * math.cos(r),
                                         math.cos(d) * math.sin(r), math.sin(d)])
    return (math.degrees(math.atan2(vec[1], vec[0])) % 360.0,
            math.degrees(math.asin(float(np.clip(vec[2], -1, 1)))))


def _detection_features(mjd: FloatArray, mag: FloatArray,
                        isdiffpos: FloatArray) -> dict[str, float]:
    n_pos = int(np.sum(isdiffpos > 0))
    n_neg = int(np.sum(isdiffpos < 0))
    return {
        "delta_mag_fid": float(mag.max() - mag.min()),
        "delta_mjd_fid": float(mjd[-1] - mjd[0]),
        "first_mag": float(mag[0]),
        "mean_mag": float(mag.mean()),
        "min_mag": float(mag.min()),
        "n_det": float(n_pos + n_neg),
        "n_neg": float(n_neg),
        "n_pos": float(n_pos),
        "positive_fraction": n_pos / (n_pos + n_neg) if n_pos + n_neg else math.nan,
    }


def _non_detection_features(first_mjd: float, det: dict[str, float], nd_mjd: FloatArray,
                            nd_lim: FloatArray) -> dict[str, float]:
    order = np.argsort(nd_mjd, kind="stable")
    nd_mjd, nd_lim = nd_mjd[order], nd_lim[order]
    before = nd_mjd < first_mjd
    lim_b, lim_a = nd_lim[before], nd_lim[~before]
    out = {"n_non_det_before_fid": float(len(lim_b)),
           "n_non_det_after_fid": float(len(lim_a)),
           "max_diffmaglim_after_fid": float(lim_a.max()) if len(lim_a) else math.nan,
           "median_diffmaglim_after_fid": float(np.median(lim_a)) if len(lim_a) else math.nan}
    if len(lim_b):
        median_b = float(np.median(lim_b))
        out.update(max_diffmaglim_before_fid=float(lim_b.max()),
                   median_diffmaglim_before_fid=median_b,
                   last_diffmaglim_before_fid=float(lim_b[-1]),
                   last_mjd_before_fid=float(nd_mjd[before][-1]),
                   dmag_non_det_fid=median_b - det["min_mag"],
                   dmag_first_det_fid=float(lim_b[-1]) - det["first_mag"])
    else:
        out.update(dict.fromkeys(("max_diffmaglim_before_fid", "median_diffmaglim_before_fid",
                                  "last_diffmaglim_before_fid", "last_mjd_before_fid",
                                  "dmag_non_det_fid", "dmag_first_det_fid"), math.nan))
    return out


def _colours(lc: LightCurve, scheme: BandScheme) -> dict[str, float]:
    """Colours of each band pair: brightest minus brightest (``_max``) and mean minus
    mean (``_mean``), of the difference and of the corrected/apparent magnitudes."""
    out: dict[str, float] = {}
    for a, b in scheme.colours:
        names = scheme.colour_names(a, b)
        blue, red = lc.fid == a, lc.fid == b
        if not (blue.any() and red.any()):
            out.update(dict.fromkeys(names, math.nan))
            continue
        diff_max = float(lc.magpsf[blue].min() - lc.magpsf[red].min())
        diff_mean = float(lc.magpsf[blue].mean() - lc.magpsf[red].mean())
        corr_max = float(lc.mag[blue].min() - lc.mag[red].min())
        corr_mean = float(lc.mag[blue].mean() - lc.mag[red].mean())
        if diff_max == corr_max and diff_mean == corr_mean:  # not corrected: NaN (ALeRCE)
            corr_max = corr_mean = math.nan
        out.update(zip(names, (diff_max, corr_max, diff_mean, corr_mean), strict=True))
    return out


def extract(lc: LightCurve, *, preprocessed: bool = False,
            scheme: BandScheme = ZTF_BANDS) -> FeatureVector:
    """All features of one object (see :data:`ml.features.names.FEATURE_NAMES`, and
    ``scheme.names`` for another survey's bands).

    Parameters
    ----------
    lc : LightCurve
        Detections (MJD in days, magnitudes in mag) and non-detections of one object.
    preprocessed : bool
        Skip :func:`preprocess` when the caller already applied it.
    scheme : BandScheme
        The survey's bands (:data:`ml.features.names.ZTF_BANDS` or ``LSST_BANDS``).
    """
    if not preprocessed:
        lc = preprocess(lc, scheme)
    values: dict[str, float] = dict.fromkeys(scheme.names, math.nan)
    missing: dict[str, str] = {}
    if "W1-W2" in values:
        missing["WISE"] = "no AllWISE cross-match in Nightjar"
    ra = lc.ra
    dec = lc.dec
    values["gal_l"], values["gal_b"] = galactic(ra, dec)
    if not np.isfinite(ra):
        missing["galactic"] = "no position"
    if "sgscore1" in values:
        values["sgscore1"] = lc.sgscore1
    rb_name = "rb" if "rb" in values else "reliability"
    if lc.rb is not None and len(lc.rb) and np.isfinite(lc.rb).any():
        values[rb_name] = float(np.nanmedian(lc.rb))
    if len(lc) == 0:
        missing["all"] = "no usable detections after preprocessing"
        return FeatureVector(values, missing)
    values.update(_colours(lc, scheme))

    # multiband periodogram over bands with enough points
    t0 = float(lc.mjd.min())
    per_band_data = {}
    for fid in scheme.fids:
        sel = lc.fid == fid
        if sel.sum() > MIN_POINTS_PER_BAND and np.ptp(lc.mag[sel]) > 0:
            per_band_data[fid] = prepare_band(lc.mjd[sel], lc.mag[sel], lc.err[sel], t0)
    period = math.nan
    pgram = None
    if per_band_data:
        pgram = multiband_periodogram(per_band_data)
        period = 1.0 / pgram.best_frequency
        values["Multiband_period"] = period
        values["PPE"] = significance(pgram.multiband)
        for key, factor in POWER_RATE_FACTORS.items():
            values[f"Power_rate_{key}"] = power_rate(pgram, factor)
    else:
        missing["periodogram"] = (f"no band with more than {MIN_POINTS_PER_BAND} "
                                  "non-constant detections")

    for fid, suffix in scheme.bands:
        sel = lc.fid == fid
        n = int(sel.sum())
        if n == 0:
            missing[f"band {suffix}"] = "no detections in this band"
            continue
        t, mag, err = lc.mjd[sel], lc.mag[sel], lc.err[sel]
        band: dict[str, float] = {}
        det = _detection_features(t, mag, lc.isdiffpos[sel])
        band.update(det)
        nd = lc.nd_fid == fid
        band.update(_non_detection_features(float(t[0]), det, lc.nd_mjd[nd],
                                            lc.nd_diffmaglim[nd]))
        ordered = np.sort(mag)
        band["iqr"] = (variability.sorted_percentile(ordered, 75.0)
                       - variability.sorted_percentile(ordered, 25.0))
        if n >= variability.MIN_POINTS and np.ptp(mag) > 0:
            families: tuple[tuple[str, Callable[..., dict[str, float]], tuple[Any, ...]],
                            ...] = (
                ("turbo-fats", variability.turbofats, (t, mag, err)),
                ("SPM", *_spm_call(lc, sel)),
                ("MHPS", models.mhps, (t, mag, err)),
                ("GP_DRW", models.gp_drw, (t, mag, err)),
                ("harmonics", models.harmonics, (t, mag, err, period)),
                ("folded", models.folded, (t, mag, period)),
            )
            for family, compute, args in families:
                try:
                    band.update(compute(*args))
                except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
                    # a numerical failure on a pathological curve: that family stays NaN
                    missing[f"band {suffix} {family}"] = f"{type(exc).__name__}: {exc}"
            why = models.harmonics_degenerate(
                n, band.get("Amplitude", math.nan),
                max((band.get(f"Harmonics_mag_{k}", math.nan)
                     for k in range(1, models.N_HARMONICS + 1)), default=math.nan))
            if why is not None:
                band.update(dict.fromkeys(models.HARMONICS_NAMES, math.nan))
                missing[f"band {suffix} harmonics"] = why
        else:
            missing[f"band {suffix} statistics"] = (
                f"{n} detection(s), fewer than {variability.MIN_POINTS}" if n <
                variability.MIN_POINTS else "constant magnitudes")
        if pgram is not None and fid in per_band_data:
            band_period = 1.0 / pgram.best_band_frequency(fid)
            band["Period_band"] = band_period
            band["delta_period"] = abs(period - band_period)
        for name, value in band.items():
            values[f"{name}_{suffix}"] = value
    return FeatureVector(values, missing)


def _spm_call(lc: LightCurve, sel: NDArray[np.bool_]
              ) -> tuple[Callable[..., dict[str, float]], tuple[Any, ...]]:
    """SPM on the difference fluxes where the survey sent them, else on ``magpsf``."""
    if lc.diff_flux is not None and lc.diff_flux_err is not None:
        return models.spm_of_flux, (lc.mjd[sel], lc.diff_flux[sel], lc.diff_flux_err[sel])
    return models.spm, (lc.mjd[sel], lc.magpsf[sel], lc.sigmapsf[sel])
