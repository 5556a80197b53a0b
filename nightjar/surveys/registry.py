"""Every survey Nightjar reads, and the parser that recognises an input's survey by content.

ZTF sends Avro object containers whose writer schema is ``ztf.alert``; Rubin sends the
Confluent wire format (a zero byte, a big-endian 4-byte schema id, schemaless Avro) and
stores alerts as Avro containers of ``lsst.vX_Y.alert``.  :class:`AlertParser` looks at
the bytes, never at a file name, and hands them to the survey's package.  Adding a
survey is one package plus one entry here.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import fastavro

from nightjar.surveys.avro import AVRO_MAGIC, AlertDecoder, RegistryClient, http_fetch
from nightjar.surveys.interface import (
    LSST,
    ZTF,
    AlertRejected,
    AlertSource,
    DeadLetter,
    ParsedAlert,
    PhotometryRules,
    history_fields,
)
from nightjar.surveys.lsst import adapter as lsst_adapter
from nightjar.surveys.lsst.photometry import LSST_PHOTOMETRY
from nightjar.surveys.lsst.schemas import LsstSchemas
from nightjar.surveys.lsst.wire import is_wire_format, object_key, unframe
from nightjar.surveys.ztf import decode as ztf_decode
from nightjar.surveys.ztf.correction import ZTF_PHOTOMETRY

#: each survey's photometry rules
PHOTOMETRY: Mapping[str, PhotometryRules] = {ZTF: ZTF_PHOTOMETRY, LSST: LSST_PHOTOMETRY}
#: the projection of stored detections merging needs, for every survey
HISTORY_FIELDS = history_fields(PHOTOMETRY.values())


def photometry_rules(survey: str) -> PhotometryRules:
    try:
        return PHOTOMETRY[survey]
    except KeyError:
        raise ValueError(f"unknown survey {survey!r}; Nightjar reads {sorted(PHOTOMETRY)}") \
            from None


def survey_of_schema(name: str) -> str:
    """The survey whose alerts a writer schema of this name describes (ZTF otherwise)."""
    return LSST if name.startswith(("lsst.", "elasticc")) else ZTF


def _not_an_alert(raw: bytes) -> str:
    head = raw[:40].decode("utf-8", "replace").strip()
    if raw.lstrip()[:1] == b"<":
        return f"not an Avro container (HTML/text page starting {head!r})"
    return (f"not an Avro container nor a wire-format message (first byte 0x{raw[0]:02x}: "
            "Avro containers start with 'Obj\\x01', Confluent wire format with 0x00; "
            f"payload starting {head!r})")


class AlertParser:
    """Bytes of any survey in, alerts and dead letters out (never raises).

    Holds the decoders' caches (writer schemas), so one parser is shared by a runner.

    Parameters
    ----------
    lsst_schemas : LsstSchemas, optional
        How LSST schema ids are resolved (default: the schemas bundled in
        lsst-alert-packet, no registry).
    """

    def __init__(self, lsst_schemas: LsstSchemas | None = None) -> None:
        self.containers = AlertDecoder()
        self.lsst_schemas = lsst_schemas or LsstSchemas()

    def parse(self, raw: bytes, source: AlertSource
              ) -> tuple[list[ParsedAlert], list[DeadLetter]]:
        """The alerts of one input (file or Kafka message) and its dead letters."""
        if not raw:
            return [], [DeadLetter(raw=raw, source=source, reason="empty payload")]
        if raw[:4] == AVRO_MAGIC:
            try:
                name, records = self.containers.decode_named(raw)
            except AlertRejected as exc:
                return [], [DeadLetter(raw=raw, source=source, reason=exc.reason)]  # unknown
            if survey_of_schema(name) == LSST:
                return lsst_adapter.parse_records(name, records, raw, source)
            return ztf_decode.parse_records(records, raw, source)
        if is_wire_format(raw):
            return lsst_adapter.parse_wire(raw, source, self.lsst_schemas)
        return [], [DeadLetter(raw=raw, source=source, reason=_not_an_alert(raw))]

    def as_container(self, raw: bytes) -> bytes:
        """A packet as an Avro object container (readable by ``fastavro.reader``): Rubin's
        wire-format messages are rewrapped with their writer schema, containers returned
        as they are; raises :class:`AlertRejected` for what cannot be decoded."""
        if raw[:4] == AVRO_MAGIC or not is_wire_format(raw):
            return raw
        resolved, record = lsst_adapter.decode_wire(raw, self.lsst_schemas)
        buf = io.BytesIO()
        fastavro.writer(buf, resolved.parsed, [record], codec="deflate")
        return buf.getvalue()

    def message_key(self, raw: bytes) -> bytes | None:
        """The partitioning key of an alert: its object's id (ZTF objectId, LSST
        diaObjectId or, for a solar-system source, ssObjectId); None when unreadable.

        Unreadable inputs still go to the topic (and from there to the dead letters).
        """
        try:
            if raw[:4] == AVRO_MAGIC:
                name, records = self.containers.decode_named(raw)
                if survey_of_schema(name) == ZTF:
                    oid = records[0].get("objectId") if records else None
                    return oid.encode() if isinstance(oid, str) else None
            elif is_wire_format(raw):
                schema_id, body = unframe(raw)
                key = object_key(body, self.lsst_schemas.get(schema_id).parsed)
                if key is not None:
                    return key
            else:
                return None
            alerts, _ = self.parse(raw, AlertSource("key"))  # the object id is further in
        except (AlertRejected, ValueError, EOFError, IndexError, TypeError):
            return None
        return alerts[0].oid.encode() if alerts else None


def make_parser(lsst_registry_url: str | None = None, timeout: float = 5.0) -> AlertParser:
    """A parser resolving LSST schema ids through a schema registry (bundled schemas as
    the fallback), or through the bundled schemas alone when no URL is given."""
    registry = RegistryClient(lsst_registry_url, http_fetch(timeout)) if lsst_registry_url \
        else None
    return AlertParser(LsstSchemas(registry))
