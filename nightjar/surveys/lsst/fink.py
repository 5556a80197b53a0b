"""Fink's parquet dumps of Rubin alerts, turned back into Rubin's own packets.

Fink stores LSST alerts one column per packet field (``diaSource``, ``prvDiaSources``,
``diaObject``, ``ssSource``, cutouts...).  Parquet loses Avro's types on the way:
nullable ints become float64 (``diaObject.diaObjectId`` as a float loses its last
digits) and unset fields disappear.  :func:`to_record` fills a record of a Rubin
schema from one row: values the schema declares ``int``/``long`` are written as
integers where the float is integral, and every object id is taken from ``diaSource``
(an int64 column), never from a float.  :func:`wire_messages` frames them as Rubin's
Kafka does; the demo and the tests ingest Rubin's real sample alerts this way.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import fastavro

from nightjar.surveys.lsst.schemas import LsstSchemas
from nightjar.surveys.lsst.wire import frame

#: record fields holding object ids, and the diaSource field that holds the same id exactly
_ID_FROM_SOURCE = {"diaObjectId": "diaObjectId", "ssObjectId": "ssObjectId"}


def _named(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            out[schema["name"]] = schema
            for fld in schema["fields"]:
                _named(fld["type"], out)
        elif schema.get("type") == "array":
            _named(schema["items"], out)
    elif isinstance(schema, list):
        for item in schema:
            _named(item, out)
    return out


def _convert(value: Any, schema: Any, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        if value is None:
            return None
        for branch in schema:
            if branch != "null":
                return _convert(value, branch, named)
        return None
    kind = schema if isinstance(schema, str) else schema.get("type")
    if value is None:
        return None
    if kind in ("int", "long"):
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                return None
            return int(value)
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return bool(value)
    if kind == "record":
        return _record(value, schema, named)
    if kind == "array":
        return [_convert(item, schema["items"], named) for item in value]
    return value


def _record(row: Mapping[str, Any], schema: Mapping[str, Any],
            named: Mapping[str, Any]) -> dict[str, Any]:
    return {fld["name"]: _convert(row.get(fld["name"]), fld["type"], named)
            for fld in schema["fields"]}


def to_record(row: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """One parquet row as a record of ``schema`` (a parsed Rubin alert schema)."""
    named = _named(schema, {})
    record = _record(row, schema, named)
    source = record.get("diaSource") or {}
    for part in ("diaObject", "ssSource", "ssObject"):
        sub = record.get(part)
        if isinstance(sub, dict):
            for name, from_source in _ID_FROM_SOURCE.items():
                if name in sub and source.get(from_source):
                    sub[name] = source[from_source]
    if isinstance(record.get("ssSource"), dict) and "diaSourceId" in record["ssSource"]:
        record["ssSource"]["diaSourceId"] = source.get("diaSourceId")
    return record


def rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a parquet file as dicts (pyarrow)."""
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


def wire_messages(rows_: Iterable[Mapping[str, Any]], schema_id: int,
                  schemas: LsstSchemas | None = None) -> Iterator[bytes]:
    """Each row as a wire-format Kafka message of LSST schema ``schema_id``."""
    schema = (schemas or LsstSchemas()).get(schema_id).parsed
    for row in rows_:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, to_record(row, schema))
        yield frame(schema_id, buf.getvalue())


def write_wire_files(path: Path, schema_id: int, out_dir: Path) -> list[Path]:
    """Write one wire-format file per alert of a Fink parquet file (``<diaSourceId>.lsst``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    found = rows(path)
    written = []
    for row, message in zip(found, wire_messages(found, schema_id), strict=True):
        source_id = (row.get("diaSource") or {}).get("diaSourceId")
        target = out_dir / f"{path.stem}_{source_id}.lsst"
        target.write_bytes(message)
        written.append(target)
    return written
