"""ZTF alert packets: validation and normalisation of ZTF schema 2.0 to 4.02.

Every ZTF alert is an Avro object container (:mod:`nightjar.surveys.avro`).  The
``candidate`` is the alert's own detection; ``prv_candidates`` with a ``candid`` are
earlier detections, without one upper limits; ``fp_hists`` forced photometry.  Each
becomes a normalised document (:mod:`nightjar.surveys.interface`): ``mjd = jd -
2400000.5`` (ZTF's ``jd`` is UTC), ``band`` from ``fid`` (1 g, 2 r, 3 i) and the
difference flux in nJy from the calibrated magnitude, ``psfFlux = ±10**((31.4 -
magpsf)/2.5)`` with the sign of ``isdiffpos``.  Nothing here does I/O: bytes in,
:class:`ParsedAlert` or :class:`DeadLetter` out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from nightjar.photometry import AB_ZERO_POINT_NJY, MAG_PER_RELATIVE_FLUX, mag_to_flux
from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import (
    ZTF,
    AlertRejected,
    AlertSource,
    DeadLetter,
    ParsedAlert,
    clean_record,
    sign_of_isdiffpos,
)

Doc = dict[str, Any]

MJD_OFFSET = 2400000.5  #: mjd = jd - 2400000.5
_CUTOUT_FIELDS = {"science": "cutoutScience", "template": "cutoutTemplate",
                  "difference": "cutoutDifference"}
_ZTF_OID = re.compile(r"^ZTF\d{2}[a-z]{7}$")
#: Candidate fields without which a detection means nothing.
REQUIRED_CANDIDATE_FIELDS = ("jd", "fid", "ra", "dec", "magpsf", "sigmapsf", "isdiffpos")
#: ZTF filter ids and their bands
BAND_NAMES = {1: "g", 2: "r", 3: "i"}
#: Fields of a prv_candidate kept on an upper limit
NON_DETECTION_FIELDS = ("fid", "pid", "jd", "diffmaglim", "field", "rcid", "programid")
#: Sentinel ZTF writes in forced-photometry fluxes that could not be measured.
FP_NO_FLUX = -99999.0


def band_of(fid: Any) -> str:
    return BAND_NAMES.get(int(fid), str(fid))


def non_detection_id(oid: str, fid: int, mjd: float) -> str:
    """Stable identity of an upper limit: object, band and epoch (ALeRCE's key)."""
    return f"{oid}_{fid}_{mjd:.8f}"


def forced_photometry_id(oid: str, pid: int) -> str:
    return f"{oid}_{pid}"


def detection_document(oid: str, raw: Mapping[str, Any], parent: int | None) -> Doc:
    """A normalised detection from a ZTF candidate (``parent`` None) or prv_candidate."""
    doc = dict(raw)
    flux = sign_of_isdiffpos(raw["isdiffpos"]) * mag_to_flux(raw["magpsf"])
    doc.update(_id=raw["candid"], oid=oid, survey=ZTF, mjd=raw["jd"] - MJD_OFFSET,
               band=band_of(raw["fid"]), psfFlux=flux,
               psfFluxErr=abs(flux) * raw["sigmapsf"] / MAG_PER_RELATIVE_FLUX,
               has_stamp=parent is None, parent_candid=parent)
    return doc


def known_minor_planet(candidate: Mapping[str, Any]) -> Doc | None:
    """ZTF's match to a known minor planet (``ssnamenr`` within ``ssdistnr`` arcsec)."""
    name = candidate.get("ssnamenr")
    if not isinstance(name, str) or name.strip().lower() in ("", "null", "none"):
        return None
    return {"designation": name.strip(), "ssdistnr": candidate.get("ssdistnr"),
            "ssmagnr": candidate.get("ssmagnr")}


def non_detection_document(oid: str, prv: Mapping[str, Any]) -> Doc:
    """An upper limit from a prv_candidate without candid (``diffmaglim`` [mag])."""
    mjd = prv["jd"] - MJD_OFFSET
    return {"_id": non_detection_id(oid, prv["fid"], mjd), "oid": oid, "survey": ZTF,
            "mjd": mjd, "band": band_of(prv["fid"]), "derived": False,
            **{k: prv.get(k) for k in NON_DETECTION_FIELDS}}


def forced_document(oid: str, raw: Mapping[str, Any]) -> Doc:
    """A forced-photometry point (fp_hists): the difference flux in nJy and, where it is
    positive, its magnitude.

    ``forcediffimflux`` is in DN at the image's zero point ``magzpsci``, so
    ``F[nJy] = forcediffimflux * 10**((31.4 - magzpsci)/2.5)`` and ``mag = magzpsci -
    2.5 log10(forcediffimflux)``.
    """
    doc = dict(raw)
    doc.update(_id=forced_photometry_id(oid, raw["pid"]), oid=oid, survey=ZTF,
               mjd=raw["jd"] - MJD_OFFSET, band=band_of(raw["fid"]), forced=True, mag=None,
               e_mag=None, psfFlux=None, psfFluxErr=None)
    flux, err, zp = raw.get("forcediffimflux"), raw.get("forcediffimfluxunc"), raw.get("magzpsci")
    if flux is not None and flux != FP_NO_FLUX and zp is not None:
        scale = 10.0 ** ((AB_ZERO_POINT_NJY - zp) / 2.5)
        doc["psfFlux"] = flux * scale
        if err is not None and err > 0 and err != FP_NO_FLUX:
            doc["psfFluxErr"] = err * scale
        if flux > 0:
            doc["mag"] = zp - 2.5 * math.log10(flux)
            if err is not None and err > 0:
                doc["e_mag"] = 1.0857362047581294 * err / flux  # 2.5 / ln 10
    return doc


def _missing(rec: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if rec.get(n) is None]


def parse_record(record: Mapping[str, Any], raw: bytes, source: AlertSource) -> ParsedAlert:
    """Validate one decoded alert record and turn it into a :class:`ParsedAlert`.

    Raises
    ------
    AlertRejected
        With a reason an operator can act on (missing objectId, non-positive candid
        as in the 2017 prototype alerts, unusable candidate fields, ...).
    """
    oid = record.get("objectId")
    candid = record.get("candid")
    if not isinstance(oid, str) or not oid:
        raise AlertRejected("alert has no objectId (pre-2018 prototype packet?)", candid=candid)
    if not _ZTF_OID.match(oid):
        raise AlertRejected(f"objectId {oid!r} is not a ZTF object name", candid=candid, oid=oid)
    if not isinstance(candid, int) or candid <= 0:
        raise AlertRejected(f"candid {candid!r} is not a positive integer", candid=None, oid=oid)
    raw_candidate = record.get("candidate")
    if not isinstance(raw_candidate, Mapping):
        raise AlertRejected("alert has no candidate record", candid=candid, oid=oid)
    candidate = clean_record(raw_candidate)
    if candidate.get("candid") not in (None, candid):
        raise AlertRejected(
            f"candidate.candid {candidate.get('candid')} differs from alert candid {candid}",
            candid=candid, oid=oid)
    candidate["candid"] = candid
    missing = _missing(candidate, REQUIRED_CANDIDATE_FIELDS)
    if missing:
        raise AlertRejected(f"candidate lacks usable {', '.join(missing)} (null or NaN)",
                            candid=candid, oid=oid)
    if not (0.0 <= candidate["ra"] < 360.0 and -90.0 <= candidate["dec"] <= 90.0):
        raise AlertRejected(f"candidate position ({candidate['ra']}, {candidate['dec']}) "
                            "is off the sky", candid=candid, oid=oid)
    if sign_of_isdiffpos(candidate["isdiffpos"]) == 0:
        raise AlertRejected(f"candidate isdiffpos {candidate['isdiffpos']!r} is not t/f/1/0",
                            candid=candid, oid=oid)
    detections: list[Doc] = []
    limits: list[Doc] = []
    dropped = 0
    for entry in record.get("prv_candidates") or []:
        item = clean_record(entry)
        if item.get("jd") is None or item.get("fid") is None:
            dropped += 1
        elif item.get("candid") is None:
            limits.append(non_detection_document(oid, item))
        elif _missing(item, REQUIRED_CANDIDATE_FIELDS) or sign_of_isdiffpos(
                item["isdiffpos"]) == 0:
            dropped += 1  # a detection without photometry cannot be used
        else:
            detections.append(detection_document(oid, item, candid))
    forced = [forced_document(oid, fp) for fp in map(clean_record, record.get("fp_hists") or [])
              if fp.get("pid") is not None and fp.get("jd") is not None]
    cutouts: dict[str, bytes] = {}
    for kind, name in _CUTOUT_FIELDS.items():
        cut = record.get(name)
        if cut and cut.get("stampData"):
            cutouts[kind] = cut["stampData"]
    return ParsedAlert(survey=ZTF, oid=oid, candid=candid, schemavsn=record.get("schemavsn"),
                       candidate=candidate, detection=detection_document(oid, candidate, None),
                       prv_detections=detections, non_detections=limits,
                       forced_photometry=forced, cutouts=cutouts, raw=raw, source=source,
                       dropped_prv=dropped, solar_system=known_minor_planet(candidate))


def parse_records(records: list[dict[str, Any]], raw: bytes, source: AlertSource
                  ) -> tuple[list[ParsedAlert], list[DeadLetter]]:
    """The alerts and dead letters of the decoded records of one ZTF container."""
    good: list[ParsedAlert] = []
    bad: list[DeadLetter] = []
    for index, record in enumerate(records):
        src = source if len(records) == 1 else AlertSource(**{**source.__dict__, "index": index})
        try:
            good.append(parse_record(record, raw, src))
        except AlertRejected as exc:
            bad.append(DeadLetter(raw=raw, source=src, reason=exc.reason, survey=ZTF,
                                  candid=exc.candid, oid=exc.oid))
    return good, bad


def parse_payload(decoder: AlertDecoder, raw: bytes,
                  source: AlertSource) -> tuple[list[ParsedAlert], list[DeadLetter]]:
    """Decode and validate one ZTF input (file or Kafka message); never raises.

    Returns the good alerts and the dead letters; a container with several records
    may yield both.
    """
    try:
        records = decoder.decode(raw)
    except AlertRejected as exc:
        return [], [DeadLetter(raw=raw, source=source, reason=exc.reason)]
    return parse_records(records, raw, source)
