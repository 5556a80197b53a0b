"""The Avro/stamp service over a real gRPC channel, on simulated and real alerts."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from nightjar.runner.ingest import BatchProcessor, expand_paths, ingest, iter_inputs
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import DETECTIONS
from nightjar.surveys.avro import AlertDecoder
from nightjar.v1 import stamps_pb2, stamps_pb2_grpc
from services.grpc_server import start_server, stop_server
from services.stamps.servicer import stamp_service
from tests.conftest import as_inputs


@pytest.fixture
async def stub(store: NightjarStore, tmp_path: Path,
               simulated: list[tuple[str, int, bytes]]
               ) -> AsyncIterator[stamps_pb2_grpc.StampServiceStub]:
    archive = LocalArchive(tmp_path / "archive")
    await ingest(BatchProcessor(store, archive), as_inputs(simulated), 500)
    running = await start_server([stamp_service(store, archive)], "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield stamps_pb2_grpc.StampServiceStub(channel)
    finally:
        await stop_server(running, grace=1)


async def test_avro_and_alert_fields(stub: stamps_pb2_grpc.StampServiceStub,
                                     simulated: list[tuple[str, int, bytes]]) -> None:
    oid, candid, raw = simulated[10]
    avro = await stub.GetAvro(stamps_pb2.GetAvroRequest(oid=oid, candid=candid))
    assert avro.avro == raw
    reply = await stub.GetAlert(stamps_pb2.GetAlertRequest(oid=oid, candid=candid,
                                                           fields=["magpsf", "ra", "fid"]))
    body = json.loads(reply.alert_json)
    cand = AlertDecoder().decode(raw)[0]["candidate"]
    assert body["objectId"] == oid and body["candid"] == candid
    assert body["candidate"] == {"magpsf": cand["magpsf"], "ra": cand["ra"], "fid": cand["fid"]}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAlert(stamps_pb2.GetAlertRequest(oid=oid, candid=candid,
                                                       fields=["magpfs"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "magpfs" in err.value.details()


async def test_stamps_fits_and_png(stub: stamps_pb2_grpc.StampServiceStub,
                                   simulated: list[tuple[str, int, bytes]]) -> None:
    oid, candid, raw = simulated[3]
    original = AlertDecoder().decode(raw)[0]["cutoutScience"]["stampData"]
    got = await stub.GetStamp(stamps_pb2.GetStampRequest(
        oid=oid, candid=candid, kind=stamps_pb2.STAMP_KIND_SCIENCE))
    assert got.content_type == "application/fits"
    assert got.data == gzip.decompress(original)
    with fits.open(io.BytesIO(got.data)) as hdus:
        assert hdus[0].data.shape == (63, 63)
    png = await stub.GetStamp(stamps_pb2.GetStampRequest(
        oid=oid, candid=candid, kind=stamps_pb2.STAMP_KIND_SCIENCE,
        format=stamps_pb2.STAMP_FORMAT_PNG, size_px=252))
    assert png.content_type == "image/png"
    image = np.asarray(Image.open(io.BytesIO(png.data)).convert("L"))
    assert image.shape == (252, 252)
    # the simulated source sits at the centre: brighter there than in the corners
    assert image[118:134, 118:134].mean() > image[:32, :32].mean() + 40
    coloured = await stub.GetStamp(stamps_pb2.GetStampRequest(
        oid=oid, candid=candid, kind=stamps_pb2.STAMP_KIND_DIFFERENCE,
        format=stamps_pb2.STAMP_FORMAT_PNG, colormap="viridis"))
    rgb = np.asarray(Image.open(io.BytesIO(coloured.data)).convert("RGB")).astype(int)
    assert rgb.shape == (63, 63, 3) and np.abs(rgb[..., 0] - rgb[..., 2]).max() > 50
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStamp(stamps_pb2.GetStampRequest(
            oid=oid, candid=candid, kind=stamps_pb2.STAMP_KIND_SCIENCE,
            format=stamps_pb2.STAMP_FORMAT_PNG, colormap="no-such-map"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListStamps(stamps_pb2.ListStampsRequest(oid=oid))
    own = sorted(c for o, c, _ in simulated if o == oid)
    assert [e.candid for e in listed.stamps] == own
    assert all(list(e.kinds) == ["science", "template", "difference"] for e in listed.stamps)


@pytest.mark.parametrize(("call", "code"), [
    (stamps_pb2.GetStampRequest(oid="ZTF20aaaaaaa", candid=1,
                                kind=stamps_pb2.STAMP_KIND_SCIENCE), grpc.StatusCode.NOT_FOUND),
    (stamps_pb2.GetStampRequest(oid="", candid=1, kind=stamps_pb2.STAMP_KIND_SCIENCE),
     grpc.StatusCode.INVALID_ARGUMENT),
    (stamps_pb2.GetStampRequest(oid="x", candid=5), grpc.StatusCode.INVALID_ARGUMENT),
])
async def test_bad_stamp_requests(stub: stamps_pb2_grpc.StampServiceStub,
                                  call: stamps_pb2.GetStampRequest,
                                  code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStamp(call)
    assert err.value.code() == code


async def test_wrong_object_and_history_only_detections_are_not_found(
        stub: stamps_pb2_grpc.StampServiceStub, store: NightjarStore,
        simulated: list[tuple[str, int, bytes]]) -> None:
    oid, candid, _ = simulated[0]
    other = next(o for o, _, _ in simulated if o != oid)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAvro(stamps_pb2.GetAvroRequest(oid=other, candid=candid))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    unknown = await stub.ListStamps(stamps_pb2.ListStampsRequest(oid=oid))
    assert unknown.stamps
    with pytest.raises(grpc.aio.AioRpcError) as err2:
        await stub.ListStamps(stamps_pb2.ListStampsRequest(oid="ZTF99zzzzzzz"))
    assert err2.value.code() == grpc.StatusCode.NOT_FOUND


async def test_detection_known_only_from_a_later_alerts_history_has_no_stamp(
        store: NightjarStore, tmp_path: Path,
        simulated: list[tuple[str, int, bytes]]) -> None:
    by_object: dict[str, list[tuple[int, bytes]]] = {}
    for oid, candid, raw in simulated:
        by_object.setdefault(oid, []).append((candid, raw))
    oid, alerts = next((o, a) for o, a in by_object.items() if len(a) >= 3)
    last_candid, last_raw = alerts[-1]
    archive = LocalArchive(tmp_path / "archive")
    # only the object's latest alert: its earlier detections arrive as prv_candidates
    await ingest(BatchProcessor(store, archive),
                 as_inputs([(oid, last_candid, last_raw)]), 500)
    dets = await store.light_curve(DETECTIONS, oid)
    history_only = [d["_id"] for d in dets if not d.get("has_stamp")]
    assert history_only and last_candid not in history_only
    earlier = history_only[0]
    running = await start_server([stamp_service(store, archive)], "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = stamps_pb2_grpc.StampServiceStub(channel)
            for call in (stub.GetStamp(stamps_pb2.GetStampRequest(
                             oid=oid, candid=earlier, kind=stamps_pb2.STAMP_KIND_SCIENCE)),
                         stub.GetAvro(stamps_pb2.GetAvroRequest(oid=oid, candid=earlier))):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
                assert "known only from a later alert's history" in err.value.details()
            listed = await stub.ListStamps(stamps_pb2.ListStampsRequest(oid=oid))
            assert [e.candid for e in listed.stamps] == [last_candid]
            stamp = await stub.GetStamp(stamps_pb2.GetStampRequest(
                oid=oid, candid=last_candid, kind=stamps_pb2.STAMP_KIND_SCIENCE))
            assert stamp.content_type == "application/fits"
    finally:
        await stop_server(running, grace=1)


async def test_real_alert_stamp_keeps_its_fits_header(store: NightjarStore, tmp_path: Path,
                                                     shared_data: Path) -> None:
    archive = LocalArchive(tmp_path / "archive")
    files = expand_paths([shared_data / "ztf" / "alerts"])[:20]
    summary = await ingest(BatchProcessor(store, archive), iter_inputs(files), 500)
    record = AlertDecoder().decode(files[0].read_bytes())[0]
    running = await start_server([stamp_service(store, archive)], "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = stamps_pb2_grpc.StampServiceStub(channel)
            got = await stub.GetStamp(stamps_pb2.GetStampRequest(
                oid=record["objectId"], candid=record["candid"],
                kind=stamps_pb2.STAMP_KIND_TEMPLATE))
            png = await stub.GetStamp(stamps_pb2.GetStampRequest(
                oid=record["objectId"], candid=record["candid"],
                kind=stamps_pb2.STAMP_KIND_SCIENCE, format=stamps_pb2.STAMP_FORMAT_PNG))
    finally:
        await stop_server(running, grace=1)
    assert summary.alerts_stored == 20
    with fits.open(io.BytesIO(got.data)) as hdus:
        original = fits.open(io.BytesIO(gzip.decompress(
            record["cutoutTemplate"]["stampData"])))[0].header
        assert hdus[0].header == original
    image = np.asarray(Image.open(io.BytesIO(png.data)).convert("L"))
    assert image.std() > 5  # an image, not a flat field
