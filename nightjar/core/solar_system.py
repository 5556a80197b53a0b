"""Detections of known solar-system objects, of every survey, linked by designation.

An LSST source with no ``diaObjectId`` but an ``ssObjectId`` belongs to a solar-system
object: it is stored with the designation, the ``ssSource`` geometry and the
``mpc_orbits`` orbit, and no object is made for it.  A ZTF candidate whose ``ssnamenr``
names a known minor planet stays a detection of its ZTF object and is *also* linked
here.  Both carry :func:`nightjar.minor_planets.designation_keys`, so one asteroid's
detections from both surveys are found together.

Pure functions: alerts and the stored solar-system objects in, documents out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nightjar.minor_planets import designation_keys
from nightjar.surveys.interface import ParsedAlert

Doc = dict[str, Any]

#: detection fields copied onto a solar-system detection
_DETECTION_FIELDS = ("candid", "survey", "mjd", "band", "fid", "ra", "dec", "magpsf",
                     "sigmapsf", "isdiffpos", "psfFlux", "psfFluxErr")


@dataclass
class SolarSystemWrite:
    """What one batch adds to the solar-system collections."""

    objects: list[Doc] = field(default_factory=list)  #: full replacements, by ssObjectId
    detections: list[Doc] = field(default_factory=list)  #: upserts, by detection key

    @property
    def empty(self) -> bool:
        return not (self.objects or self.detections)


def keys_of(solar: Mapping[str, Any]) -> list[str]:
    """Every designation key a solar-system record offers (its designation and, for LSST,
    the orbit's packed and unpacked provisional designations)."""
    keys: dict[str, None] = {}
    orbit = solar.get("mpc_orbits") or {}
    for text in (solar.get("designation"), orbit.get("designation"),
                 orbit.get("packed_primary_provisional_designation"),
                 orbit.get("unpacked_primary_provisional_designation")):
        keys.update(dict.fromkeys(designation_keys(text)))
    return list(keys)


def detection_document(alert: ParsedAlert) -> Doc:
    """The solar-system detection of one alert (which must carry ``solar_system``)."""
    solar = alert.solar_system or {}
    det = alert.detection
    doc: Doc = {"_id": alert.key, **{k: det.get(k) for k in _DETECTION_FIELDS},
                "oid": alert.oid if alert.has_object else None,
                "designation": solar.get("designation"), "designation_keys": keys_of(solar),
                "ssObjectId": solar.get("ssObjectId")}
    for name in ("ssSource", "ssdistnr", "ssmagnr"):
        if solar.get(name) is not None:
            doc[name] = solar[name]
    return doc


def plan_solar_system(alerts: Iterable[ParsedAlert], stored: Mapping[int, Doc]
                      ) -> SolarSystemWrite:
    """The solar-system documents of a batch's alerts.

    Parameters
    ----------
    alerts : iterable of ParsedAlert
        Every alert of the batch (those without ``solar_system`` are skipped).
    stored : mapping
        The stored solar-system objects of the batch's ``ssObjectId`` s.

    An object's document keeps the earliest first and the latest last detection; its
    designation, ``ssSource`` and orbit come from the latest alert (by mjd, then id),
    so the result does not depend on the order alerts arrive in.
    """
    write = SolarSystemWrite()
    objects: dict[int, Doc] = {k: dict(v) for k, v in stored.items()}
    changed: set[int] = set()
    for alert in alerts:
        solar = alert.solar_system
        if solar is None:
            continue
        write.detections.append(detection_document(alert))
        ss_id = solar.get("ssObjectId")
        if not isinstance(ss_id, int):
            continue
        mjd, candid = alert.mjd, alert.candid
        doc = objects.get(ss_id)
        if doc is None:
            doc = {"_id": ss_id, "ssObjectId": ss_id, "first_mjd": mjd, "last_mjd": mjd,
                   "last_candid": -1}
        latest = (mjd, candid) > (doc["last_mjd"], doc["last_candid"])
        updated = {**doc, "first_mjd": min(doc["first_mjd"], mjd),
                   "last_mjd": max(doc["last_mjd"], mjd)}
        if latest:
            updated.update(last_candid=candid, designation=solar.get("designation"),
                           ssSource=solar.get("ssSource"), mpc_orbits=solar.get("mpc_orbits"),
                           ssObject=solar.get("ssObject"), survey=alert.survey)
        merged_keys = dict.fromkeys([*doc.get("designation_keys", []), *keys_of(solar)])
        updated["designation_keys"] = list(merged_keys)
        if updated != doc:
            objects[ss_id] = updated
            changed.add(ss_id)
    write.objects = [objects[i] for i in sorted(changed)]
    return write
