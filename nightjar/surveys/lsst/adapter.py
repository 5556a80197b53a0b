"""Rubin alert packets of schema 7.0 to 11.x, through one adapter, to Nightjar's model.

What changed between the versions, and how each is read:

=====  ======================================================================
7.x    ``alertId``; ``prvDiaNondetectionLimits`` (``diaNoise`` -> upper limits);
       ``ssObject``; no ``scienceFlux`` on ``diaSource`` (no apparent magnitude)
8.0    ``diaSourceId`` replaces ``alertId``; no upper limits in the packet (derived
       from forced photometry, :mod:`nightjar.surveys.lsst.photometry`);
       ``ssSource`` + ``MPCORB`` replace ``ssObject``; ``scienceFlux`` on sources
9.0    time fields renamed ``…MjdTai``; ``timeWithdrawnMjdTai`` (withdrawn sources
       are kept and marked ``withdrawn``)
10.0   ``MPCORB`` renamed ``mpc_orbits``; ``ssSource.designation``
11.0   several ints non-nullable; 11.1 adds trail and reliability-version fields
=====  ======================================================================

A packet of another version (3.0 to 6.1, or one newer than 11.x) is rejected with a
reason naming the version, never half-stored; so is a packet lacking what every
version since 7.0 has (the reason names the fields, e.g. for ELAsTiCC simulations,
which use pre-5.0 names: ``midPointTai``, ``filterName``, ``psFlux``, ``decl``).

Ids: the object is ``diaSource.diaObjectId`` (falling back to ``diaObject.diaObjectId``,
also a long: never a float column), written as a decimal string; a source with no
object (0 or null) and an ``ssObjectId`` is a solar-system detection.  Pure functions.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import fastavro

from nightjar.surveys.interface import (
    LSST,
    AlertRejected,
    AlertSource,
    DeadLetter,
    ParsedAlert,
    clean_record,
    detection_key,
)
from nightjar.surveys.lsst.photometry import (
    BANDS,
    FIDS,
    difference_photometry,
    five_sigma_limit,
    is_limit,
    tai_minus_utc,
    utc_mjd,
)
from nightjar.surveys.lsst.schemas import LsstSchemas, ResolvedSchema
from nightjar.surveys.lsst.wire import schema_id_of, unframe, version_of_name

Doc = dict[str, Any]

#: the schema majors the adapter maps
SUPPORTED_MAJORS = range(7, 12)
SUPPORTED = "7.0 to 11.x"
#: diaSource fields every supported version has
REQUIRED_SOURCE_FIELDS = ("diaSourceId", "midpointMjdTai", "band", "ra", "dec", "psfFlux",
                          "psfFluxErr")
#: what pre-5.0 schemas (and ELAsTiCC) call them
OLD_NAMES = {"midPointTai": "midpointMjdTai", "filterName": "band", "decl": "dec",
             "psFlux": "psfFlux", "psFluxErr": "psfFluxErr"}
#: MJDs outside this range are not Rubin times [d] (1990 to 2132)
MJD_RANGE = (47892.0, 100000.0)
_CUTOUT_FIELDS = {"science": "cutoutScience", "template": "cutoutTemplate",
                  "difference": "cutoutDifference"}
def forced_id(oid: str, forced_source_id: int) -> str:
    return f"{oid}_{forced_source_id}"


def limit_id(oid: str, band: str, mjd: float) -> str:
    return f"{oid}_{band}_{mjd:.8f}"


def _source_problem(src: Mapping[str, Any]) -> str | None:
    """Why a diaSource cannot be a detection (None when it can)."""
    missing = [n for n in REQUIRED_SOURCE_FIELDS if src.get(n) is None]
    if missing:
        return f"diaSource lacks usable {', '.join(missing)} (null or NaN)"
    if not isinstance(src["diaSourceId"], int) or src["diaSourceId"] <= 0:
        return f"diaSourceId {src['diaSourceId']!r} is not a positive integer"
    mjd = src["midpointMjdTai"]
    if not MJD_RANGE[0] < mjd < MJD_RANGE[1]:
        return (f"midpointMjdTai {mjd!r} is not an MJD of the Rubin era (a time in another "
                "unit?)")
    if src["band"] not in BANDS:
        return f"band {src['band']!r} is not one of {' '.join(BANDS)}"
    if not (0.0 <= src["ra"] < 360.0 and -90.0 <= src["dec"] <= 90.0):
        return f"position ({src['ra']}, {src['dec']}) is off the sky"
    if src["psfFlux"] == 0.0:
        return "psfFlux is 0 (no difference magnitude)"
    if not src["psfFluxErr"] > 0.0:
        return f"psfFluxErr {src['psfFluxErr']!r} is not positive"
    return None


class _Clock:
    """TAI -> UTC for the times of one packet: one leap-second look-up unless the
    packet's history spans a leap second."""

    def __init__(self, times: Sequence[float | None]):
        finite = [t for t in times if t is not None and MJD_RANGE[0] < t < MJD_RANGE[1]]
        lo, hi = (min(finite), max(finite)) if finite else (60000.0, 60000.0)
        self.leap = tai_minus_utc(hi)
        self.constant = tai_minus_utc(lo) == self.leap

    def utc(self, mjd_tai: float) -> float:
        return utc_mjd(mjd_tai, self.leap if self.constant else None)


def detection_document(oid: str, src: Mapping[str, Any], parent: int | None,
                       clock: _Clock) -> Doc:
    """A normalised detection from a (cleaned, valid) diaSource."""
    candid = int(src["diaSourceId"])
    magpsf, sigmapsf, sign = difference_photometry(src["psfFlux"], src["psfFluxErr"])
    doc = dict(src)
    doc.update(_id=detection_key(LSST, candid), candid=candid, oid=oid, survey=LSST,
               mjd=clock.utc(src["midpointMjdTai"]), band=src["band"], fid=FIDS[src["band"]],
               magpsf=magpsf, sigmapsf=sigmapsf, isdiffpos=sign, has_stamp=parent is None,
               parent_candid=parent, withdrawn=src.get("timeWithdrawnMjdTai") is not None)
    return doc


def forced_documents(oid: str, entries: Sequence[Mapping[str, Any]], clock: _Clock
                     ) -> tuple[list[Doc], list[Doc]]:
    """Forced photometry and the upper limits derived from it (S/N < 3)."""
    forced: list[Doc] = []
    limits: list[Doc] = []
    for raw in entries:
        fs = clean_record(raw)
        fid_, band, mjd_tai = fs.get("diaForcedSourceId"), fs.get("band"), fs.get(
            "midpointMjdTai")
        if fid_ is None or band not in BANDS or mjd_tai is None or not (
                MJD_RANGE[0] < mjd_tai < MJD_RANGE[1]):
            continue
        mjd = clock.utc(mjd_tai)
        flux, err = fs.get("psfFlux"), fs.get("psfFluxErr")
        doc = dict(fs)
        mag = e_mag = None
        if flux is not None and flux > 0:
            mag, e_mag, _ = difference_photometry(flux, err)
        doc.update(_id=forced_id(oid, fid_), oid=oid, survey=LSST, mjd=mjd, band=band,
                   fid=FIDS[band], forced=True, mag=mag, e_mag=e_mag,
                   withdrawn=fs.get("timeWithdrawnMjdTai") is not None)
        forced.append(doc)
        if is_limit(flux, err) and not doc["withdrawn"]:
            assert err is not None  # is_limit needs a positive error
            limits.append({"_id": forced_id(oid, fid_), "oid": oid, "survey": LSST, "mjd": mjd,
                           "band": band, "fid": FIDS[band], "diffmaglim": five_sigma_limit(err),
                           "derived": True, "diaForcedSourceId": fid_, "psfFlux": flux,
                           "psfFluxErr": err, "midpointMjdTai": mjd_tai})
    return forced, limits


def packet_limits(oid: str, entries: Sequence[Mapping[str, Any]], clock: _Clock) -> list[Doc]:
    """Schema 7.x ``prvDiaNondetectionLimits``: 5-sigma limits from ``diaNoise`` [nJy]."""
    out = []
    for raw in entries:
        nd = clean_record(raw)
        band, mjd_tai, noise = nd.get("band"), nd.get("midpointMjdTai"), nd.get("diaNoise")
        if band not in BANDS or mjd_tai is None or noise is None or not noise > 0:
            continue
        mjd = clock.utc(mjd_tai)
        out.append({"_id": limit_id(oid, band, mjd), "oid": oid, "survey": LSST, "mjd": mjd,
                    "band": band, "fid": FIDS[band], "diffmaglim": five_sigma_limit(noise),
                    "derived": False, **{k: nd.get(k) for k in ("ccdVisitId", "midpointMjdTai",
                                                                 "diaNoise")}})
    return out


def _positive_id(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def solar_system_document(record: Mapping[str, Any], src: Mapping[str, Any]) -> Doc:
    """The solar-system part of a packet: ids, designation, ``ssSource`` geometry, orbit."""
    ss_source = clean_record(record["ssSource"]) if record.get("ssSource") else None
    orbit_raw = record.get("mpc_orbits") or record.get("MPCORB")
    orbit = clean_record(orbit_raw) if orbit_raw else None
    ss_object = clean_record(record["ssObject"]) if record.get("ssObject") else None
    ss_id = _positive_id(src.get("ssObjectId"), (ss_source or {}).get("ssObjectId"),
                         (ss_object or {}).get("ssObjectId"))
    designation = ((ss_source or {}).get("designation") or (orbit or {}).get("designation")
                   or (ss_object or {}).get("designation"))
    return {"ssObjectId": ss_id, "designation": designation, "ssSource": ss_source,
            "mpc_orbits": orbit, "ssObject": ss_object}


def adapt(record: Mapping[str, Any], raw: bytes, source: AlertSource, *, version: str | None,
          schema_id: int | None, label: str) -> ParsedAlert:
    """One decoded Rubin packet as a :class:`ParsedAlert`, or :class:`AlertRejected`.

    Parameters
    ----------
    version : str or None
        The schema version (``10.0``), None when the writer schema does not say.
    label : str
        How the schema is named in reasons (``schema 10.0``, ``elasticc.v0_9_1.alert``).
    """
    if version is not None and int(version.split(".")[0]) not in SUPPORTED_MAJORS:
        raise AlertRejected(f"LSST schema {version} is not supported: the adapter maps "
                            f"schema {SUPPORTED}; nothing of this packet was stored")
    ds = record.get("diaSource")
    if not isinstance(ds, Mapping):
        raise AlertRejected(f"LSST packet ({label}) has no diaSource record")
    absent = [n for n in REQUIRED_SOURCE_FIELDS if n not in ds]
    if absent:
        old = sorted(k for k in OLD_NAMES if k in ds)
        hint = (f" (it has {', '.join(old)}: the names of schemas before 5.0 and of the "
                "ELAsTiCC simulations)") if old else ""
        raise AlertRejected(f"LSST packet ({label}) lacks diaSource fields "
                            f"{', '.join(absent)}{hint}; the adapter maps schema {SUPPORTED}")
    src = clean_record(ds)
    candid = src.get("diaSourceId")
    object_record = record.get("diaObject") or {}
    dia_object_id = _positive_id(src.get("diaObjectId"), object_record.get("diaObjectId"))
    solar = None
    if dia_object_id is not None and (record.get("ssSource") or _positive_id(
            src.get("ssObjectId"))):
        solar = solar_system_document(record, src)  # an object's source, also an asteroid's
    if dia_object_id is None:
        solar = solar_system_document(record, src)
        if solar["ssObjectId"] is None:
            raise AlertRejected("LSST source has neither a diaObjectId nor an ssObjectId",
                                candid=candid if isinstance(candid, int) else None)
        oid = str(solar["ssObjectId"])
    else:
        oid = str(dia_object_id)
    problem = _source_problem(src)
    if problem or not isinstance(candid, int):
        raise AlertRejected(problem or "diaSourceId is not an integer",
                            candid=candid if isinstance(candid, int) else None, oid=oid)
    prv_sources = [clean_record(p) for p in record.get("prvDiaSources") or ()]
    forced_sources = record.get("prvDiaForcedSources") or ()
    clock = _Clock([src["midpointMjdTai"], *(p.get("midpointMjdTai") for p in prv_sources),
                    *(f.get("midpointMjdTai") for f in forced_sources)])
    detection = detection_document(oid, src, None, clock)
    detection["schema_id"] = schema_id
    prv: list[Doc] = []
    dropped = 0
    for entry in prv_sources:
        if entry.get("diaSourceId") == candid:
            continue  # the alert's own source repeated in its history
        if _source_problem(entry) is None:
            prv.append(detection_document(oid, entry, candid, clock))
        else:
            dropped += 1
    forced, limits = forced_documents(oid, forced_sources, clock)
    limits += packet_limits(oid, record.get("prvDiaNondetectionLimits") or (), clock)
    cutouts = {kind: bytes(record[name]) for kind, name in _CUTOUT_FIELDS.items()
               if record.get(name)}
    summary = clean_record(object_record) if object_record else None
    if summary is not None and dia_object_id is not None:
        summary["diaObjectId"] = dia_object_id
    return ParsedAlert(survey=LSST, oid=oid, candid=candid, schemavsn=version,
                       candidate=src, detection=detection, prv_detections=prv,
                       non_detections=limits, forced_photometry=forced, cutouts=cutouts,
                       raw=raw, source=source, dropped_prv=dropped, schema_id=schema_id,
                       object_summary=summary, solar_system=solar,
                       has_object=dia_object_id is not None)


def decode_wire(raw: bytes, schemas: LsstSchemas) -> tuple[ResolvedSchema, Doc]:
    """The writer schema and the record of one wire-format message, or AlertRejected."""
    schema_id, body = unframe(raw)
    resolved = schemas.get(schema_id)
    buf = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buf, resolved.parsed)
    except Exception as exc:  # fastavro raises many types on a body of another schema
        raise AlertRejected(f"body does not decode with LSST schema id {schema_id} "
                            f"({resolved.version}): {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(body):
        raise AlertRejected(f"body does not match LSST schema id {schema_id} "
                            f"({resolved.version}): {len(body) - buf.tell()} of {len(body)} "
                            "bytes left after the record (wrong schema id?)")
    if not isinstance(record, dict):
        raise AlertRejected(f"LSST schema id {schema_id} does not describe a record")
    return resolved, record


def parse_wire(raw: bytes, source: AlertSource, schemas: LsstSchemas
               ) -> tuple[list[ParsedAlert], list[DeadLetter]]:
    """One Rubin Kafka message (wire format) -> its alert, or a dead letter; never raises."""
    try:
        resolved, record = decode_wire(raw, schemas)
        alert = adapt(record, raw, source, version=resolved.version,
                      schema_id=resolved.schema_id, label=f"schema {resolved.version}")
    except AlertRejected as exc:
        return [], [DeadLetter(raw=raw, source=source, reason=exc.reason, candid=exc.candid,
                               oid=exc.oid, survey=LSST)]
    return [alert], []


def parse_records(name: str, records: Sequence[Mapping[str, Any]], raw: bytes,
                  source: AlertSource) -> tuple[list[ParsedAlert], list[DeadLetter]]:
    """The records of one Avro container of Rubin alerts (writer schema ``name``)."""
    version = version_of_name(name)
    schema_id = schema_id_of(version) if version else None
    good: list[ParsedAlert] = []
    bad: list[DeadLetter] = []
    for index, record in enumerate(records):
        src = source if len(records) == 1 else AlertSource(**{**source.__dict__, "index": index})
        try:
            good.append(adapt(record, raw, src, version=version, schema_id=schema_id,
                              label=f"schema {version}" if version else name or "unnamed"))
        except AlertRejected as exc:
            bad.append(DeadLetter(raw=raw, source=src, reason=exc.reason, candid=exc.candid,
                                  oid=exc.oid, survey=LSST))
    return good, bad
