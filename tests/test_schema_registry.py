"""LSST schema ids through a Confluent-compatible schema registry, and the fallback.

No registry server can run here: Apicurio Registry's application does not resolve from
Maven Central (its ``apicurio-registry-schema-util-provider`` dependency is not served,
for 2.x nor 3.x), Confluent's registry is not on Maven Central, and Karapace is not on
PyPI.  So the client is tested against a stand-in that answers as the Confluent Schema
Registry API documents (``GET /schemas/ids/{id}`` -> 200 ``{"schema": "<json text>"}``,
``schemaType`` absent for Avro; an unknown id -> 404 ``{"error_code": 40403, ...}``),
served over real HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nightjar.processes import free_port
from nightjar.surveys.avro import RegistryClient, http_fetch, http_post
from nightjar.surveys.interface import AlertRejected, AlertSource
from nightjar.surveys.lsst.schemas import LsstSchemas, bundled_schema_root
from nightjar.surveys.lsst.simulate import LsstSimulator
from nightjar.surveys.lsst.wire import frame, unframe
from nightjar.surveys.registry import make_parser
from tests.asgi import serve_asgi
from tests.conftest import ROOT

#: an id only the registry knows (Rubin's ids are major*100+minor; a registry's need not be)
REGISTRY_ONLY_ID = 4711


class FakeRegistry:
    """Confluent's documented answers for the schemas it holds; counts the requests.

    ``writable``: ``POST /subjects/{subject}/versions`` with ``{"schema": "<json>"}``
    registers a schema and answers ``{"id": n}`` (the same id for a schema already
    registered, as Confluent's registry does); otherwise every write is refused.
    """

    def __init__(self, schemas: dict[int, Any], writable: bool = False):
        self.schemas = schemas
        self.writable = writable
        self.subjects: dict[str, list[int]] = {}  #: subject -> ids registered under it
        self.requests: list[tuple[str, str]] = []

    def app(self) -> Starlette:
        async def by_id(request: Request) -> JSONResponse:
            self.requests.append((request.method, request.url.path))
            schema_id = int(request.path_params["schema_id"])
            if schema_id not in self.schemas:
                return JSONResponse({"error_code": 40403,
                                     "message": f"Schema {schema_id} not found"},
                                    status_code=404)
            return JSONResponse({"schema": json.dumps(self.schemas[schema_id])},
                                media_type="application/vnd.schemaregistry.v1+json")

        async def register(request: Request) -> JSONResponse:
            self.requests.append((request.method, request.url.path))
            if not self.writable:
                return JSONResponse({"error_code": 405, "message": "read-only"},
                                    status_code=405)
            try:
                schema = json.loads((await request.json())["schema"])
                fastavro.parse_schema(schema)
            except Exception as exc:  # Confluent: 42201 Invalid schema
                return JSONResponse({"error_code": 42201, "message": f"Invalid schema {exc}"},
                                    status_code=422)
            found = next((i for i, known in self.schemas.items() if known == schema), None)
            schema_id = found if found is not None else max([100_000, *self.schemas]) + 1
            self.schemas[schema_id] = schema
            ids = self.subjects.setdefault(request.path_params["subject"], [])
            if schema_id not in ids:
                ids.append(schema_id)
            return JSONResponse({"id": schema_id},
                                media_type="application/vnd.schemaregistry.v1+json")

        async def anything(request: Request) -> JSONResponse:
            self.requests.append((request.method, request.url.path))
            return JSONResponse({"error_code": 405, "message": "read-only"}, status_code=405)

        return Starlette(routes=[Route("/schemas/ids/{schema_id:int}", by_id),
                                 Route("/subjects/{subject}/versions", register,
                                       methods=["POST"]),
                                 Route("/{path:path}", anything,
                                       methods=["GET", "POST", "PUT", "DELETE"])])


def _alert_schema_json(schema_id: int) -> Any:
    """The full (self-contained) alert schema of a bundled version, as JSON."""
    root = bundled_schema_root()
    assert root is not None
    major, minor = divmod(schema_id, 100)
    return fastavro.schema.load_schema(
        str(root / str(major) / str(minor) / f"lsst.v{major}_{minor}.alert.avsc"),
        _write_hint=False)


@pytest.fixture
async def registry() -> AsyncIterator[tuple[str, FakeRegistry]]:
    fake = FakeRegistry({1100: _alert_schema_json(1100),
                         REGISTRY_ONLY_ID: _alert_schema_json(1100)})
    async with serve_asgi(fake.app()) as url:
        yield url, fake


def _packet(schema_id: int) -> bytes:
    sim = LsstSimulator(seed=9)
    _, _, raw = next(sim.packets(1))
    return frame(schema_id, unframe(raw)[1])


async def test_ids_resolve_through_the_registry_once_then_from_the_cache(
        registry: tuple[str, FakeRegistry]) -> None:
    url, fake = registry
    schemas = LsstSchemas(RegistryClient(url, http_fetch(2.0)))
    found = await asyncio.to_thread(schemas.get, REGISTRY_ONLY_ID)
    assert found.origin == "registry" and found.version == "11.0"  # from the schema's name
    again = await asyncio.to_thread(schemas.get, REGISTRY_ONLY_ID)
    assert again is found
    assert fake.requests == [("GET", f"/schemas/ids/{REGISTRY_ONLY_ID}")]  # once, read-only
    # a registry-only id decodes a real packet end to end
    parser = make_parser(url, 2.0)
    alerts, dead = await asyncio.to_thread(parser.parse, _packet(REGISTRY_ONLY_ID),
                                           AlertSource("kafka"))
    assert not dead and alerts[0].schema_id == REGISTRY_ONLY_ID
    assert alerts[0].schemavsn == "11.0"


async def test_an_id_the_registry_lacks_falls_back_to_lsst_alert_packet(
        registry: tuple[str, FakeRegistry]) -> None:
    url, fake = registry
    schemas = LsstSchemas(RegistryClient(url, http_fetch(2.0)))
    found = await asyncio.to_thread(schemas.get, 1000)  # 404 there, bundled here
    assert found.origin == "lsst-alert-packet" and found.version == "10.0"
    with pytest.raises(AlertRejected, match=r"unknown LSST schema id 4242.*schema registry"):
        await asyncio.to_thread(schemas.get, 4242)
    assert ("GET", "/schemas/ids/4242") in fake.requests


async def test_an_unreachable_registry_falls_back_to_the_bundled_schemas() -> None:
    nobody = free_port()  # nothing listens there
    schemas = LsstSchemas(RegistryClient(f"http://127.0.0.1:{nobody}", http_fetch(0.5)))
    found = await asyncio.to_thread(schemas.get, 1100)
    assert found.origin == "lsst-alert-packet"
    alerts, dead = make_parser(f"http://127.0.0.1:{nobody}", 0.5).parse(
        _packet(1100), AlertSource("kafka"))
    assert alerts and not dead


def test_without_a_registry_every_bundled_version_resolves() -> None:
    schemas = LsstSchemas()
    for schema_id in (701, 800, 900, 1000, 1100, 1101):
        found = schemas.get(schema_id)
        assert found.origin == "lsst-alert-packet"
        assert found.parsed["name"] == f"lsst.v{schema_id // 100}_{schema_id % 100}.alert"


def test_registry_answers_that_are_not_avro_schemas_are_refused() -> None:
    answers = {1: (200, json.dumps({"schemaType": "PROTOBUF", "schema": "syntax = 'proto3';"})),
               2: (200, "<html>proxy error</html>"), 3: (503, "{}")}

    def fetch(url: str) -> tuple[int, bytes]:
        status, body = answers[int(url.rsplit("/", 1)[1])]
        return status, body.encode()

    client = RegistryClient("http://registry.invalid", fetch)
    for schema_id in answers:
        with pytest.raises(OSError):
            client.schema_json(schema_id)
    # and the store of schemas then falls back (1100 is bundled)
    answers[1100] = (503, "{}")
    assert LsstSchemas(client).get(1100).origin == "lsst-alert-packet"


async def test_nightjar_ingest_uses_the_configured_registry(
        registry: tuple[str, FakeRegistry], tmp_path: Path) -> None:
    url, fake = registry
    packet = tmp_path / "alert.lsst"
    packet.write_bytes(_packet(REGISTRY_ONLY_ID))
    env = {**os.environ, "NIGHTJAR_HOME": str(tmp_path / "home"),
           "NIGHTJAR_LSST_SCHEMA_REGISTRY_URL": url, "NIGHTJAR_STAMP_CLASSIFIER": "false",
           "NIGHTJAR_LC_CLASSIFIER": "false"}
    env.pop("MONGODB_URI", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nightjar.cli", "ingest", "--strict", str(packet), env=env,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert ("GET", f"/schemas/ids/{REGISTRY_ONLY_ID}") in fake.requests
    # without the registry the same packet cannot be read: its id is the registry's own
    env.pop("NIGHTJAR_LSST_SCHEMA_REGISTRY_URL")
    env["NIGHTJAR_HOME"] = str(tmp_path / "home2")
    plain = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "nightjar.cli", "ingest", "--strict",
                         str(packet)], env=env, cwd=ROOT, capture_output=True, text=True,
        check=False)
    assert plain.returncode == 1 and "unknown LSST schema id 4711" in plain.stderr


def test_container_encoding_matches_the_wire_body() -> None:
    """The wire body is exactly fastavro's schemaless encoding of the record."""
    sim = LsstSimulator(seed=10)
    obj, index = sim.events(1)[0]
    record = sim.alert(obj, index)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, sim.schema, record)
    assert unframe(sim.encode(record)) == (1100, buf.getvalue())


async def test_output_records_in_the_wire_format_read_back_through_the_registry() -> None:
    """Nightjar's output schemas registered under <topic>-value; records framed with their
    ids; a reader resolving the ids gets the records the container format carries."""
    from nightjar.runner.output_schemas import SchemaResolver, registered_codec
    from nightjar.runner.records import CONTAINERS, dead_letter_messages, decode
    from nightjar.surveys.interface import DeadLetter

    fake = FakeRegistry({}, writable=True)
    letters = [DeadLetter(raw=b"not an alert %d" % i, reason="undecodable: test",
                          source=AlertSource("kafka", topic="alerts", partition=0, offset=i))
               for i in range(3)]
    async with serve_asgi(fake.app()) as url:
        client = RegistryClient(url, http_fetch(2.0), http_post(2.0))
        topics = {"classification": "nj-classifications", "dead_letter": "nj-dead"}
        codec = await asyncio.to_thread(registered_codec, client, topics)
        again = await asyncio.to_thread(registered_codec, client, topics)
        assert again.schema_ids == codec.schema_ids  # registering twice: the same ids
        assert set(fake.subjects) == {"nj-classifications-value", "nj-dead-value"}
        wire = dead_letter_messages(letters, 1_700_000_000_000, codec=codec)
        containers = dead_letter_messages(letters, 1_700_000_000_000, codec=CONTAINERS)
        resolver = SchemaResolver(RegistryClient(url, http_fetch(2.0)))
        for (key, value), (key2, value2) in zip(wire, containers, strict=True):
            assert key == key2 and value[0] == 0
            assert unframe(value)[0] == codec.schema_ids["dead_letter"]
            assert len(value) < len(value2)  # no schema in every message
            read = await asyncio.to_thread(decode, value, resolver)
            assert read == decode(value2)
        with pytest.raises(ValueError, match="schema registry"):
            decode(wire[0][1])
