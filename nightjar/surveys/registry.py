"""Every survey Nightjar reads, and the parser that recognises an input's survey by content.

ZTF sends Avro object containers whose writer schema is ``ztf.alert``; Rubin sends the
Confluent wire format (a zero byte, a big-endian 4-byte schema id, schemaless Avro) and
stores alerts as Avro containers of ``lsst.vX_Y.alert``.  :class:`AlertParser` looks at
the bytes, never at a file name, and hands them to the survey's package.  Adding a
survey is one package plus one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping

from nightjar.surveys.avro import AVRO_MAGIC, AlertDecoder
from nightjar.surveys.interface import (
    ZTF,
    AlertRejected,
    AlertSource,
    DeadLetter,
    ParsedAlert,
    PhotometryRules,
    history_fields,
)
from nightjar.surveys.ztf import decode as ztf_decode
from nightjar.surveys.ztf.correction import ZTF_PHOTOMETRY

#: each survey's photometry rules
PHOTOMETRY: Mapping[str, PhotometryRules] = {ZTF: ZTF_PHOTOMETRY}
#: the projection of stored detections merging needs, for every survey
HISTORY_FIELDS = history_fields(PHOTOMETRY.values())


def photometry_rules(survey: str) -> PhotometryRules:
    try:
        return PHOTOMETRY[survey]
    except KeyError:
        raise ValueError(f"unknown survey {survey!r}; Nightjar reads {sorted(PHOTOMETRY)}") \
            from None


class AlertParser:
    """Bytes of any survey in, alerts and dead letters out (never raises).

    Holds the decoders' caches (writer schemas), so one parser is shared by a runner.
    """

    def __init__(self) -> None:
        self.containers = AlertDecoder()

    def parse(self, raw: bytes, source: AlertSource
              ) -> tuple[list[ParsedAlert], list[DeadLetter]]:
        """The alerts of one input (file or Kafka message) and its dead letters."""
        if raw[:4] == AVRO_MAGIC or not raw or raw[:1] != b"\x00":
            return ztf_decode.parse_payload(self.containers, raw, source)
        return [], [DeadLetter(raw=raw, source=source, reason=str(AlertRejected(
            "a Confluent wire-format message (LSST) cannot be read yet")))]

    def message_key(self, raw: bytes) -> bytes | None:
        """The partitioning key of an alert (its object's id); None when unreadable.

        Unreadable inputs still go to the topic (and from there to the dead letters).
        """
        try:
            records = self.containers.decode(raw)
        except (AlertRejected, ValueError, EOFError, IndexError, TypeError):
            return None
        oid = records[0].get("objectId") if records else None
        return oid.encode() if isinstance(oid, str) else None
