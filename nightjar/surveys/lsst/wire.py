"""Rubin's Kafka wire format: ``0x00`` + a big-endian 4-byte schema id + schemaless Avro.

This is the Confluent Schema Registry framing; Rubin's schema ids are ``major * 100 +
minor`` of the alert schema (701, 900, 1000, 1100).  Pure functions: bytes in, bytes out.

:func:`object_key` reads only the first fields of a packet (the alert id, the scheduler
fields and the start of ``diaSource``) to find the object an alert belongs to, so the
relay can key Rubin's unkeyed stream by object at a fraction of a full decode.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Mapping
from typing import Any

from nightjar.surveys.interface import AlertRejected

MAGIC = 0
HEADER_SIZE = 5


def frame(schema_id: int, body: bytes) -> bytes:
    """A wire-format message: magic byte, schema id, then the schemaless Avro body."""
    return struct.pack(">bI", MAGIC, schema_id) + body


def unframe(raw: bytes) -> tuple[int, bytes]:
    """(schema id, Avro body) of a wire-format message, or :class:`AlertRejected`."""
    if len(raw) < HEADER_SIZE:
        raise AlertRejected(f"wire-format message of {len(raw)} bytes is shorter than its "
                            "5-byte header")
    if raw[0] != MAGIC:
        raise AlertRejected(f"wrong magic byte 0x{raw[0]:02x} (Confluent wire format starts "
                            "with 0x00)")
    return struct.unpack(">I", raw[1:HEADER_SIZE])[0], raw[HEADER_SIZE:]


def is_wire_format(raw: bytes) -> bool:
    return len(raw) >= HEADER_SIZE and raw[0] == MAGIC


def schema_version(schema_id: int) -> str:
    """Rubin's schema id as a version string: 1000 -> "10.0", 701 -> "7.1"."""
    return f"{schema_id // 100}.{schema_id % 100}"


_NAME = re.compile(r"^lsst\.v(\d+)_(\d+)\.alert$")


def version_of_name(name: str) -> str | None:
    """The version of a writer schema's name: ``lsst.v10_0.alert`` -> ``10.0``."""
    found = _NAME.match(name)
    return f"{int(found[1])}.{int(found[2])}" if found else None


def schema_id_of(version: str) -> int:
    """The schema id of a version string: "10.0" -> 1000."""
    major, minor = version.split(".")
    return int(major) * 100 + int(minor)


# ------------------------------------------------------------------ partial reading
class _Stop(Exception):
    pass


def _long(buf: io.BytesIO) -> int:
    shift = acc = 0
    while True:
        byte = buf.read(1)
        if not byte:
            raise EOFError("truncated Avro varint")
        acc |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return (acc >> 1) ^ -(acc & 1)
        shift += 7


_FIXED = {"float": 4, "double": 8}


def _skip_or_read(buf: io.BytesIO, schema: Any, named: Mapping[str, Any]) -> Any:
    """Read one value of a primitive or union-of-primitives type (records are walked)."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        return _skip_or_read(buf, schema[_long(buf)], named)
    kind = schema if isinstance(schema, str) else schema.get("type")
    if kind == "null":
        return None
    if kind in ("int", "long"):
        return _long(buf)
    if kind == "boolean":
        return buf.read(1) == b"\x01"
    if kind in _FIXED:
        buf.read(_FIXED[kind])
        return None
    if kind in ("string", "bytes"):
        buf.read(_long(buf))
        return None
    raise _Stop  # arrays, maps, records inside unions: beyond the prefix we need


def _walk(buf: io.BytesIO, record: Mapping[str, Any], named: Mapping[str, Any],
          found: dict[str, Any], path: str) -> None:
    for fld in record["fields"]:
        name = f"{path}{fld['name']}"
        ftype = fld["type"]
        if isinstance(ftype, str) and ftype in named:
            ftype = named[ftype]
        if isinstance(ftype, dict) and ftype.get("type") == "record":
            _walk(buf, ftype, named, found, name + ".")
            continue
        found[name] = _skip_or_read(buf, ftype, named)
        if "diaSource.diaObjectId" in found and "diaSource.ssObjectId" in found:
            raise _Stop


def _named_types(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        if schema.get("type") == "record" and "name" in schema:
            out[schema["name"]] = schema
            for fld in schema.get("fields", ()):
                _named_types(fld["type"], out)
        elif schema.get("type") == "array":
            _named_types(schema.get("items"), out)
    elif isinstance(schema, list):
        for item in schema:
            _named_types(item, out)
    return out


def object_key(body: bytes, schema: Mapping[str, Any]) -> bytes | None:
    """The partitioning key of an LSST alert: its ``diaObjectId``, or its ``ssObjectId``
    for a solar-system source (decimal ASCII); None when neither is set.

    Parameters
    ----------
    body : bytes
        The schemaless Avro body (after the wire header).
    schema : mapping
        The writer schema (a parsed fastavro schema of ``lsst.vX_Y.alert``).
    """
    found: dict[str, Any] = {}
    try:
        _walk(io.BytesIO(body), schema, _named_types(schema, {}), found, "")
    except _Stop:
        pass
    except (EOFError, IndexError, KeyError, TypeError):
        return None
    for name in ("diaSource.diaObjectId", "diaSource.ssObjectId"):
        value = found.get(name)
        if isinstance(value, int) and value > 0:
            return str(value).encode()
    return None
