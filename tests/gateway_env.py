"""A live gateway for tests: real store, real gRPC services, uvicorn on loopback, httpx."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from pymongo import AsyncMongoClient

from ml.registry import ModelRegistry
from nightjar.context.catalogs import CatalogStore
from nightjar.runner.ingest import BatchProcessor, RawInput, ingest
from nightjar.runner.topology import configured_topology
from nightjar.settings import Settings
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from services.catalog.servicer import catalog_service
from services.finding_chart.servicer import finding_chart_service
from services.gateway.app import GatewayConfig, create_app
from services.gateway.live import LiveFeed
from services.grpc_server import start_server, stop_server
from services.stamps.servicer import stamp_service
from services.tns.servicer import tns_service
from tests.asgi import serve_asgi
from tests.conftest import ROOT

API_KEY, API_USER = "test-key-alice", "alice"


@dataclass
class Deployment:
    store: NightjarStore
    archive: LocalArchive
    home: Path
    processor: BatchProcessor

    async def ingest(self, inputs: list[RawInput], batch_size: int = 100) -> None:
        await ingest(self.processor, inputs, batch_size=batch_size)


@contextlib.asynccontextmanager
async def deployment(mongo_uri: str, home: Path) -> AsyncIterator[Deployment]:
    """A fresh database with the classifiers of a real deployment (dropped afterwards)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    name = f"nightjar_gw_{uuid.uuid4().hex[:10]}"
    store = NightjarStore(client[name])
    await store.init()
    archive = LocalArchive(home / "archive")
    topology = configured_topology(Settings(home=home))
    try:
        yield Deployment(store, archive, home, BatchProcessor(store, archive, topology=topology))
    finally:
        await client.drop_database(name)
        await client.close()


@contextlib.asynccontextmanager
async def live_gateway(dep: Any, config: GatewayConfig | None = None,
                       feed: LiveFeed | None = None, port: int | None = None,
                       filters: Any = None, watch: Any = None, tns: Any = None
                       ) -> AsyncIterator[tuple[str, Any]]:
    """The gateway with the four gRPC services, served on a free port: (url, app)."""
    (dep.home / "tns").mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient() as http:
        running = await start_server([
            catalog_service(CatalogStore(dep.home / "catalogs")),
            stamp_service(dep.store, dep.archive), tns_service(dep.home / "tns"),
            finding_chart_service(dep.store, dep.archive, dep.home / "tns", None, http)],
            "127.0.0.1", 0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                app = create_app(dep.store, channel,
                                 config=config or GatewayConfig(
                                     api_keys={API_KEY: API_USER}, rate_anonymous=1e6),
                                 feed=feed, registry=ModelRegistry.default(dep.home),
                                 filters=filters, watch=watch, tns=tns)
                try:
                    async with serve_asgi(app, port=port) as url:
                        yield url, app
                finally:
                    if app.state.hub is not None:
                        await app.state.hub.close()
        finally:
            await stop_server(running, grace=0)


async def gql(client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None,
              **variables: Any) -> dict[str, Any]:
    """POST one query; the JSON answer (asserting HTTP 200)."""
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ingest_in_another_process(dep: Any, mongo_uri: str, alerts_dir: Path,
                                    home: Path, batch_size: int) -> None:
    """``nightjar ingest ALERTS_DIR`` as a separate process into ``dep``'s database."""
    env = {**os.environ, "MONGODB_URI": mongo_uri, "NIGHTJAR_DATABASE": dep.store.db.name,
           "NIGHTJAR_HOME": str(home)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nightjar.cli", "ingest", "--batch-size", str(batch_size),
        str(alerts_dir), env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]
