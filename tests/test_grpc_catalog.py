"""The catalogue service over a real gRPC channel on loopback."""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nightjar.context.catalogs import CatalogSource, CatalogStore, import_catalog
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.servicer import CHUNK, catalog_service
from services.grpc_server import RunningServer, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(8)
    n = 3000
    # a dense field: 3,000 stars within ~0.3 deg of (150, 2), and a bright pair far away
    ra = np.r_[150 + rng.normal(0, 0.1, n), 10.0, 10.0 + 2 / 3600]
    dec = np.r_[2 + rng.normal(0, 0.1, n), -30.0, -30.0]
    pq.write_table(pa.table({"id": [f"F{i}" for i in range(n + 2)], "ra": ra, "dec": dec,
                             "vmag": rng.uniform(8, 20, n + 2)}), tmp_path / "field.parquet")
    pq.write_table(pa.table({"ra": [10.0 + 1 / 3600], "dec": [-30.0], "kind": ["QSO"]}),
                   tmp_path / "qso.parquet")
    root = tmp_path / "catalogs"
    import_catalog(tmp_path / "field.parquet", "field", root, id_col="id",
                   default_radius_arcsec=1.5)
    import_catalog(tmp_path / "qso.parquet", "qso", root, default_radius_arcsec=5.0)
    return root


@pytest.fixture
async def server(catalog_root: Path) -> AsyncIterator[RunningServer]:
    running = await start_server([catalog_service(CatalogStore(catalog_root))], "127.0.0.1", 0)
    try:
        yield running
    finally:
        await stop_server(running, grace=1)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


async def test_cone_search_streams_large_results_in_chunks(channel: grpc.aio.Channel) -> None:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    chunks = [r async for r in stub.ConeSearch(catalog_pb2.ConeSearchRequest(
        catalog="field", ra=150.0, dec=2.0, radius_arcsec=1800.0), timeout=10)]
    sources = [s for chunk in chunks for s in chunk.sources]
    assert len(sources) > CHUNK and len(chunks) == math.ceil(len(sources) / CHUNK)
    assert [s.distance_arcsec for s in sources] == sorted(s.distance_arcsec for s in sources)
    assert all(s.distance_arcsec <= 1800 and s.catalog == "field" for s in sources)
    assert all(s.source_id.startswith("F") and "vmag" in s.columns for s in sources[:5])
    limited = [s async for r in stub.ConeSearch(catalog_pb2.ConeSearchRequest(
        catalog="field", ra=150.0, dec=2.0, radius_arcsec=1800.0, limit=7)) for s in r.sources]
    assert [s.source_id for s in limited] == [s.source_id for s in sources[:7]]


async def test_cone_search_all_and_crossmatch(channel: grpc.aio.Channel) -> None:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    everything = await stub.ConeSearchAll(catalog_pb2.ConeSearchAllRequest(
        ra=10.0, dec=-30.0, radius_arcsec=10.0, limit_per_catalog=1))
    by_name = {r.catalog: r for r in everything.results}
    assert set(by_name) == {"field", "qso"}
    assert by_name["field"].truncated and [s.source_id for s in by_name["field"].sources] == [
        f"F{3000}"]
    assert not by_name["qso"].truncated and by_name["qso"].sources[0].columns["kind"] == "QSO"
    # default radii: field 1.5″ finds the star at 0″; qso 5″ finds the QSO at ~0.87″
    matched = await stub.Crossmatch(catalog_pb2.CrossmatchRequest(ra=10.0, dec=-30.0))
    assert {(m.catalog, m.source_id) for m in matched.matches} == {("field", "F3000"),
                                                                  ("qso", "0")}
    qso = next(m for m in matched.matches if m.catalog == "qso")
    assert qso.distance_arcsec == pytest.approx(math.cos(math.radians(30)), rel=1e-6)
    narrow = await stub.Crossmatch(catalog_pb2.CrossmatchRequest(
        catalogs=["qso"], ra=10.0, dec=-30.0, radius_arcsec=0.5))
    assert list(narrow.matches) == []


async def test_list_catalogs(channel: grpc.aio.Channel) -> None:
    listed = await catalog_pb2_grpc.CatalogServiceStub(channel).ListCatalogs(
        catalog_pb2.ListCatalogsRequest())
    field = next(c for c in listed.catalogs if c.name == "field")
    assert field.row_count == 3002 and field.default_radius_arcsec == 1.5
    assert [c.name for c in field.columns] == ["id", "ra", "dec", "vmag"]


@pytest.mark.parametrize(("request_", "code"), [
    (catalog_pb2.ConeSearchRequest(catalog="field", ra=math.nan, dec=0, radius_arcsec=5),
     grpc.StatusCode.INVALID_ARGUMENT),
    (catalog_pb2.ConeSearchRequest(catalog="field", ra=10, dec=-95, radius_arcsec=5),
     grpc.StatusCode.INVALID_ARGUMENT),
    (catalog_pb2.ConeSearchRequest(catalog="field", ra=10, dec=0, radius_arcsec=-1),
     grpc.StatusCode.INVALID_ARGUMENT),
    (catalog_pb2.ConeSearchRequest(catalog="field", ra=10, dec=0, radius_arcsec=1e9),
     grpc.StatusCode.INVALID_ARGUMENT),
    (catalog_pb2.ConeSearchRequest(catalog="field", ra=10, dec=0),  # radius unset = 0
     grpc.StatusCode.INVALID_ARGUMENT),
    (catalog_pb2.ConeSearchRequest(catalog="nope", ra=10, dec=0, radius_arcsec=5),
     grpc.StatusCode.NOT_FOUND),
])
async def test_bad_arguments(channel: grpc.aio.Channel, request_: catalog_pb2.ConeSearchRequest,
                             code: grpc.StatusCode) -> None:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        [r async for r in stub.ConeSearch(request_)]
    assert err.value.code() == code
    assert err.value.details()
    if request_.radius_arcsec:  # the same cone through Crossmatch fails the same way
        with pytest.raises(grpc.aio.AioRpcError) as err2:
            await stub.Crossmatch(catalog_pb2.CrossmatchRequest(
                catalogs=[request_.catalog], ra=request_.ra, dec=request_.dec,
                radius_arcsec=request_.radius_arcsec))
        assert err2.value.code() == code


async def test_unreadable_catalogue_is_unavailable(channel: grpc.aio.Channel,
                                                   catalog_root: Path) -> None:
    shutil.rmtree(catalog_root / "qso" / "pixels")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await catalog_pb2_grpc.CatalogServiceStub(channel).Crossmatch(
            catalog_pb2.CrossmatchRequest(catalogs=["qso"], ra=10.0, dec=-30.0))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


class SlowStore(CatalogStore):
    """A catalogue store whose cone searches take ``seconds`` (a cold disk)."""

    seconds = 3.0

    def cone(self, *args: Any, **kwargs: Any) -> list[CatalogSource]:
        time.sleep(self.seconds)
        return super().cone(*args, **kwargs)


class ServerOutcomes(grpc.aio.ServerInterceptor):
    """Records, on the server, how each unary call ended and when.

    An outcome is the status code the servicer set, or ``"cancelled"`` when gRPC
    cancelled the handler (as it does when the deadline passes before the handler ends).
    """

    def __init__(self) -> None:
        self.ended: list[tuple[grpc.StatusCode | str | None, float]] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or not handler.unary_unary:
            return handler
        behaviour, ended = handler.unary_unary, self.ended

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start, cancelled = time.monotonic(), False
            try:
                return await behaviour(request, context)
            except asyncio.CancelledError:
                cancelled = True
                raise
            finally:
                ended.append(("cancelled" if cancelled else context.code(),
                              time.monotonic() - start))

        return grpc.unary_unary_rpc_method_handler(
            observed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


async def test_server_ends_a_call_at_its_deadline(catalog_root: Path) -> None:
    outcomes = ServerOutcomes()
    running = await start_server([catalog_service(SlowStore(catalog_root))], "127.0.0.1", 0,
                                 interceptors=[outcomes])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = catalog_pb2_grpc.CatalogServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ConeSearchAll(catalog_pb2.ConeSearchAllRequest(
                    ra=150.0, dec=2.0, radius_arcsec=60.0), timeout=0.5)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            await asyncio.sleep(0.3)
            # the handler ended at the deadline, not after the 3 s search.  The servicer's
            # own timeout and gRPC's cancellation at the deadline race (either may win on
            # a loaded machine); both free the call's slot, which is what matters.
            (outcome, seconds), = outcomes.ended
            assert outcome in (grpc.StatusCode.DEADLINE_EXCEEDED, "cancelled")
            assert seconds < 1.5
    finally:
        await stop_server(running, grace=1)


async def test_health_and_reflection(channel: grpc.aio.Channel, server: RunningServer) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    status = await health.Check(health_pb2.HealthCheckRequest(
        service="nightjar.v1.CatalogService"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]))
    names = {s.name async for r in responses for s in r.list_services_response.service}
    assert {"nightjar.v1.CatalogService", "grpc.health.v1.Health"} <= names


async def test_health_says_not_serving_without_catalogues(tmp_path: Path) -> None:
    running = await start_server([catalog_service(CatalogStore(tmp_path / "none"))],
                                 "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            status = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(
                service="nightjar.v1.CatalogService"))
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await stop_server(running, grace=1)


CLIENT = """
import sys, grpc
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    reply = stub.Crossmatch(catalog_pb2.CrossmatchRequest(catalogs=["qso"], ra=10.0,
                                                          dec=-30.0), timeout=10)
    print(reply.matches[0].columns["kind"], round(reply.matches[0].distance_arcsec, 3))
"""


async def test_generated_stub_client_in_another_process(server: RunningServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, f"127.0.0.1:{server.port}", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert stdout.decode().split() == ["QSO", f"{math.cos(math.radians(30)):.3f}"]
