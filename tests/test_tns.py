"""TNS: sync against a fake TNS (auth, rate limits, increments, bad payloads), and the
gRPC service on the snapshot."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from nightjar.context.tns import FULL_FILE, TnsClient, TnsError, TnsIndex, sync, user_agent
from nightjar.v1 import tns_pb2, tns_pb2_grpc
from services.grpc_server import start_server, stop_server
from services.tns.servicer import tns_service
from tests.fake_tns import FakeTns, public_objects_zip

TODAY = dt.date(2026, 11, 22)
SN2022AND = {"objid": 99539, "name_prefix": "SN", "name": "2022and", "ra": 150.02755416,
             "declination": 3.75714275086, "redshift": 0.043, "type": "SN II",
             "reporting_group": "ATLAS", "discoverydate": "2022-01-27 10:49:26.400",
             "internal_names": "ATLAS22cwl, PS22agq, ZTF22aaaifcx"}
AT2026CQA = {"objid": 200803, "name_prefix": "AT", "name": "2026cqa", "ra": 38.8742717,
             "declination": 23.9654567, "reporting_group": "ALeRCE",
             "discoverydate": "2026-02-09 03:46:46.998", "internal_names": "ZTF26aafuoxy"}
NEW = {"objid": 300001, "name_prefix": "AT", "name": "2026zzz", "ra": 150.03,
       "declination": 3.76, "reporting_group": "ZTF", "discoverydate": "2026-11-22 05:00:00"}


def _day(date: dt.date) -> str:
    return f"tns_public_objects_{date:%Y%m%d}.csv.zip"


@pytest.fixture
def fake() -> FakeTns:
    return FakeTns(bot_id=1234, bot_name="nightjar_bot", api_key="s3cret", files={
        FULL_FILE: public_objects_zip([SN2022AND, AT2026CQA])})


class Sleeps:
    """Records waits and starts the fake's next rate-limit window instead of sleeping."""

    def __init__(self, fake: FakeTns):
        self.fake = fake
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.fake.new_window()


@pytest.fixture
async def http(fake: FakeTns) -> AsyncIterator[httpx.AsyncClient]:
    async with fake.serve() as url, httpx.AsyncClient(base_url=url) as client:
        yield client


def _client(http: httpx.AsyncClient, fake: FakeTns, sleeps: Any = None,
            key: str = "s3cret") -> TnsClient:
    return TnsClient(http, fake.bot_id, fake.bot_name, key, sleep=sleeps or Sleeps(fake))


def test_user_agent_is_the_tns_marker() -> None:
    assert user_agent(1234, "nightjar_bot") == \
        'tns_marker{"tns_id": 1234, "type": "bot", "name": "nightjar_bot"}'


async def test_first_sync_is_full_then_daily_increments(http: httpx.AsyncClient,
                                                        fake: FakeTns, tmp_path: Path) -> None:
    reclassified = {**AT2026CQA, "name_prefix": "SN", "type": "SN Ia", "redshift": 0.05}
    fake.files[_day(TODAY)] = public_objects_zip([reclassified])
    report = await sync(_client(http, fake), tmp_path, TODAY)
    assert fake.requests == [FULL_FILE, _day(TODAY)]
    assert (report.objects, report.rows_received) == (2, 3)
    index = TnsIndex.load(tmp_path / "tns_public_objects.parquet")
    assert index.by_name("2026cqa").name == "SN 2026cqa"  # the daily file won
    assert index.by_name("SN2026cqa").type == "SN Ia"

    # next day: only the days since the last sync, no full file
    fake.requests.clear()
    fake.files[_day(TODAY + dt.timedelta(days=1))] = public_objects_zip([NEW])
    report = await sync(_client(http, fake), tmp_path, TODAY + dt.timedelta(days=1))
    assert fake.requests == [_day(TODAY), _day(TODAY + dt.timedelta(days=1))]
    assert report.objects == 3
    found = TnsIndex.load(tmp_path / "tns_public_objects.parquet").search(
        150.02755416, 3.75714275086, 120.0)
    assert [o.name for o in found] == ["SN 2022and", "AT 2026zzz"]
    assert found[0].distance_arcsec == pytest.approx(0.0, abs=1e-6)


async def test_rate_limit_is_respected(http: httpx.AsyncClient, fake: FakeTns,
                                       tmp_path: Path) -> None:
    fake.budget, fake.reset_s = 1, 42.0
    fake.files[_day(TODAY - dt.timedelta(days=1))] = public_objects_zip([NEW])
    sleeps = Sleeps(fake)
    # day 1: full file (budget spent: remaining 0 -> pause before the next request)
    await sync(_client(http, fake, sleeps), tmp_path, TODAY - dt.timedelta(days=1))
    assert sleeps.waits == [42.0]
    assert fake.too_many == 0  # it paused at remaining=0 instead of provoking a 429
    assert fake.requests == [FULL_FILE, _day(TODAY - dt.timedelta(days=1))]
    # the fake's window is spent again; a client that ignores the headers gets a 429,
    # ours waits for the reset it announces and retries
    fake.used = fake.budget
    sleeps2 = Sleeps(fake)
    report = await sync(_client(http, fake, sleeps2), tmp_path, TODAY)
    assert sleeps2.waits[0] == 42.0
    assert fake.too_many == 1  # the one 429 forced above, waited out and not repeated
    assert report.objects == 3 and report.rate_limit_waits >= 1


async def test_malformed_payload_changes_nothing(http: httpx.AsyncClient, fake: FakeTns,
                                                 tmp_path: Path) -> None:
    await sync(_client(http, fake), tmp_path, TODAY - dt.timedelta(days=1))
    before = (tmp_path / "tns_public_objects.parquet").read_bytes()
    fake.files[_day(TODAY)] = b"<!DOCTYPE html><html>maintenance</html>"
    with pytest.raises(TnsError, match="not a TNS public-objects file"):
        await sync(_client(http, fake), tmp_path, TODAY)
    assert (tmp_path / "tns_public_objects.parquet").read_bytes() == before
    fake.files[_day(TODAY)] = public_objects_zip([{"objid": "x", "name": "y"}])
    with pytest.raises(TnsError):
        await sync(_client(http, fake), tmp_path, TODAY)


async def test_wrong_credentials_are_reported(http: httpx.AsyncClient, fake: FakeTns,
                                              tmp_path: Path) -> None:
    with pytest.raises(TnsError, match="credentials"):
        await sync(_client(http, fake, key="wrong"), tmp_path, TODAY)
    assert not (tmp_path / "tns_public_objects.parquet").exists()


async def test_tns_service_over_grpc(http: httpx.AsyncClient, fake: FakeTns,
                                     tmp_path: Path) -> None:
    running = await start_server([tns_service(tmp_path)], "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = tns_pb2_grpc.TnsServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Search(tns_pb2.SearchRequest(ra=150.0, dec=3.7, radius_arcsec=60))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            await sync(_client(http, fake), tmp_path, TODAY)  # the service picks it up
            found = await stub.Search(tns_pb2.SearchRequest(ra=150.0276, dec=3.7571,
                                                            radius_arcsec=30))
            assert [o.name for o in found.objects] == ["SN 2022and"]
            hit = found.objects[0]
            assert (hit.type, hit.redshift, hit.reporting_group) == ("SN II", 0.043, "ATLAS")
            assert hit.discovery_date.startswith("2022-01-27") and hit.distance_arcsec < 1
            assert found.snapshot_objects == 2
            by_name = await stub.ByName(tns_pb2.ByNameRequest(name="AT 2026cqa"))
            assert by_name.object.internal_names == "ZTF26aafuoxy"
            assert not by_name.object.HasField("redshift")
            for request, code in [
                (tns_pb2.ByNameRequest(name="2099abc"), grpc.StatusCode.NOT_FOUND),
                (tns_pb2.ByNameRequest(name=" "), grpc.StatusCode.INVALID_ARGUMENT)]:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ByName(request)
                assert err.value.code() == code
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Search(tns_pb2.SearchRequest(ra=float("nan"), dec=0,
                                                        radius_arcsec=5))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await stop_server(running, grace=1)
