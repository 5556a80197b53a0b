"""Cross-survey association: the same source seen by two surveys, linked both ways.

The ANTARES design's *locus*: an LSST object and a ZTF object whose mean positions are
within :data:`COUNTERPART_RADIUS_ARCSEC` of each other are the same astrophysical
source, so a ZTF light curve can be continued by LSST.  Objects of one survey are never
merged (each survey's ids and statistics stay its own); they are *linked*, one link
document per direction.  Links are made when an object is first stored, against the
stored objects of the other surveys and the batch's other new objects.

Pure functions: positions in, link documents out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nightjar.sky import separation_deg

#: largest separation of two surveys' objects that are linked [arcsec]
COUNTERPART_RADIUS_ARCSEC = 1.5

Doc = dict[str, Any]


@dataclass(frozen=True)
class Placed:
    """An object as association sees it: id, survey, mean position [deg], anchor pixel."""

    oid: str
    survey: str
    ra: float
    dec: float
    hpx: int


def counterpart_id(oid: str, other_oid: str) -> str:
    return f"{oid}|{other_oid}"


def link(a: Placed, b: Placed, separation_arcsec: float) -> Doc:
    """The link document from ``a`` to ``b`` (stored with ``a``'s shard key)."""
    return {"_id": counterpart_id(a.oid, b.oid), "oid": a.oid, "hpx": a.hpx,
            "survey": a.survey, "other_oid": b.oid, "other_survey": b.survey,
            "separation_arcsec": separation_arcsec}


def associate(new: Sequence[Placed], others: Iterable[Placed],
              radius_arcsec: float = COUNTERPART_RADIUS_ARCSEC) -> list[Doc]:
    """Links (both directions) of each new object to every object of another survey
    within ``radius_arcsec``: among ``others`` (stored) and among the new ones.

    Parameters
    ----------
    new : sequence of Placed
        Objects stored for the first time in this batch.
    others : iterable of Placed
        Stored objects near them (a superset is fine: the distance is checked here).
    """
    links: dict[str, Doc] = {}
    candidates = {p.oid: p for p in others}
    candidates.update({p.oid: p for p in new})
    for a in new:
        for b in candidates.values():
            if b.survey == a.survey or b.oid == a.oid:
                continue
            sep = float(separation_deg(a.ra, a.dec, b.ra, b.dec)) * 3600.0
            if sep <= radius_arcsec:
                for x, y in ((a, b), (b, a)):
                    doc = link(x, y, sep)
                    links[doc["_id"]] = doc
    return [links[k] for k in sorted(links)]
