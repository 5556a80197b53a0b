"""Avro object containers, decoded with each distinct writer schema parsed once.

ZTF sends every alert as an Avro *object container* (a header holding the writer
schema, then blocks of records), and LSST alerts are stored in the same form.
Re-parsing the writer schema for every alert costs more than decoding the record
itself, so :class:`AlertDecoder` reads the header with fastavro, parses each distinct
writer schema once and keeps it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from typing import Any, cast

import fastavro
from fastavro.read import HEADER_SCHEMA

from nightjar.surveys.interface import AlertRejected

AVRO_MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_HEADER_SCHEMA = fastavro.parse_schema(HEADER_SCHEMA)


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
        return self.decode_named(raw)[1]

    def decode_named(self, raw: bytes) -> tuple[str, list[dict[str, Any]]]:
        """The writer schema's full name (``ztf.alert``, ``lsst.v10_0.alert``) and the
        records of one Avro container, or raise :class:`AlertRejected`."""
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

    def _decode_container(self, raw: bytes) -> tuple[str, list[dict[str, Any]]]:
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
        return schema_name(schema), records


def schema_name(parsed: Any) -> str:
    """The full name of a parsed schema ("" for an unnamed one)."""
    return str(parsed.get("name", "")) if isinstance(parsed, dict) else ""
