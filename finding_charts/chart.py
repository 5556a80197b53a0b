"""Render a finding chart: a pure function from images and numbers to PDF bytes.

The page holds the reference image centred on the object with a crosshair, north and
east arrows and a scale bar (from the image's WCS; without one, as ZTF's own cutouts,
the chart says the orientation is unknown and assumes ZTF's 1.01″ pixels), the field
size and pixel scale; the science, template and difference stamps; the position in
degrees and sexagesimal; first and last detection dates; magnitude statistics per
band; the TNS name when known; and when the chart was made.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.units import cm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from nightjar.context import MATCH_RADIUS_ARCSEC
from nightjar.core.stamps import celestial_header, cutout_image, render_png

#: ZTF's pixel scale, assumed when an image has no WCS [arcsec/pixel].
ZTF_PIXEL_SCALE = 1.01
PAGE_SIZES = {"A4": A4, "LETTER": LETTER}
#: ZTF's filter ids, for statistics stored before bands were
BANDS = {1: "g", 2: "r", 3: "i"}


@dataclass
class ChartData:
    """Everything a chart shows (positions [deg], times [MJD], magnitudes [mag])."""

    oid: str
    ra: float
    dec: float
    candid: int | None
    reference_fits: bytes  #: the reference image (FITS)
    reference_label: str  #: where it came from, e.g. "ZTF template cutout"
    stamps: Mapping[str, bytes] = field(default_factory=dict)  #: kind -> FITS
    firstmjd: float | None = None
    lastmjd: float | None = None
    ndet: int | None = None
    magstats: Sequence[Mapping[str, Any]] = ()
    tns_name: str | None = None
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    survey: str = "ZTF"


def _wcs(fits_bytes: bytes) -> WCS | None:
    _, header = cutout_image(fits_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FITSFixedWarning, AstropyWarning))
        wcs = WCS(celestial_header(header))
    return wcs if wcs.has_celestial else None


def _iso(mjd: float | None) -> str:
    if mjd is None:
        return "-"
    return Time(mjd, format="mjd", scale="utc").to_datetime().strftime("%Y-%m-%d %H:%M UTC")


def _directions(wcs: WCS, x: float, y: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Unit vectors (in pixel x, y) towards north and east at pixel (x, y)."""
    here = wcs.pixel_to_world(x, y)
    step = 5 / 3600
    out = []
    for dra, ddec in ((0.0, step), (step / max(math.cos(math.radians(here.dec.deg)), 1e-6), 0.0)):
        there = SkyCoord(here.ra.deg + dra, here.dec.deg + ddec, unit="deg")
        px, py = wcs.world_to_pixel(there)
        vx, vy = float(px) - x, float(py) - y
        norm = math.hypot(vx, vy) or 1.0
        out.append((vx / norm, vy / norm))
    return out[0], out[1]


def _pixel_scale(wcs: WCS | None) -> float:
    if wcs is None:
        return ZTF_PIXEL_SCALE
    scales = wcs.celestial.proj_plane_pixel_scales()
    return float(np.mean([s.to_value("arcsec") for s in scales]))


def _arrow(c: canvas.Canvas, x0: float, y0: float, dx: float, dy: float, label: str) -> None:
    x1, y1 = x0 + dx, y0 + dy
    c.line(x0, y0, x1, y1)
    angle = math.atan2(dy, dx)
    for side in (0.4, -0.4):
        c.line(x1, y1, x1 - 6 * math.cos(angle + side), y1 - 6 * math.sin(angle + side))
    c.drawCentredString(x1 + 9 * math.cos(angle), y1 + 9 * math.sin(angle) - 3, label)


def render_chart(data: ChartData, page: str = "A4") -> bytes:
    """The finding chart of ``data`` as a one-page PDF."""
    width, height = PAGE_SIZES[page]
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=(width, height))
    c.setTitle(f"Finding chart {data.oid}")
    c.setAuthor("Nightjar")
    margin = 1.5 * cm
    title = f"Nightjar finding chart: {data.survey} {data.oid}"
    if data.tns_name:
        title += f"  ({data.tns_name})"
    c.setFont("Helvetica-Bold", 15)
    c.drawString(margin, height - margin, title)

    # ---------------------------------------------------------- reference image
    image, _ = cutout_image(data.reference_fits)
    ny, nx = image.shape
    wcs = _wcs(data.reference_fits)
    scale = _pixel_scale(wcs)
    side = min(width - 2 * margin, 11 * cm)
    x0 = (width - side) / 2
    y0 = height - margin - 1.0 * cm - side
    png = render_png(data.reference_fits, size_px=512)
    c.drawImage(ImageReader(io.BytesIO(png)), x0, y0, side, side)
    c.setStrokeColor(colors.red)
    c.setLineWidth(1.2)
    cx, cy = x0 + side / 2, y0 + side / 2
    if wcs is not None:  # cross on the object's position, wherever the image centre is
        px, py = wcs.world_to_pixel(SkyCoord(data.ra, data.dec, unit="deg"))
        cx, cy = x0 + (float(px) + 0.5) / nx * side, y0 + (float(py) + 0.5) / ny * side
    gap, arm = side * 0.03, side * 0.09
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        c.line(cx + dx * gap, cy + dy * gap, cx + dx * (gap + arm), cy + dy * (gap + arm))
    c.setStrokeColor(colors.black)
    c.setFillColor(colors.black)
    c.setFont("Helvetica", 9)
    ax, ay = x0 + side + 1.5 * cm, y0 + 1.6 * cm  # compass right of the image
    if wcs is not None:
        north, east = _directions(wcs, (nx - 1) / 2, (ny - 1) / 2)
        _arrow(c, ax, ay, north[0] * 30, north[1] * 30, "N")
        _arrow(c, ax, ay, east[0] * 30, east[1] * 30, "E")
        orientation = "orientation from the image's WCS"
    else:
        orientation = (f"orientation unknown (no WCS in the image); {ZTF_PIXEL_SCALE}″/px "
                       "assumed")
    field_arcsec = nx * scale
    bar_arcsec = 10.0 if field_arcsec < 90 else 30.0 if field_arcsec < 300 else 60.0
    bar = bar_arcsec / field_arcsec * side
    c.setLineWidth(2)
    c.line(x0, y0 - 0.4 * cm, x0 + bar, y0 - 0.4 * cm)
    c.drawString(x0 + bar + 0.2 * cm, y0 - 0.5 * cm, f'{bar_arcsec:g}"')
    c.drawString(x0, y0 - 1.0 * cm,
                 f'field {field_arcsec:.0f}" x {ny * scale:.0f}", {scale:.2f}"/pixel; '
                 f"{orientation}")
    c.drawString(x0, y0 - 1.45 * cm, f"reference image: {data.reference_label}")

    # ------------------------------------------------------------------ stamps
    kinds = [k for k in ("science", "template", "difference") if k in data.stamps]
    stamp_side = 4.2 * cm
    sy = y0 - 2.2 * cm - stamp_side
    for i, kind in enumerate(kinds):
        sx = margin + i * (stamp_side + 0.9 * cm) + (width - 2 * margin - 3 * stamp_side
                                                      - 1.8 * cm) / 2
        c.drawImage(ImageReader(io.BytesIO(render_png(data.stamps[kind], size_px=256))),
                    sx, sy, stamp_side, stamp_side)
        c.drawCentredString(sx + stamp_side / 2, sy - 0.4 * cm, kind)

    # -------------------------------------------------------------------- text
    pos = SkyCoord(data.ra, data.dec, unit="deg")
    lines = [
        f"RA, Dec (J2000): {data.ra:.6f}  {data.dec:+.6f} deg",
        f"                 {pos.to_string('hmsdms', sep=':', precision=2)}",
        f"TNS: {data.tns_name or f'no TNS object within {MATCH_RADIUS_ARCSEC:g} arcsec'}",
        f"detections: {data.ndet if data.ndet is not None else '-'};  first "
        f"{_iso(data.firstmjd)};  last {_iso(data.lastmjd)}",
        f"alert: {data.candid if data.candid is not None else '-'}"
        f"{'  (diaSourceId)' if data.survey == 'LSST' else ''}",
    ]
    ty = sy - 1.2 * cm
    c.setFont("Courier", 9)
    for line in lines:
        c.drawString(margin, ty, line)
        ty -= 0.45 * cm
    ty -= 0.2 * cm
    c.setFont("Courier-Bold", 9)
    c.drawString(margin, ty, "band  ndet  brightest   mean    last   (mag)")
    c.setFont("Courier", 9)
    for band in data.magstats:
        ty -= 0.42 * cm
        name = band.get("band") or BANDS.get(band.get("fid", 0), str(band.get("fid")))

        def mag(key: str, stats: Mapping[str, Any] = band) -> str:
            value = stats.get(key)
            return f"{value:7.2f}" if isinstance(value, (int, float)) else "      -"

        c.drawString(margin, ty, f"{name:>4}  {band.get('ndet', 0):>4}  {mag('magmin')}   "
                                 f"{mag('magmean')} {mag('maglast')}")
    c.setFont("Helvetica", 7)
    c.drawString(margin, margin * 0.6,
                 f"generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC by Nightjar")
    c.showPage()
    c.save()
    return out.getvalue()
