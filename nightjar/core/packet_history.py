"""Read back only what an alert packet does not repeat.

An LSST alert repeats up to 12 months of its object's history (``prvDiaSources``,
``prvDiaForcedSources``, the non-detection limits).  Reading those rows back from the
store for every alert is the largest cost of ingesting a Rubin visit whose objects are
known (each alert reads ~100 stored rows to learn what its packet already says).  For a
survey whose rules say a stored detection can be rebuilt from a packet's copy
(``PhotometryRules.packets_repeat_history``), ingestion instead reads:

* the object's light-curve index (:func:`nightjar.core.lightcurve.light_curve_index`):
  every stored detection with the fields the precedence reads, the stored upper limits
  with their times, the stored forced-photometry ids;
* the stored rows older than what the batch's packets hold (:class:`PacketWindow`), and
  only when the index says there are some;

and rebuilds the rest from the packets (:func:`complete_from_packets`).  Whenever the
index names a stored row that neither the read nor the packets supply, the object is read
whole instead, so the merge sees exactly what a full read would have given it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nightjar.core.lightcurve import ObjectHistory, collect
from nightjar.surveys.interface import CORE_LIMIT_FIELDS, ParsedAlert, PhotometryRules


@dataclass(frozen=True)
class PacketWindow:
    """From when the packets of one object in a batch hold its history [MJD].

    Stored rows of a collection at or after its time are rebuilt from the packets; older
    ones are read (``inf``: all of them).
    """

    detections: float = math.inf
    non_detections: float = math.inf

    def of(self, collection: str) -> float:
        return float(getattr(self, collection))


def packet_window(alerts: Sequence[ParsedAlert]) -> PacketWindow:
    """The earliest detection and upper limit the packets of one object's alerts hold."""
    return PacketWindow(
        detections=min((float(d["mjd"]) for a in alerts
                        for d in (a.detection, *a.prv_detections)), default=math.inf),
        non_detections=min((float(nd["mjd"]) for a in alerts for nd in a.non_detections),
                           default=math.inf))


def packet_windows(groups: Mapping[str, Sequence[ParsedAlert]],
                   rules_of: Mapping[str, PhotometryRules]) -> dict[str, PacketWindow]:
    """The window of each object whose survey's packets repeat its history."""
    return {oid: packet_window(alerts) for oid, alerts in groups.items()
            if alerts and rules_of[alerts[0].survey].packets_repeat_history}


def older_than_window(index: Mapping[str, Any], window: PacketWindow) -> list[str]:
    """The light-curve collections with stored rows older than ``window`` (to be read)."""
    return [coll for coll in ("detections", "non_detections")
            if any(entry[1] < window.of(coll) for entry in index.get(coll) or ())]


def complete_from_packets(history: ObjectHistory, alerts: Sequence[ParsedAlert],
                          rules: PhotometryRules) -> ObjectHistory | None:
    """The history a full read would have given, rebuilt from the index and the packets.

    Parameters
    ----------
    history : ObjectHistory
        What was read: the object, its index (``history.index``) and the stored rows
        older than the packets' window.
    alerts : sequence of ParsedAlert
        The object's alerts in this batch (their packets).
    rules : PhotometryRules
        The survey's rules; ``apparent`` gives a rebuilt detection its derived fields.

    Returns
    -------
    ObjectHistory or None
        The completed history; unchanged when it has no index (it was read whole); None
        when the index names a stored row that neither the read nor the packets hold (read
        the object whole then, without completing it).
    """
    index = history.index
    if index is None:
        return history
    offered, limits, _ = collect(alerts)
    detections = dict(history.detections)
    for key, _mjd, has_stamp, parent_candid, withdrawn, time_withdrawn in index["detections"]:
        if key in detections:
            continue
        copy = offered.get(key)
        if copy is None:
            return None
        stored = {**copy, "has_stamp": has_stamp, "parent_candid": parent_candid,
                  "withdrawn": withdrawn, "timeWithdrawnMjdTai": time_withdrawn,
                  "hpx": index["hpx"]}
        stored.pop("schema_id", None)  # the packet's own, not the stored row's
        detections[key] = rules.apparent([stored])[0]
    non_detections = dict(history.non_detections)
    for nd_id, _mjd in index["non_detections"]:
        if nd_id in non_detections:
            continue
        limit = limits.get(nd_id)
        if limit is None:
            return None
        non_detections[nd_id] = {k: limit[k] for k in CORE_LIMIT_FIELDS if k in limit}
    return replace(history, detections=detections, non_detections=non_detections,
                   forced_ids={*history.forced_ids, *index["forced_photometry"]})
