"""Stamp classifier inputs: cutouts to a normalised tensor, alert metadata to a vector.

Pure functions shared by training (:mod:`.train`), the ONNX runtime (:mod:`.runtime`)
and the live pipeline, so the model sees the same numbers everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

STAMP_SIZE = 63  #: ZTF cutout side [pixels]
CROP = 21  #: side of the centred crop the network sees [pixels] (ALeRCE's choice)
CUTOUT_KINDS = ("science", "template", "difference")

#: alert metadata after the convolutional part, in order (Carrasco-Davis et al. 2021,
#: table 2): PS1 star/galaxy scores and distances of the three nearest sources, sign of
#: the difference, seeing [pixels], PSF magnitude and error [mag], position [deg],
#: limiting magnitude [mag], SExtractor star/galaxy score, detection and coverage counts
#: of the history, ecliptic and galactic coordinates [deg], coverage without detection,
#: chi and sharpness of the nearest reference source.
METADATA_FEATURES: tuple[str, ...] = (
    "sgscore1", "sgscore2", "sgscore3", "distpsnr1", "distpsnr2", "distpsnr3", "isdiffpos",
    "fwhm", "magpsf", "sigmapsf", "ra", "dec", "diffmaglim", "classtar", "ndethist",
    "ncovhist", "ecl_lat", "ecl_lon", "gal_lat", "gal_lon", "non_detections", "chinr",
    "sharpnr")
#: alert fields copied as they are (the rest are derived)
CANDIDATE_FIELDS = ("sgscore1", "sgscore2", "sgscore3", "distpsnr1", "distpsnr2", "distpsnr3",
                    "fwhm", "magpsf", "sigmapsf", "ra", "dec", "diffmaglim", "classtar",
                    "ndethist", "ncovhist", "chinr", "sharpnr")
#: fields where ZTF writes a negative placeholder (-999) for "no counterpart"
_NEGATIVE_IS_MISSING = {"sgscore1", "sgscore2", "sgscore3", "distpsnr1", "distpsnr2",
                        "distpsnr3", "chinr", "classtar", "fwhm"}
#: counts that span decades: log10(1 + n)
_LOG_COUNTS = {"ndethist", "ncovhist", "non_detections"}
_CLIP = 8.0  #: standardised values are clipped to +-this many scales


def centre_crop(image: np.ndarray, size: int = CROP) -> np.ndarray:
    """The ``size`` x ``size`` centre of an image; NaN-padded when the image is smaller.

    Cutouts at a CCD edge come truncated; padding them symmetrically keeps the array
    shape (the padded pixels become background after :func:`normalise`).
    """
    image = np.asarray(image, dtype=np.float32)
    out = np.full((size, size), np.nan, dtype=np.float32)
    h, w = image.shape
    y0, x0 = (h - size) // 2, (w - size) // 2
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + size, h), min(x0 + size, w)
    out[ys - y0:ye - y0, xs - x0:xe - x0] = image[ys:ye, xs:xe]
    return out


def normalise(image: np.ndarray) -> np.ndarray:
    """Per-image normalisation: background (median) to 0, largest deviation to 1.

    NaN pixels (masked, off the CCD) become 0, i.e. background.  Scale-free, so the
    science, template and difference images, with their different zero points and
    units, enter the network on the same footing; a flat image stays all zeros.
    """
    image = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.float32)
    centred = image - np.median(image[finite])
    scale = np.max(np.abs(centred[finite]))
    if scale > 0:
        centred /= scale
    return np.where(finite, centred, 0.0).astype(np.float32)


def stamp_tensor(science: np.ndarray, template: np.ndarray, difference: np.ndarray,
                 crop: int = CROP) -> np.ndarray:
    """The network's image input: a (3, crop, crop) float32 array, channels in
    :data:`CUTOUT_KINDS` order, each centre-cropped and :func:`normalise` d."""
    return np.stack([normalise(centre_crop(image, crop))
                     for image in (science, template, difference)])


def as_float(value: Any) -> float:
    """A metadata value as a float; NaN for None and anything not a number."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _sign(value: Any) -> float:
    if isinstance(value, str):
        return 1.0 if value.lower() in ("t", "1", "true") else -1.0
    return math.nan if value is None else (1.0 if float(value) > 0 else -1.0)


def raw_metadata(candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The metadata of alerts as an (n, len(METADATA_FEATURES)) float64 array.

    Parameters
    ----------
    candidates : sequence of mapping
        ZTF ``candidate`` records (field names of the alert schema; ``ra``/``dec`` in
        degrees).

    Returns
    -------
    numpy.ndarray
        Raw values, NaN where a field is absent or holds ZTF's negative placeholder;
        ecliptic (barycentric mean, J2000) and galactic coordinates in degrees; the
        history counts as log10(1 + n).
    """
    n = len(candidates)
    index = {name: i for i, name in enumerate(METADATA_FEATURES)}
    out = np.full((n, len(METADATA_FEATURES)), np.nan)
    for row, cand in enumerate(candidates):
        for name in CANDIDATE_FIELDS:
            value = as_float(cand.get(name))
            if name in _NEGATIVE_IS_MISSING and value < 0:
                value = math.nan
            out[row, index[name]] = value
        out[row, index["isdiffpos"]] = _sign(cand.get("isdiffpos"))
    ndet, ncov = out[:, index["ndethist"]], out[:, index["ncovhist"]]
    out[:, index["non_detections"]] = np.maximum(ncov - ndet, 0.0)
    for name in _LOG_COUNTS:
        out[:, index[name]] = np.log10(1.0 + np.maximum(out[:, index[name]], 0.0))
    ra, dec = out[:, index["ra"]], out[:, index["dec"]]
    ok = np.isfinite(ra) & np.isfinite(dec)
    if ok.any():
        coords = SkyCoord(ra=ra[ok] * u.deg, dec=dec[ok] * u.deg, frame="icrs")
        ecl = coords.transform_to(BarycentricMeanEcliptic())
        gal = coords.galactic
        out[ok, index["ecl_lat"]] = ecl.lat.deg
        out[ok, index["ecl_lon"]] = ecl.lon.deg
        out[ok, index["gal_lat"]] = gal.b.deg
        out[ok, index["gal_lon"]] = gal.l.deg
    return out


@dataclass(frozen=True)
class MetadataScaler:
    """Robust standardisation of the metadata, fitted on the training set and saved
    with the model: (x - median) / scale, clipped, missing values at 0 (the median)."""

    median: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, raw: np.ndarray) -> MetadataScaler:
        """Median and scale (IQR / 1.349, else the standard deviation, else 1) per column."""
        medians, scales = [], []
        for column in raw.T:
            finite = column[np.isfinite(column)]
            if finite.size == 0:
                medians.append(0.0)
                scales.append(1.0)
                continue
            q1, median, q3 = np.percentile(finite, [25, 50, 75])
            scale = (q3 - q1) / 1.349 or float(np.std(finite)) or 1.0
            medians.append(float(median))
            scales.append(float(scale))
        return cls(tuple(medians), tuple(scales))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Standardised float32 metadata, NaN to 0."""
        scaled = (raw - np.asarray(self.median)) / np.asarray(self.scale)
        scaled = np.clip(scaled, -_CLIP, _CLIP)
        return np.where(np.isfinite(scaled), scaled, 0.0).astype(np.float32)

    def to_json(self, features: Sequence[str] = METADATA_FEATURES) -> dict[str, Any]:
        return {"features": list(features), "median": list(self.median),
                "scale": list(self.scale)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any],
                  features: Sequence[str] = METADATA_FEATURES) -> MetadataScaler:
        if list(data["features"]) != list(features):
            raise ValueError("the model's metadata features differ from this code's: "
                             f"{data['features']} != {list(features)}")
        return cls(tuple(data["median"]), tuple(data["scale"]))
