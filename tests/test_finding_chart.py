"""Finding charts over gRPC, checked by reading the PDF back with pdfium (pypdfium2)."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pyarrow.parquet as pq
import pypdfium2 as pdfium
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nightjar.context.tns import SNAPSHOT, parse_public_objects
from nightjar.runner.ingest import BatchProcessor, ingest
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.surveys.avro import AlertDecoder
from nightjar.v1 import finding_chart_pb2, finding_chart_pb2_grpc
from services.finding_chart.servicer import finding_chart_service
from services.grpc_server import start_server, stop_server
from tests.asgi import serve_asgi
from tests.conftest import as_inputs
from tests.fake_tns import public_objects_zip


@dataclass
class SurveyServer:
    """A stand-in for a hips2fits-style cutout service: what it was asked, what it serves."""

    url: str
    fits_bytes: bytes
    queries: list[dict[str, str]] = field(default_factory=list)


@asynccontextmanager
async def survey_server(fits_bytes: bytes) -> AsyncIterator[SurveyServer]:
    served = SurveyServer("", fits_bytes)

    async def cutout(request: Request) -> Response:
        served.queries.append(dict(request.query_params))
        return Response(served.fits_bytes, media_type="application/fits")

    async with serve_asgi(Starlette(routes=[Route("/cutout", cutout)])) as url:
        served.url = url
        yield served


@dataclass
class RenderedPdf:
    """A PDF read back with pdfium (pypdfium2): pages, sizes, text, pixels, glyph boxes."""

    pdf: pdfium.PdfDocument

    @property
    def pages(self) -> int:
        return len(self.pdf)

    @property
    def size_pt(self) -> tuple[float, float]:
        width, height = self.pdf[0].get_size()
        return round(width, 2), round(height, 2)

    @property
    def text(self) -> str:
        return str(self.pdf[0].get_textpage().get_text_range()).replace("\r\n", "\n")

    def image(self, dpi: float = 50) -> np.ndarray:
        """The page as grey levels, row 0 at the top."""
        bitmap = self.pdf[0].render(scale=dpi / 72)
        return np.asarray(bitmap.to_pil().convert("L"), dtype=float)

    def word_boxes(self, word: str) -> list[tuple[float, float]]:
        """Centres (x, y) [pt, y up] of every whole-word occurrence of ``word``."""
        textpage = self.pdf[0].get_textpage()
        searcher = textpage.search(word, match_case=True, match_whole_word=True)
        centres = []
        while (hit := searcher.get_next()) is not None:
            left, bottom, right, top = textpage.get_charbox(hit[0])
            centres.append(((left + right) / 2, (bottom + top) / 2))
        return centres


def read_pdf(pdf: bytes) -> RenderedPdf:
    assert pdf.startswith(b"%PDF")
    return RenderedPdf(pdfium.PdfDocument(pdf))


def compass(chart: RenderedPdf) -> tuple[float, float]:
    """The vector from the E label to the N label of the compass [pt, y up]."""
    (nx, ny), = chart.word_boxes("N")
    (ex, ey), = chart.word_boxes("E")
    return nx - ex, ny - ey


def fits_with_cdelt(fits_bytes: bytes, cdelt1_sign: float, cdelt2_sign: float) -> bytes:
    """A copy of a FITS image with the signs of its WCS axes set (orientation flipped)."""
    with fits.open(io.BytesIO(fits_bytes)) as hdus:
        header, data = hdus[0].header.copy(), hdus[0].data.copy()
    header["CDELT1"] = cdelt1_sign * abs(header["CDELT1"])
    header["CDELT2"] = cdelt2_sign * abs(header["CDELT2"])
    out = io.BytesIO()
    fits.PrimaryHDU(data, header).writeto(out)
    return out.getvalue()


@dataclass
class ChartEnv:
    archive: LocalArchive
    tns_dir: Path
    oid: str = ""
    obj: dict[str, Any] = field(default_factory=dict)


def write_tns_object(tns_dir: Path, ra: float, dec: float) -> None:
    """A TNS snapshot holding SN 2026xyz at (ra, dec) [deg]."""
    tns_dir.mkdir(exist_ok=True)
    pq.write_table(parse_public_objects(public_objects_zip([{
        "objid": 1, "name_prefix": "SN", "name": "2026xyz", "ra": ra, "declination": dec,
        "type": "SN Ia"}])), tns_dir / SNAPSHOT)


def arcsec_north(obj: dict[str, Any], arcsec: float) -> tuple[float, float]:
    return obj["meanra"], obj["meandec"] + arcsec / 3600.0


@pytest.fixture
async def chart_env(store: NightjarStore, tmp_path: Path,
                    simulated: list[tuple[str, int, bytes]]) -> ChartEnv:
    archive = LocalArchive(tmp_path / "archive")
    await ingest(BatchProcessor(store, archive), as_inputs(simulated), 500)
    oid = simulated[-1][0]
    obj = await store.get_object(oid)
    assert obj is not None
    tns_dir = tmp_path / "tns"
    write_tns_object(tns_dir, *arcsec_north(obj, 1.9))  # inside the 2" match radius
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


def band_rows(text: str) -> dict[str, tuple[int, float, float, float]]:
    """The chart's magnitude table: band -> (ndet, brightest, mean, last)."""
    rows = re.findall(r"^\s*([gri])\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", text,
                      re.MULTILINE)
    return {b: (int(n), float(lo), float(mean), float(last)) for b, n, lo, mean, last in rows}


async def test_chart_renders_with_name_coordinates_dates_magnitudes_and_images(
        store: NightjarStore, chart_env: ChartEnv) -> None:
    oid, obj = chart_env.oid, chart_env.obj
    async with chart_stub(store, chart_env) as stub:
        reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(oid=oid),
                                           timeout=60)
    assert "template cutout" in reply.reference_image
    chart = read_pdf(reply.pdf)
    assert chart.pages == 1 and chart.size_pt == (595.28, 841.89)  # A4
    text = chart.text
    assert oid in text and "SN 2026xyz" in text  # TNS object 1.9" away
    assert f"{obj['meanra']:.6f}" in text and f"{obj['meandec']:+.6f}" in text
    hms = SkyCoord(obj["meanra"], obj["meandec"], unit="deg").to_string(
        "hmsdms", sep=":", precision=2)
    assert hms.split()[0] in text and hms.split()[1] in text
    for mjd in (obj["firstmjd"], obj["lastmjd"]):  # ISO dates, to the minute
        assert Time(mjd, format="mjd", scale="utc").iso[:16] + " UTC" in text
    rows = band_rows(text)
    bands = {1: "g", 2: "r", 3: "i"}
    assert set(rows) == {bands[m["fid"]] for m in obj["magstats"]}
    for stats in obj["magstats"]:
        ndet, brightest, mean, last = rows[bands[stats["fid"]]]
        assert ndet == stats["ndet"]
        assert (brightest, mean, last) == pytest.approx(
            (stats["magmin"], stats["magmean"], stats["maglast"]), abs=0.006)
    assert "orientation from the image's WCS" in text
    north_minus_east = compass(chart)  # the simulator's WCS: north up, east left
    assert north_minus_east[0] > 20 and north_minus_east[1] > 20
    assert "science" in text and "difference" in text and "generated" in text
    page = chart.image()
    h, w = page.shape
    reference = page[int(0.10 * h):int(0.42 * h), int(0.30 * w):int(0.70 * w)]
    stamps = page[int(0.50 * h):int(0.64 * h), int(0.12 * w):int(0.88 * w)]
    assert reference.std() > 20, "reference image region is blank"
    assert stamps.std() > 20, "stamp row is blank"


async def test_letter_page_specific_alert_tns_radius_and_errors(
        store: NightjarStore, chart_env: ChartEnv,
        simulated: list[tuple[str, int, bytes]]) -> None:
    oid = chart_env.oid
    first = min(c for o, c, _ in simulated if o == oid)
    write_tns_object(chart_env.tns_dir, *arcsec_north(chart_env.obj, 2.1))  # outside 2"
    async with chart_stub(store, chart_env) as stub:
        reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(
            oid=oid, candid=first, page_size=finding_chart_pb2.PAGE_SIZE_LETTER))
        chart = read_pdf(reply.pdf)
        assert chart.size_pt == (612.0, 792.0) and f"alert: {first}" in chart.text
        assert "2026xyz" not in chart.text and "no TNS object within 2 arcsec" in chart.text
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


async def test_configured_survey_cutout_is_asked_for_the_field_and_failure_falls_back(
        store: NightjarStore, chart_env: ChartEnv,
        simulated: list[tuple[str, int, bytes]]) -> None:
    obj = chart_env.obj
    raw = next(r for o, _, r in simulated if o == chart_env.oid)
    science = gzip.decompress(AlertDecoder().decode(raw)[0]["cutoutScience"]["stampData"])
    # the survey image is flipped (north down, east right): the arrows must follow it
    async with survey_server(fits_with_cdelt(science, +1.0, -1.0)) as survey:
        url = survey.url + "/cutout?ra={ra}&dec={dec}&fov={fov_deg}&width={size}"
        async with chart_stub(store, chart_env, url) as stub:
            reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(
                oid=chart_env.oid, field_arcmin=3))
        assert reply.reference_image.startswith("survey cutout")
        (query,) = survey.queries
        assert float(query["ra"]) == pytest.approx(obj["meanra"], abs=1e-9)
        assert float(query["dec"]) == pytest.approx(obj["meandec"], abs=1e-9)
        assert float(query["fov"]) == pytest.approx(3 / 60) and query["width"] == "512"
        north_minus_east = compass(read_pdf(reply.pdf))
        assert north_minus_east[0] < -20 and north_minus_east[1] < -20
        async with chart_stub(store, chart_env, survey.url + "/missing?ra={ra}") as stub:
            fallback = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(
                oid=chart_env.oid))
        assert "template cutout" in fallback.reference_image
        assert "reference image: ZTF template" in read_pdf(fallback.pdf).text


async def test_real_alert_without_wcs_says_orientation_is_unknown(
        store: NightjarStore, tmp_path: Path, shared_data: Path) -> None:
    from nightjar.runner.ingest import expand_paths, iter_inputs

    archive = LocalArchive(tmp_path / "archive")
    files = expand_paths([shared_data / "ztf" / "alerts"])[:5]
    await ingest(BatchProcessor(store, archive), iter_inputs(files), 500)
    oid = AlertDecoder().decode(files[0].read_bytes())[0]["objectId"]
    env = ChartEnv(archive, tmp_path / "no-tns")
    async with chart_stub(store, env) as stub:
        reply = await stub.GetFindingChart(finding_chart_pb2.GetFindingChartRequest(oid=oid))
    chart = read_pdf(reply.pdf)
    assert oid in chart.text and "orientation unknown" in chart.text
    assert "no TNS object" in chart.text
    assert not chart.word_boxes("N") and not chart.word_boxes("E")  # no compass drawn
    assert chart.image()[60:230, 130:290].std() > 10
