"""ALeRCE's light-curve classifier taxonomy (Sánchez-Sáez et al. 2021), names as ALeRCE's."""

from __future__ import annotations

TOP_CLASSIFIER = "lc_classifier_top"
FULL_CLASSIFIER = "lc_classifier"
#: registry name of the LSST light-curve model (its rows carry the names above too)
LSST_CLASSIFIER = "lsst_lc_classifier"

HIERARCHY: dict[str, tuple[str, ...]] = {
    "Transient": ("SNIa", "SNIbc", "SNII", "SLSN"),
    "Stochastic": ("QSO", "AGN", "Blazar", "YSO", "CV/Nova"),
    "Periodic": ("LPV", "E", "DSCT", "RRL", "CEP", "Periodic-Other"),
}
TOP_CLASSES: tuple[str, ...] = tuple(HIERARCHY)
CLASSES: tuple[str, ...] = tuple(c for cs in HIERARCHY.values() for c in cs)
BRANCH_CLASSIFIERS = {top: f"lc_classifier_{top.lower()}" for top in HIERARCHY}
TOP_OF = {c: top for top, cs in HIERARCHY.items() for c in cs}

#: spellings found in labelled sets (ALeRCE's older tables, catalogue types) -> class
ALIASES = {"Ceph": "CEP", "EB": "E", "EA": "E", "EW": "E", "RRLyr": "RRL", "CV": "CV/Nova",
           "Nova": "CV/Nova", "SNIIn": "SNII", "SNIIb": "SNII", "SNIc": "SNIbc",
           "SNIb": "SNIbc", "Mira": "LPV", "DSCT/SXPHE": "DSCT"}


def canonical(label: str) -> str | None:
    """The taxonomy's name for a label, or None when it is not one of the 15 classes."""
    label = str(label).strip()
    name = ALIASES.get(label, label)
    return name if name in TOP_OF else None
