"""The *publish* step: annotated output records and dead-letter records, as Avro.

Pure functions: alerts and the object documents after a batch in, records out.  Each
Kafka message carries one record: in the Confluent wire format when Nightjar's output
schemas are registered in a schema registry (as Rubin's stream is), else as a one-record
Avro object container, as ZTF's own alert stream does, which needs no registry
(``fastavro.reader`` reads it); see :class:`OutputCodec`.
The schemas are published in ``nightjar/runner/schemas/`` (see the README).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from nightjar.surveys.interface import (
    MAX_DEAD_LETTER_BYTES,
    DeadLetter,
    ParsedAlert,
    sign_of_isdiffpos,
)

SCHEMA_DIR = Path(__file__).parent / "schemas"
CLASSIFICATION_SCHEMA_VERSION = "1.4"
DEAD_LETTER_SCHEMA_VERSION = "1.1"
_SUMMARY_FIELDS = ("ndet", "firstmjd", "lastmjd", "meanra", "meandec", "sigmara", "sigmadec",
                   "corrected", "stellar", "reference_change", "g_r_max", "g_r_mean")
_BAND_FIELDS = ("fid", "band", "ndet", "firstmjd", "lastmjd", "magmean", "magmedian", "magmin",
                "magmax", "magsigma", "maglast", "magmean_corr", "maglast_corr", "dmdt_first")

Record = dict[str, Any]


@cache
def load_schema(name: str) -> Any:
    """A parsed schema from ``nightjar/runner/schemas/<name>.avsc``."""
    return fastavro.parse_schema(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()))


def _probabilities(rows: Sequence[Mapping[str, Any]]) -> list[Record]:
    return [{"classifier": r["classifier_name"], "classifier_version": r["classifier_version"],
             "class_name": r["class_name"], "probability": float(r["probability"]),
             "ranking": int(r["ranking"])} for r in rows]


def _object_summary(object_doc: Mapping[str, Any]) -> Record:
    return {**{k: object_doc.get(k) for k in _SUMMARY_FIELDS},
            "magstats": [{**{k: band.get(k) for k in _BAND_FIELDS},
                          "band": str(band.get("band") or "")}
                         for band in object_doc.get("magstats", [])]}


def _anomaly(object_doc: Mapping[str, Any]) -> Record | None:
    """The object's latest anomaly score (added in schema 1.3), or None."""
    score = object_doc.get("anomaly")
    if not score:
        return None
    return {"score": float(score["score"]), "raw": float(score["raw"]),
            "model_name": str(score["model_name"]),
            "model_version": str(score["model_version"]), "mjd": float(score["mjd"])}


def _surprise(object_doc: Mapping[str, Any]) -> Record | None:
    """The object's latest forecast surprise (added in schema 1.4), or None."""
    found = object_doc.get("surprise")
    if not found:
        return None
    return {"value": float(found["value"]), "mjd": float(found["mjd"]),
            "fid": int(found["fid"]), "band": str(found["band"]),
            "model": str(found["model"])}


def _detection_fields(object_doc: Mapping[str, Any], detection: Mapping[str, Any]) -> Record:
    """The fields added in schema 1.2: survey, the id as a string, band and fluxes [nJy]."""
    def flux(name: str) -> float | None:
        value = detection.get(name)
        return None if value is None else float(value)

    return {"survey": str(object_doc.get("survey") or detection.get("survey") or "ZTF"),
            "candid_str": str(detection["candid"]), "band": detection.get("band"),
            "psf_flux": flux("psfFlux"), "psf_flux_err": flux("psfFluxErr"),
            "science_flux": flux("scienceFlux") if detection.get("corrected") else None}


def _xmatch(object_doc: Mapping[str, Any]) -> list[Record]:
    return [{"catalog": name, "source_id": str(match.get("source_id", "")),
             "distance_arcsec": float(match["distance_arcsec"])}
            for name, match in sorted(object_doc.get("xmatch", {}).items())]


def lc_classification_record(object_doc: Mapping[str, Any], detection: Mapping[str, Any],
                             probabilities: Sequence[Mapping[str, Any]], *,
                             processed_time_ms: int) -> Record:
    """The output record of one light-curve (re)classification.

    ``detection`` is the object's latest stored alert detection (what the record's alert
    fields report); ``probabilities`` the classifier rows.
    """
    corr = detection.get("magpsf_corr") if detection.get("corrected") else None
    return {
        "schemavsn": CLASSIFICATION_SCHEMA_VERSION, "oid": object_doc["_id"],
        "candid": int(detection["candid"]), "mjd": float(detection["mjd"]),
        "fid": int(detection["fid"]), "ra": float(detection["ra"]),
        "dec": float(detection["dec"]), "magpsf": float(detection["magpsf"]),
        "sigmapsf": float(detection["sigmapsf"]),
        "isdiffpos": sign_of_isdiffpos(detection["isdiffpos"]), "magpsf_corr": corr,
        "hpx": object_doc["hpx"], "object": _object_summary(object_doc),
        "xmatch": _xmatch(object_doc), "probabilities": _probabilities(probabilities),
        "trigger": "lc_classifier", "alert_time": None,
        "processed_time": processed_time_ms, **_detection_fields(object_doc, detection),
        "anomaly": _anomaly(object_doc), "surprise": _surprise(object_doc),
    }


def classification_record(alert: ParsedAlert, object_doc: Mapping[str, Any],
                          detection: Mapping[str, Any] | None, *, alert_time_ms: int | None,
                          processed_time_ms: int,
                          probabilities: Sequence[Mapping[str, Any]] = ()) -> Record:
    """The output record of one processed alert.

    Parameters
    ----------
    alert : ParsedAlert
        The alert.
    object_doc : mapping
        Its object's document after the batch that held the alert (statistics,
        ``magstats``, and ``xmatch`` when the hook filled it).
    detection : mapping or None
        The alert's corrected detection (for ``magpsf_corr``).
    alert_time_ms, processed_time_ms : int
        Kafka timestamp of the input and processing time [ms since the Unix epoch].
    probabilities : sequence of mapping
        Classifier rows when the object was classified inline in this batch.
    """
    det = alert.detection
    corr = detection.get("magpsf_corr") if detection and detection.get("corrected") else None
    return {
        "schemavsn": CLASSIFICATION_SCHEMA_VERSION,
        "oid": alert.oid,
        "candid": alert.candid,
        "mjd": det["mjd"],
        "fid": det["fid"],
        "ra": det["ra"],
        "dec": det["dec"],
        "magpsf": det["magpsf"],
        "sigmapsf": det["sigmapsf"],
        "isdiffpos": sign_of_isdiffpos(det["isdiffpos"]),
        "magpsf_corr": corr,
        "hpx": object_doc["hpx"],
        "object": _object_summary(object_doc),
        "xmatch": _xmatch(object_doc),
        "probabilities": _probabilities(probabilities),
        "trigger": "alert",
        "alert_time": alert_time_ms,
        "processed_time": processed_time_ms,
        **_detection_fields(object_doc, {**det, **(detection or {})}),
        "anomaly": _anomaly(object_doc), "surprise": _surprise(object_doc),
    }


def dead_letter_record(letter: DeadLetter, rejected_time_ms: int) -> Record:
    """The dead-letter record of one rejected input (payload kept, up to 15 MiB)."""
    src = letter.source
    return {
        "schemavsn": DEAD_LETTER_SCHEMA_VERSION,
        "digest": letter.digest,
        "reason": letter.reason,
        "oid": letter.oid,
        "candid": letter.candid,
        "source_topic": src.topic,
        "source_partition": src.partition,
        "source_offset": src.offset,
        "source_path": src.path,
        "payload": letter.raw[:MAX_DEAD_LETTER_BYTES],
        "rejected_time": rejected_time_ms,
        "survey": letter.survey,
    }


#: the first bytes of an Avro object container file
CONTAINER_MAGIC = b"Obj\x01"
#: Nightjar's output schemas, by name (the registry subject is ``<topic>-value``)
OUTPUT_SCHEMAS = ("classification", "dead_letter", "filter_match")


def schema_text(schema_name: str) -> str:
    """An output schema as JSON text (what is registered in a schema registry)."""
    return json.dumps(json.loads((SCHEMA_DIR / f"{schema_name}.avsc").read_text()),
                      separators=(",", ":"))


class OutputCodec:
    """How output records become Kafka message values.

    With the schema ids a registry gave Nightjar's output schemas, in the Confluent wire
    format (``0x00``, the 4-byte big-endian schema id, schemaless Avro): what Rubin
    publishes, so one deserialiser reads both streams, and a record carries ~0.5 KB
    instead of repeating the 6 KB schema.  Without ids (no registry), as a one-record
    Avro object container, which any Avro reader opens with no registry.
    """

    def __init__(self, schema_ids: Mapping[str, int] | None = None):
        self.schema_ids = dict(schema_ids or {})

    @property
    def wire_format(self) -> bool:
        return bool(self.schema_ids)

    def encode(self, schema_name: str, record: Record) -> bytes:
        schema_id = self.schema_ids.get(schema_name)
        buf = io.BytesIO()
        if schema_id is None:
            fastavro.writer(buf, load_schema(schema_name), [record], codec="deflate")
            return buf.getvalue()
        buf.write(struct.pack(">bI", 0, schema_id))
        fastavro.schemaless_writer(buf, load_schema(schema_name), record)
        return buf.getvalue()


#: the codec without a registry (Avro containers)
CONTAINERS = OutputCodec()


def encode(schema_name: str, record: Record) -> bytes:
    """One record as an Avro object container (schema embedded, deflate-compressed)."""
    return CONTAINERS.encode(schema_name, record)


def wire_schema_id(payload: bytes) -> int | None:
    """The schema id of a wire-format message, None for anything else."""
    if len(payload) >= 5 and payload[0] == 0:
        return int(struct.unpack(">I", payload[1:5])[0])
    return None


def decode(payload: bytes, schema_of: Callable[[int], Any] | None = None) -> list[Record]:
    """The records of an output message: an Avro object container, or (given
    ``schema_of``, schema id -> parsed writer schema) a Confluent wire-format record."""
    if payload[:4] == CONTAINER_MAGIC:
        return list(fastavro.reader(io.BytesIO(payload)))  # type: ignore[arg-type]
    schema_id = wire_schema_id(payload)
    if schema_id is not None:
        if schema_of is None:
            raise ValueError("a wire-format record needs a schema registry to be read")
        record = fastavro.schemaless_reader(io.BytesIO(payload[5:]), schema_of(schema_id),
                                            None)
        return [record]  # type: ignore[list-item]
    raise ValueError("neither an Avro object container nor a wire-format record")


def classification_messages(alerts: list[ParsedAlert], objects: Mapping[str, Mapping[str, Any]],
                            detections: Mapping[int | str, Mapping[str, Any]],
                            processed_time_ms: int,
                            probabilities: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                            codec: OutputCodec = CONTAINERS) -> list[tuple[bytes, bytes]]:
    """(key, value) messages for the output stream: one per alert, keyed by objectId.

    Classifier rows of one alert (the stamp classifier's, which carry the ``candid`` they
    used) go on that alert's record; an object's other rows (classified inline from its
    light curve) on its last alert's record.
    """
    last = {alert.oid: alert.candid for alert in alerts}
    rows_of: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for oid, rows in (probabilities or {}).items():
        for row in rows:
            rows_of.setdefault((oid, int(row.get("candid") or last[oid])), []).append(row)
    # pop: a packet delivered twice in one batch reports the classification once
    return [(alert.oid.encode(), codec.encode("classification", classification_record(
        alert, objects[alert.oid], detections.get(alert.key),
        alert_time_ms=alert.source.timestamp_ms, processed_time_ms=processed_time_ms,
        probabilities=rows_of.pop((alert.oid, alert.candid), ()))))
        for alert in alerts]


def dead_letter_messages(letters: list[DeadLetter], rejected_time_ms: int,
                         codec: OutputCodec = CONTAINERS) -> list[tuple[bytes, bytes]]:
    """(key, value) messages for the dead-letter topic, keyed by payload digest."""
    return [(letter.digest.encode(), codec.encode("dead_letter",
                                                  dead_letter_record(letter, rejected_time_ms)))
            for letter in letters]
