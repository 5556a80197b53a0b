"""The pipeline's xmatch step (paper §4.5): nearest catalogue source per catalogue.

A per-object hook for :class:`nightjar.runner.topology.Topology`: for a new object, the nearest
source of each configured catalogue within that catalogue's default radius of the
object's mean position; an object already stored keeps the matches it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from nightjar.context.catalogs import CatalogStore
from nightjar.core.lightcurve import ObjectState


def match_document(store: CatalogStore, catalogs: Sequence[str], ra: float,
                   dec: float) -> dict[str, dict[str, Any]]:
    """``{catalogue: {source_id, ra, dec, distance_arcsec, columns}}`` of the matches.

    Parameters
    ----------
    ra, dec : float
        Object position [deg].
    """
    out: dict[str, dict[str, Any]] = {}
    for name in catalogs:
        found = store.nearest(name, ra, dec)
        if found is not None:
            out[name] = {"source_id": found.source_id, "ra": found.ra, "dec": found.dec,
                         "distance_arcsec": found.distance_arcsec, "columns": found.columns}
    return out


class CrossmatchHook:
    """The xmatch hook over an injected :class:`CatalogStore`.

    Parameters
    ----------
    store : CatalogStore
        The imported catalogues.
    catalogs : sequence of str, optional
        Which catalogues to match (default: every imported one).
    """

    def __init__(self, store: CatalogStore, catalogs: Sequence[str] | None = None):
        self.store = store
        self.catalogs = list(catalogs) if catalogs is not None else list(store.infos)
        for name in self.catalogs:
            store.info(name)  # unknown names fail at start-up, not per alert

    def __call__(self, state: ObjectState) -> ObjectState:
        stored = state.history.object_doc
        if stored is not None:
            return replace(state, xmatch=dict(stored.get("xmatch", {})))
        stats = state.statistics
        return replace(state, xmatch=match_document(self.store, self.catalogs,
                                                    stats["meanra"], stats["meandec"]))
