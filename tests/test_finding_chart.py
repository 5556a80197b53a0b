"""Finding charts over gRPC, checked by rendering the PDF with poppler."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nightjar.alerts import AlertDecoder
from nightjar.archive import LocalArchive
from nightjar.ingest import BatchProcessor, ingest
from nightjar.store import NightjarStore
from nightjar.tns import SNAPSHOT, parse_public_objects
from nightjar.v1 import finding_chart_pb2, finding_chart_pb2_grpc
from services.finding_chart.servicer import finding_chart_service
from services.grpc_server import start_server, stop_server
from tests.asgi import serve_asgi
from tests.conftest import as_inputs
from tests.fake_tns import public_objects_zip


@pytest.fixture(scope="module", autouse=True)
def poppler() -> None:
    missing = [t for t in ("pdftoppm", "pdftotext", "pdfinfo") if shutil.which(t) is None]
    if missing:
        message = f"finding-chart tests need poppler-utils ({', '.join(missing)} missing)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@asynccontextmanager
async def survey_server(fits_bytes: bytes) -> AsyncIterator[str]:
    """A stand-in for a hips2fits-style cutout service on loopback."""

    async def cutout(request: Request) -> Response:
        return Response(fits_bytes, media_type="application/fits")

    async with serve_asgi(Starlette(routes=[Route("/cutout", cutout)])) as url:
        yield url


def _pdf_text(pdf: bytes, tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "chart.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return text, info


def _page_image(pdf: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "page.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-singlefile", str(path),
                    str(tmp_path / "page")], check=True)
    return np.asarray(Image.open(tmp_path / "page.png").convert("L"), dtype=float)


@dataclass
class ChartEnv:
    archive: LocalArchive
    tns_dir: Path
    oid: str = ""
    obj: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
async def chart_env(store: NightjarStore, tmp_path: Path,
                    simulated: list[tuple[str, int, bytes]]) -> ChartEnv:
    archive = LocalArchive(tmp_path / "archive")
    await ingest(BatchProcessor(store, archive), as_inputs(simulated), 500)
    oid = simulated[-1][0]
    obj = await store.get_object(oid)
    tns_dir = tmp_path / "tns"
    tns_dir.mkdir()
    pq.write_table(parse_public_objects(public_objects_zip([{
        "objid": 1, "name_prefix": "SN", "name": "2026xyz", "ra": obj["meanra"],
        "declination": obj["meandec"], "type": "SN Ia"}])), tns_dir / SNAPSHOT)
    assert obj is not None
    return ChartEnv(archive, tns_dir, oid, obj)


@asynccontextmanager
async def chart_stub(store: NightjarStore, env: ChartEnv, url: str | None = None,
                     ) -> AsyncIterator[finding_chart_pb2_grpc.FindingChartServiceStub]:
    async with httpx.AsyncClient() as http:
        running = await start_server([finding_chart_service(
            store, env.archive, env.tns_dir, url, http)], "127.0.0.1", 0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                yield finding_chart_pb2_grpc.FindingChartServiceStub(channel)
        finally:
            await stop_server(running, grace=1)


async def test_chart_renders_with_name_coordinates_and_images(
        store: NightjarStore, chart_env: ChartEnv, tmp_path: Path) -> None:
    oid, obj = chart_env.oid, chart_env.obj
    async with chart_stub(store, chart_env) as stub:
        reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(oid=oid),
                                           timeout=60)
    assert reply.pdf.startswith(b"%PDF") and "template cutout" in reply.reference_image
    text, info = _pdf_text(reply.pdf, tmp_path)
    assert re.search(r"^Pages:\s+1$", info, re.MULTILINE)
    assert "595.276 x 841.89 pts (A4)" in info
    assert oid in text and "SN 2026xyz" in text
    assert f"{obj['meanra']:.6f}" in text and f"{obj['meandec']:+.6f}" in text
    hms = SkyCoord(obj["meanra"], obj["meandec"], unit="deg").to_string(
        "hmsdms", sep=":", precision=2)
    assert hms.split()[0] in text and hms.split()[1] in text
    assert "orientation from the image's WCS" in text
    assert "science" in text and "difference" in text and "generated" in text
    page = _page_image(reply.pdf, tmp_path)
    h, w = page.shape
    reference = page[int(0.10 * h):int(0.42 * h), int(0.30 * w):int(0.70 * w)]
    stamps = page[int(0.50 * h):int(0.64 * h), int(0.12 * w):int(0.88 * w)]
    assert reference.std() > 20, "reference image region is blank"
    assert stamps.std() > 20, "stamp row is blank"


async def test_letter_page_specific_alert_and_errors(
        store: NightjarStore, chart_env: ChartEnv, tmp_path: Path,
        simulated: list[tuple[str, int, bytes]]) -> None:
    oid = chart_env.oid
    first = min(c for o, c, _ in simulated if o == oid)
    async with chart_stub(store, chart_env) as stub:
        reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(
            oid=oid, candid=first, page_size=finding_chart_pb2.PAGE_SIZE_LETTER))
        text, info = _pdf_text(reply.pdf, tmp_path)
        assert "612 x 792 pts (letter)" in info and str(first) in text
        for request, code in [
            (finding_chart_pb2.GetFindingChartRequest(oid="ZTF99zzzzzzz"),
             grpc.StatusCode.NOT_FOUND),
            (finding_chart_pb2.GetFindingChartRequest(oid=oid, candid=12345),
             grpc.StatusCode.NOT_FOUND),
            (finding_chart_pb2.GetFindingChartRequest(oid=oid, field_arcmin=90),
             grpc.StatusCode.INVALID_ARGUMENT),
            (finding_chart_pb2.GetFindingChartRequest(), grpc.StatusCode.INVALID_ARGUMENT)]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetFindingChart(request)
            assert err.value.code() == code


async def test_configured_survey_cutout_is_used_and_failure_falls_back(
        store: NightjarStore, chart_env: ChartEnv, tmp_path: Path,
        simulated: list[tuple[str, int, bytes]]) -> None:
    raw = next(r for o, _, r in simulated if o == chart_env.oid)
    survey_fits = gzip.decompress(AlertDecoder().decode(raw)[0]["cutoutScience"]["stampData"])
    async with survey_server(survey_fits) as base:
        url = base + "/cutout?ra={ra}&dec={dec}&fov={fov_deg}&width={size}"
        async with chart_stub(store, chart_env, url) as stub:
            reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(
                oid=chart_env.oid, field_arcmin=3))
        assert reply.reference_image.startswith("survey cutout")
        async with chart_stub(store, chart_env, base + "/missing?ra={ra}") as stub:
            fallback = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(
                oid=chart_env.oid))
        assert "template cutout" in fallback.reference_image
        assert "reference image: ZTF template" in _pdf_text(fallback.pdf, tmp_path)[0]


async def test_real_alert_without_wcs_says_orientation_is_unknown(
        store: NightjarStore, tmp_path: Path, shared_data: Path) -> None:
    from nightjar.ingest import expand_paths, iter_inputs

    archive = LocalArchive(tmp_path / "archive")
    files = expand_paths([shared_data / "ztf" / "alerts"])[:5]
    await ingest(BatchProcessor(store, archive), iter_inputs(files), 500)
    oid = AlertDecoder().decode(files[0].read_bytes())[0]["objectId"]
    env = ChartEnv(archive, tmp_path / "no-tns")
    async with chart_stub(store, env) as stub:
        reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(oid=oid))
    text, _ = _pdf_text(reply.pdf, tmp_path)
    assert oid in text and "orientation unknown" in text and "no TNS object" in text
    assert _page_image(reply.pdf, tmp_path)[60:230, 130:290].std() > 10
