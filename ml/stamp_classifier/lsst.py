"""The stamp classifier for Rubin cutouts: preprocessing, metadata, simulation, real labels.

Rubin's cutouts differ from ZTF's in every way the network sees: 30-100 px at 0.2"/px
(the real ones here are 30-46 px; ZTF: 63 px at 1"/px), images in nJy on a subtracted
background, each with a variance plane and the PSF.  The LSST model keeps the ZTF model's
five classes and network (:class:`ml.stamp_classifier.network.StampNet`) and sees:

* **four channels**, the centre 30 x 30 px (6"): science, template and difference, each
  scaled as for ZTF (:func:`ml.stamp_classifier.preprocess.normalise`), plus the
  difference's significance, ``difference / sqrt(variance)``, compressed with ``asinh``:
  the variance plane is what says how real a residual is, and scale-free images lose it;
* **metadata** from ``diaSource`` (:data:`LSST_METADATA_FEATURES`): S/N, sign, PSF and
  science magnitudes, the seeing measured on the alert's PSF image, band, Rubin's dipole
  and pixel flags (cosmic ray, saturation, streak, edge), how many earlier detections the
  packet carries, ecliptic and Galactic latitude.  Rubin's own ``reliability`` is left
  out on purpose: it is an independent real/bogus score to compare with, not an input
  the simulation could give honestly.  ``ssObjectId`` is left out too: it is the
  asteroid label.

No labelled real Rubin stamps exist here beyond the solar-system alerts (``ssObjectId``
set: asteroids); the operations rehearsal's SIMBAD types are all "Unknown" and no alert
matches a variable-star catalogue.  So the model learns from simulations
(:func:`simulate_lsst_set`: LSSTCam pixel scale, seeing and single-visit depths, Rubin's
artefacts including satellite streaks and noise peaks over the threshold) and is
evaluated on the real labelled alerts,
with Rubin's ``reliability`` as a second, independent reading.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord
from astropy.io import fits

from ml.stamp_classifier.preprocess import as_float, centre_crop, normalise
from ml.stamp_classifier.simulate import (
    ALL_BOGUS_KINDS,
    Camera,
    render,
    sample_positions,
    simulate_set,
)

LSST_PIXEL_SCALE = 0.2  #: LSSTCam [arcsec / pixel]
LSST_CROP = 30  #: side of the centre the network sees [pixels]; Rubin's smallest cutout
LSST_CHANNELS = 4  #: science, template, difference, difference significance
LSST_BANDS = "ugrizy"
NJY_ZERO_POINT = 31.4  #: AB magnitude of 1 nJy
#: single-visit 5-sigma depths [AB mag] (SMTN-002)
DEPTHS = {"u": 23.7, "g": 24.97, "r": 24.52, "i": 24.13, "z": 23.56, "y": 22.55}
#: share of visits per band (WFD-like: r and i most)
BAND_WEIGHTS = (0.07, 0.09, 0.22, 0.22, 0.20, 0.20)
#: the significance channel: asinh(S/N / _SNR_SOFTENING) / asinh(_SNR_TOP / _SNR_SOFTENING)
_SNR_SOFTENING = 3.0
_SNR_TOP = 300.0
#: Rubin's sky is roughly 1,000 electrons per pixel in a 30 s visit (r band, dark time):
#: sets the sources' own photon noise relative to the sky's
SKY_ELECTRONS = 1000.0
#: Rubin's declination range [deg]
DEC_RANGE = (-90.0, 30.0)

LSST_CAMERA = Camera(size=LSST_CROP, pixel_scale=LSST_PIXEL_SCALE, field_stars=0.3,
                     template_noise=(0.1, 0.35), template_scale=(1.0, 1.0),
                     sky_electrons=SKY_ELECTRONS, mismatch=0.03, mismatch_all_static=True,
                     bogus_kinds=ALL_BOGUS_KINDS)

#: metadata after the convolutional part, in order (units in :func:`lsst_raw_metadata`)
LSST_METADATA_FEATURES: tuple[str, ...] = (
    "log_snr", "is_negative", "psf_mag", "psf_mag_err", "science_mag", "seeing",
    "band_index", "is_dipole", "flag_cr", "flag_saturated", "flag_streak", "flag_edge",
    "log_previous", "abs_ecl_lat", "abs_gal_lat")
#: Rubin flags (any set) per metadata flag
FLAG_FIELDS: dict[str, tuple[str, ...]] = {
    "is_dipole": ("isDipole",),
    "flag_cr": ("pixelFlags_cr", "pixelFlags_crCenter"),
    "flag_saturated": ("pixelFlags_saturated", "pixelFlags_saturatedCenter"),
    "flag_streak": ("pixelFlags_streak", "pixelFlags_streakCenter", "glint_trail"),
    "flag_edge": ("pixelFlags_edge", "pixelFlags_nodata", "pixelFlags_nodataCenter",
                  "pixelFlags_offimage"),
}
#: metadata keys the driver adds to ``diaSource``: the PSF's FWHM [arcsec] and the
#: number of earlier detections in the packet
SEEING_KEY = "seeing"
PREVIOUS_KEY = "n_previous"


# ------------------------------------------------------------------ preprocessing


class CutoutError(ValueError):
    """A Rubin cutout that cannot be read."""


@dataclass(frozen=True)
class RubinCutouts:
    """An alert's cutouts as the network's raw input.

    ``images`` is (4, h, w) float32 [nJy; variance in nJy^2]: science, template,
    difference and the difference's variance plane, centre-cropped to one size (the
    three cutouts can differ by a pixel); ``seeing`` the FWHM of the difference's PSF
    image [arcsec] (NaN without one).
    """

    images: np.ndarray
    seeing: float


def _hdus(data: bytes) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(image, variance or None, PSF or None) of one Rubin cutout (multi-extension FITS:
    image, ``UNCERT`` variance, ``PSFIMAGE``)."""
    try:
        with fits.open(io.BytesIO(data)) as hdus:
            planes = [np.asarray(h.data, dtype=np.float64) for h in hdus
                      if h.data is not None and np.ndim(h.data) == 2]
            names = [h.name for h in hdus if h.data is not None and np.ndim(h.data) == 2]
    except (OSError, ValueError, TypeError) as exc:
        raise CutoutError(f"cutout is not a readable FITS file: {exc}") from exc
    if not planes:
        raise CutoutError("cutout has no 2-D image")
    by_name = dict(zip(names, planes, strict=True))
    variance = by_name.get("UNCERT", by_name.get("VARIANCE"))
    return planes[0], variance, by_name.get("PSFIMAGE")


def psf_fwhm_arcsec(psf: np.ndarray, pixel_scale: float = LSST_PIXEL_SCALE) -> float:
    """The FWHM of a PSF image [arcsec] from its second moments (Gaussian equivalent).

    Parameters
    ----------
    psf : numpy.ndarray
        The PSF image (any normalisation; negative wings are clipped).
    pixel_scale : float
        [arcsec / pixel].
    """
    p = np.clip(np.nan_to_num(np.asarray(psf, dtype=np.float64)), 0.0, None)
    total = p.sum()
    if total <= 0:
        return math.nan
    y, x = np.mgrid[:p.shape[0], :p.shape[1]]
    p = p / total
    cx, cy = (p * x).sum(), (p * y).sum()
    sigma2 = (p * ((x - cx) ** 2 + (y - cy) ** 2)).sum() / 2.0
    return float(2.3548 * math.sqrt(sigma2) * pixel_scale)


def rubin_cutouts(cutouts: Mapping[str, bytes], size: int = LSST_CROP) -> RubinCutouts:
    """The raw network input of one Rubin alert from its three cutouts.

    Parameters
    ----------
    cutouts : mapping
        ``science``, ``template`` and ``difference`` FITS bytes as Rubin sends them.
    size : int
        Side every plane is centre-cropped (NaN-padded) to [pixels].

    Raises
    ------
    CutoutError
        When a cutout is missing or unreadable.  A missing variance plane is allowed
        (the significance channel is then 0).
    """
    read = {}
    for kind in ("science", "template", "difference"):
        data = cutouts.get(kind)
        if not data:
            raise CutoutError(f"no {kind} cutout")
        read[kind] = _hdus(data)
    planes = [centre_crop(read[kind][0], size) for kind in ("science", "template", "difference")]
    _, variance, psf = read["difference"]  # the network reads the difference's planes
    variance_plane = centre_crop(variance, size) if variance is not None else \
        np.full((size, size), np.nan, np.float32)
    seeing = psf_fwhm_arcsec(psf) if psf is not None else math.nan
    return RubinCutouts(np.stack([*planes, variance_plane]).astype(np.float32), seeing)


def significance(difference: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The difference's per-pixel significance, ``difference / sqrt(variance)``,
    compressed to about [-1, 1] with asinh; 0 where the variance is unknown or not
    positive."""
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(d) & np.isfinite(v) & (v > 0)
    snr = np.where(ok, d / np.sqrt(np.where(ok, v, 1.0)), 0.0)
    return (np.arcsinh(snr / _SNR_SOFTENING) /
            math.asinh(_SNR_TOP / _SNR_SOFTENING)).astype(np.float32)


def lsst_stamp_tensor(images: np.ndarray, crop: int = LSST_CROP) -> np.ndarray:
    """The network's image input, (4, crop, crop) float32, from raw (4, h, w) planes
    (science, template, difference, difference variance)."""
    science, template, difference, variance = (centre_crop(p, crop) for p in images[:4])
    return np.stack([normalise(science), normalise(template), normalise(difference),
                     significance(difference, variance)])


def _flag(record: Mapping[str, Any], fields: Sequence[str]) -> float:
    """1 when any of the flags is set, 0 when all are known and unset, NaN when unknown."""
    values = [record.get(f) for f in fields if f in record]
    known = [v for v in values if v is not None]
    if not known:
        return math.nan
    return 1.0 if any(bool(v) for v in known) else 0.0


def _magnitude(flux: float) -> float:
    return NJY_ZERO_POINT - 2.5 * math.log10(flux) if flux > 0 else math.nan


def lsst_raw_metadata(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The metadata of Rubin alerts as an (n, len(LSST_METADATA_FEATURES)) array.

    Parameters
    ----------
    records : sequence of mapping
        ``diaSource`` records (schema field names; fluxes in nJy, ``ra``/``dec`` in deg),
        each with :data:`SEEING_KEY` (PSF FWHM [arcsec]) and :data:`PREVIOUS_KEY`
        (earlier detections in the packet) added where known.

    Returns
    -------
    numpy.ndarray
        log10 S/N; 1 for a negative difference; PSF and science magnitudes [AB mag] and
        the PSF magnitude's error [mag]; seeing [arcsec]; band index (u=0 ... y=5);
        dipole and pixel flags (1 set, 0 unset, NaN unknown); log10(1 + earlier
        detections); absolute ecliptic and Galactic latitudes [deg].  NaN where unknown.
    """
    index = {name: i for i, name in enumerate(LSST_METADATA_FEATURES)}
    out = np.full((len(records), len(LSST_METADATA_FEATURES)), np.nan)
    for row, rec in enumerate(records):
        flux, err = as_float(rec.get("psfFlux")), as_float(rec.get("psfFluxErr"))
        snr = abs(flux) / err if err > 0 else as_float(rec.get("snr"))
        out[row, index["log_snr"]] = math.log10(snr) if snr > 0 else math.nan
        if math.isfinite(flux):
            out[row, index["is_negative"]] = 1.0 if flux < 0 else 0.0
            out[row, index["psf_mag"]] = _magnitude(abs(flux))
        out[row, index["psf_mag_err"]] = 1.0857 / snr if snr > 0 else math.nan
        out[row, index["science_mag"]] = _magnitude(as_float(rec.get("scienceFlux")))
        out[row, index["seeing"]] = as_float(rec.get(SEEING_KEY))
        band = rec.get("band")
        if isinstance(band, str) and band in LSST_BANDS:
            out[row, index["band_index"]] = float(LSST_BANDS.index(band))
        for name, fields in FLAG_FIELDS.items():
            out[row, index[name]] = _flag(rec, fields)
        previous = as_float(rec.get(PREVIOUS_KEY))
        out[row, index["log_previous"]] = math.log10(1.0 + previous) if previous >= 0 \
            else math.nan
    ra = np.array([as_float(r.get("ra")) for r in records])
    dec = np.array([as_float(r.get("dec")) for r in records])
    ok = np.isfinite(ra) & np.isfinite(dec)
    if ok.any():
        coords = SkyCoord(ra=ra[ok] * u.deg, dec=dec[ok] * u.deg, frame="icrs")
        out[ok, index["abs_ecl_lat"]] = np.abs(
            coords.transform_to(BarycentricMeanEcliptic()).lat.deg)
        out[ok, index["abs_gal_lat"]] = np.abs(coords.galactic.b.deg)
    return out


def metadata_record(source: Mapping[str, Any], seeing: float, n_previous: int
                    ) -> dict[str, Any]:
    """A ``diaSource`` with the two values the driver measures added."""
    return {**source, SEEING_KEY: seeing, PREVIOUS_KEY: n_previous}


# ------------------------------------------------------------------- simulation


def _flags(kind: str, subtype: str | None, rng: np.random.Generator) -> dict[str, bool]:
    """Rubin's flags of a simulated alert.  The rates are assumptions (Rubin publishes
    none per class): the artefact's own flag is often but not always raised, and real
    sources raise flags now and then (transients on galaxies are often fitted as
    dipoles)."""
    own = {"dipole": "isDipole", "cosmic_ray": "pixelFlags_cr",
           "bright_star": "pixelFlags_saturatedCenter", "streak": "pixelFlags_streak",
           "masked_edge": "pixelFlags_edge"}
    hit_rate = {"isDipole": 0.7, "pixelFlags_cr": 0.5, "pixelFlags_saturatedCenter": 0.6,
                "pixelFlags_streak": 0.5, "pixelFlags_edge": 0.9}
    dipole_rate = {"SN": 0.12, "AGN": 0.12, "VS": 0.06}.get(kind, 0.03)
    flags = {
        "isDipole": bool(rng.random() < dipole_rate),
        "pixelFlags_cr": bool(rng.random() < 0.01),
        "pixelFlags_saturatedCenter": bool(rng.random() < 0.01),
        "pixelFlags_streak": bool(rng.random() < 0.005),
        "pixelFlags_edge": bool(rng.random() < 0.01),
    }
    if subtype in own:
        name = own[subtype]
        flags[name] = flags[name] or bool(rng.random() < hit_rate[name])
    return flags


def simulate_lsst_alert(kind: str, rng: np.random.Generator,
                        position: tuple[float, float] | None = None
                        ) -> tuple[np.ndarray, dict[str, Any]]:
    """One simulated Rubin first alert: (4, 30, 30) float32 planes [nJy, nJy^2] and a
    metadata record (``diaSource`` fields plus seeing and earlier detections).

    Seeing is log-normal around 1.0" (0.5-2.2"; the real alerts here: 1.2-1.5"), the
    band drawn with WFD-like weights, the sky noise from the band's single-visit depth
    (with 0.3 mag of weather scatter).  S/N: 70 % from Euclidean source counts above
    the 5-sigma threshold (pdf ~ S/N^-2.5, median ~8, as the real alerts here: median
    7), 30 % log-uniform in 5-300 so that bright alerts are not rare in training.
    """
    band = str(rng.choice(list(LSST_BANDS), p=BAND_WEIGHTS))
    seeing = float(np.clip(rng.lognormal(math.log(1.0), 0.3), 0.5, 2.2))
    fwhm = seeing / LSST_PIXEL_SCALE
    npix = 4.0 * math.pi * (fwhm / 2.3548) ** 2  # effective PSF area [pixels]
    depth = DEPTHS[band] + rng.normal(0.0, 0.3)
    sigma_total = 10 ** (-0.4 * (depth - NJY_ZERO_POINT)) / 5.0  # [nJy]
    noise = sigma_total / math.sqrt(npix)  # per pixel [nJy]
    if rng.random() < 0.7:
        snr = float(min(5.0 * rng.random() ** (-1.0 / 1.5), 1000.0))
    else:
        snr = float(np.exp(rng.uniform(math.log(5.0), math.log(300.0))))
    flux = snr * sigma_total
    sign, ref_flux, previous = 1.0, 0.0, 0
    host_offset = None
    subtype = None
    if kind == "VS":
        ref_flux = flux * 10 ** rng.uniform(-0.5, 2.0)
        sign = -1.0 if rng.random() < 0.4 else 1.0
        previous = int(np.exp(rng.uniform(0.0, math.log(300.0)))) - 1
    elif kind == "AGN":
        ref_flux = flux * 10 ** rng.uniform(0.0, 1.5)
        sign = -1.0 if rng.random() < 0.35 else 1.0
        previous = int(np.exp(rng.uniform(0.0, math.log(150.0)))) - 1
    elif kind == "SN":
        ref_flux = 0.0 if rng.random() < 0.15 else flux * 10 ** rng.uniform(-0.5, 1.5)
        host_offset = rng.uniform(0.2, 3.0) / LSST_PIXEL_SCALE
        previous = int(rng.integers(0, 4))
    elif kind == "bogus":
        subtype = str(rng.choice(ALL_BOGUS_KINDS))
        sign = -1.0 if rng.random() < 0.4 else 1.0
        previous = 0 if rng.random() < 0.8 else int(rng.integers(1, 6))
    triplet = render(kind, rng, diff_counts=sign * flux, ref_counts=ref_flux, fwhm=fwhm,
                     sky=0.0, noise=noise, host_offset=host_offset, camera=LSST_CAMERA,
                     bogus_kind=subtype)
    ra, dec = position if position is not None else \
        sample_positions(kind, 1, rng, DEC_RANGE)[0]
    diff = sign * flux
    science_flux = diff + ref_flux * (0.3 if kind in ("SN", "AGN") else 1.0)
    record: dict[str, Any] = {
        "ra": float(ra), "dec": float(dec), "band": band,
        "psfFlux": diff, "psfFluxErr": sigma_total, "snr": snr,
        "scienceFlux": science_flux if kind != "asteroid" else diff,
        "isNegative": sign < 0, **_flags(kind, subtype, rng),
        SEEING_KEY: seeing * rng.normal(1.0, 0.03), PREVIOUS_KEY: previous,
    }
    planes = np.stack([triplet.science, triplet.template, triplet.difference,
                       triplet.variance]).astype(np.float32)
    return planes, record


def simulate_lsst_set(n_per_class: int, seed: int
                      ) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray]:
    """``n_per_class`` Rubin alerts of each class: planes (n, 4, 30, 30), metadata
    records, labels."""
    return simulate_set(n_per_class, seed, simulate_lsst_alert, DEC_RANGE)


# ------------------------------------------------------------------- real alerts


@dataclass(frozen=True)
class RubinAlert:
    """A real Rubin alert as the stamp classifier sees it, with its label if the evidence
    for one is strong (``None`` otherwise) and Rubin's own ``reliability``."""

    oid: str
    candid: int
    images: np.ndarray
    record: dict[str, Any]
    label: str | None
    rule: str
    reliability: float | None
    source_file: str


def rubin_label(source: Mapping[str, Any], alert: Mapping[str, Any]
                ) -> tuple[str | None, str]:
    """The strong-evidence label of a real Rubin alert (``diaSource`` and the whole
    alert) and its rule, or (None, "")."""
    ss_id = source.get("ssObjectId")
    if (ss_id not in (None, 0)) or alert.get("ssSource"):
        return "asteroid", "Rubin associated it with a known solar-system object " \
            f"(ssObjectId {ss_id})"
    return None, ""
