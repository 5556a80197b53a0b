"""ZTF alert packets: validation and the parsed alert model of ZTF schema 2.0 to 4.02.

Every ZTF alert is an Avro object container (:mod:`nightjar.surveys.avro`).  Nothing
here does I/O: bytes in, :class:`ParsedAlert` or :class:`DeadLetter` out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import (
    AlertRejected,
    AlertSource,
    DeadLetter,
    ParsedAlert,
    clean_record,
    sign_of_isdiffpos,
)

MJD_OFFSET = 2400000.5  #: mjd = jd - 2400000.5
_CUTOUT_FIELDS = {"science": "cutoutScience", "template": "cutoutTemplate",
                  "difference": "cutoutDifference"}
_ZTF_OID = re.compile(r"^ZTF\d{2}[a-z]{7}$")
#: Candidate fields without which a detection means nothing.
REQUIRED_CANDIDATE_FIELDS = ("jd", "fid", "ra", "dec", "magpsf", "sigmapsf", "isdiffpos")


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
    prv: list[dict[str, Any]] = []
    dropped = 0
    for entry in record.get("prv_candidates") or []:
        item = clean_record(entry)
        if item.get("jd") is None or item.get("fid") is None:
            dropped += 1
        elif item.get("candid") is not None and (
            _missing(item, REQUIRED_CANDIDATE_FIELDS) or sign_of_isdiffpos(item["isdiffpos"]) == 0
        ):
            dropped += 1  # a detection without photometry cannot be used
        else:
            prv.append(item)
    fp = [clean_record(e) for e in record.get("fp_hists") or []]
    cutouts: dict[str, bytes] = {}
    for kind, name in _CUTOUT_FIELDS.items():
        cut = record.get(name)
        if cut and cut.get("stampData"):
            cutouts[kind] = cut["stampData"]
    return ParsedAlert(oid=oid, candid=candid, schemavsn=record.get("schemavsn"),
                       candidate=candidate, prv_candidates=prv, fp_hists=fp, cutouts=cutouts,
                       raw=raw, source=source, dropped_prv=dropped)


def parse_payload(decoder: AlertDecoder, raw: bytes,
                  source: AlertSource) -> tuple[list[ParsedAlert], list[DeadLetter]]:
    """Decode and validate one input (file or Kafka message); never raises.

    Returns the good alerts and the dead letters; a container with several records
    may yield both.
    """
    try:
        records = decoder.decode(raw)
    except AlertRejected as exc:
        return [], [DeadLetter(raw=raw, source=source, reason=exc.reason)]
    good: list[ParsedAlert] = []
    bad: list[DeadLetter] = []
    for index, record in enumerate(records):
        src = source if len(records) == 1 else AlertSource(**{**source.__dict__, "index": index})
        try:
            good.append(parse_record(record, raw, src))
        except AlertRejected as exc:
            bad.append(DeadLetter(raw=raw, source=src, reason=exc.reason,
                                  candid=exc.candid, oid=exc.oid))
    return good, bad
