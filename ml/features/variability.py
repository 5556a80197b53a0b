"""Single-band variability statistics with ALeRCE's names and definitions (turbo-fats).

Each function takes one band's light curve sorted by time: ``t`` (MJD, days), ``mag``
(magnitudes) and ``err`` (1-sigma magnitude errors), and returns a float.  The
definitions follow turbo-fats as used by ALeRCE's 2021 classifier (Sánchez-Sáez et al.
2021, Table 2), including its conventions: population standard deviations (N) where it
uses ``np.std``, N-1 where it says so, Amplitude from the medians of the top and bottom
5 %, AndersonDarling through a sigmoid.  Callers guarantee at least
:data:`MIN_POINTS` finite points; anything undefined is NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from ml.features import kernels

FloatArray = NDArray[np.float64]

MIN_POINTS = 6  #: fewer points than this and the band's statistics are all NaN


def amplitude(mag: FloatArray) -> float:
    """Half the difference between the medians of the brightest and faintest 5 % (mag)."""
    s = np.sort(mag)
    k = math.ceil(0.05 * len(s))
    return float((np.median(s[-k:]) - np.median(s[:k])) / 2.0)


def anderson_darling(mag: FloatArray) -> float:
    """Anderson-Darling normality statistic mapped to (0, 1) by 1/(1+exp(-10(A-0.3)))."""
    # the statistic of scipy.stats.anderson(mag, "norm"), without its per-call overhead:
    # standardised with the sample mean and the N-1 standard deviation
    n = len(mag)
    std = mag.std(ddof=1)
    if std == 0:
        return math.nan
    w = np.sort((mag - mag.mean()) / std)
    i = np.arange(1, n + 1)
    a2 = -n - float(np.sum((2 * i - 1) / n * (special.log_ndtr(w) + special.log_ndtr(-w[::-1]))))
    return 1.0 / (1.0 + math.exp(-10.0 * (a2 - 0.3)))


def autocor_length(mag: FloatArray) -> float:
    """First lag (in samples) where the autocorrelation drops below 1/e; N if never."""
    x = mag - mag.mean()
    denom = float(np.dot(x, x))
    n = len(x)
    if denom == 0:
        return float("nan")
    if n > 512:  # FFT autocorrelation for long curves
        size = 1 << (2 * n - 1).bit_length()
        spec = np.fft.rfft(x, size)
        acf = np.fft.irfft(spec * np.conj(spec), size)[:n] / denom
    else:
        acf = np.correlate(x, x, mode="full")[n - 1:] / denom
    below = np.flatnonzero(acf < math.exp(-1.0))
    return float(below[0]) if len(below) else float(n)


def beyond_1std(mag: FloatArray, err: FloatArray) -> float:
    """Fraction of points more than one (N-1) standard deviation from the weighted mean."""
    wmean = np.average(mag, weights=1.0 / err**2)
    std = math.sqrt(float(np.sum((mag - wmean) ** 2)) / (len(mag) - 1))
    return float(np.mean(np.abs(mag - wmean) > std))


def con(mag: FloatArray, run: int = 3) -> float:
    """Fraction of runs of ``run`` consecutive points all beyond 2 sigma of the mean."""
    n = len(mag)
    if n < run:
        return 0.0
    out = np.abs(mag - mag.mean()) > 2.0 * mag.std()
    all_beyond = out[:n - run + 1].copy()
    for k in range(1, run):  # window k..k+run-1 all beyond: AND of shifted copies
        all_beyond &= out[k:n - run + 1 + k]
    return float(np.sum(all_beyond) / (n - run + 1))


def eta_e(t: FloatArray, mag: FloatArray) -> float:
    """von Neumann ratio for uneven sampling: sum w (dm)^2 / (var sum w), w = 1/dt^2."""
    dt = np.diff(t)
    var = mag.var()
    if var == 0 or np.any(dt <= 0):
        return float("nan")
    w = 1.0 / dt**2
    return float(np.sum(w * np.diff(mag) ** 2) / np.sum(w) / var)


def _sorted_median(s: FloatArray) -> float:
    """Median of an already sorted array (numpy's definition)."""
    n = len(s)
    mid = n // 2
    return float(s[mid]) if n % 2 else float(0.5 * (s[mid - 1] + s[mid]))


def sorted_percentile(s: FloatArray, q: float) -> float:
    """``np.percentile(s, q)`` (linear interpolation) of an already sorted array."""
    h = (len(s) - 1) * q / 100.0
    lo = math.floor(h)
    if lo + 1 >= len(s):
        return float(s[-1])
    return float(s[lo] + (h - lo) * (s[lo + 1] - s[lo]))


def gskew(mag: FloatArray) -> float:
    """Median-based skew: median(m <= p3) + median(m >= p97) - 2 median(m)."""
    # one sort: the points below p3 (above p97) are a prefix (suffix) of the sorted curve
    s = np.sort(mag)
    low = s[:int(np.searchsorted(s, sorted_percentile(s, 3.0), side="right"))]
    high = s[int(np.searchsorted(s, sorted_percentile(s, 97.0), side="left")):]
    return _sorted_median(low) + _sorted_median(high) - 2 * _sorted_median(s)


def linear_trend(t: FloatArray, mag: FloatArray) -> float:
    """Slope of the least-squares line through the light curve, mag/day."""
    dt = t - t.mean()
    denom = float(np.dot(dt, dt))
    if denom == 0:
        return float("nan")
    return float(np.dot(dt, mag - mag.mean()) / denom)  # least-squares slope


def max_slope(t: FloatArray, mag: FloatArray) -> float:
    """Largest |dm/dt| between consecutive points, mag/day."""
    dt = np.diff(t)
    ok = dt > 0
    if not ok.any():
        return float("nan")
    return float(np.max(np.abs(np.diff(mag)[ok]) / dt[ok]))


def median_brp(mag: FloatArray) -> float:
    """Fraction of points within a tenth of the full range of the median."""
    med = np.median(mag)
    amp = (mag.max() - mag.min()) / 10.0
    return float(np.mean((mag < med + amp) & (mag > med - amp)))


def pair_slope_trend(mag: FloatArray) -> float:
    """Over the last 30 points: (increasing - non-increasing first differences) / 30."""
    d = np.diff(mag[-30:])
    return (int(np.sum(d > 0)) - int(np.sum(d <= 0))) / 30.0


def percent_amplitude(mag: FloatArray) -> float:
    """Largest absolute deviation from the median over the median."""
    med = np.median(mag)
    return float(np.max(np.abs(mag - med)) / med)


def rcs(mag: FloatArray) -> float:
    """Range of the cumulative sum of deviations over N sigma."""
    sigma = mag.std()
    if sigma == 0:
        return float("nan")
    s = np.cumsum(mag - mag.mean()) / (len(mag) * sigma)
    return float(s.max() - s.min())


def skew(mag: FloatArray) -> float:
    """Sample skewness m3 / m2^1.5 (biased, as scipy.stats.skew's default)."""
    d = mag - mag.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0:
        return float("nan")
    return float(np.mean(d**3)) / m2**1.5


def small_kurtosis(mag: FloatArray) -> float:
    """Small-sample kurtosis (with N-1 to N-3 corrections)."""
    n = len(mag)
    sigma = mag.std()
    if sigma == 0 or n < 4:
        return float("nan")
    s = np.sum(((mag - mag.mean()) / sigma) ** 4)
    return float(n * (n + 1) / ((n - 1) * (n - 2) * (n - 3)) * s
                 - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def stetson_k(mag: FloatArray, err: FloatArray) -> float:
    """Stetson's K, a robust kurtosis of error-normalised residuals."""
    n = len(mag)
    wmean = np.sum(mag / err**2) / np.sum(1.0 / err**2)
    delta = math.sqrt(n / (n - 1)) * (mag - wmean) / err
    norm = math.sqrt(float(np.sum(delta**2)))
    if norm == 0:
        return float("nan")
    return float(np.sum(np.abs(delta)) / norm / math.sqrt(n))


def pvar(mag: FloatArray, err: FloatArray) -> float:
    """Probability that the source is variable: chi^2 CDF of the scatter, N-1 dof."""
    chi = float(np.sum((mag - mag.mean()) ** 2 / err**2))
    return float(special.chdtr(len(mag) - 1, chi))  # chi^2 CDF


def excess_var(mag: FloatArray, err: FloatArray) -> float:
    """Normalised excess variance: sum((m - mean)^2 - err^2) / (N mean^2)."""
    mean = mag.mean()
    return float(np.sum((mag - mean) ** 2 - err**2) / (len(mag) * mean**2))


def structure_function(t: FloatArray, mag: FloatArray,
                       err: FloatArray) -> tuple[float, float]:
    """SF_ML_amplitude and SF_ML_gamma: a power law A tau^gamma fitted to the binned
    structure function (Schmidt et al. 2010), tau in years, as in turbo-fats.

    Pairs with 5 <= dt <= 365 d are binned in 0.1 dex; each bin gives
    sqrt(mean(dm^2 - err_i^2 - err_j^2)); the line is fitted in log-log over
    0.01 < tau <= 0.5 yr.  turbo-fats' conventions are kept: (-0.5, -0.5) when there
    are too few bins, A < 0.005 gives (0, 0), A is capped at 15, gamma clipped to
    [-0.5, 3].  Pairs are accumulated in chunks, so 10^4-point curves stay in memory.
    """
    edges = 10 ** np.arange(np.log10(5), np.log10(2000), 0.1)
    sums = np.zeros(len(edges) - 1)
    counts = np.zeros(len(edges) - 1)
    e2 = err**2
    n = len(t)
    chunk = max(1, 2_000_000 // max(n, 1))
    for i0 in range(0, n, chunk):
        i = np.arange(i0, min(n, i0 + chunk))
        dt = t[None, :] - t[i, None]
        upper = np.arange(n)[None, :] > i[:, None]
        keep = upper & (dt >= 5) & (dt <= 365)
        if not keep.any():
            continue
        dm2 = (mag[None, :] - mag[i, None])[keep] ** 2
        sig = (e2[None, :] + e2[i, None])[keep]
        which = np.searchsorted(edges, dt[keep], side="right") - 1
        ok = (which >= 0) & (which < len(sums))
        sums += np.bincount(which[ok], weights=(dm2 - sig)[ok], minlength=len(sums))
        counts += np.bincount(which[ok], minlength=len(counts))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sf = sums / counts
    good = (counts > 0) & (mean_sf >= 0)
    sf = np.sqrt(mean_sf[good])
    tau = ((edges[:-1] + edges[1:]) / 2.0)[good] / 365.0
    if len(sf) < 2:
        return -0.5, -0.5
    sel = (tau <= 0.5) & (tau > 0.01) & (sf > 0)
    if sel.sum() < 2:
        return -0.5, -0.5
    gamma, log_a = np.polyfit(np.log10(tau[sel]), np.log10(sf[sel]), 1)
    a = 10**log_a
    if a < 0.005:
        return 0.0, 0.0
    return float(min(a, 15.0)), float(np.clip(gamma, -0.5, 3.0))


def iar_phi(t: FloatArray, mag: FloatArray, err: FloatArray) -> float:
    """IAR_phi: autocorrelation at one day of an irregular AR(1) model (Eyheramendy
    et al. 2018), fitted by maximum likelihood on the standardised light curve.

    The likelihood and Brent's bounded search over phi in [0, 1] (to 1e-12) run
    compiled (:func:`ml.features.kernels.iar_fit`).
    """
    std = mag.std(ddof=1)
    if std == 0:
        return float("nan")
    y = np.ascontiguousarray((mag - mag.mean()) / std, dtype=np.float64)
    yerr = np.ascontiguousarray(err / std, dtype=np.float64)
    return float(kernels.iar_fit(np.ascontiguousarray(t, dtype=np.float64), y, yerr,
                                 1e-12, 50_000))


def turbofats(t: FloatArray, mag: FloatArray, err: FloatArray) -> dict[str, float]:
    """All turbo-fats statistics of one band (names without the band suffix).

    The moment- and difference-based ones come from one compiled pass
    (:func:`ml.features.kernels.moment_statistics`), the order statistics from one sort;
    the functions above are their definitions (``tests/test_ml_features.py`` checks
    both agree).
    """
    t = np.ascontiguousarray(t, dtype=np.float64)
    mag = np.ascontiguousarray(mag, dtype=np.float64)
    err = np.ascontiguousarray(err, dtype=np.float64)
    moments = dict(zip(kernels.MOMENT_NAMES, kernels.moment_statistics(t, mag, err).tolist(),
                       strict=True))
    chi2 = moments.pop("chi2")
    s = np.sort(mag)
    med = _sorted_median(s)
    k = math.ceil(0.05 * len(s))
    amp = (s[-1] - s[0]) / 10.0
    sf_amp, sf_gamma = structure_function(t, mag, err)
    return {
        **moments,
        "Amplitude": (_sorted_median(s[-k:]) - _sorted_median(s[:k])) / 2.0,
        "AndersonDarling": anderson_darling(mag),
        "Autocor_length": autocor_length(mag),
        "Gskew": gskew(mag),
        "MedianAbsDev": float(np.median(np.abs(mag - med))),
        "MedianBRP": float(np.mean((mag < med + amp) & (mag > med - amp))),
        "PercentAmplitude": float(max(s[-1] - med, med - s[0]) / med),
        "Q31": sorted_percentile(s, 75.0) - sorted_percentile(s, 25.0),
        "Pvar": float(special.chdtr(len(mag) - 1, chi2)),
        "SF_ML_amplitude": sf_amp,
        "SF_ML_gamma": sf_gamma,
        "IAR_phi": iar_phi(t, mag, err),
    }
