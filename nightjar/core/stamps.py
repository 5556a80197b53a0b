"""Alert cutouts: FITS as received (gunzipped) and PNG renderings with a robust stretch.

Pure functions: bytes in, bytes out.  ZTF cutouts are 63x63 gzipped FITS images with
their header (WCS included for real alerts); Rubin's are plain multi-extension FITS
(image in nJy, variance, PSF), 30-100 px at 0.2"/px, whose WCS often lacks its CTYPE
cards (:func:`celestial_header`).
"""

from __future__ import annotations

import gzip
import io
import zlib

import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

#: Largest PNG edge the service renders [px].
MAX_PNG_SIZE = 2048


class StampError(ValueError):
    """A cutout that cannot be decoded or rendered as asked; the message says why."""


def gunzip_fits(cutout: bytes) -> bytes:
    """The FITS file inside a ZTF cutout (which is gzipped; plain FITS passes through)."""
    if cutout[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(cutout)
        except (OSError, EOFError, zlib.error) as exc:
            raise StampError(f"cutout is not valid gzip: {exc}") from exc
    return cutout


def cutout_image(fits_bytes: bytes) -> tuple[np.ndarray, fits.Header]:
    """The first image HDU's data (float, NaN where blank) and header."""
    try:
        with fits.open(io.BytesIO(fits_bytes)) as hdus:
            for hdu in hdus:
                if hdu.data is not None and hdu.data.ndim == 2:
                    return np.asarray(hdu.data, dtype=float), hdu.header.copy()
    except (OSError, ValueError, TypeError) as exc:
        raise StampError(f"cutout is not a readable FITS file: {exc}") from exc
    raise StampError("cutout has no 2-D image")


def celestial_header(header: fits.Header) -> fits.Header:
    """The header with a celestial TAN WCS declared where the image has the numbers of one
    but no ``CTYPE`` cards (Rubin's cutouts: CRVAL in deg and a PC matrix in deg/px);
    other headers are returned unchanged."""
    has_matrix = "PC1_1" in header or "CD1_1" in header
    if "CTYPE1" in header or not has_matrix or "CRVAL1" not in header:
        return header
    out = header.copy()
    out.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CUNIT1="deg", CUNIT2="deg")
    return out


def render_png(fits_bytes: bytes, size_px: int = 0, colormap: str = "gray",
               centre_fraction: float = 0.5) -> bytes:
    """A PNG of a cutout: zscale limits from the central region, asinh stretch.

    Parameters
    ----------
    fits_bytes : bytes
        A FITS file (see :func:`gunzip_fits`).
    size_px : int
        Output edge [px]; 0 keeps the cutout's size.  Nearest-neighbour scaling keeps
        pixels visible.
    colormap : str
        A matplotlib colour map name.
    centre_fraction : float
        Side of the central box, as a fraction of the image, whose pixels set the
        limits (the object is at the centre; bright stars at the edges would otherwise
        wash it out).
    """
    import matplotlib as mpl
    from PIL import Image

    if not 0 <= size_px <= MAX_PNG_SIZE:
        raise StampError(f"size {size_px} px is outside [0, {MAX_PNG_SIZE}]")
    try:
        cmap = mpl.colormaps[colormap or "gray"]
    except KeyError as exc:
        raise StampError(f"unknown colour map {colormap!r}") from exc
    data, _ = cutout_image(fits_bytes)
    finite = np.isfinite(data)
    if not finite.any():
        raise StampError("cutout has no finite pixels")
    h, w = data.shape
    dy, dx = max(1, int(h * centre_fraction / 2)), max(1, int(w * centre_fraction / 2))
    centre = data[h // 2 - dy:h // 2 + dy + 1, w // 2 - dx:w // 2 + dx + 1]
    sample = centre[np.isfinite(centre)]
    vmin, vmax = ZScaleInterval().get_limits(sample if sample.size else data[finite])
    if vmax <= vmin:
        vmax = vmin + 1.0
    norm = ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(), clip=True)
    scaled = np.nan_to_num(np.asarray(norm(np.where(finite, data, vmin))), nan=0.0)
    rgba = (cmap(scaled) * 255).astype(np.uint8)
    image = Image.fromarray(np.flipud(rgba), "RGBA")  # FITS rows run bottom-up
    if size_px:
        image = image.resize((size_px, size_px), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
