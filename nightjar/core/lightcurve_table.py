"""One object's light curve as a table of labelled points, and its CSV, VOTable and PNG forms.

A ZTF light curve mixes four kinds of magnitude that must never be confused:

``difference``
    PSF-fit magnitude of the difference image (``magpsf``): the *change* in flux since
    the reference image, as a magnitude.
``corrected``
    Apparent magnitude of the source (``magpsf_corr``, Förster et al. 2021 eq. A26):
    the difference flux added to the reference flux of the nearby source, only for
    detections the correction step could correct.
``forced``
    Forced-photometry magnitude (``fp_hists``), from the difference flux measured at
    the object's position whether or not it was detected.
``upper_limit``
    The 5-sigma limiting magnitude (``diffmaglim``) of an image with no detection.

All are AB magnitudes in the ZTF photometric system [mag]; times are MJD [d].
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

DIFFERENCE = "difference"
CORRECTED = "corrected"
FORCED = "forced"
UPPER_LIMIT = "upper_limit"
KINDS = (DIFFERENCE, CORRECTED, FORCED, UPPER_LIMIT)
KIND_DESCRIPTIONS = {
    DIFFERENCE: "difference-image PSF magnitude (magpsf)",
    CORRECTED: "corrected apparent magnitude (magpsf_corr, Förster et al. 2021 eq. A26)",
    FORCED: "forced-photometry magnitude from the difference flux (fp_hists)",
    UPPER_LIMIT: "5-sigma limiting magnitude of an image without detection (diffmaglim)",
}
MAG_UNIT = "mag"
COLUMNS = ("oid", "mjd", "fid", "band", "kind", "mag", "e_mag", "candid", "isdiffpos")

Point = dict[str, Any]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def lightcurve_points(oid: str, detections: Sequence[Mapping[str, Any]],
                      non_detections: Sequence[Mapping[str, Any]],
                      forced: Sequence[Mapping[str, Any]]) -> list[Point]:
    """Every point of a light curve, labelled with its kind, in time order.

    Parameters
    ----------
    oid : str
        ZTF objectId.
    detections, non_detections, forced : sequence of mapping
        Stored documents: detections (``magpsf``/``sigmapsf`` and, when corrected,
        ``magpsf_corr``/``sigmapsf_corr``), upper limits (``diffmaglim``) and forced
        photometry (``mag``/``e_mag``).  Magnitudes [mag], ``mjd`` [d].

    Returns
    -------
    list of dict
        :data:`COLUMNS` per point; a corrected detection gives two points (difference
        and corrected); forced photometry without a flux measurement gives none.
    """
    points: list[Point] = []

    def add(doc: Mapping[str, Any], kind: str, mag: Any, e_mag: Any,
            candid: Any = None) -> None:
        value = _num(mag)
        if value is None:
            return
        fid = int(doc["fid"])
        points.append({"oid": oid, "mjd": float(doc["mjd"]), "fid": fid,
                       "band": str(doc.get("band") or fid), "kind": kind, "mag": value,
                       "e_mag": _num(e_mag), "candid": None if candid is None else int(candid),
                       "isdiffpos": doc.get("isdiffpos")})

    for d in detections:
        add(d, DIFFERENCE, d.get("magpsf"), d.get("sigmapsf"), d.get("candid", d.get("_id")))
        if d.get("corrected"):
            add(d, CORRECTED, d.get("magpsf_corr"), d.get("sigmapsf_corr"),
                d.get("candid", d.get("_id")))
    for nd in non_detections:
        add(nd, UPPER_LIMIT, nd.get("diffmaglim"), None)
    for fp in forced:
        add(fp, FORCED, fp.get("mag"), fp.get("e_mag"))
    points.sort(key=lambda p: (p["mjd"], KINDS.index(p["kind"]), p["fid"]))
    return points


def to_csv(points: Sequence[Point]) -> str:
    """CSV with a header row (:data:`COLUMNS`); empty cells for missing values."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for p in points:
        writer.writerow({k: "" if p.get(k) is None else p[k] for k in COLUMNS})
    return buf.getvalue()


def to_votable(points: Sequence[Point], oid: str) -> bytes:
    """A VOTable (astropy) with units and UCDs; missing values masked."""
    import numpy as np
    from astropy.io.votable import from_table
    from astropy.table import MaskedColumn, Table

    def column(name: str, dtype: Any, unit: str | None = None,
               description: str = "") -> MaskedColumn:
        values = [p.get(name) for p in points]
        mask = [v is None for v in values]
        fill = 0 if dtype in (int, np.int64) else "" if dtype is str else np.nan
        return MaskedColumn([fill if v is None else v for v in values], name=name, dtype=dtype,
                            unit=unit, mask=mask, description=description)

    table = Table([
        column("mjd", float, "d", "Modified Julian Date of the exposure"),
        column("fid", int, None, "ZTF filter id (1 = g, 2 = r, 3 = i)"),
        column("band", str, None, "ZTF band"),
        column("kind", str, None, "; ".join(f"{k}: {v}" for k, v in KIND_DESCRIPTIONS.items())),
        column("mag", float, MAG_UNIT, "AB magnitude of the kind given by `kind`"),
        column("e_mag", float, MAG_UNIT, "its 1-sigma error"),
        column("candid", np.int64, None, "ZTF candidate id of a detection"),
        column("isdiffpos", str, None, "t: positive difference flux, f: negative"),
    ])
    table.meta["description"] = f"Nightjar light curve of ZTF object {oid}"
    votable = from_table(table)
    votable.resources[0].tables[0].name = oid
    ucds = {"mjd": "time.epoch", "mag": "phot.mag", "e_mag": "stat.error;phot.mag",
            "band": "instr.bandpass", "candid": "meta.id"}
    for f in votable.resources[0].tables[0].fields:
        if f.name in ucds:
            f.ucd = ucds[f.name]
    buf = io.BytesIO()
    votable.to_xml(buf)
    return buf.getvalue()


_BAND_COLOURS = {"g": "#1f9e3a", "r": "#d62728", "i": "#8c564b"}


def plot_png(points: Sequence[Point], oid: str, dpi: int = 100) -> bytes:
    """The light curve as the ALeRCE explorer shows it, as PNG bytes.

    Left panel: difference magnitudes (filled circles) and corrected apparent
    magnitudes (open diamonds) per band with error bars, upper limits as downward
    triangles.  Right panel, sharing the time axis: forced photometry apart, so it is
    never read as detections.  Magnitudes increase downwards.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=dpi, layout="constrained")
    ax_det, ax_fp = fig.subplots(1, 2, sharex=True)
    for fid in sorted({p["fid"] for p in points}):
        band = next(p["band"] for p in points if p["fid"] == fid)
        colour = _BAND_COLOURS.get(band, "#444444")

        def series(kind: str, f: int = fid) -> tuple[list[float], list[float], list[float]]:
            chosen = [p for p in points if p["fid"] == f and p["kind"] == kind]
            return ([p["mjd"] for p in chosen], [p["mag"] for p in chosen],
                    [p["e_mag"] or 0.0 for p in chosen])

        t, m, e = series(DIFFERENCE)
        if t:
            ax_det.errorbar(t, m, yerr=e, fmt="o", ms=4, color=colour,
                            label=f"{band} difference")
        t, m, e = series(CORRECTED)
        if t:
            ax_det.errorbar(t, m, yerr=e, fmt="D", ms=4, mfc="none", color=colour,
                            label=f"{band} corrected")
        t, m, _ = series(UPPER_LIMIT)
        if t:
            ax_det.scatter(t, m, marker="v", s=14, color=colour, alpha=0.5,
                           label=f"{band} upper limit")
        t, m, e = series(FORCED)
        if t:
            ax_fp.errorbar(t, m, yerr=e, fmt="s", ms=3, color=colour,
                           label=f"{band} forced photometry")
    for ax, title in ((ax_det, "detections and upper limits"),
                      (ax_fp, "forced photometry")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("MJD [d]")
        ax.set_ylabel("magnitude [AB mag]")
        if not ax.yaxis_inverted():
            ax.invert_yaxis()
        if ax.has_data():
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no points", transform=ax.transAxes, ha="center")
            ax.set_yticks([])
    fig.suptitle(f"ZTF {oid}", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
