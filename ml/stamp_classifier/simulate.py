"""Simulated first alerts of the five stamp classes: cutouts and metadata.

The real labelled alerts reachable here are a few dozen, so the classifier learns the
morphology mostly from simulations and is judged only on real alerts.  Each class gets
the morphology that tells it apart in real ZTF triplets (Carrasco-Davis et al. 2021,
fig. 2), on a sky with field stars, a background and noise:

* **SN**: a point source in the science and difference images, offset from a galaxy
  (its host) present in the template; a fraction are hostless.
* **AGN**: a change of a galaxy's nucleus: the galaxy is centred in all three images.
* **VS**: a point source present in the template (the star) whose flux changed; the
  difference is positive or negative.
* **asteroid**: a point source (slightly trailed) in science and difference with no
  counterpart in the template; close to the ecliptic, first and only detection.
* **bogus**: dipoles from misaligned subtraction, cosmic rays (sharper than the PSF, in
  the science image only), bad columns, bright-star residuals (saturated core, ringing),
  and CCD-edge stamps with masked (NaN) regions.

The metadata are drawn per class from ranges typical of ZTF alerts (PS1 star/galaxy
score and distance of the nearest source, history counts, sky position) and kept
consistent with the images (``magpsf`` from the difference flux and the noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

from ml.stamp_classifier import CLASSES
from ml.stamp_classifier.preprocess import STAMP_SIZE

ZERO_POINT = 26.0  #: photometric zero point of simulated images [mag]
PIXEL_SCALE = 1.01  #: ZTF [arcsec / pixel]
MOFFAT_BETA = 3.0
BOGUS_KINDS = ("dipole", "cosmic_ray", "bad_column", "bright_star", "masked_edge")
#: artefact kinds a render can make (the ZTF simulation draws from :data:`BOGUS_KINDS`)
ALL_BOGUS_KINDS = (*BOGUS_KINDS, "streak", "noise_peak")



@dataclass(frozen=True)
class Camera:
    """What differs between surveys' cutouts (the defaults are ZTF's).

    Sizes of things on the sky (hosts, galaxies, host offsets) are drawn in arcsec and
    turned into pixels with ``pixel_scale``; trails, centroid jitter and subtraction
    misalignments are drawn in pixels.
    """

    size: int = STAMP_SIZE  #: cutout side [pixels]
    pixel_scale: float = PIXEL_SCALE  #: [arcsec / pixel]
    field_stars: float = 3.0  #: mean number of field stars in a cutout
    #: template noise as a fraction of the science noise (a co-add is deeper)
    template_noise: tuple[float, float] = (0.2, 0.5)
    #: the template's flux scale relative to the science image (ZTF: its own zero point)
    template_scale: tuple[float, float] = (0.5, 3.0)
    #: photon noise of the sources in the science image: the sky's electrons per pixel
    #: (None: sky noise only, ZTF's simulation)
    sky_electrons: float | None = None
    #: imperfect PSF matching leaves a residual of the static sky in the difference:
    #: its amplitude (times a unit normal draw) and whether it covers every static
    #: source (True) or the field stars only (ZTF's simulation: the counterpart is clean)
    mismatch: float = 0.02
    mismatch_all_static: bool = False
    bogus_kinds: tuple[str, ...] = BOGUS_KINDS

    @property
    def arcsec(self) -> float:
        """Pixels per arcsec relative to ZTF's (1 for ZTF)."""
        return PIXEL_SCALE / self.pixel_scale


ZTF_CAMERA = Camera()


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(y, x, centre) pixel offsets from the centre of a ``size`` x ``size`` image."""
    centre = (size - 1) / 2.0
    y, x = np.mgrid[:size, :size].astype(np.float64) - centre
    y.setflags(write=False)
    x.setflags(write=False)
    return y, x, centre


def moffat(x0: float, y0: float, fwhm: float, elongation: float = 0.0,
           angle: float = 0.0, size: int = STAMP_SIZE) -> np.ndarray:
    """A Moffat PSF (beta 3) of unit total flux centred at (x0, y0) [pixels from centre].

    ``elongation`` [pixels] stretches it along ``angle`` [rad] (an asteroid's trail).
    """
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / MOFFAT_BETA) - 1.0))
    grid_y, grid_x, _ = _grid(size)
    dx, dy = grid_x - x0, grid_y - y0
    if elongation > 0:
        along = dx * math.cos(angle) + dy * math.sin(angle)
        across = -dx * math.sin(angle) + dy * math.cos(angle)
        along = np.sign(along) * np.maximum(np.abs(along) - elongation / 2.0, 0.0)
        dx, dy = along, across
    profile = (1.0 + (dx * dx + dy * dy) / alpha**2) ** -MOFFAT_BETA
    total = profile.sum()
    return np.asarray(profile / total if total > 0 else profile)


def galaxy(x0: float, y0: float, scale: float, axis_ratio: float, angle: float,
           fwhm: float, size: int = STAMP_SIZE) -> np.ndarray:
    """An exponential disc of unit total flux, softened by the seeing [pixels]."""
    grid_y, grid_x, _ = _grid(size)
    dx, dy = grid_x - x0, grid_y - y0
    along = dx * math.cos(angle) + dy * math.sin(angle)
    across = -dx * math.sin(angle) + dy * math.cos(angle)
    radius = np.sqrt(along**2 + (across / axis_ratio) ** 2 + (fwhm / 2.355) ** 2)
    profile = np.exp(-radius / scale)
    return np.asarray(profile / profile.sum())


@dataclass(frozen=True)
class Triplet:
    """Science, template and difference images [counts], each of the camera's size, and
    the difference's per-pixel variance [counts^2]."""

    science: np.ndarray
    template: np.ndarray
    difference: np.ndarray
    variance: np.ndarray

    def stacked(self) -> np.ndarray:
        return np.stack([self.science, self.template, self.difference]).astype(np.float32)


def _field(rng: np.random.Generator, fwhm: float, noise: float, camera: Camera
           ) -> np.ndarray:
    """Field stars away from the centre (in both science and reference)."""
    size = camera.size
    image = np.zeros((size, size))
    reach = size / STAMP_SIZE  # radii scale with the cutout (1 for ZTF)
    for _ in range(int(rng.poisson(camera.field_stars))):
        r, phi = rng.uniform(6.0, 40.0) * reach, rng.uniform(0.0, 2 * math.pi)
        counts = noise * 10 ** rng.uniform(1.0, 3.5)
        image += counts * moffat(r * math.cos(phi), r * math.sin(phi), fwhm, size=size)
    return image


def render(kind: str, rng: np.random.Generator, *, diff_counts: float, ref_counts: float,
           fwhm: float, sky: float = 100.0, noise: float = 8.0,
           host_offset: float | None = None, camera: Camera = ZTF_CAMERA,
           bogus_kind: str | None = None) -> Triplet:
    """The cutout triplet of one alert of class ``kind``.

    Parameters
    ----------
    kind : str
        One of :data:`ml.stamp_classifier.CLASSES`.
    rng : numpy.random.Generator
    diff_counts : float
        Signed flux of the change at the centre [counts].
    ref_counts : float
        Flux of the counterpart in the reference image [counts]: the star (VS), the
        galaxy with its nucleus (AGN), the host (SN; 0 for hostless); ignored for
        asteroids and bogus.
    fwhm : float
        Seeing [pixels].
    sky, noise : float
        Science background level and its per-pixel noise [counts].
    host_offset : float, optional
        SN-host distance [pixels] (default: drawn from 0.5-5 arcsec).
    camera : Camera
        Cutout size, pixel scale and noise conventions (default ZTF's).
    bogus_kind : str, optional
        The artefact of a ``bogus`` alert (:data:`ALL_BOGUS_KINDS`; default: drawn from
        the camera's ``bogus_kinds``).
    """
    if kind not in CLASSES:
        raise ValueError(f"unknown stamp class {kind!r}; classes are {CLASSES}")
    size, arcsec = camera.size, camera.arcsec
    jx, jy = (float(v) for v in rng.normal(0.0, 0.3, 2))
    field = _field(rng, fwhm, noise, camera)
    ref_fwhm = fwhm * rng.uniform(0.8, 1.1)  # the reference co-add has its own seeing
    reference = field.copy()  # the same field stars in the reference
    change = np.zeros_like(field)
    residual = np.zeros_like(field)
    science_only = np.zeros_like(field)
    masked = np.zeros(field.shape, dtype=bool)
    if kind == "SN":
        if ref_counts > 0:
            d = host_offset if host_offset is not None else \
                rng.uniform(0.5, 5.0) / camera.pixel_scale
            phi = rng.uniform(0.0, 2 * math.pi)
            host = galaxy(d * math.cos(phi), d * math.sin(phi), rng.uniform(1.0, 5.0) * arcsec,
                          rng.uniform(0.3, 1.0), rng.uniform(0.0, math.pi), fwhm, size)
            reference = reference + ref_counts * host
        change = diff_counts * moffat(jx, jy, fwhm, size=size)
    elif kind == "AGN":
        disc = galaxy(jx, jy, rng.uniform(1.0, 4.0) * arcsec, rng.uniform(0.4, 1.0),
                      rng.uniform(0.0, math.pi), fwhm, size)
        nucleus = rng.uniform(0.1, 0.6)
        reference = reference + ref_counts * ((1 - nucleus) * disc +
                                              nucleus * moffat(jx, jy, ref_fwhm, size=size))
        change = diff_counts * moffat(jx, jy, fwhm, size=size)
    elif kind == "VS":
        reference = reference + ref_counts * moffat(jx, jy, ref_fwhm, size=size)
        change = max(diff_counts, -0.9 * ref_counts) * moffat(jx, jy, fwhm, size=size)
    elif kind == "asteroid":
        change = diff_counts * moffat(jx, jy, fwhm, elongation=rng.uniform(0.0, 4.0),
                                      angle=rng.uniform(0.0, math.pi), size=size)
    else:
        residual, science_only, masked, reference = _bogus(
            bogus_kind or str(rng.choice(camera.bogus_kinds)), rng, diff_counts, fwhm, noise,
            reference)
    template_noise = noise * rng.uniform(*camera.template_noise)
    template_scale = rng.uniform(*camera.template_scale)  # ZTF: each on its own flux scale
    science = sky + reference + change + science_only + rng.normal(0.0, noise, field.shape)
    diff_variance = np.full(field.shape, noise ** 2 + template_noise ** 2)
    photon = np.zeros_like(field)
    if camera.sky_electrons is not None:  # photon noise of the sources themselves
        source_variance = np.maximum(reference + change + science_only, 0.0) * \
            noise ** 2 / camera.sky_electrons
        photon = rng.normal(0.0, 1.0, field.shape) * np.sqrt(source_variance)
        science = science + photon
        diff_variance = diff_variance + source_variance
    template = template_scale * (rng.uniform(0.5, 1.5) * sky + reference +
                                 rng.normal(0.0, template_noise, field.shape))
    diff_noise = math.hypot(noise, template_noise)
    difference = change + residual + science_only + rng.normal(0.0, diff_noise, field.shape)
    difference = difference + photon  # the science image's photon noise is in it too
    # static sources leave faint residuals of imperfect PSF matching
    static = reference if camera.mismatch_all_static else field
    difference += camera.mismatch * rng.normal() * (
        static - np.roll(static, 1, axis=int(rng.integers(2))))
    if masked.any():
        science[masked] = np.nan
        difference[masked] = np.nan
        template[masked] = np.nan
    return Triplet(science.astype(np.float32), template.astype(np.float32),
                   difference.astype(np.float32), diff_variance.astype(np.float32))


def _bogus(subtype: str, rng: np.random.Generator, counts: float, fwhm: float, noise: float,
           reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(difference residual, science-only signal, NaN mask, reference) of an artefact."""
    shape = reference.shape
    n = shape[0]
    grid_y, grid_x, centre = _grid(n)
    zeros = np.zeros(shape)
    masked = np.zeros(shape, dtype=bool)
    flux = abs(counts)
    if subtype == "dipole":  # a star subtracted with a misaligned reference
        star = flux * rng.uniform(2.0, 20.0)
        angle, shift = rng.uniform(0.0, 2 * math.pi), rng.uniform(0.6, 1.8)
        reference = reference + star * moffat(0.0, 0.0, fwhm, size=n)
        residual = star * (moffat(shift * math.cos(angle), shift * math.sin(angle), fwhm,
                                  size=n) - moffat(0.0, 0.0, fwhm, size=n))
        return residual, zeros, masked, reference
    if subtype == "cosmic_ray":  # a hit sharper than any PSF, in the science image only
        hit = np.zeros(shape)
        x, y = int(centre + rng.integers(-1, 2)), int(centre + rng.integers(-1, 2))
        length = int(rng.integers(1, 6))
        dx, dy = (1, 0) if rng.random() < 0.5 else (0, 1)
        for k in range(length):
            hit[min(y + k * dy, shape[0] - 1), min(x + k * dx, shape[1] - 1)] = flux / length
        return zeros, hit, masked, reference
    if subtype == "bad_column":
        column = int(centre + rng.integers(-2, 3))
        level = noise * rng.uniform(3.0, 30.0)
        residual = np.zeros(shape)
        if rng.random() < 0.5:
            residual[:, column] = level
        else:
            residual[int(centre + rng.integers(-2, 3)), :] = level
        residual += 0.3 * flux * moffat(0.0, 0.0, fwhm, size=n)
        return residual, zeros, masked, reference
    if subtype == "bright_star":  # saturated core, ringing and spikes left in the difference
        star = flux * rng.uniform(30.0, 300.0)
        ox, oy = (float(v) for v in rng.normal(0.0, 2.0, 2))
        reference = reference + star * moffat(ox, oy, fwhm, size=n)
        radius = np.hypot(grid_x - ox, grid_y - oy)
        ring = np.cos(radius * rng.uniform(0.8, 1.6)) * np.exp(-radius / (2 * fwhm))
        spikes = np.exp(-np.minimum(np.abs(grid_x - ox), np.abs(grid_y - oy)) / 0.7)
        spikes *= np.exp(-radius / 12.0)
        residual = flux * (ring / max(ring.max(), 1e-9) + 0.5 * spikes)
        masked = radius < rng.uniform(0.0, 2.5)  # saturated pixels masked by the pipeline
        return residual, zeros, masked, reference
    if subtype == "streak":  # a satellite trail: a line through the science image
        angle = rng.uniform(0.0, math.pi)
        miss = rng.normal(0.0, 1.5)  # how far from the centre it passes [pixels]
        across = -grid_x * math.sin(angle) + grid_y * math.cos(angle) - miss
        width = fwhm * rng.uniform(0.8, 1.5) / 2.3548
        line = np.exp(-0.5 * (across / width) ** 2)
        line *= flux / max(line.sum() / n * 2.0, 1e-9)  # the flux within ~2 px of the centre
        return zeros, line, masked, reference
    if subtype == "noise_peak":  # a fluctuation of correlated noise over the threshold
        blob = rng.normal(0.0, 1.0, shape)
        smooth = max(fwhm / 2.3548 * 0.5, 0.5)  # correlated on half the PSF's scale [px]
        kernel = np.exp(-0.5 * (grid_x ** 2 + grid_y ** 2) / smooth ** 2)
        blob = np.real(np.fft.ifft2(np.fft.fft2(blob) * np.fft.fft2(np.fft.ifftshift(kernel))))
        window = np.exp(-0.5 * (grid_x ** 2 + grid_y ** 2) / (fwhm / 2.3548) ** 2)
        bump = np.maximum(blob * window + 1.5 * window * blob.std(), 0.0)
        # the science image fluctuated: the peak is in it and in the difference
        return zeros, flux * bump / max(bump.sum(), 1e-9), masked, reference
    # masked_edge: the stamp runs off the CCD, a faint residual where the data stop
    edge = int(rng.integers(int(centre) - 8, int(centre) + 9))
    axis = int(rng.integers(2))
    coord = grid_x if axis == 0 else grid_y
    masked = (coord + centre) > edge if rng.random() < 0.5 else (coord + centre) < edge
    residual = flux * np.exp(-np.abs(coord + centre - edge) / 1.5) * \
        moffat(0.0, 0.0, 3 * fwhm, size=n) * 20
    return residual, zeros, masked, reference


# --------------------------------------------------------------------- metadata


def sample_positions(kind: str, n: int, rng: np.random.Generator,
                     dec_range: tuple[float, float] = (-30.0, 90.0)) -> np.ndarray:
    """(n, 2) positions (ra, dec) [deg] within ``dec_range`` [deg] (default ZTF's sky,
    north of -30): asteroids near the ecliptic, variable stars favour the Galactic plane,
    extragalactic classes avoid it."""
    low, high = dec_range
    out = np.zeros((0, 2))
    while len(out) < n:
        m = 2 * (n - len(out)) + 8
        if kind == "asteroid":
            coord = SkyCoord(lon=rng.uniform(0, 360, m) * u.deg,
                             lat=rng.normal(0.0, 6.0, m) * u.deg, frame=BarycentricMeanEcliptic())
        elif kind == "VS":
            coord = SkyCoord(l=rng.uniform(0, 360, m) * u.deg,
                             b=np.clip(rng.normal(0.0, 15.0, m), -90, 90) * u.deg,
                             frame="galactic")
        elif kind in ("SN", "AGN"):
            b = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(15)), 1.0, m)))
            coord = SkyCoord(l=rng.uniform(0, 360, m) * u.deg,
                             b=rng.choice([-1.0, 1.0], m) * b * u.deg, frame="galactic")
        else:
            dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(low)),
                                                   math.sin(math.radians(high)), m)))
            coord = SkyCoord(ra=rng.uniform(0, 360, m) * u.deg, dec=dec * u.deg)
        icrs = coord.icrs
        keep = (icrs.dec.deg > low) & (icrs.dec.deg <= high)
        out = np.concatenate([out, np.column_stack([icrs.ra.deg[keep] % 360,
                                                    icrs.dec.deg[keep]])])
    return out[:n]


def _neighbours(rng: np.random.Generator, first: tuple[float, float] | None
                ) -> dict[str, float]:
    """PS1 star/galaxy scores and distances [arcsec] of the three nearest sources."""
    out: dict[str, float] = {}
    distances = np.sort(rng.uniform(1.0, 30.0, 3))
    scores = rng.uniform(0.0, 1.0, 3)
    if first is not None:
        scores[0], distances[0] = first
        distances[1:] = np.sort(rng.uniform(max(first[1], 1.0), 30.0, 2))
    for i in range(3):
        out[f"sgscore{i + 1}"] = float(scores[i])
        out[f"distpsnr{i + 1}"] = float(distances[i])
    return out


#: (class, generator, position (ra, dec) [deg]) -> (images, metadata record)
AlertMaker = Callable[[str, np.random.Generator, tuple[float, float]],
                      tuple[np.ndarray, dict[str, Any]]]


def simulate_alert(kind: str, rng: np.random.Generator,
                   position: tuple[float, float] | None = None
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """One simulated first alert: (3, 63, 63) float32 images and a ``candidate`` dict.

    ``position`` (ra, dec) [deg] defaults to one drawn by :func:`sample_positions`.
    """
    fwhm = float(np.clip(rng.lognormal(math.log(2.2), 0.25), 1.2, 6.0))
    sky = float(rng.uniform(80.0, 600.0))
    noise = float(math.sqrt(sky) * rng.uniform(0.7, 1.6))
    npix = 4.0 * math.pi * (fwhm / 2.355) ** 2  # effective PSF area [pixels]
    snr = float(np.exp(rng.uniform(math.log(5.0), math.log(150.0))))
    counts = snr * noise * math.sqrt(npix)
    sign = 1.0
    ref_counts = 0.0
    host_offset = None
    ndethist = 1
    if kind == "VS":
        ref_counts = counts * 10 ** rng.uniform(-0.5, 2.0)
        sign = -1.0 if rng.random() < 0.4 else 1.0
        ndethist = int(np.exp(rng.uniform(0.0, math.log(2000.0))))
        first: tuple[float, float] | None = (float(1.0 - rng.beta(1.0, 12.0)),
                                             float(rng.uniform(0.02, 0.6)))
    elif kind == "AGN":
        ref_counts = counts * 10 ** rng.uniform(0.0, 1.5)
        sign = -1.0 if rng.random() < 0.35 else 1.0
        ndethist = int(np.exp(rng.uniform(0.0, math.log(400.0))))
        stellar = rng.random() < 0.3  # luminous QSOs look point-like to PS1
        first = (float(rng.uniform(0.5, 1.0) if stellar else rng.uniform(0.0, 0.5)),
                 float(rng.uniform(0.02, 0.7)))
    elif kind == "SN":
        hostless = rng.random() < 0.15
        ref_counts = 0.0 if hostless else counts * 10 ** rng.uniform(-0.5, 1.5)
        host_offset = rng.uniform(0.5, 5.0) / PIXEL_SCALE
        ndethist = int(rng.integers(1, 4))
        first = None if hostless else (float(rng.uniform(0.0, 0.35)),
                                       float(host_offset * PIXEL_SCALE))
    elif kind == "asteroid":
        first = None
    else:
        sign = -1.0 if rng.random() < 0.4 else 1.0
        ndethist = int(np.exp(rng.uniform(0.0, math.log(30.0))))
        first = None if rng.random() < 0.5 else (float(rng.uniform(0, 1)),
                                                 float(rng.uniform(0.0, 3.0)))
    triplet = render(kind, rng, diff_counts=sign * counts, ref_counts=ref_counts, fwhm=fwhm,
                     sky=sky, noise=noise, host_offset=host_offset)
    ra, dec = position if position is not None else sample_positions(kind, 1, rng)[0]
    magpsf = ZERO_POINT - 2.5 * math.log10(counts)
    limit = ZERO_POINT - 2.5 * math.log10(5.0 * noise * math.sqrt(npix))
    ncovhist = ndethist + int(np.exp(rng.uniform(0.0, math.log(1500.0))))
    bogus = kind == "bogus"
    candidate: dict[str, Any] = {
        **_neighbours(rng, first),
        "isdiffpos": "t" if sign > 0 else "f",
        "fwhm": fwhm * (rng.uniform(1.0, 3.0) if bogus and rng.random() < 0.3 else 1.0),
        "magpsf": magpsf, "sigmapsf": 1.0857 / snr, "ra": float(ra), "dec": float(dec),
        "diffmaglim": limit,
        "classtar": float(rng.uniform(0.0, 0.6) if bogus else
                          rng.uniform(0.7, 1.0) if kind in ("VS", "asteroid")
                          else rng.uniform(0.2, 1.0)),
        "ndethist": ndethist, "ncovhist": ncovhist,
        "chinr": float(rng.lognormal(0.0, 0.6)) if first is not None else -999.0,
        "sharpnr": float(rng.normal(0.0, 0.03 if kind == "VS" else 0.15))
        if first is not None else -999.0,
    }
    return triplet.stacked(), candidate


def simulate_set(n_per_class: int, seed: int, alert: AlertMaker | None = None,
                 dec_range: tuple[float, float] = (-30.0, 90.0)
                 ) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray]:
    """``n_per_class`` alerts of each class: images (ZTF: (n, 3, 63, 63)), metadata
    records, labels; ``alert`` makes one (default ZTF's :func:`simulate_alert`) at a
    position drawn within ``dec_range`` [deg]."""
    make = alert or simulate_alert
    rng = np.random.default_rng(seed)
    positions = {kind: sample_positions(kind, n_per_class, rng, dec_range)
                 for kind in CLASSES}
    images, candidates, labels = [], [], []
    for i in range(n_per_class):
        for kind in CLASSES:
            ra, dec = positions[kind][i]
            image, candidate = make(kind, rng, (float(ra), float(dec)))
            images.append(image)
            candidates.append(candidate)
            labels.append(kind)
    return np.stack(images), candidates, np.array(labels)
