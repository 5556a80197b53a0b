"""Light-curve forecasts with intervals, and each new detection's "surprise".

Pure: one band's light curve in, magnitudes and their 68 % / 95 % intervals at the asked
times out.  Three models, chosen by the light-curve classifier's top class (ALeRCE's
branches):

* **Transient** -- the supernova parametric model (SPM, Villar et al. 2019 with ALeRCE's
  smooth transition), fitted to the difference fluxes as the SPM features are.  The
  interval is the parameters' linearised covariance (Gauss-Newton, scaled by the
  residual variance) propagated to the prediction, plus the scatter the model leaves.
  The magnitude is the *difference* magnitude (what the survey measures on a transient).
* **Periodic** -- a Fourier series at the object's multiband period, with the number of
  harmonics (1 to 4) chosen by BIC; the ordinary weighted-least-squares prediction
  interval.
* **Stochastic** -- the damped random walk whose parameters are the GP_DRW features, the
  Gaussian process's conditional mean and variance.

Each forecast point carries ``valid``: False where the model cannot say anything (too
few points for its parameters, a failed fit, a fit that misses the band's last
:data:`RECENT` detections, or a time past :data:`HORIZON_DAYS` after the last detection).
A transient's interval that reaches zero flux has no faint bound (NaN).

The *surprise* of a detection is its standardised deviation from the forecast made from
the detections before it: its deviation over ``sqrt(model variance + its own error^2)``
(in flux for the transient model, in magnitudes for the others), positive when it is
brighter than forecast.  |z| > 3 is a detection the object's own history did not
predict.  The forecast's intervals are those of a new detection with the band's median
error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from ml.features import models
from ml.features.extract import LightCurve

FloatArray = NDArray[np.float64]

#: branch -> model name
MODEL_OF_BRANCH = {"Transient": "spm", "Periodic": "harmonic", "Stochastic": "drw"}
#: the farthest a forecast reaches past the last detection [days]
HORIZON_DAYS = 60.0
#: at least this many detections in the band for any model
MIN_POINTS = 6
MAX_HARMONICS = 4
#: the detections whose fit decides whether a forecast is valid, and the largest RMS of
#: their normalised residuals that still is
RECENT = 3
MAX_RECENT_RMS = 3.0
Z68 = float(stats.norm.ppf(0.84))
Z95 = float(stats.norm.ppf(0.975))
#: AB zero point of a flux in mJy: m = -2.5 log10(f / mJy) + 16.4
MJY_ZERO_POINT = 16.4


@dataclass(frozen=True)
class Forecast:
    """A forecast at ``mjd`` (days).  Magnitudes [mag]; ``lower*`` are the bright bounds
    (smaller magnitudes), ``upper*`` the faint ones; NaN where not ``valid`` and, for the
    faint bounds of the transient model, where the interval reaches zero flux."""

    mjd: FloatArray
    magnitude: FloatArray
    lower68: FloatArray
    upper68: FloatArray
    lower95: FloatArray
    upper95: FloatArray
    valid: NDArray[np.bool_]
    model: str  #: "spm", "harmonic", "drw" or "none"
    reason: str | None = None  #: why nothing is valid, or None

    @classmethod
    def invalid(cls, mjd: FloatArray, model: str, reason: str) -> Forecast:
        nan = np.full(len(mjd), math.nan)
        return cls(mjd, nan, nan, nan, nan, nan, np.zeros(len(mjd), dtype=bool), model,
                   reason)


@dataclass(frozen=True)
class _Prediction:
    """A model's prediction in its own unit (flux for SPM, magnitude otherwise)."""

    mean: FloatArray
    variance: FloatArray  #: of the model, without a new measurement's own error
    in_flux: bool
    #: RMS of the last :data:`RECENT` detections' residuals over their errors and the
    #: model's scatter: a model that does not follow where the curve is now says
    #: nothing about where it goes
    recent: float = 0.0


def flux_to_mag(flux: FloatArray) -> FloatArray:
    """mJy to AB magnitude; NaN where the flux is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0))
                        + MJY_ZERO_POINT, math.nan)


def _spm(t: FloatArray, flux: FloatArray, flux_err: FloatArray, at: FloatArray
         ) -> _Prediction | str:
    fit = models.spm_of_flux(t, flux, flux_err)
    if not math.isfinite(fit["SPM_A"]):
        return "the SPM fit failed (no positive flux)"
    t_ref = float(t.min())
    times = t - t_ref
    start = np.array([fit[n] for n in models.SPM_NAMES[:6]])
    # the feature's fit is unweighted (ALeRCE's); a forecast weighs each point by its
    # error, from the feature fit's optimum, so faint late points count
    lower, upper = map(np.array, models.spm_bounds(float(flux.max())))
    sigma = np.abs(flux_err)
    result = optimize.least_squares(
        lambda p: (models.spm_flux(times, *p) - flux) / sigma, np.clip(start, lower, upper),
        jac=lambda p: models.spm_jacobian(times, *p) / sigma[:, None],
        bounds=(lower, upper), method="trf")
    params = result.x
    normalised = result.fun
    dof = len(t) - 6
    reduced = max(float(np.sum(normalised**2) / dof), 1.0)
    jac = result.jac
    covariance = reduced * np.linalg.pinv(jac.T @ jac)
    grad = models.spm_jacobian(at - t_ref, *params)
    # scatter beyond the errors, the model's own, as a fraction of the model flux (a
    # supernova's mismatch scales with its brightness; an additive term fitted at peak
    # would swamp the faint tail)
    model_flux = models.spm_flux(times, *params)
    residual = flux - model_flux
    fraction2 = max(0.0, float(np.median((residual**2 - flux_err**2)
                                         / np.maximum(model_flux, sigma) ** 2)))
    predicted = models.spm_flux(at - t_ref, *params)
    variance = np.einsum("ij,jk,ik->i", grad, covariance, grad) + fraction2 * predicted**2
    return _Prediction(predicted, variance, in_flux=True,
                       recent=_recent(residual, flux_err**2))


def _recent(residual: FloatArray, variance: FloatArray) -> float:
    tail = slice(-RECENT, None)
    return float(np.sqrt(np.mean(residual[tail] ** 2 / variance[tail])))


def _fourier(t: FloatArray, period: float, k: int) -> FloatArray:
    phase = 2.0 * np.pi / period * np.outer(t, np.arange(1, k + 1))
    return np.hstack([np.ones((len(t), 1)), np.cos(phase), np.sin(phase)])


def _harmonic(t: FloatArray, mag: FloatArray, err: FloatArray, period: float,
              at: FloatArray) -> _Prediction | str:
    if not (math.isfinite(period) and period > 0):
        return "no period"
    w = 1.0 / err**2
    best: tuple[float, np.ndarray, np.ndarray, float] | None = None
    for k in range(1, MAX_HARMONICS + 1):
        p = 2 * k + 1
        if len(t) < p + 2:
            break
        design = _fourier(t, period, k)
        normal = design.T @ (design * w[:, None])
        coeffs = np.linalg.lstsq(normal, design.T @ (w * mag), rcond=None)[0]
        chi2 = float(np.sum(w * (mag - design @ coeffs) ** 2))
        bic = chi2 + p * math.log(len(t))
        if best is None or bic < best[0]:
            best = (bic, coeffs, np.linalg.pinv(normal), chi2 / (len(t) - p))
    if best is None:
        return f"{len(t)} points, too few for one harmonic"
    _, coeffs, inverse, reduced = best
    k = (len(coeffs) - 1) // 2
    x = _fourier(at, period, k)
    # errors scaled so the fit is a good one (reduced chi^2 -> 1), as the usual
    # prediction interval; the scatter beyond the errors is the model's own
    scale = max(reduced, 1.0)
    residual = mag - _fourier(t, period, k) @ coeffs
    intrinsic = max(0.0, float(np.mean(residual**2 - err**2)))
    variance = scale * np.einsum("ij,jk,ik->i", x, inverse, x) + intrinsic
    return _Prediction(x @ coeffs, variance, in_flux=False,
                       recent=_recent(residual, err**2))


def _drw(t: FloatArray, mag: FloatArray, err: FloatArray, at: FloatArray
         ) -> _Prediction | str:
    fit = models.gp_drw(t, mag, err)
    amplitude, tau = fit["GP_DRW_sigma"], fit["GP_DRW_tau"]
    if not (math.isfinite(amplitude) and math.isfinite(tau) and tau > 0):
        return "the DRW fit failed"
    mean = float(np.average(mag, weights=1.0 / err**2))
    kernel = amplitude * np.exp(-np.abs(t[:, None] - t[None, :]) / tau)
    cross = amplitude * np.exp(-np.abs(at[:, None] - t[None, :]) / tau)
    chol = np.linalg.cholesky(kernel + np.diag(err**2))
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, mag - mean))
    v = np.linalg.solve(chol, cross.T)
    variance = np.maximum(amplitude - np.sum(v**2, axis=0), 0.0)
    return _Prediction(mean + cross @ alpha, variance, in_flux=False)


def _predict(model: str, t: FloatArray, mag: FloatArray, err: FloatArray,
             flux: FloatArray, flux_err: FloatArray, period: float, at: FloatArray
             ) -> _Prediction | str:
    if model == "spm":
        return _spm(t, flux, flux_err, at)
    if model == "harmonic":
        return _harmonic(t, mag, err, period, at)
    return _drw(t, mag, err, at)


def _inputs(t: FloatArray, mag: FloatArray, err: FloatArray, flux: FloatArray | None,
            flux_err: FloatArray | None
            ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """The detections a model may read: finite, with a positive error, in time order;
    the fluxes from the (difference) magnitudes where none are given."""
    t, mag, err = (np.asarray(a, dtype=np.float64) for a in (t, mag, err))
    if flux is None or flux_err is None:
        flux = models.mag_to_flux(mag)
        flux_err = models.mag_to_flux(mag - err) - flux
    columns = (t, mag, err, np.asarray(flux, dtype=np.float64),
               np.asarray(flux_err, dtype=np.float64))
    keep = err > 0
    for c in columns:
        keep &= np.isfinite(c)
    order = np.argsort(t[keep], kind="stable")
    t, mag, err, flux, flux_err = (c[keep][order] for c in columns)
    return t, mag, err, flux, flux_err


def _fit(model: str, t: FloatArray, mag: FloatArray, err: FloatArray, flux: FloatArray,
         flux_err: FloatArray, period: float, at: FloatArray) -> _Prediction | str:
    """The model's prediction at ``at`` from clean inputs (:func:`_inputs`), or why it
    has none."""
    needed = 7 if model == "spm" else MIN_POINTS
    if len(t) < needed:
        return (f"{len(t)} detections in the band, fewer than the {needed} the {model} "
                f"model needs")
    try:
        prediction = _predict(model, t, mag, err, flux, flux_err, period, at)
    except (np.linalg.LinAlgError, ValueError, ArithmeticError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if isinstance(prediction, str) or prediction.recent <= MAX_RECENT_RMS:
        return prediction
    return (f"the {model} model misses the last {RECENT} detections (RMS "
            f"{prediction.recent:.1f} sigma)")


def forecast(t: FloatArray, mag: FloatArray, err: FloatArray, at: ArrayLike, *,
             branch: str, flux: FloatArray | None = None,
             flux_err: FloatArray | None = None, period: float = math.nan) -> Forecast:
    """Forecast one band at times ``at`` from its detections.

    Parameters
    ----------
    t, mag, err : array
        The band's detections: MJD [days], magnitude and error [mag] (the apparent or
        corrected magnitudes for the periodic and stochastic models).
    at : array
        The times to forecast [MJD, days].
    branch : str
        The object's top class ("Transient", "Periodic", "Stochastic"): the model.
    flux, flux_err : array, optional
        Difference fluxes and errors [mJy] for the transient model (LSST sends them);
        by default from ``mag`` and ``err`` as difference magnitudes.
    period : float
        The period [days] for the periodic model (``Multiband_period``).
    """
    times = np.atleast_1d(np.asarray(at, dtype=np.float64))
    model = MODEL_OF_BRANCH.get(branch)
    if model is None:
        return Forecast.invalid(times, "none", f"no forecast model for class {branch!r}")
    t, mag, err, flux, flux_err = _inputs(t, mag, err, flux, flux_err)
    prediction = _fit(model, t, mag, err, flux, flux_err, period, times)
    if isinstance(prediction, str):
        return Forecast.invalid(times, model, prediction)
    # where a new detection of the band's typical error falls: the model's variance
    # plus that error
    typical = float(np.median(flux_err**2 if prediction.in_flux else err**2))
    sigma = np.sqrt(prediction.variance + typical)
    mean = prediction.mean
    if prediction.in_flux:
        magnitude = flux_to_mag(mean)
        # the bright bound from the upper flux, the faint one from the lower flux
        bounds = [flux_to_mag(mean + z * sigma) for z in (Z68, -Z68, Z95, -Z95)]
    else:
        magnitude = mean
        bounds = [mean - Z68 * sigma, mean + Z68 * sigma, mean - Z95 * sigma,
                  mean + Z95 * sigma]
    valid = np.isfinite(magnitude) & np.isfinite(sigma) & (times <= t.max() + HORIZON_DAYS)
    reason = None if valid.any() else (
        f"past the {HORIZON_DAYS:.0f}-day horizon or no positive model flux")
    lower68, upper68, lower95, upper95 = (np.where(valid, b, math.nan) for b in bounds)
    return Forecast(times, np.where(valid, magnitude, math.nan), lower68, upper68, lower95,
                    upper95, valid=valid, model=model, reason=reason)


def surprise(t: FloatArray, mag: FloatArray, err: FloatArray, *, branch: str,
             flux: FloatArray | None = None, flux_err: FloatArray | None = None,
             period: float = math.nan) -> float:
    """The last detection's standardised deviation from the forecast made from the
    detections before it (see the module docstring); NaN where no valid forecast was
    possible or the last detection is unusable.  Arguments as :func:`forecast`, one
    band, the last detection included."""
    model = MODEL_OF_BRANCH.get(branch)
    latest = float(np.max(t)) if len(t) else math.nan
    t, mag, err, flux, flux_err = _inputs(t, mag, err, flux, flux_err)
    if model is None or len(t) < 2 or t[-1] != latest:
        return math.nan
    before = t < t[-1]
    if not before.any() or t[-1] > t[before].max() + HORIZON_DAYS:
        return math.nan
    prediction = _fit(model, t[before], mag[before], err[before], flux[before],
                      flux_err[before], period, t[-1:])
    if isinstance(prediction, str):
        return math.nan
    if prediction.in_flux:
        deviation, own = flux[-1] - prediction.mean[0], flux_err[-1]
    else:  # brighter is a smaller magnitude
        deviation, own = prediction.mean[0] - mag[-1], err[-1]
    z = deviation / math.sqrt(prediction.variance[0] + own**2)
    return float(z) if math.isfinite(z) else math.nan


def _band(lc: LightCurve, fid: int, branch: str
          ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """One band of a preprocessed light curve as the model of ``branch`` reads it: the
    transient model the difference photometry (the survey's fluxes where it sends them,
    else the signed flux of ``magpsf``), the others the apparent magnitudes."""
    sel = lc.fid == fid
    t = lc.mjd[sel]
    if lc.diff_flux is not None and lc.diff_flux_err is not None:
        flux, flux_err = lc.diff_flux[sel], lc.diff_flux_err[sel]
    else:
        unsigned = models.mag_to_flux(lc.magpsf[sel])
        flux = lc.isdiffpos[sel] * unsigned
        flux_err = models.mag_to_flux(lc.magpsf[sel] - lc.sigmapsf[sel]) - unsigned
    if branch == "Transient":
        return t, lc.magpsf[sel], lc.sigmapsf[sel], flux, flux_err
    return t, lc.mag[sel], lc.err[sel], flux, flux_err


def light_curve_forecast(lc: LightCurve, fid: int, at: ArrayLike, *, branch: str,
                         period: float = math.nan) -> Forecast:
    """:func:`forecast` of band ``fid`` of a preprocessed light curve (see :func:`_band`
    for what each model reads); the transient model's magnitudes are difference
    magnitudes."""
    t, mag, err, flux, flux_err = _band(lc, fid, branch)
    return forecast(t, mag, err, at, branch=branch, flux=flux, flux_err=flux_err,
                    period=period)


def light_curve_surprise(lc: LightCurve, *, branch: str, period: float = math.nan
                         ) -> dict[str, float | int | str] | None:
    """The surprise of a preprocessed light curve's latest detection in its band:
    {mjd, fid, value, model}, or None where no forecast could be made before it."""
    if len(lc) == 0 or branch not in MODEL_OF_BRANCH:
        return None
    last = int(np.argmax(lc.mjd))
    fid = int(lc.fid[last])
    t, mag, err, flux, flux_err = _band(lc, fid, branch)
    value = surprise(t, mag, err, branch=branch, flux=flux, flux_err=flux_err,
                     period=period)
    if not math.isfinite(value):
        return None
    return {"mjd": float(lc.mjd[last]), "fid": fid, "value": value,
            "model": MODEL_OF_BRANCH[branch]}
