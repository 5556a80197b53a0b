"""Model-fit features of one band: supernova parametric model, damped random walk,
Mexican-hat power spectrum, and the harmonic fit and folded statistics at a period.

Inputs are one band's light curve sorted by time: ``t`` (MJD, days), ``mag``
(magnitudes), ``err`` (magnitude errors).  Each returns ALeRCE's feature names without
the band suffix; a fit that fails returns NaNs, never raises.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

from ml.features import kernels

FloatArray = NDArray[np.float64]

SPM_NAMES = ("SPM_A", "SPM_t0", "SPM_gamma", "SPM_beta", "SPM_tau_rise", "SPM_tau_fall",
             "SPM_chi")
MHPS_NAMES = ("MHPS_ratio", "MHPS_low", "MHPS_high", "MHPS_non_zero", "MHPS_PN_flag")
N_HARMONICS = 7
#: SPM fit: stop when an accepted step lowers the cost by less than this fraction
SPM_RTOL = 1e-8
SPM_MAX_ITERATIONS = 500
#: DRW fit: L-BFGS-B's default stopping rules (projected gradient, factr 1e7 x eps)
DRW_GTOL = 1e-5
DRW_FTOL = 1e7 * np.finfo(float).eps
HARMONICS_NAMES = (*(f"Harmonics_mag_{i}" for i in range(1, N_HARMONICS + 1)),
                   *(f"Harmonics_phase_{i}" for i in range(2, N_HARMONICS + 1)),
                   "Harmonics_mse")
#: the harmonic fit has 2 K + 1 coefficients: fewer points leave it underdetermined, and
#: ALeRCE's current extractor returns NaN below this count
MIN_HARMONICS_POINTS = 2 * N_HARMONICS + 1
#: a harmonic more than this many times the band's robust half-range (turbo-fats
#: ``Amplitude``) does not describe the curve: the fit cancels huge terms against each
#: other (a period far from the sampling, phases bunched).  On 2,000 ZTF DR5 g curves
#: with >= 15 points the ratio is bimodal: 85 % below 1.8, then a tail to 1e9; 12 % lie
#: above 4.  ALeRCE's own feature tables carry such values (up to 9e11 mag), and an
#: isolation forest finds them "unusual".
DEGENERATE_HARMONICS_RATIO = 4.0


def harmonics_degenerate(n_points: float, amplitude: float, largest: float) -> str | None:
    """Why a band's harmonic features are not to be trusted, or None.

    Parameters
    ----------
    n_points : float
        Detections in the band.
    amplitude : float
        The band's turbo-fats ``Amplitude`` [mag] (half the robust range).
    largest : float
        The largest fitted harmonic amplitude, ``max_k Harmonics_mag_k`` [mag].
    """
    if not n_points >= MIN_HARMONICS_POINTS:
        return (f"{n_points:.0f} points, fewer than the fit's {MIN_HARMONICS_POINTS} "
                "coefficients")
    if np.isfinite(largest) and np.isfinite(amplitude) and \
            largest > DEGENERATE_HARMONICS_RATIO * amplitude:
        return (f"degenerate fit: a harmonic of {largest:.3g} mag against a half-range "
                f"of {amplitude:.3g} mag")
    return None


def mag_to_flux(mag: FloatArray) -> FloatArray:
    """AB magnitude to flux in mJy (ALeRCE's SPM unit): 10^(-(m + 48.6)/2.5 + 26)."""
    return np.asarray(10.0 ** (-(mag + 48.6) / 2.5 + 26.0))


def spm_flux(t: FloatArray, a: float, t0: float, gamma: float, beta: float,
             t_rise: float, t_fall: float | FloatArray) -> FloatArray:
    """Villar et al. (2019) supernova parametric model with ALeRCE's smooth transition.

    A / (1 + exp(-(t - t0)/t_rise)) times a plateau (1 - beta (t - t0)/gamma) before
    t1 = t0 + gamma and an exponential decline exp(-(t - t1)/t_fall) after it, joined by
    a sigmoid of width 3 days.  t in days since the first detection.
    """
    t1 = t0 + gamma
    with np.errstate(over="ignore"):
        sigmoid = 1.0 / (1.0 + np.exp(-(t - t1) / 3.0))
        rise = 1.0 + np.exp(-(t - t0) / t_rise)
        decline = np.exp(-(t - t1) / t_fall)
    return np.asarray(((1.0 - beta) * decline * sigmoid
                       + (1.0 - beta * (t - t0) / gamma) * (1.0 - sigmoid)) * a / rise)


def spm_jacobian(t: FloatArray, a: float, t0: float, gamma: float, beta: float,
                 t_rise: float, t_fall: float) -> FloatArray:
    """Partial derivatives of :func:`spm_flux` with respect to its six parameters,
    (len(t), 6) in the order (A, t0, gamma, beta, t_rise, t_fall)."""
    t1 = t0 + gamma
    dt0 = t - t0
    with np.errstate(over="ignore", invalid="ignore"):
        sig = 1.0 / (1.0 + np.exp(-(t - t1) / 3.0))
        e_rise = np.exp(-dt0 / t_rise)
        r = 1.0 / (1.0 + e_rise)
        e_fall = np.exp(-(t - t1) / t_fall)
        plateau = 1.0 - beta * dt0 / gamma
        p = (1.0 - beta) * e_fall * sig + plateau * (1.0 - sig)
        # t1 = t0 + gamma moves the decline and the sigmoid together
        dp_dt1 = ((1.0 - beta) * e_fall / t_fall * sig
                  + ((1.0 - beta) * e_fall - plateau) * (-sig * (1.0 - sig) / 3.0))
        dr_dt0 = -r * r * e_rise / t_rise
        dr_drise = -r * r * e_rise * dt0 / t_rise**2
        jac = np.empty((len(t), 6))
        jac[:, 0] = p * r
        jac[:, 1] = a * ((dp_dt1 + (1.0 - sig) * beta / gamma) * r + p * dr_dt0)
        jac[:, 2] = a * (dp_dt1 + (1.0 - sig) * beta * dt0 / gamma**2) * r
        jac[:, 3] = a * (-e_fall * sig - (1.0 - sig) * dt0 / gamma) * r
        jac[:, 4] = a * p * dr_drise
        jac[:, 5] = a * (1.0 - beta) * sig * e_fall * (t - t1) / t_fall**2 * r
    return np.nan_to_num(jac)


def spm(t: FloatArray, magpsf: FloatArray, sigmapsf: FloatArray) -> dict[str, float]:
    """SPM_* from the difference-image magnitudes fitted in flux (ALeRCE 2021 classifier).

    Bounds and first guesses as ALeRCE: A in [max/3, 3 max], t0 in [-50, 50] d, gamma,
    t_rise, t_fall in [1, 100] d, beta in [0, 1].  SPM_chi is the reduced chi^2 with
    errors padded by 0.01 flux units.

    The fit is unweighted least squares in flux (as ALeRCE's ``curve_fit``) by the
    compiled projected Levenberg-Marquardt of :func:`ml.features.kernels.spm_fit`, run
    to convergence (relative cost change < :data:`SPM_RTOL`).  ALeRCE's ``curve_fit``
    stops at a loose ``ftol`` (max/20 flux units); the converged fit has the same or a
    lower cost (``tests/test_ml_features.py`` compares the two).
    """
    flux = mag_to_flux(magpsf)
    return spm_of_flux(t, flux, mag_to_flux(magpsf - sigmapsf) - flux)


def spm_bounds(f_max: float) -> tuple[list[float], list[float]]:
    """ALeRCE's SPM bounds for a band whose brightest flux is ``f_max`` [mJy]: (lower,
    upper) of (A, t0, gamma, beta, t_rise, t_fall)."""
    return ([f_max / 3.0, -50.0, 1.0, 0.0, 1.0, 1.0],
            [f_max * 3.0, 50.0, 100.0, 1.0, 100.0, 100.0])


def spm_of_flux(t: FloatArray, flux: FloatArray, errors: FloatArray) -> dict[str, float]:
    """SPM_* fitted to difference fluxes (mJy) with errors (mJy), as :func:`spm`.

    The direct form for surveys that send fluxes (LSST's ``psfFlux``, nJy / 1e6): points
    with negative difference flux, which have no magnitude, stay in the fit.
    """
    nan = dict.fromkeys(SPM_NAMES, math.nan)
    times = np.ascontiguousarray(t - t.min(), dtype=np.float64)
    flux = np.ascontiguousarray(flux, dtype=np.float64)
    i_max = int(np.argmax(flux))
    f_max = float(flux[i_max])
    if not np.isfinite(f_max) or f_max <= 0:
        return nan
    lower, upper = spm_bounds(f_max)
    p0 = [min(upper[0], max(lower[0], 1.2 * f_max)), -5.0,
          min(100.0, max(1.0, float(times.max()))), 0.5,
          min(100.0, max(1.0, float(times[i_max]) / 2.0)), 40.0]
    params, cost = kernels.spm_fit(times, flux, np.array(p0), np.array(lower),
                                   np.array(upper), SPM_RTOL, SPM_MAX_ITERATIONS)
    if not np.isfinite(cost):
        return nan
    pred = spm_flux(times, *params)
    dof = len(times) - len(params)
    chi = float(np.sum((pred - flux) ** 2 / (errors + 0.01) ** 2)) / dof if dof >= 1 \
        else math.nan
    return dict(zip(SPM_NAMES, [*map(float, params), chi], strict=True))


def drw_nll(log_params: FloatArray, t: FloatArray, y: FloatArray,
            var: FloatArray) -> tuple[float, FloatArray]:
    """Negative log-likelihood of a damped random walk (covariance a exp(-c |dt|)) plus
    white measurement noise ``var``, and its gradient in (ln a, ln c).

    The exact O(N) Kalman filter of the Ornstein-Uhlenbeck process (the same likelihood
    as celerite2's ``RealTerm(a, c)`` GP, which ``tests/test_ml_features.py`` checks),
    with the derivative recursions carried along, compiled
    (:func:`ml.features.kernels.drw_nll_grad`).  ``t`` sorted (days), ``y`` centred.
    """
    if not np.all(np.abs(log_params) < 300):  # the optimiser probing far outside
        return 1e25, -np.sign(log_params) * 1e3
    nll, g_a, g_c = kernels.drw_nll_grad(float(log_params[0]), float(log_params[1]),
                                         t, y, var)
    return nll, np.array([g_a, g_c])


def gp_drw(t: FloatArray, mag: FloatArray, err: FloatArray) -> dict[str, float]:
    """GP_DRW_sigma and GP_DRW_tau: a damped random walk (kernel a exp(-c dt), celerite2's
    RealTerm) plus the measurement errors, fitted by maximum likelihood from a = c = 1 as
    ALeRCE; sigma is the amplitude a (mag^2) and tau = 1/c (days).

    The likelihood is :func:`drw_nll` (a Kalman filter with an analytic gradient);
    ALeRCE's L-BFGS-B from (0, 0) is replaced by the compiled BFGS of
    :func:`ml.features.kernels.drw_fit` with L-BFGS-B's stopping rules, best of three
    starts (scipy's per-iteration overhead dominated on ZTF-sized curves; the extra
    starts find the better of the likelihood's two optima where one descent does not).
    """
    order = np.argsort(t, kind="stable")
    time = np.ascontiguousarray((t - t.min())[order], dtype=np.float64)
    y = np.ascontiguousarray((mag - mag.mean())[order], dtype=np.float64)
    var = np.ascontiguousarray((err**2)[order], dtype=np.float64)
    log_a, log_c = kernels.drw_fit(time, y, var, DRW_GTOL, DRW_FTOL, 15_000)
    a, c = math.exp(log_a), math.exp(log_c)
    return {"GP_DRW_sigma": float(a), "GP_DRW_tau": float(1.0 / c)}


@functools.lru_cache(maxsize=64)
def _mexican_hat_norms(sigma1: float, sigma2: float, half: float) -> tuple[float, float, float]:
    """Integrals of the two Gaussians and of the squared normalised filter on ALeRCE's
    1001-point grid over [-half, half] (constants for given widths: computed once)."""
    grid = np.linspace(-half, half, 1001)
    g1 = np.exp(-grid**2 / (2 * sigma1**2))
    g2 = np.exp(-grid**2 / (2 * sigma2**2))
    step = grid[1] - grid[0]
    norm1, norm2 = float(g1.sum() * step), float(g2.sum() * step)
    return norm1, norm2, float(np.sum((g1 / norm1 - g2 / norm2) ** 2) * step)


def mhps(t: FloatArray, mag: FloatArray, err: FloatArray, t1: float = 100.0,
         t2: float = 10.0, dt_min: float = 3.0, mag0: float = 19.0,
         epsilon: float = 1.0) -> dict[str, float]:
    """Mexican-hat power spectrum features (Arévalo et al. 2012), as ALeRCE's ``mhps``.

    The light curve in flux units (10^(-0.4 (m - mag0))) is filtered with a Mexican hat
    (a difference of Gaussians) at time scales ``t1`` (low frequency, 100 d) and ``t2``
    (high frequency, 10 d); MHPS_low/high are the filtered variances normalised by the
    squared mean flux minus the Poisson-like noise term, MHPS_ratio their ratio,
    MHPS_non_zero the number of points with enough neighbours, MHPS_PN_flag 1 when the
    high-frequency variance does not exceed the noise.
    """
    time = np.ascontiguousarray(t - t.min(), dtype=np.float64)
    flux = np.ascontiguousarray(10.0 ** (-0.4 * (mag - mag0)), dtype=np.float64)
    mean = float(flux.mean())
    flux_err = math.log(10.0) * flux * 0.4 * err
    out: dict[str, float] = {}
    noise = math.nan
    for scale, key in ((t1, "MHPS_low"), (t2, "MHPS_high")):
        sigma1 = 0.225 * scale / math.sqrt(1.0 + epsilon)
        sigma2 = (1.0 + epsilon) * sigma1
        half = max(6.0 * sigma1, 6.0 * dt_min)
        norm1, norm2, norm = _mexican_hat_norms(sigma1, sigma2, half)
        ones1, ones2, sum1, sum2, support = kernels.mexican_hat_sums(time, flux, sigma1,
                                                                     sigma2, half)
        m1, m2, r1, r2 = ones1 / norm1, ones2 / norm2, sum1 / norm1, sum2 / norm2
        valid = (support > 3) & (m1 > 0)
        nonzero = int(valid.sum())
        if nonzero == 0:
            return dict.fromkeys(MHPS_NAMES, math.nan)
        ik = r1[valid] / m1[valid] - r2[valid] / m2[valid]
        power = float(np.mean(ik**2) / norm / mean**2)
        if key == "MHPS_low":
            noise = float(np.mean(flux_err[valid])) ** 2 / mean**2
            out[key] = power - noise
        else:
            flag = power <= noise
            out[key] = power if flag else power - noise
            out["MHPS_PN_flag"] = float(flag)
            out["MHPS_non_zero"] = float(nonzero)
    out["MHPS_ratio"] = out["MHPS_low"] / out["MHPS_high"] if out["MHPS_high"] != 0 \
        else math.nan
    return {k: out[k] for k in MHPS_NAMES}


def harmonics(t: FloatArray, mag: FloatArray, err: FloatArray,
              period: float) -> dict[str, float]:
    """Amplitudes and relative phases of a 7-harmonic Fourier series at ``period`` (days),
    fitted by weighted least squares (errors + 0.01 mag), and the fit's mean squared error.

    Phases are relative to the first harmonic (phi_k - k phi_1) modulo 2 pi.  NaN below
    :data:`MIN_HARMONICS_POINTS` points; :func:`harmonics_degenerate` judges the rest.
    """
    if not (np.isfinite(period) and period > 0) or len(t) < MIN_HARMONICS_POINTS:
        return dict.fromkeys(HARMONICS_NAMES, math.nan)
    k = np.arange(1, N_HARMONICS + 1)
    phase = 2.0 * np.pi / period * np.outer(t, k)
    design = np.hstack([np.ones((len(t), 1)), np.cos(phase), np.sin(phase)])
    inv = 1.0 / (err + 1e-2)
    coeffs = np.linalg.pinv(design * inv[:, None]) @ (mag * inv)
    fitted = design @ coeffs
    cos_c, sin_c = coeffs[1:N_HARMONICS + 1], coeffs[N_HARMONICS + 1:]
    amp = np.sqrt(cos_c**2 + sin_c**2)
    phi = np.arctan2(sin_c, cos_c)
    rel = (phi - phi[0] * k)[1:] % (2 * np.pi)
    values = [*amp, *rel, float(np.mean((fitted - mag) ** 2))]
    return dict(zip(HARMONICS_NAMES, map(float, values), strict=True))


def folded(t: FloatArray, mag: FloatArray, period: float) -> dict[str, float]:
    """Psi_CS and Psi_eta: Rcs and the von Neumann ratio of the curve folded at 2 x period
    (Kim et al. 2014, as ALeRCE)."""
    if not (np.isfinite(period) and period > 0) or mag.std() == 0:
        return {"Psi_CS": math.nan, "Psi_eta": math.nan}
    order = np.argsort(np.mod(t, 2 * period) / (2 * period), kind="stable")
    m = mag[order]
    sigma = m.std()
    s = np.cumsum(m - m.mean()) / (len(m) * sigma)
    eta = float(np.sum(np.diff(m) ** 2) / ((len(m) - 1) * sigma**2))
    return {"Psi_CS": float(s.max() - s.min()), "Psi_eta": eta}
