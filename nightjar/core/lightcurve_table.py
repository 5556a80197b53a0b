"""One object's light curve as a table of labelled points, and its CSV, VOTable and PNG forms.

A light curve mixes four kinds of measurement that must never be confused, the same for
ZTF and LSST:

``difference``
    PSF-fit magnitude of the difference image (``magpsf``): the *change* in flux since
    the reference image, as a magnitude; its flux is the signed ``psfFlux`` [nJy].
``corrected``
    Apparent magnitude of the source (``magpsf_corr``): ZTF, the difference flux added
    to the reference source's (Förster et al. 2021 eq. A26), for detections the
    correction step could correct; LSST, Rubin's forced flux on the science image
    (``scienceFlux``).  Its flux is ``scienceFlux`` [nJy].
``forced``
    Forced-photometry magnitude (ZTF ``fp_hists``, LSST ``prvDiaForcedSources``), from
    the difference flux measured at the object's position whether or not it was
    detected (the flux may be negative; the magnitude exists where it is positive).
``upper_limit``
    The 5-sigma limiting magnitude (``diffmaglim``) of an image with no detection (for
    LSST derived from forced photometry below S/N 3, ``derived``); its flux is the
    limiting flux.

All are AB magnitudes [mag] and fluxes in nJy (``F = 10**((31.4 - m)/2.5)``); times are
MJD in UTC [d].  Each point says its survey and band, so the light curves of linked
objects of two surveys can be combined.
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
    DIFFERENCE: "difference-image PSF magnitude (magpsf; flux: psfFlux)",
    CORRECTED: "apparent magnitude (magpsf_corr: ZTF's correction, Förster et al. 2021 "
               "eq. A26; LSST's scienceFlux)",
    FORCED: "forced-photometry magnitude from the difference flux (ZTF fp_hists, LSST "
            "prvDiaForcedSources)",
    UPPER_LIMIT: "5-sigma limiting magnitude of an image without detection (diffmaglim; "
                 "LSST: derived from forced photometry below S/N 3)",
}
MAG_UNIT = "mag"
FLUX_UNIT = "nJy"
COLUMNS = ("oid", "survey", "mjd", "fid", "band", "kind", "mag", "e_mag", "flux", "e_flux",
           "candid", "isdiffpos", "derived")

Point = dict[str, Any]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def lightcurve_points(oid: str, detections: Sequence[Mapping[str, Any]],
                      non_detections: Sequence[Mapping[str, Any]],
                      forced: Sequence[Mapping[str, Any]], survey: str = "ZTF") -> list[Point]:
    """Every point of a light curve, labelled with its kind, in time order.

    Parameters
    ----------
    oid : str
        The object id (ZTF objectId, LSST diaObjectId).
    detections, non_detections, forced : sequence of mapping
        Stored documents: detections (``magpsf``/``sigmapsf``, ``psfFlux``/``psfFluxErr``
        and, when corrected, ``magpsf_corr``/``sigmapsf_corr``, ``scienceFlux``), upper
        limits (``diffmaglim``) and forced photometry (``mag``/``e_mag``, ``psfFlux``).
        Magnitudes [mag], fluxes [nJy], ``mjd`` [d].
    survey : str
        The object's survey (documents carry their own; this is for older ones).

    Returns
    -------
    list of dict
        :data:`COLUMNS` per point; a corrected detection gives two points (difference
        and corrected); forced photometry without any measurement gives none; detections
        the survey withdrew are left out.
    """
    points: list[Point] = []

    def add(doc: Mapping[str, Any], kind: str, mag: Any, e_mag: Any, flux: Any = None,
            e_flux: Any = None, candid: Any = None) -> None:
        value, flux_value = _num(mag), _num(flux)
        if value is None and flux_value is None:
            return
        fid = int(doc["fid"])
        points.append({"oid": oid, "survey": str(doc.get("survey") or survey),
                       "mjd": float(doc["mjd"]), "fid": fid,
                       "band": str(doc.get("band") or fid), "kind": kind, "mag": value,
                       "e_mag": _num(e_mag), "flux": flux_value, "e_flux": _num(e_flux),
                       "candid": None if candid is None else int(candid),
                       "isdiffpos": doc.get("isdiffpos"),
                       "derived": bool(doc.get("derived")) if kind == UPPER_LIMIT else None})

    for d in detections:
        if d.get("withdrawn"):
            continue
        candid = d.get("candid", d.get("_id"))
        add(d, DIFFERENCE, d.get("magpsf"), d.get("sigmapsf"), d.get("psfFlux"),
            d.get("psfFluxErr"), candid)
        if d.get("corrected"):
            add(d, CORRECTED, d.get("magpsf_corr"), d.get("sigmapsf_corr"),
                d.get("scienceFlux"), d.get("scienceFluxErr"), candid)
    for nd in non_detections:
        limit = _num(nd.get("diffmaglim"))
        add(nd, UPPER_LIMIT, limit, None,
            None if limit is None else 10.0 ** ((31.4 - limit) / 2.5))
    for fp in forced:
        if not fp.get("withdrawn"):
            add(fp, FORCED, fp.get("mag"), fp.get("e_mag"), fp.get("psfFlux"),
                fp.get("psfFluxErr"))
    points.sort(key=lambda p: (p["mjd"], KINDS.index(p["kind"]), p["survey"], p["fid"]))
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
        fill = (0 if dtype in (int, np.int64) else "" if dtype is str else False
                if dtype is bool else np.nan)
        return MaskedColumn([fill if v is None else v for v in values], name=name, dtype=dtype,
                            unit=unit, mask=mask, description=description)

    table = Table([
        column("survey", str, None, "ZTF or LSST"),
        column("mjd", float, "d", "Modified Julian Date of the exposure (UTC)"),
        column("fid", int, None, "filter id: ZTF 1 = g, 2 = r, 3 = i; LSST g r i z y = 1..5, "
                                 "u = 6"),
        column("band", str, None, "band (ZTF g r i; LSST u g r i z y)"),
        column("kind", str, None, "; ".join(f"{k}: {v}" for k, v in KIND_DESCRIPTIONS.items())),
        column("mag", float, MAG_UNIT, "AB magnitude of the kind given by `kind`"),
        column("e_mag", float, MAG_UNIT, "its 1-sigma error"),
        column("flux", float, FLUX_UNIT, "flux of the kind (difference: signed psfFlux; "
                                         "corrected: scienceFlux; upper limit: the limit)"),
        column("e_flux", float, FLUX_UNIT, "its 1-sigma error"),
        column("candid", np.int64, None, "id of a detection (ZTF candid, LSST diaSourceId)"),
        column("isdiffpos", str, None, "t: positive difference flux, f: negative"),
        column("derived", bool, None, "an upper limit Nightjar derived (LSST)"),
    ])
    surveys = sorted({str(p["survey"]) for p in points}) or ["ZTF"]
    table.meta["description"] = f"Nightjar light curve of {'+'.join(surveys)} object {oid}"
    votable = from_table(table)
    votable.resources[0].tables[0].name = oid
    ucds = {"mjd": "time.epoch", "mag": "phot.mag", "e_mag": "stat.error;phot.mag",
            "flux": "phot.flux.density", "e_flux": "stat.error;phot.flux.density",
            "band": "instr.bandpass", "candid": "meta.id"}
    for f in votable.resources[0].tables[0].fields:
        if f.name in ucds:
            f.ucd = ucds[f.name]
    buf = io.BytesIO()
    votable.to_xml(buf)
    return buf.getvalue()


#: ZTF's colours as ALeRCE draws them; LSST's from Rubin's plotting convention (u violet
#: to y dark red), lighter markers for LSST so both surveys read apart on one plot
_BAND_COLOURS = {("ZTF", "g"): "#1f9e3a", ("ZTF", "r"): "#d62728", ("ZTF", "i"): "#8c564b",
                 ("LSST", "u"): "#56b4e9", ("LSST", "g"): "#009e73", ("LSST", "r"): "#f0e442",
                 ("LSST", "i"): "#cc79a7", ("LSST", "z"): "#d55e00", ("LSST", "y"): "#7f2704"}


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
    groups = sorted({(p["survey"], p["band"]) for p in points},
                    key=lambda sb: (sb[0], "ugrizy".find(sb[1]) if sb[1] in "ugrizy" else 9))
    several = len({s for s, _ in groups}) > 1
    for survey, band in groups:
        colour = _BAND_COLOURS.get((survey, band), "#444444")
        name = f"{survey} {band}" if several else band

        def series(kind: str, key: tuple[str, str] = (survey, band)
                   ) -> tuple[list[float], list[float], list[float]]:
            chosen = [p for p in points if (p["survey"], p["band"]) == key
                      and p["kind"] == kind and p["mag"] is not None]
            return ([p["mjd"] for p in chosen], [p["mag"] for p in chosen],
                    [p["e_mag"] or 0.0 for p in chosen])

        t, m, e = series(DIFFERENCE)
        if t:
            ax_det.errorbar(t, m, yerr=e, fmt="o", ms=4, color=colour,
                            label=f"{name} difference")
        t, m, e = series(CORRECTED)
        if t:
            ax_det.errorbar(t, m, yerr=e, fmt="D", ms=4, mfc="none", color=colour,
                            label=f"{name} apparent")
        t, m, _ = series(UPPER_LIMIT)
        if t:
            ax_det.scatter(t, m, marker="v", s=14, color=colour, alpha=0.5,
                           label=f"{name} upper limit")
        t, m, e = series(FORCED)
        if t:
            ax_fp.errorbar(t, m, yerr=e, fmt="s", ms=3, color=colour,
                           label=f"{name} forced photometry")
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
    surveys = "+".join(sorted({str(p["survey"]) for p in points})) or "ZTF"
    fig.suptitle(f"{surveys} {oid}", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
