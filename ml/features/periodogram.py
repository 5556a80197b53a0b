"""Multiband multi-harmonic analysis-of-variance periodogram (MHAOV), vectorised.

ALeRCE's classifier uses P4J's ``MultiBandPeriodogram(method="MHAOV")`` with one
harmonic (Mondrik, Long & Marshall 2015; Schwarzenberg-Czerny 1996): per band, the
weighted least-squares fit of a mean plus one sinusoid, scored as an AoV statistic,
and the bands combined by pooling explained and residual variance.  P4J evaluates the
statistic one frequency at a time from Python (tens of thousands of calls per object);
here the same statistic is computed for all trial frequencies at once with complex
exponentials built by multiplication instead of trigonometry, which is what makes the
feature extractor fast enough for the live stream.  ``tests/test_ml_features.py``
checks the recovered periods against P4J itself.

Units: times in days, frequencies in 1/day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.features import kernels

FloatArray = NDArray[np.float64]
#: weighted sums of exp(i w t), exp(2i w t) and y exp(i w t) per frequency
Sums = tuple[NDArray[Any], NDArray[Any], NDArray[Any]]

#: Trial periods span 0.045 d to 500 d (ALeRCE's range), on a 1e-3 /d grid
F_MIN = 1.0 / 500.0
F_MAX = 1.0 / 0.045
F_STEP = 1e-3
#: each of the best local maxima is refined on a 1e-4 /d grid (P4J's finetune step)
FINE_STEP = 1e-4
N_LOCAL_OPTIMA = 10
#: a band enters the periodogram with more than this many detections (ALeRCE's rule)
MIN_POINTS_PER_BAND = 5


@dataclass(frozen=True)
class BandData:
    """One band's light curve prepared for the periodogram (weighted-mean removed)."""

    t: FloatArray  #: days, relative to a common origin
    y: FloatArray  #: magnitude minus its weighted mean
    w: FloatArray  #: weights 1/sigma^2, normalised to sum 1
    wvar: float  #: weighted variance of y (weights summing to 1)
    n: int


@dataclass(frozen=True)
class Periodogram:
    """Periodogram values on the trial frequencies (grid plus refined points).

    ``multiband`` is the pooled AoV statistic; ``per_band`` the single-band ones.
    """

    freq: FloatArray
    multiband: FloatArray
    per_band: dict[int, FloatArray]

    @property
    def best_frequency(self) -> float:
        return float(self.freq[int(np.argmax(self.multiband))])

    def best_band_frequency(self, band: int) -> float:
        return float(self.freq[int(np.argmax(self.per_band[band]))])


def prepare_band(t: FloatArray, mag: FloatArray, err: FloatArray, t0: float) -> BandData:
    """Centre one band on its weighted mean; weights are inverse variances."""
    w = 1.0 / np.square(err)
    w = w / w.sum()
    y = mag - float(np.dot(w, mag))
    return BandData(t=t - t0, y=y, w=w, wvar=float(np.dot(w, y * y)), n=len(t))


def _powers(first: NDArray[Any], ratio: NDArray[Any], count: int) -> NDArray[Any]:
    """Rows ``first * ratio**k`` for k < ``count`` (one row per k, one column per point),
    by cumulative products: two complex exponentials per point instead of ``count``
    (numpy's complex exp of large arguments costs ~70 ns; the products' rounding stays
    near 1e-14 after a few hundred steps)."""
    rows = np.empty((count, len(first)), dtype=np.complex128)
    rows[0] = first
    rows[1:] = ratio
    return np.cumprod(rows, axis=0)


def _all_points(bands: dict[int, BandData]) -> tuple[FloatArray, dict[int, slice]]:
    """2 pi t of every band's points in one array, and each band's columns in it."""
    columns: dict[int, slice] = {}
    start = 0
    for fid, band in bands.items():
        columns[fid] = slice(start, start + band.n)
        start += band.n
    times = [b.t for b in bands.values()]
    return 2.0 * np.pi * (np.concatenate(times) if times else np.empty(0)), columns


def _grid_sums(bands: dict[int, BandData], f0: float, df: float, count: int) -> Sums:
    """Weighted sums of exp(i w t), exp(2i w t) and y exp(i w t) on an even frequency
    grid, for every band.

    exp(i 2 pi (f0 + (j B + k) df) t) = base_j(t) * step_k(t), so every sum over points
    is a (J x N) @ (N x B) complex matrix product.  The base and step factors are
    computed once for the points of all bands (:func:`_powers`), each band's sums from
    its own columns; one row per band in each returned array.
    """
    block = int(np.ceil(np.sqrt(count)))
    n_blocks = -(-count // block)
    two_pi_t, columns = _all_points(bands)
    base_all = _powers(np.exp(1j * f0 * two_pi_t), np.exp(1j * block * df * two_pi_t),
                       n_blocks)
    step_all = _powers(np.ones(len(two_pi_t), dtype=np.complex128),
                       np.exp(1j * df * two_pi_t), block)
    s1 = np.empty((len(bands), count), dtype=np.complex128)
    s2 = np.empty_like(s1)
    sy = np.empty_like(s1)
    for b, (fid, band) in enumerate(bands.items()):
        cols = columns[fid]
        base, step = base_all[:, cols], step_all[:, cols]
        s1[b] = ((base * band.w) @ step.T).ravel()[:count]
        s2[b] = ((base * base * band.w) @ (step * step).T).ravel()[:count]
        sy[b] = ((base * (band.w * band.y)) @ step.T).ravel()[:count]
    return s1, s2, sy


def _ladder_sums(bands: dict[int, BandData], starts: FloatArray, step: float,
                 count: int) -> Sums:
    """The same sums at the frequencies ``start + k * step`` (k < count) of each ladder
    (the refinement around the best peaks), ladder after ladder, one row per band."""
    two_pi_t, columns = _all_points(bands)
    ratio = _powers(np.ones(len(two_pi_t), dtype=np.complex128),
                    np.exp(1j * step * two_pi_t), count)
    z_all = (np.exp(1j * np.outer(starts, two_pi_t))[:, None, :]
             * ratio[None, :, :]).reshape(len(starts) * count, len(two_pi_t))
    s1 = np.empty((len(bands), len(z_all)), dtype=np.complex128)
    s2 = np.empty_like(s1)
    sy = np.empty_like(s1)
    for b, (fid, band) in enumerate(bands.items()):
        z = z_all[:, columns[fid]]
        s1[b], s2[b], sy[b] = z @ band.w, (z * z) @ band.w, z @ (band.w * band.y)
    return s1, s2, sy


def _evaluate(bands: dict[int, BandData], sums: Sums) -> tuple[FloatArray,
                                                                dict[int, FloatArray]]:
    """Multiband and per-band statistics from the bands' sums (one compiled pass,
    :func:`ml.features.kernels.aov_statistics`)."""
    wvar = np.array([band.wvar for band in bands.values()], dtype=np.float64)
    points = np.array([band.n for band in bands.values()], dtype=np.float64)
    multiband, per_band = kernels.aov_statistics(*sums, wvar, points)
    return multiband, {fid: per_band[b] for b, fid in enumerate(bands)}


def _local_maxima(values: FloatArray, n: int) -> NDArray[np.intp]:
    inner = (values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])
    idx = np.flatnonzero(inner) + 1
    if len(idx) == 0:
        return np.array([int(np.argmax(values))])
    return idx[np.argsort(values[idx])[::-1][:n]]


def multiband_periodogram(bands: dict[int, BandData], f_min: float = F_MIN,
                          f_max: float = F_MAX, f_step: float = F_STEP,
                          fine_step: float = FINE_STEP,
                          n_local_optima: int = N_LOCAL_OPTIMA) -> Periodogram:
    """Evaluate the MHAOV periodogram on the grid, then refine the best local maxima.

    Parameters
    ----------
    bands : dict of int to BandData
        Bands with enough points, keyed by ZTF fid.
    f_min, f_max, f_step : float
        Coarse grid, 1/day.
    fine_step : float
        Refinement step around each of the ``n_local_optima`` best maxima, 1/day.
    """
    n_grid = int(np.floor((f_max - f_min) / f_step))
    grid = np.asarray(f_min + np.arange(n_grid) * f_step, dtype=np.float64)
    multiband, per_band = _evaluate(bands, _grid_sums(bands, f_min, f_step, n_grid))
    peaks = np.sort(_local_maxima(multiband, n_local_optima))
    # around each peak the frequencies np.arange(f - f_step, f + f_step, fine_step); the
    # peaks in frequency order and at least two grid steps apart, so fine is sorted too
    starts = grid[peaks] - f_step
    starts = starts[starts > 0]
    count = len(np.arange(0.0, 2 * f_step, fine_step))
    fine = (starts[:, None] + fine_step * np.arange(count)[None, :]).ravel()
    fine_multi, fine_band = _evaluate(bands, _ladder_sums(bands, starts, fine_step, count))
    freq = np.concatenate([grid, fine])
    order = np.argsort(freq, kind="stable")
    return Periodogram(
        freq=freq[order],
        multiband=np.concatenate([multiband, fine_multi])[order],
        per_band={fid: np.concatenate([per_band[fid], fine_band[fid]])[order]
                  for fid in bands})


def significance(per: FloatArray, top: int = 100) -> float:
    """ALeRCE's PPE: 1 - normalised entropy of the ``top`` highest periodogram values."""
    values = np.sort(per)[-top:] + 1e-2
    values = values / values.sum()
    return float(1.0 - (-(values * np.log(values)).sum()) / np.log(top))


def power_rate(pgram: Periodogram, factor: float) -> float:
    """Periodogram value at ``factor`` times the best period over the value at the peak."""
    i_best = int(np.argmax(pgram.multiband))
    peak = pgram.multiband[i_best]
    if peak <= 0:
        return float("nan")
    target = pgram.freq[i_best] / factor
    i = int(np.clip(np.searchsorted(pgram.freq, target), 0, len(pgram.freq) - 1))
    if i > 0 and abs(pgram.freq[i - 1] - target) <= abs(pgram.freq[i] - target):
        i -= 1
    return float(pgram.multiband[i] / peak)
