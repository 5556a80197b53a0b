"""The survey interface: what every survey package gives the survey-independent core.

A survey package (``nightjar.surveys.ztf``, ``nightjar.surveys.lsst``) turns bytes into
:class:`ParsedAlert` objects or :class:`DeadLetter` records with a reason, and says how
its difference photometry becomes apparent photometry (:class:`PhotometryRules`).  The
light-curve core, the statistics and the store read alerts only through the names
defined here; a third survey is one new package implementing them.

What a survey hands over is *normalised*: every detection, upper limit and forced
photometry point is a document with the survey-independent fields below next to the
survey's own, untouched fields (``jd``/``candid``/``magnr`` for ZTF,
``midpointMjdTai``/``diaSourceId``/``scienceFlux`` for LSST).

Detection documents (:data:`DETECTION_FIELDS`):
    ``_id`` (:func:`detection_key`), ``candid`` (the survey's 64-bit detection id),
    ``oid``, ``survey``, ``mjd`` (MJD, UTC [d]), ``band`` (``g``, ``r``, ...), ``fid``,
    ``ra``/``dec`` [deg], ``magpsf``/``sigmapsf`` (difference magnitude [AB mag]),
    ``isdiffpos`` (``t``/``f``: sign of the difference flux), ``psfFlux``/``psfFluxErr``
    (signed difference flux [nJy]), ``has_stamp`` (the alert's own detection) and
    ``parent_candid`` (the alert whose history carried it; None for the alert's own).

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nightjar.values import finite_or_none

ZTF = "ZTF"
LSST = "LSST"
#: every survey Nightjar reads (the names stored in every document's ``survey``)
SURVEY_NAMES = (ZTF, LSST)
#: Cutout kinds, in the order the stamp classifier stacks them.
CUTOUT_KINDS = ("science", "template", "difference")
#: Largest raw payload kept in a dead letter (MongoDB documents stop at 16 MiB).
MAX_DEAD_LETTER_BYTES = 15 * 1024 * 1024

#: Survey-independent fields of every detection document (see the module docstring).
DETECTION_FIELDS = ("_id", "candid", "oid", "survey", "mjd", "band", "fid", "ra", "dec",
                    "magpsf", "sigmapsf", "isdiffpos", "psfFlux", "psfFluxErr", "has_stamp",
                    "parent_candid")
#: Fields of every upper-limit document: ``diffmaglim`` is the 5-sigma limit [AB mag];
#: ``derived`` is true when Nightjar computed it (LSST, from forced photometry).
NON_DETECTION_FIELDS = ("_id", "oid", "survey", "mjd", "band", "fid", "diffmaglim", "derived")
#: Fields of every forced-photometry document: ``mag``/``e_mag`` from the positive
#: difference flux [AB mag], ``psfFlux``/``psfFluxErr`` the difference flux [nJy].
FORCED_FIELDS = ("_id", "oid", "survey", "mjd", "band", "fid", "forced", "mag", "e_mag",
                 "psfFlux", "psfFluxErr")
#: What apparent photometry adds to each detection (recomputed over the whole light curve):
#: ``corrected`` (an apparent magnitude exists), ``magpsf_corr``/``sigmapsf_corr``/
#: ``sigmapsf_corr_ext`` [AB mag], ``dubious``, ``stellar``.
APPARENT_FIELDS = ("corrected", "dubious", "stellar", "magpsf_corr", "sigmapsf_corr",
                   "sigmapsf_corr_ext")

Doc = dict[str, Any]

__all__ = ["APPARENT_FIELDS", "CUTOUT_KINDS", "DETECTION_FIELDS", "FORCED_FIELDS", "LSST",
           "MAX_DEAD_LETTER_BYTES", "NON_DETECTION_FIELDS", "SURVEY_NAMES", "ZTF",
           "AlertRejected", "AlertSource", "DeadLetter", "ParsedAlert", "PhotometryRules",
           "clean_record", "detection_key", "finite_or_none", "history_fields",
           "sign_of_isdiffpos"]


def detection_key(survey: str, candid: int) -> int | str:
    """The store identity of a detection: (survey, id).

    ZTF keeps its bare ``candid`` (what every ZTF store and tool uses); other surveys'
    ids are prefixed (``"LSST:169813006680588318"``), so a ZTF candid and an LSST
    diaSourceId with the same number are different detections.
    """
    return candid if survey == ZTF else f"{survey}:{candid}"



class AlertRejected(Exception):
    """An input that cannot become an alert; ``reason`` says why in plain words."""

    def __init__(self, reason: str, *, candid: int | None = None, oid: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.candid = candid
        self.oid = oid


@dataclass(frozen=True)
class AlertSource:
    """Where an input came from: a file (path, record index) or Kafka (topic, partition, offset)."""

    kind: str
    path: str | None = None
    index: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None  #: Kafka message timestamp [ms since the Unix epoch]

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def __str__(self) -> str:
        if self.kind == "kafka":
            return f"{self.topic}[{self.partition}]@{self.offset}"
        return f"{self.path}" + (f"#{self.index}" if self.index else "")


@dataclass
class ParsedAlert:
    """One decoded, validated alert of any survey.

    ``candidate`` is the survey's own record of the triggering detection (ZTF's
    ``candidate``, LSST's ``diaSource``) with NaN replaced by ``None``; ``detection``,
    ``prv_detections``, ``non_detections`` and ``forced_photometry`` are the normalised
    documents (module docstring).  ``cutouts`` maps ``science|template|difference`` to
    the cutout bytes as they came (gzipped FITS for ZTF, plain multi-extension FITS for
    LSST; absent kinds are left out).
    """

    survey: str
    oid: str  #: object id as users write it (ZTF objectId, LSST diaObjectId in decimal)
    candid: int  #: id of the triggering detection (ZTF candid, LSST diaSourceId)
    schemavsn: str | None
    candidate: dict[str, Any]
    detection: Doc
    prv_detections: list[Doc]
    non_detections: list[Doc]
    forced_photometry: list[Doc]
    cutouts: dict[str, bytes]
    raw: bytes
    source: AlertSource
    dropped_prv: int = 0  #: history entries dropped because unusable (kept in the archive)
    schema_id: int | None = None  #: Confluent wire-format schema id (LSST: major*100+minor)
    #: the survey's own object summary as it came (LSST ``diaObject``), if it sends one
    object_summary: Doc | None = None
    #: the known solar-system object this detection is of: ``designation`` as the survey
    #: wrote it, plus the survey's own fields (LSST ``ssObjectId``, ``ssSource``,
    #: ``mpc_orbits``; ZTF ``ssdistnr``, ``ssmagnr``)
    solar_system: Doc | None = None
    #: False for a detection that belongs to no object of the survey (an LSST source
    #: associated with a solar-system object only): it is stored apart, no object is made
    has_object: bool = True

    @property
    def key(self) -> int | str:
        """The store identity of the triggering detection (:func:`detection_key`)."""
        return detection_key(self.survey, self.candid)

    @property
    def mjd(self) -> float:
        """When the triggering detection was observed [MJD, UTC]."""
        return float(self.detection["mjd"])


class PhotometryRules(Protocol):
    """How a survey turns an object's detections into apparent photometry.

    ``apparent`` sees the object's whole light curve (ZTF's ``dubious`` flag compares
    each detection with the first of its band) and returns new documents with
    :data:`APPARENT_FIELDS` (plus any ``derived_fields``) set.
    """

    #: per-detection fields ``apparent`` computes (stored, and recomputed on every update)
    derived_fields: tuple[str, ...]
    #: stored detection fields ``apparent`` and the statistics read back from the store
    history_fields: tuple[str, ...]
    #: whether a stored detection can be rebuilt from the copy a later packet repeats in
    #: its history (the same fields, ``apparent`` per detection alone), so ingestion need
    #: not read back what the packet holds (:mod:`nightjar.core.packet_history`)
    packets_repeat_history: bool

    def apparent(self, detections: Iterable[Mapping[str, Any]]) -> list[Doc]: ...


#: Fields of every stored detection the core reads back (the surveys' rules add theirs).
CORE_HISTORY_FIELDS = ("hpx", *DETECTION_FIELDS, *APPARENT_FIELDS)
#: Fields of every stored upper limit the statistics read back.
CORE_LIMIT_FIELDS = ("_id", "oid", "survey", "mjd", "band", "fid", "diffmaglim")


def history_fields(rules: Iterable[PhotometryRules]) -> tuple[str, ...]:
    """The projection of stored detections that merging needs for these surveys' rules."""
    out = dict.fromkeys(CORE_HISTORY_FIELDS)
    for rule in rules:
        out.update(dict.fromkeys((*rule.history_fields, *rule.derived_fields)))
    return tuple(out)


@dataclass
class DeadLetter:
    """An input that ended in the dead-letter store, with everything needed to replay it."""

    raw: bytes
    source: AlertSource
    reason: str
    candid: int | None = None
    oid: str | None = None
    #: the survey the content says it is from (None for what no survey could read)
    survey: str | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256(self.raw).hexdigest()


_isfinite = math.isfinite


def clean_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Copy a record replacing NaN/inf floats by None.

    Runs over every field of every prv_candidate (~2,000 values per alert), so it copies
    the dict and patches the few non-finite values instead of rebuilding it value by
    value (2.6x faster); fastavro decodes Avro doubles to exact ``float`` objects.
    """
    out = dict(rec)
    for key, value in rec.items():
        if value.__class__ is float and not _isfinite(value):
            out[key] = None
    return out


def sign_of_isdiffpos(value: Any) -> int:
    """+1 for a positive difference ('t'/'1'), -1 for negative ('f'/'0'), 0 if unknown."""
    text = str(value).strip().lower()
    if text in ("t", "1", "true"):
        return 1
    if text in ("f", "0", "false"):
        return -1
    return 0
