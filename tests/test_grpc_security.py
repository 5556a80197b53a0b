"""gRPC transport security and bearer tokens over real channels with a private CA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import SecretStr

from nightjar.context.catalogs import CatalogStore, import_catalog
from nightjar.settings import Settings
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.servicer import catalog_service
from services.grpc_security import GrpcSecurity, client_channel, read_tokens_file
from services.grpc_server import RunningServer, start_server, stop_server
from tests.tls import make_grpc_tls_files

TOKEN = "tom-7f3a9c1e5b"
OTHER = "pipeline-0d44e2"


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, Path]:
    return make_grpc_tls_files(tmp_path / "tls")


@pytest.fixture
def catalogs(tmp_path: Path) -> CatalogStore:
    pq.write_table(pa.table({"ra": [10.0], "dec": [-30.0], "name": ["a"]}), tmp_path / "c.parquet")
    import_catalog(tmp_path / "c.parquet", "tiny", tmp_path / "catalogs", id_col="name")
    return CatalogStore(tmp_path / "catalogs")


def _settings(tls: dict[str, Path], tokens_file: Path, **extra: object) -> Settings:
    return Settings(grpc_tls_cert=tls["server_cert"], grpc_tls_key=tls["server_key"],
                    grpc_tokens=[SecretStr(TOKEN)], grpc_tokens_file=tokens_file,
                    **extra)  # type: ignore[arg-type]


@pytest.fixture
async def secured(tls: dict[str, Path], catalogs: CatalogStore,
                  tmp_path: Path) -> AsyncIterator[RunningServer]:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# tokens of the pipeline\n\n{OTHER}  # added 2026-11\n")
    security = GrpcSecurity.from_settings(_settings(tls, tokens_file))
    assert security.tokens == (TOKEN, OTHER)
    running = await start_server([catalog_service(catalogs)], "127.0.0.1", 0,
                                 security=security)
    try:
        yield running
    finally:
        await stop_server(running, grace=1)


async def _crossmatch(channel: grpc.aio.Channel) -> list[str]:
    reply = await catalog_pb2_grpc.CatalogServiceStub(channel).Crossmatch(
        catalog_pb2.CrossmatchRequest(ra=10.0, dec=-30.0), timeout=10)
    return [m.source_id for m in reply.matches]


async def _code(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _crossmatch(channel)
    return err.value.code()


async def test_tokens_are_required_except_for_health_and_reflection(
        secured: RunningServer, tls: dict[str, Path]) -> None:
    target, ca = f"127.0.0.1:{secured.port}", tls["ca"].read_bytes()
    async with client_channel(target, ca=ca) as anonymous:
        assert await _code(anonymous) == grpc.StatusCode.UNAUTHENTICATED
        # a streaming method is refused the same way
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in catalog_pb2_grpc.CatalogServiceStub(anonymous).ConeSearch(
                    catalog_pb2.ConeSearchRequest(catalog="tiny", ra=10.0, dec=-30.0,
                                                  radius_arcsec=5)):
                pass
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(anonymous).Check(
            health_pb2.HealthCheckRequest(service="nightjar.v1.CatalogService"))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(anonymous).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name async for r in reflect for s in r.list_services_response.service}
        assert "nightjar.v1.CatalogService" in names
    async with client_channel(target, ca=ca, token="tom-7f3a9c1e5c") as wrong:
        assert await _code(wrong) == grpc.StatusCode.UNAUTHENTICATED
    for token in (TOKEN, OTHER):  # from the settings and from the tokens file
        async with client_channel(target, ca=ca, token=token) as right:
            assert await _crossmatch(right) == ["a"]
    metadata = (("authorization", f"Basic {TOKEN}"),)  # not a bearer token
    async with client_channel(target, ca=ca) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await catalog_pb2_grpc.CatalogServiceStub(channel).Crossmatch(
                catalog_pb2.CrossmatchRequest(ra=10.0, dec=-30.0), metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_plaintext_or_unverified_clients_cannot_talk_to_a_tls_server(
        secured: RunningServer, tmp_path: Path) -> None:
    target = f"127.0.0.1:{secured.port}"
    async with client_channel(target, token=TOKEN) as plaintext:
        assert await _code(plaintext) == grpc.StatusCode.UNAVAILABLE
    stranger = make_grpc_tls_files(tmp_path / "other-ca", "someone else's CA")
    async with client_channel(target, ca=stranger["ca"].read_bytes(), token=TOKEN) as other:
        assert await _code(other) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(
        tls: dict[str, Path], catalogs: CatalogStore, tmp_path: Path) -> None:
    security = GrpcSecurity.from_settings(Settings(
        grpc_tls_cert=tls["server_cert"], grpc_tls_key=tls["server_key"],
        grpc_tls_client_ca=tls["ca"]))
    running = await start_server([catalog_service(catalogs)], "127.0.0.1", 0,
                                 security=security)
    target, ca = f"127.0.0.1:{running.port}", tls["ca"].read_bytes()
    try:
        async with client_channel(target, ca=ca) as without_certificate:
            assert await _code(without_certificate) == grpc.StatusCode.UNAVAILABLE
        async with client_channel(target, ca=ca, cert_chain=tls["client_cert"].read_bytes(),
                                  private_key=tls["client_key"].read_bytes()) as with_cert:
            assert await _crossmatch(with_cert) == ["a"]  # no tokens configured: open
    finally:
        await stop_server(running, grace=1)


async def test_loopback_without_settings_stays_plaintext_and_open(
        catalogs: CatalogStore) -> None:
    security = GrpcSecurity.from_settings(Settings())
    assert not security.tls and not security.tokens
    running = await start_server([catalog_service(catalogs)], "127.0.0.1", 0,
                                 security=security)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert await _crossmatch(channel) == ["a"]
    finally:
        await stop_server(running, grace=1)


def test_half_configured_tls_is_a_clear_error(tls: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        GrpcSecurity.from_settings(Settings(grpc_tls_cert=tls["server_cert"]))
    with pytest.raises(ValueError, match="needs server TLS"):
        GrpcSecurity.from_settings(Settings(grpc_tls_client_ca=tls["ca"]))
    (tmp_path / "t").write_text("a\n#b\n c # d\n")
    assert read_tokens_file(tmp_path / "t") == ["a", "c"]
