"""Avro object containers, decoded with each distinct writer schema parsed once; and a
client of a Confluent-compatible schema registry (Rubin's input ids, Nightjar's output
schemas).

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
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

import fastavro
from fastavro.read import HEADER_SCHEMA

from nightjar.surveys.interface import AlertRejected

AVRO_MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_HEADER_SCHEMA = fastavro.parse_schema(HEADER_SCHEMA)
#: an HTTP GET: url -> (status, body)
Fetch = Callable[[str], tuple[int, bytes]]
#: an HTTP POST of a JSON body: (url, body) -> (status, body)
Post = Callable[[str, bytes], tuple[int, bytes]]


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


class RegistryClient:
    """Client of a Confluent-compatible schema registry: reads schemas by id and, given a
    ``post``, registers them.

    Parameters
    ----------
    url : str
        Base URL (e.g. ``https://usdf-alert-schemas-dev.slac.stanford.edu``).
    fetch : callable
        ``fetch(url) -> (status, body)``: the HTTP GET to use (injected; see
        :func:`http_fetch`).
    post : callable, optional
        ``post(url, json_body) -> (status, body)``: the HTTP POST (see :func:`http_post`);
        None = read-only.
    """

    def __init__(self, url: str, fetch: Fetch, post: Post | None = None):
        self.url = url.rstrip("/")
        self.fetch = fetch
        self.post = post

    def register(self, subject: str, schema: str) -> int:
        """Register an Avro schema (JSON text) under ``subject``; its id (the same id
        again for a schema already registered).  Raises ``OSError`` on any failure."""
        if self.post is None:
            raise OSError("this registry client is read-only")
        status, body = self.post(f"{self.url}/subjects/{quote(subject, safe='')}/versions",
                                 json.dumps({"schema": schema}).encode())
        if status != 200:
            raise OSError(f"schema registry answered HTTP {status} registering {subject}: "
                          f"{body[:200].decode(errors='replace')}")
        try:
            return int(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OSError(f"schema registry answered an unreadable body registering "
                          f"{subject}: {exc}") from exc

    def schema_json(self, schema_id: int) -> Any | None:
        """The schema registered under ``schema_id`` as JSON, None if the registry does not
        know it; raises ``OSError`` when the registry cannot be reached or answers badly."""
        status, body = self.fetch(f"{self.url}/schemas/ids/{schema_id}")
        if status == 404:
            return None
        if status != 200:
            raise OSError(f"schema registry answered HTTP {status} for id {schema_id}")
        try:
            answer = json.loads(body)
            schema_type = answer.get("schemaType", "AVRO")
            if schema_type != "AVRO":
                raise OSError(f"schema id {schema_id} is a {schema_type} schema, not Avro")
            return json.loads(answer["schema"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OSError(f"schema registry answered an unreadable body for id {schema_id}: "
                          f"{exc}") from exc


def http_post(timeout: float = 5.0) -> Post:
    """An HTTP POST of a JSON body for :class:`RegistryClient` (httpx) [s]."""
    import httpx

    def post(url: str, body: bytes) -> tuple[int, bytes]:
        try:
            response = httpx.post(url, content=body, timeout=timeout, headers={
                "Content-Type": "application/vnd.schemaregistry.v1+json"})
        except httpx.HTTPError as exc:
            raise OSError(f"schema registry unreachable: {type(exc).__name__}: {exc}") from exc
        return response.status_code, response.content

    return post


def http_fetch(timeout: float = 5.0) -> Fetch:
    """An HTTP GET for :class:`RegistryClient` (httpx, with a timeout) [s]."""
    import httpx

    def fetch(url: str) -> tuple[int, bytes]:
        try:
            response = httpx.get(url, timeout=timeout,
                                 headers={"Accept": "application/vnd.schemaregistry.v1+json"})
        except httpx.HTTPError as exc:
            raise OSError(f"schema registry unreachable: {type(exc).__name__}: {exc}") from exc
        return response.status_code, response.content

    return fetch
