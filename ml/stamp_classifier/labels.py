"""Labels for real alerts from strong evidence only, with the rule that gave each.

ALeRCE's 50k labelled stamps are not reachable here, so real labels are derived from
what the alert and public catalogues say.  The rules, in order (the first that applies
wins; an alert no rule covers stays unlabelled):

1. **asteroid**: Fink's ``roid`` = 3 (known solar-system object), or ZTF's own match to
   a known minor planet, ``0 <= ssdistnr <= 5`` arcsec.
2. **bogus**: ``rb < 0.2`` (and ``drb < 0.1`` where the alert has it) *and* artefact
   morphology in the difference cutout (:func:`artefact_morphology`: a dipole, a hit
   sharper than the PSF, masked pixels at the centre).
3. **SN**: the object is a spectroscopically classified supernova (a TNS object with
   a type, or ALeRCE's spectroscopic labels), or SIMBAD says ``SN`` (Fink's
   ``cdsxmatch``).
4. **AGN**: SIMBAD QSO/Seyfert/BL Lac/Blazar/LINER/AGN, or the object is in the CTAO
   blazar list of ZTF counterparts, or a GCVS/VSX entry of an AGN type within 1.5".
5. **VS**: a stellar PS1 counterpart (``sgscore1 > 0.5``, ``distpsnr1 < 1.5`` arcsec)
   and either a SIMBAD variable/stellar type, or a GCVS/VSX variable star within 1.5".

Pure functions (:func:`label_alert`) plus a catalogue matcher for the files of
``shared/data/catalogs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.stamp_classifier.preprocess import as_float

MATCH_RADIUS_ARCSEC = 1.5
ASTEROID_RADIUS_ARCSEC = 5.0

#: SIMBAD main types (as Fink's ``cdsxmatch`` spells them) per class
SIMBAD_AGN = frozenset({"QSO", "Seyfert", "Seyfert_1", "Seyfert_2", "BLLac", "Blazar", "AGN",
                        "LINER", "RadioG?", "BLLac_Candidate", "Blazar_Candidate"})
SIMBAD_SN = frozenset({"SN"})
#: SIMBAD types of stars: an alert on a stellar counterpart of one of these is a
#: variable star (ALeRCE's VS class covers all stellar variability)
SIMBAD_STARS = frozenset({
    "V*", "V*?", "EB*", "EB*_Candidate", "RRLyr", "Cepheid", "delSct", "PulsV*delSct",
    "PulsV*bCep", "PulsV*WVir", "gammaDor", "Mira", "LPV*", "SB*", "EllipVar", "Irregular_V*",
    "Orion_V*", "Eruptive*", "TTau*", "Candidate_TTau*", "Ae*", "Be*", "Em*", "CataclyV*",
    "Candidate_CV*", "Nova", "Symbiotic*", "WD*", "Candidate_WD*", "PM*", "HB*",
    "Candidate_HB*", "AGB*", "Candidate_AGB*", "post-AGB*", "C*", "Candidate_C*", "S*",
    "RedSG*", "BlueSG*", "YellowSG*", "Candidate_RSG*", "Candidate_BSG*", "WR*", "low-mass*",
    "HotSubdwarf", "Candidate_Hsd", "Pec*", "YSO", "Candidate_YSO", "**", "Star", "RGB*",
    "BYDra", "RSCVn", "Flare*", "XB", "HMXB", "LMXB", "Candidate_Mi*", "Mi*"})
#: GCVS / VSX variability types that are not variable stars
_CATALOGUE_AGN_TYPES = ("AGN", "QSO", "BLLAC", "BLAZAR", "GAL", "SEYFERT")
_CATALOGUE_SKIP_TYPES = ("SN", "*", "NON-CV", "APER", "MISC", "VAR")


@dataclass(frozen=True)
class Label:
    label: str
    rule: str  #: the evidence, in words
    family: str = ""  #: which rule of the module docstring gave it (short name)


def artefact_morphology(difference: np.ndarray, fwhm: float) -> str | None:
    """Why a difference cutout looks like an artefact, or None.

    Parameters
    ----------
    difference : numpy.ndarray
        The difference cutout [counts], source at the centre.
    fwhm : float
        Seeing [pixels] (the alert's ``fwhm``).

    Returns
    -------
    str or None
        ``"masked pixels at the centre"``, ``"dipole"`` (a negative lobe at least half
        as deep as the positive peak within 4 pixels), ``"sharper than the PSF"`` (the
        peak pixel holds more than 60 % of the flux of its 3x3 box while the seeing is
        above 1.5 pixels), or None.
    """
    image = np.asarray(difference, dtype=np.float64)
    cy, cx = image.shape[0] // 2, image.shape[1] // 2
    core = image[cy - 4:cy + 5, cx - 4:cx + 5]
    if core.size == 0:
        return "empty cutout"
    if not np.isfinite(core[2:7, 2:7]).all():
        return "masked pixels at the centre"
    finite = image[np.isfinite(image)]
    core = core - np.median(finite)
    peak, trough = np.nanmax(core), np.nanmin(core)
    if peak > 0 and trough < -0.5 * peak:
        return "dipole"
    py, px = np.unravel_index(int(np.nanargmax(core)), core.shape)
    box = core[max(py - 1, 0):py + 2, max(px - 1, 0):px + 2]
    flux = np.nansum(np.clip(box, 0, None))
    if fwhm > 1.5 and flux > 0 and peak / flux > 0.6:
        return "sharper than the PSF"
    return None


def _catalogue_class(var_type: str) -> str | None:
    t = var_type.strip().upper()
    if not t:
        return None
    if t.startswith(_CATALOGUE_AGN_TYPES):
        return "AGN"
    if t.startswith(_CATALOGUE_SKIP_TYPES):
        return None
    return "VS"


def label_alert(candidate: Mapping[str, Any], *, difference: np.ndarray | None = None,
                cdsxmatch: str | None = None, roid: int | None = None,
                known_class: str | None = None, known_source: str = "",
                catalogue_type: tuple[str, str, float] | None = None) -> Label | None:
    """The label of one alert by the rules of this module, or None.

    Parameters
    ----------
    candidate : mapping
        The alert's ``candidate`` record.
    difference : numpy.ndarray, optional
        The difference cutout (for the bogus rule).
    cdsxmatch, roid : optional
        Fink's SIMBAD type and solar-system flag, where known.
    known_class : str, optional
        A stamp class from a spectroscopic or curated source (TNS, ALeRCE labels, the
        CTAO blazar list), described by ``known_source``.
    catalogue_type : (catalogue, type, separation [arcsec]), optional
        The nearest GCVS/VSX entry within :data:`MATCH_RADIUS_ARCSEC`.
    """
    ssdist = as_float(candidate.get("ssdistnr"))
    if roid == 3:
        return Label("asteroid", "Fink roid = 3 (known solar-system object)", "Fink roid")
    if 0 <= ssdist <= ASTEROID_RADIUS_ARCSEC:
        return Label("asteroid", f"ZTF ssdistnr = {ssdist:.1f} arcsec from a known "
                                 f"minor planet", "ZTF ssdistnr")
    rb, drb = as_float(candidate.get("rb")), as_float(candidate.get("drb"))
    if difference is not None and rb < 0.2 and not drb >= 0.1:
        why = artefact_morphology(difference, as_float(candidate.get("fwhm")))
        if why:
            return Label("bogus", f"rb = {rb:.2f}" + (f", drb = {drb:.3f}" if drb == drb
                                                      else "") + f" and {why}",
                         f"low rb and {why}")
    if known_class in ("SN", "AGN"):
        return Label(known_class, known_source, "curated list (TNS, ALeRCE, CTAO)")
    if cdsxmatch in SIMBAD_SN:
        return Label("SN", f"SIMBAD type {cdsxmatch} within 1.5 arcsec (Fink)", "SIMBAD type")
    if cdsxmatch in SIMBAD_AGN:
        return Label("AGN", f"SIMBAD type {cdsxmatch} within 1.5 arcsec (Fink)",
                     "SIMBAD type")
    if catalogue_type is not None and _catalogue_class(catalogue_type[1]) == "AGN":
        name, var_type, sep = catalogue_type
        return Label("AGN", f"{name} type {var_type.strip()} at {sep:.2f} arcsec",
                     "GCVS/VSX AGN type")
    sg, dist = as_float(candidate.get("sgscore1")), as_float(candidate.get("distpsnr1"))
    stellar = sg > 0.5 and 0 <= dist < MATCH_RADIUS_ARCSEC
    if stellar and known_class == "VS":
        return Label("VS", known_source, "curated list (ALeRCE) on a PS1 star")
    if stellar and cdsxmatch in SIMBAD_STARS:
        return Label("VS", f"SIMBAD type {cdsxmatch} (Fink) on a PS1 star (sgscore1 "
                           f"{sg:.2f} at {dist:.2f} arcsec)", "SIMBAD stellar type on a PS1 star")
    if stellar and catalogue_type is not None and _catalogue_class(catalogue_type[1]) == "VS":
        name, var_type, sep = catalogue_type
        return Label("VS", f"{name} variable ({var_type.strip()}) at {sep:.2f} arcsec on a "
                           f"PS1 star (sgscore1 {sg:.2f})", "GCVS/VSX variable on a PS1 star")
    return None


class VariableCatalogues:
    """GCVS and VSX positions and types, for the nearest entry to alerts."""

    def __init__(self, catalogs: Path):
        import pyarrow.parquet as pq
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        self._tables: list[tuple[str, Any, np.ndarray]] = []
        for name, file, ra, dec, kind in (("GCVS", "gcvs.parquet", "ra", "dec", "VarType"),
                                          ("VSX", "vsx.parquet", "RAJ2000", "DEJ2000",
                                           "VType")):
            path = catalogs / file
            if not path.exists():
                continue
            table = pq.read_table(path, columns=[ra, dec, kind])
            ras = table[ra].to_numpy(zero_copy_only=False).astype(float)
            decs = table[dec].to_numpy(zero_copy_only=False).astype(float)
            ok = np.isfinite(ras) & np.isfinite(decs)
            coords = SkyCoord(ras[ok] * u.deg, decs[ok] * u.deg)
            types = np.asarray(table[kind].to_pylist(), dtype=object)[ok]
            self._tables.append((name, coords, types))

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self._tables]

    def nearest(self, ra: np.ndarray, dec: np.ndarray
                ) -> list[tuple[str, str, float] | None]:
        """The nearest GCVS/VSX entry within 1.5" of each position: (catalogue, type,
        separation [arcsec]), or None."""
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        out: list[tuple[str, str, float] | None] = [None] * len(ra)
        if not len(ra):
            return out
        targets = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
        for name, coords, types in self._tables:
            idx, sep, _ = targets.match_to_catalog_sky(coords)
            for i, (j, s) in enumerate(zip(idx, sep.arcsec, strict=True)):
                current = out[i]
                if s <= MATCH_RADIUS_ARCSEC and (current is None or s < current[2]):
                    out[i] = (name, str(types[j] or ""), float(s))
        return out
