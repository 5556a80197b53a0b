"""ZTF alert packets: Avro decoding, validation and the parsed alert model.

Every ZTF alert (schema 2.0 to 4.02) is an Avro *object container*: a header holding
the writer schema, then blocks of records.  Re-parsing the writer schema for every
alert costs more than decoding the record itself, so :class:`AlertDecoder` reads the
header with fastavro, parses each distinct writer schema once and keeps it.

Nothing here does I/O: bytes in, :class:`ParsedAlert` or :class:`AlertRejected` out.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import fastavro
from fastavro.read import HEADER_SCHEMA

MJD_OFFSET = 2400000.5  #: mjd = jd - 2400000.5
AVRO_MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_HEADER_SCHEMA = fastavro.parse_schema(HEADER_SCHEMA)
CUTOUT_KINDS = ("science", "template", "difference")
_CUTOUT_FIELDS = {"science": "cutoutScience", "template": "cutoutTemplate",
                  "difference": "cutoutDifference"}
_ZTF_OID = re.compile(r"^ZTF\d{2}[a-z]{7}$")
#: Candidate fields without which a detection means nothing.
REQUIRED_CANDIDATE_FIELDS = ("jd", "fid", "ra", "dec", "magpsf", "sigmapsf", "isdiffpos")
#: Largest raw payload kept in a dead letter (MongoDB documents stop at 16 MiB).
MAX_DEAD_LETTER_BYTES = 15 * 1024 * 1024


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
    """One decoded, validated alert.

    ``candidate``, ``prv_candidates`` and ``fp_hists`` are the packet's own dicts with
    NaN replaced by ``None``; ``cutouts`` maps ``science|template|difference`` to the
    gzipped FITS bytes (absent kinds are left out).
    """

    oid: str
    candid: int
    schemavsn: str | None
    candidate: dict[str, Any]
    prv_candidates: list[dict[str, Any]]
    fp_hists: list[dict[str, Any]]
    cutouts: dict[str, bytes]
    raw: bytes
    source: AlertSource
    dropped_prv: int = 0  #: prv_candidates dropped because unusable (kept in the archive)


@dataclass
class DeadLetter:
    """An input that ended in the dead-letter store, with everything needed to replay it."""

    raw: bytes
    source: AlertSource
    reason: str
    candid: int | None = None
    oid: str | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256(self.raw).hexdigest()


def _read_long(buf: io.BytesIO) -> int:
    """Avro zig-zag varint."""
    shift = 0
    acc = 0
    while True:
        byte = buf.read(1)
        if not byte:
            raise EOFError("truncated block header")
        b = byte[0]
        acc |= (b & 0x7F) << shift
        if not b & 0x80:
            return (acc >> 1) ^ -(acc & 1)
        shift += 7


class AlertDecoder:
    """Decode Avro containers, parsing each distinct writer schema only once.

    The cache is keyed by the SHA-1 of the schema JSON in the header; ZTF uses a
    handful of schema versions, so it stays tiny.
    """

    def __init__(self) -> None:
        self._schemas: dict[bytes, Any] = {}

    @property
    def cached_schemas(self) -> int:
        return len(self._schemas)

    def _writer_schema(self, schema_json: bytes) -> Any:
        key = hashlib.sha1(schema_json).digest()
        parsed = self._schemas.get(key)
        if parsed is None:
            parsed = fastavro.parse_schema(json.loads(schema_json))
            self._schemas[key] = parsed
        return parsed

    def decode(self, raw: bytes) -> list[dict[str, Any]]:
        """Return the records of one Avro container, or raise :class:`AlertRejected`."""
        if not raw:
            raise AlertRejected("empty payload")
        if raw[:4] != AVRO_MAGIC:
            head = raw[:40].decode("utf-8", "replace").strip()
            kind = "HTML/text page" if raw.lstrip()[:1] == b"<" else "payload"
            raise AlertRejected(f"not an Avro container ({kind} starting {head!r})")
        try:
            return self._decode_container(raw)
        except AlertRejected:
            raise
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise AlertRejected(f"corrupt Avro container: {type(exc).__name__}: {exc}") from exc

    def _decode_container(self, raw: bytes) -> list[dict[str, Any]]:
        buf = io.BytesIO(raw)
        header = cast(dict[str, Any], fastavro.schemaless_reader(buf, _HEADER_SCHEMA))
        meta = header["meta"]
        codec = meta.get("avro.codec", b"null").decode()
        if "avro.schema" not in meta:
            raise AlertRejected("Avro header has no writer schema")
        schema = self._writer_schema(meta["avro.schema"])
        sync = header["sync"]
        records: list[dict[str, Any]] = []
        while buf.tell() < len(raw):
            count = _read_long(buf)
            size = _read_long(buf)
            if count < 0 or size < 0 or buf.tell() + size + SYNC_SIZE > len(raw):
                raise AlertRejected("corrupt Avro container: block runs past the end of the data")
            data = buf.read(size)
            if codec == "deflate":
                data = zlib.decompress(data, -15)
            elif codec != "null":
                raise AlertRejected(f"unsupported Avro codec {codec!r}")
            if buf.read(SYNC_SIZE) != sync:
                raise AlertRejected("corrupt Avro container: sync marker mismatch")
            block = io.BytesIO(data)
            for _ in range(count):
                records.append(cast(dict[str, Any], fastavro.schemaless_reader(block, schema)))
        if not records:
            raise AlertRejected("Avro container holds no records")
        return records


def finite_or_none(value: Any) -> Any:
    """The value, or None for a NaN/inf float (MongoDB, JSON and protobuf want nulls)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


_isfinite = math.isfinite


def _clean(rec: Mapping[str, Any]) -> dict[str, Any]:
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
    candidate = _clean(raw_candidate)
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
        item = _clean(entry)
        if item.get("jd") is None or item.get("fid") is None:
            dropped += 1
        elif item.get("candid") is not None and (
            _missing(item, REQUIRED_CANDIDATE_FIELDS) or sign_of_isdiffpos(item["isdiffpos"]) == 0
        ):
            dropped += 1  # a detection without photometry cannot be used
        else:
            prv.append(item)
    fp = [_clean(e) for e in record.get("fp_hists") or []]
    cutouts: dict[str, bytes] = {}
    for kind, name in _CUTOUT_FIELDS.items():
        cut = record.get(name)
        if cut and cut.get("stampData"):
            cutouts[kind] = cut["stampData"]
    return ParsedAlert(oid=oid, candid=candid, schemavsn=record.get("schemavsn"),
                       candidate=candidate, prv_candidates=prv, fp_hists=fp, cutouts=cutouts,
                       raw=raw, source=source, dropped_prv=dropped)


def sign_of_isdiffpos(value: Any) -> int:
    """+1 for a positive difference ('t'/'1'), -1 for negative ('f'/'0'), 0 if unknown."""
    text = str(value).strip().lower()
    if text in ("t", "1", "true"):
        return 1
    if text in ("f", "0", "false"):
        return -1
    return 0


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
